// The seed conventions of tests/NativeAttention.Tests (Infrastructure/Properties.cs), kept minimal for this project:
// each property runs from a FIXED seed (the same cases every run, so a planted bug is caught by the same test), then
// from a FRESH seed (new cases every run). A failure names the run, its seed and how to replay it.
//
// Environment (the same variables as the main tests):
//   NATIVEATTENTION_FSCHECK_TESTS   cases per run, overriding each property's own count
//   NATIVEATTENTION_FSCHECK_SEED    the fixed seed, "seed,gamma"
//   NATIVEATTENTION_FSCHECK_FRESH   the fresh seed, "seed,gamma"; "off" skips the fresh run; unset: drawn per process
//   NATIVEATTENTION_FSCHECK_REPLAY  "seed,gamma": run only that seed
using FsCheck;
using FsCheck.Fluent;

namespace NativeAttention.Ilgpu.Tests.Flex;

/// <summary>Runs FsCheck properties inside xunit tests with a fixed and a fresh seed.</summary>
public static class FlexProperties
{
    private const string TestsVariable = "NATIVEATTENTION_FSCHECK_TESTS";
    private const string SeedVariable = "NATIVEATTENTION_FSCHECK_SEED";
    private const string FreshVariable = "NATIVEATTENTION_FSCHECK_FRESH";
    private const string ReplayVariable = "NATIVEATTENTION_FSCHECK_REPLAY";

    private static readonly (ulong Seed, ulong Gamma) FixedSeed = (20251205, 0x9E3779B97F4A7C15);

    private static (ulong Seed, ulong Gamma) Fixed { get; } = Parse(Environment.GetEnvironmentVariable(SeedVariable), SeedVariable) ?? FixedSeed;

    private static (ulong Seed, ulong Gamma)? Fresh { get; } = FreshSeed();

    /// <summary>Cases per run: the variable, else <paramref name="fallback"/>.</summary>
    public static int Count(int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(TestsVariable), out int n) && n > 0 ? n : fallback;

    /// <summary>Checks <paramref name="body"/> on <paramref name="count"/> fixed-seed cases, then a third as many fresh ones (or only the replayed seed).</summary>
    public static void Check<T>(Arbitrary<T> arbitrary, Action<T> body, int count = 20)
    {
        if (Parse(Environment.GetEnvironmentVariable(ReplayVariable), ReplayVariable) is { } replay)
        {
            Run(arbitrary, body, Count(count), replay, "replayed");
            return;
        }
        Run(arbitrary, body, Count(count), Fixed, "fixed");
        if (Fresh is { } fresh) Run(arbitrary, body, Count(Math.Max(2, (count + 2) / 3)), fresh, "fresh");
    }

    private static void Run<T>(Arbitrary<T> arbitrary, Action<T> body, int count, (ulong Seed, ulong Gamma) seed, string which)
    {
        var config = Config.QuickThrowOnFailure.WithMaxTest(count).WithQuietOnSuccess(true).WithReplay(seed.Seed, seed.Gamma);
        try
        {
            Prop.ForAll(arbitrary, body).Check(config);
        }
        catch (Exception e)
        {
            throw new InvalidOperationException(
                $"Property failed with the {which} seed {seed.Seed},{seed.Gamma} ({count} cases). Replay: {ReplayVariable}={seed.Seed},{seed.Gamma} {TestsVariable}={count}\n{e.Message}", e);
        }
    }

    private static (ulong, ulong)? FreshSeed()
    {
        string? text = Environment.GetEnvironmentVariable(FreshVariable);
        if (text is "off" or "0" or "false" or "none") return null;
        if (Parse(text, FreshVariable) is { } given) return given;
        return ((ulong)Random.Shared.NextInt64(1, long.MaxValue), (ulong)Random.Shared.NextInt64() | 1);
    }

    private static (ulong, ulong)? Parse(string? text, string variable)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        if (parts.Length != 2 || !ulong.TryParse(parts[0], out ulong seed) || !ulong.TryParse(parts[1], out ulong gamma))
            throw new ArgumentException($"{variable} must be \"seed,gamma\" (two unsigned integers), not \"{text}\".", variable);
        return (seed, gamma);
    }
}
