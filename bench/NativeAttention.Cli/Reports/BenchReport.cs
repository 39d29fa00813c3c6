// The results of one `bench` run, in the form every output (table, CSV, JSON, Markdown, SVG) is written from.
using System.Runtime.InteropServices;

namespace NativeAttention.Cli.Reports;

/// <summary>The denominators of "% of peak" for one backend, and where they came from.</summary>
/// <param name="Gflops">Peak float32 GFLOP/s, or null when unknown.</param>
/// <param name="BandwidthGBs">Peak memory bandwidth in GB/s, or null when unknown.</param>
/// <param name="Source">E.g. <c>measured on 2 threads (cached 2026-11-23)</c> or <c>given on the command line</c>.</param>
internal sealed record Peaks(double? Gflops, double? BandwidthGBs, string Source);

/// <summary>One case on one backend: its timing (or why it has none) and the throughput derived from it.</summary>
internal sealed record BenchRow(Backend Backend, IAttentionCase Case, Timing? Timing, string? Error, Peaks Peaks)
{
    /// <summary>
    /// Cases with at most this many query rows are decode-like: each key and value is used by so few queries that
    /// memory traffic, not arithmetic, bounds them, so they are reported against the measured bandwidth.
    /// </summary>
    public const int DecodeQueryRows = AttentionCase.DecodeQueryRows;

    public double Flops => Case.Flops();

    public double Bytes => Case.MinimumBytes();

    public double? Gflops => Timing is { } t ? Flops / t.Median / 1e9 : null;

    public double? BandwidthGBs => Timing is { } t ? Bytes / t.Median / 1e9 : null;

    /// <summary>True when the case is judged against memory bandwidth rather than FMA throughput (decode-like, merges).</summary>
    public bool MemoryBound => Case.IsMemoryBound;

    /// <summary>"% of peak": of the FMA peak for compute-bound cases, of the bandwidth for decode-like ones.</summary>
    public double? PercentOfPeak => MemoryBound
        ? BandwidthGBs is { } b && Peaks.BandwidthGBs is { } pb ? 100 * b / pb : null
        : Gflops is { } g && Peaks.Gflops is { } pg ? 100 * g / pg : null;

    /// <summary>The figure a chart plots: GFLOP/s, or GB/s for decode-like cases.</summary>
    public double? Throughput => MemoryBound ? BandwidthGBs : Gflops;

    public string ThroughputUnit => MemoryBound ? "GB/s" : "GFLOP/s";

    /// <summary>
    /// With <c>bench --adjacent-peaks</c>: the probes run right before and right after this case's timed runs, whose
    /// means are then <see cref="Peaks"/>; null without the option, on GPUs and for cases that failed.
    /// </summary>
    public AdjacentReadings? Adjacent { get; init; }
}

/// <summary>The range the adjacent probes covered over a run, on one backend: the probe's own noise and drift.</summary>
/// <param name="Description">What one reading is (<see cref="IAdjacentProbe.Description"/>).</param>
/// <param name="Cases">Cases probed (two readings each).</param>
internal sealed record ProbeSpread(string Description, int Cases, double ReadMinGBs, double ReadMaxGBs, double FmaMinGflops, double FmaMaxGflops);

/// <summary>A whole run: the machine, the settings and the rows.</summary>
internal sealed record BenchReport(IReadOnlyList<BenchRow> Rows, int Threads, int Warmups, int Repeats, double BudgetSeconds, DateTimeOffset CreatedAt)
{
    public string Version { get; } = typeof(AttentionContext).Assembly.GetName().Version?.ToString(3) ?? "?";

    public string CpuModel { get; } = Bench.MachinePeaks.CpuModelName();

    /// <summary>True when the run took <c>--adjacent-peaks</c>: the reports then carry the probes' columns.</summary>
    public bool AdjacentPeaks { get; init; }

    /// <summary>Whether host-backend cases ran on 64-byte aligned native copies (the default) rather than on managed arrays.</summary>
    public bool AlignedHostMemory { get; init; } = true;

    /// <summary>Per backend probed beside its cases, what one probe reading is.</summary>
    public IReadOnlyDictionary<Backend, string> AdjacentProbeDescriptions { get; init; } = new Dictionary<Backend, string>();

    /// <summary>The min and max of the adjacent probes on <paramref name="backend"/>, or null where none ran.</summary>
    public ProbeSpread? Spread(Backend backend)
    {
        var readings = Rows.Where(r => r.Backend == backend && r.Adjacent is not null)
            .SelectMany(r => new[] { r.Adjacent!.Before, r.Adjacent.After }).ToList();
        if (readings.Count == 0 || !AdjacentProbeDescriptions.TryGetValue(backend, out string? description)) return null;
        return new ProbeSpread(description, readings.Count / 2, readings.Min(p => p.ReadGBs), readings.Max(p => p.ReadGBs),
            readings.Min(p => p.FmaGflops), readings.Max(p => p.FmaGflops));
    }

    public string Runtime { get; } = $"{RuntimeInformation.FrameworkDescription}, {RuntimeInformation.OSDescription} {RuntimeInformation.OSArchitecture}";

    /// <summary>
    /// A short label per row naming only what differs between rows apart from the sequence lengths, e.g.
    /// <c>cpu f16 causal</c>: the name of the row's series in charts.
    /// </summary>
    public string SeriesLabel(BenchRow row)
    {
        var parts = new List<string>();
        void Add<T>(Func<BenchRow, T> key, Func<BenchRow, string> text, bool always = false)
        {
            if (always || Rows.Select(key).Distinct().Count() > 1) parts.Add(text(row));
        }
        Add(r => r.Backend, r => Terminal.Name(r.Backend), always: true);
        Add(r => r.Case.KernelName, r => r.Case.KernelName);
        Add(r => r.Case.ElementType, r => AttentionCase.TypeName(r.Case.ElementType));
        Add(r => Flash(r)?.Causal, r => Flash(r) is { } f ? f.Causal ? "causal" : "full" : "-");
        Add(r => r.Case.Sizes.Layout, r => r.Case.Sizes.Layout == TensorLayout.HeadsFirst ? "bhnd" : "bnhd");
        Add(r => r.Case.Sizes.Batch, r => $"B{r.Case.Sizes.Batch}");
        Add(r => (r.Case.Sizes.QueryHeads, r.Case.Sizes.KeyValueHeads), r => $"H{r.Case.Sizes.QueryHeads}/{r.Case.Sizes.KeyValueHeads}");
        Add(r => (r.Case.Sizes.HeadDim, r.Case.Sizes.ValueDim), r => $"D{r.Case.Sizes.HeadDim}/{r.Case.Sizes.ValueDim}");
        Add(r => r.Case.Sizes.QueryLength == r.Case.Sizes.KeyLength ? 0 : r.Case.Sizes.QueryLength, r => r.Case.Sizes.QueryLength == r.Case.Sizes.KeyLength ? "Nq=N" : $"Nq={r.Case.Sizes.QueryLength}");
        Add(r => (Flash(r)?.WindowLeft, Flash(r)?.WindowRight), r => Flash(r) is { } f ? $"window({f.WindowLeft},{f.WindowRight})" : "-");
        return string.Join(' ', parts);
    }

    /// <summary>The flash options of a flash-family row (flash, KV-cache decode, split-KV), or null.</summary>
    public static FlashOptions? Flash(BenchRow row) => FlashOf(row.Case)?.Flash;

    /// <summary>The flash case a flash-family case computes, or null for other families.</summary>
    public static AttentionCase? FlashOf(IAttentionCase @case) => @case switch
    {
        AttentionCase flash => flash,
        KvCacheCase decode => decode.Attention,
        SplitKeysCase split => split.Flash,
        _ => null,
    };
}
