// Runs FsCheck properties with a case count that CI keeps modest and NATIVEATTENTION_FSCHECK_TESTS raises.
using FsCheck;
using FsCheck.Fluent;

namespace NativeAttention.Tests;

/// <summary>Runs FsCheck properties inside xunit tests; a failure throws with the case, the seed and the replay token.</summary>
public static class Properties
{
    /// <summary>Cases per property: NATIVEATTENTION_FSCHECK_TESTS, else <paramref name="fallback"/>.</summary>
    public static int Count(int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable("NATIVEATTENTION_FSCHECK_TESTS"), out int n) && n > 0 ? n : fallback;

    /// <summary>Checks that <paramref name="body"/> holds for values drawn from <paramref name="arbitrary"/>.</summary>
    public static void Check<T>(Arbitrary<T> arbitrary, Action<T> body, int count = 25)
    {
        var config = Config.QuickThrowOnFailure.WithMaxTest(Count(count)).WithQuietOnSuccess(true);
        var replay = Environment.GetEnvironmentVariable("NATIVEATTENTION_FSCHECK_REPLAY");
        if (!string.IsNullOrEmpty(replay))
        {
            var parts = replay.Split(',', StringSplitOptions.TrimEntries);
            config = config.WithReplay(ulong.Parse(parts[0]), ulong.Parse(parts[1]));
        }
        Prop.ForAll(arbitrary, body).Check(config);
    }
}
