// Runs one piece of work on N dedicated threads at the same instant, several times, and keeps the fastest run:
// the peak probes use it so that thread start-up is never timed and a burst of load from elsewhere is discarded.
using System.Diagnostics;

namespace NativeAttention.Bench;

internal static class ParallelRuns
{
    /// <summary>
    /// Runs <paramref name="work"/>(thread index) on <paramref name="threads"/> dedicated threads, <paramref name="runs"/>
    /// times, and returns the shortest run in seconds, from the first thread's start to the last thread's end.
    /// </summary>
    public static double BestSeconds(int threads, int runs, Action<int> work)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(runs, 1);
        var starts = new long[runs, threads];
        var ends = new long[runs, threads];
        using var barrier = new Barrier(threads);
        var workers = new Thread[threads];
        for (int t = 0; t < threads; t++)
        {
            int index = t;
            workers[t] = new Thread(() =>
            {
                for (int r = 0; r < runs; r++)
                {
                    barrier.SignalAndWait();
                    starts[r, index] = Stopwatch.GetTimestamp();
                    work(index);
                    ends[r, index] = Stopwatch.GetTimestamp();
                }
            })
            { IsBackground = true, Name = $"probe-{index}" };
        }
        foreach (var worker in workers) worker.Start();
        foreach (var worker in workers) worker.Join();

        double best = double.PositiveInfinity;
        for (int r = 0; r < runs; r++)
        {
            long first = long.MaxValue, last = long.MinValue;
            for (int t = 0; t < threads; t++)
            {
                first = Math.Min(first, starts[r, t]);
                last = Math.Max(last, ends[r, t]);
            }
            best = Math.Min(best, (double)(last - first) / Stopwatch.Frequency);
        }
        return best;
    }
}
