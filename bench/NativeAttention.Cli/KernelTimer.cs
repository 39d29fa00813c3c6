// Times a kernel the way the tool reports it: one warm-up run, then the median of a few runs within a time budget.
using System.Diagnostics;
using NativeAttention.Bench;

namespace NativeAttention.Cli;

internal static class KernelTimer
{
    /// <summary>The median wall time in seconds of up to <paramref name="repeats"/> synchronised runs after one warm-up.</summary>
    /// <param name="run">The case to run.</param>
    /// <param name="repeats">Timed runs at most.</param>
    /// <param name="budgetSeconds">Stop early once the timed runs have taken this long (at least one run is timed).</param>
    public static double MedianSeconds(CaseRun run, int repeats, double budgetSeconds = 2.0)
    {
        // The warm-up pays for JIT compilation, kernel builds and first-touch page faults.
        run.Run();
        var samples = new List<double>(repeats);
        long start = Stopwatch.GetTimestamp();
        while (samples.Count < repeats && (samples.Count == 0 || Stopwatch.GetElapsedTime(start).TotalSeconds < budgetSeconds))
        {
            long t0 = Stopwatch.GetTimestamp();
            run.Run();
            samples.Add(Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        samples.Sort();
        int middle = samples.Count / 2;
        return samples.Count % 2 == 1 ? samples[middle] : (samples[middle - 1] + samples[middle]) / 2;
    }
}
