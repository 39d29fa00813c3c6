// Times a kernel the way the tool reports it: warm-up runs, then synchronised timed runs within a time budget,
// summarised by the median and the spread (min, max, interquartile range).
using System.Diagnostics;

namespace NativeAttention.Cli;

/// <summary>Wall times of the timed runs of one case, in seconds, with their order statistics.</summary>
internal sealed record Timing(IReadOnlyList<double> Samples)
{
    private double[] Sorted { get; } = [.. Samples.Order()];

    public double Median => Quantile(0.5);
    public double Min => Sorted[0];
    public double Max => Sorted[^1];

    /// <summary>First quartile (linear interpolation between order statistics, as numpy's default).</summary>
    public double Q1 => Quantile(0.25);

    /// <summary>Third quartile.</summary>
    public double Q3 => Quantile(0.75);

    private double Quantile(double q)
    {
        double position = q * (Sorted.Length - 1);
        int below = (int)Math.Floor(position);
        int above = Math.Min(below + 1, Sorted.Length - 1);
        return Sorted[below] + (position - below) * (Sorted[above] - Sorted[below]);
    }
}

internal static class KernelTimer
{
    /// <summary>
    /// Runs <paramref name="run"/> <paramref name="warmups"/> times untimed (JIT, kernel builds, first-touch page
    /// faults), then up to <paramref name="repeats"/> timed, synchronised runs, stopping early once the timed runs
    /// have taken <paramref name="budgetSeconds"/> (at least one run is always timed).
    /// </summary>
    public static Timing Measure(PreparedCase run, int warmups, int repeats, double budgetSeconds)
    {
        Warm(run, warmups);
        return Time(run, repeats, budgetSeconds);
    }

    /// <summary>The untimed runs of <see cref="Measure"/>.</summary>
    public static void Warm(PreparedCase run, int warmups)
    {
        for (int i = 0; i < warmups; i++) run.Run();
    }

    /// <summary>The timed runs of <see cref="Measure"/>, without warm-up.</summary>
    public static Timing Time(PreparedCase run, int repeats, double budgetSeconds)
    {
        var samples = new List<double>(repeats);
        // A full blocking collection first: the previous case's tensors (gigabytes of large-object garbage after a long
        // decode case) must not be collected by a background GC thread on another core while this case is timed.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        long start = Stopwatch.GetTimestamp();
        while (samples.Count < repeats && (samples.Count == 0 || Stopwatch.GetElapsedTime(start).TotalSeconds < budgetSeconds))
        {
            long t0 = Stopwatch.GetTimestamp();
            run.Run();
            samples.Add(Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        return new Timing(samples);
    }
}
