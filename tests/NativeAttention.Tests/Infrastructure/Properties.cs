// Runs FsCheck properties twice: once from a FIXED seed (every run draws the same cases, so a planted bug is caught
// by the same test every time and PoCL compiles the same kernel variants, which the disk cache keeps) and once from a
// FRESH seed (new cases every run). A failure names the run, its seed and how to replay it.
//
// Environment:
//   NATIVEATTENTION_FSCHECK_TESTS   cases per run (both runs), overriding each property's own count
//   NATIVEATTENTION_FSCHECK_SEED    the fixed seed, "seed,gamma" (default FixedSeed below)
//   NATIVEATTENTION_FSCHECK_FRESH   the fresh seed, "seed,gamma"; "off" skips the fresh run; unset: drawn per process
//   NATIVEATTENTION_FSCHECK_REPLAY  "seed,gamma": run only that seed (a failure message prints the value to use)
using FsCheck;
using FsCheck.Fluent;

namespace NativeAttention.Tests;

/// <summary>Runs FsCheck properties inside xunit tests; a failure throws with the case, which seed found it and the replay value.</summary>
public static class Properties
{
    /// <summary>Cases per run variable.</summary>
    public const string TestsVariable = "NATIVEATTENTION_FSCHECK_TESTS";
    /// <summary>Fixed seed variable.</summary>
    public const string SeedVariable = "NATIVEATTENTION_FSCHECK_SEED";
    /// <summary>Fresh seed variable ("off" disables the fresh run).</summary>
    public const string FreshVariable = "NATIVEATTENTION_FSCHECK_FRESH";
    /// <summary>Replay variable.</summary>
    public const string ReplayVariable = "NATIVEATTENTION_FSCHECK_REPLAY";

    /// <summary>The fixed seed every run starts from unless <see cref="SeedVariable"/> says otherwise (gamma odd, as SplitMix wants).</summary>
    public static readonly (ulong Seed, ulong Gamma) FixedSeed = (20251205, 0x9E3779B97F4A7C15);

    /// <summary>The fixed seed in force.</summary>
    public static (ulong Seed, ulong Gamma) Fixed { get; } = Parse(Environment.GetEnvironmentVariable(SeedVariable), SeedVariable) ?? FixedSeed;

    /// <summary>The fresh seed of this process, or null when the fresh run is off.</summary>
    public static (ulong Seed, ulong Gamma)? Fresh { get; } = FreshSeed();

    /// <summary>Cases per property: <see cref="TestsVariable"/>, else <paramref name="fallback"/>.</summary>
    public static int Count(int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(TestsVariable), out int n) && n > 0 ? n : fallback;

    /// <summary>
    /// Cases of the fresh run: a third of the fixed run's (at least 2) unless <see cref="TestsVariable"/> is set. The
    /// fixed run carries the coverage; the fresh run keeps exploring without compiling a full new set of kernel
    /// variants on OpenCL every CI run (about 1.3 s each on PoCL, uncached).
    /// </summary>
    public static int FreshCount(int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(TestsVariable), out int n) && n > 0 ? n : Math.Max(2, (fallback + 2) / 3);

    /// <summary>A one-line description of the seeds in force, for logs.</summary>
    public static string Describe() =>
        $"FsCheck seeds: fixed {Fixed.Seed},{Fixed.Gamma}; fresh {(Fresh is { } f ? $"{f.Seed},{f.Gamma}" : "off")}";

    /// <summary>
    /// Checks that <paramref name="body"/> holds for values drawn from <paramref name="arbitrary"/>: <paramref name="count"/>
    /// cases from the fixed seed, then <see cref="FreshCount"/> cases from the fresh seed (or only the replayed seed).
    /// </summary>
    public static void Check<T>(Arbitrary<T> arbitrary, Action<T> body, int count = 25)
    {
        if (Parse(Environment.GetEnvironmentVariable(ReplayVariable), ReplayVariable) is { } replay)
        {
            Run(arbitrary, body, Count(count), replay, "replayed");
            return;
        }
        Run(arbitrary, body, Count(count), Fixed, "fixed");
        if (Fresh is { } fresh) Run(arbitrary, body, FreshCount(count), fresh, "fresh");
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
            string cases = which == "fresh" ? $" {TestsVariable}={count}" : "";
            throw new PropertyFailedException(
                $"Property failed with the {which} seed {seed.Seed},{seed.Gamma} ({count} cases). Replay: {ReplayVariable}={seed.Seed},{seed.Gamma}{cases}\n{e.Message}", e);
        }
    }

    private static (ulong, ulong)? FreshSeed()
    {
        string? text = Environment.GetEnvironmentVariable(FreshVariable);
        if (text is "off" or "0" or "false" or "none") return null;
        if (Parse(text, FreshVariable) is { } given) return given;
        // No seed given: draw one for this process (every property shares it; each failure message prints it).
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

/// <summary>A property failed; the message names the seed run (fixed, fresh or replayed) and the replay value.</summary>
public sealed class PropertyFailedException(string message, Exception inner) : Exception(message, inner);
