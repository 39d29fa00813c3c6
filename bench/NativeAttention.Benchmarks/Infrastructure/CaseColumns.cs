// Summary columns computed from a benchmark's AttentionCase and its mean time, for every family and backend:
// GFLOP/s on visible pairs, and that as a percentage of this machine's measured peak (DESIGN.md, "Benchmarks").
using System.Globalization;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using NativeAttention.Bench;

namespace NativeAttention.Benchmarks;

/// <summary>A column whose value follows from an <see cref="ICaseBenchmark"/> and its mean time in seconds.</summary>
internal abstract class CaseColumn(string id, string columnName, string legend, int priority) : IColumn
{
    public string Id => id;
    public string ColumnName => columnName;
    public string Legend => legend;
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => priority;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;

    public bool IsAvailable(Summary summary) => summary.BenchmarksCases.Any(c => CaseBenchmarks.Describe(c) is not null);

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, summary.Style);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        if (CaseBenchmarks.Describe(benchmarkCase) is not { } benchmark) return "-";
        if (summary[benchmarkCase]?.ResultStatistics is not { } statistics) return "NA";
        return Format(benchmark, statistics.Mean / 1e9);
    }

    /// <summary>The cell text for <paramref name="benchmark"/> taking <paramref name="seconds"/> per invocation.</summary>
    protected abstract string Format(ICaseBenchmark benchmark, double seconds);

    protected static double Gflops(ICaseBenchmark benchmark, double seconds) => benchmark.Case.Flops() / seconds / 1e9;

    public override string ToString() => ColumnName;
}

/// <summary>FLOPs on visible pairs per second: <see cref="AttentionCase.Flops"/> over the mean time.</summary>
internal sealed class GflopsColumn() : CaseColumn("NativeAttention.Gflops", "GFLOP/s",
    "FLOPs on visible (query, key) pairs, (2 Dqk + 2 Dv) each, divided by the mean time, in 10^9 per second", 0)
{
    protected override string Format(ICaseBenchmark benchmark, double seconds) =>
        Gflops(benchmark, seconds).ToString("0.0", CultureInfo.InvariantCulture);
}

/// <summary>GFLOP/s as a percentage of the measured peak FMA throughput on the same thread count (CPU only for now).</summary>
internal sealed class PercentOfPeakColumn() : CaseColumn("NativeAttention.PercentOfPeak", "% of peak",
    "GFLOP/s as a percentage of this machine's measured float32 FMA peak on the same threads (see `NativeAttention.Cli info`)", 1)
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<int, bool> WarnedAboutContention = new();

    protected override string Format(ICaseBenchmark benchmark, double seconds)
    {
        // GPU peaks are not probed yet; the GPU backends will bring their own probe.
        if (benchmark.Backend != Backend.Cpu) return "n/a";
        int threads = benchmark.ContextOptions.Threads ?? Environment.ProcessorCount;
        var peaks = MachinePeaks.GetOrMeasure(threads, progress: message => Console.WriteLine($"// {message}"));
        if (peaks.Contended && WarnedAboutContention.TryAdd(threads, true))
            Console.WriteLine($"// Warning: the {threads}-thread peak was measured while other processes held cores; % of peak is overstated.");
        return (100 * Gflops(benchmark, seconds) / peaks.FmaGflops).ToString("0.0", CultureInfo.InvariantCulture) + "%";
    }
}
