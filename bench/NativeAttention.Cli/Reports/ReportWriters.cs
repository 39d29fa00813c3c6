// Writes a bench report as CSV (one row per case, every figure), JSON (the same plus every sample and the machine)
// and Markdown (the table people paste into pull requests).
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace NativeAttention.Cli.Reports;

internal static class ReportWriters
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>The CSV columns, in order.</summary>
    public static readonly string[] CsvColumns =
    [
        "backend", "spec", "family", "dtype", "layout", "batch", "query_heads", "kv_heads", "query_length", "key_length",
        "head_dim", "value_dim", "causal", "window_left", "window_right", "flops", "bytes", "runs", "median_s", "min_s",
        "max_s", "q1_s", "q3_s", "gflops", "bandwidth_gbs", "bound", "percent_of_peak", "peak_gflops", "peak_bandwidth_gbs", "error",
    ];

    /// <summary>The CSV columns <c>bench --adjacent-peaks</c> appends: its probes before and after each case.</summary>
    public static readonly string[] AdjacentCsvColumns =
        ["probe_read_before_gbs", "probe_read_after_gbs", "probe_fma_before_gflops", "probe_fma_after_gflops"];

    public static string Csv(BenchReport report)
    {
        var csv = new StringBuilder();
        csv.AppendLine(string.Join(',', report.AdjacentPeaks ? [.. CsvColumns, .. AdjacentCsvColumns] : CsvColumns));
        foreach (var row in report.Rows)
        {
            var c = row.Case.Sizes;
            var f = BenchReport.Flash(row) ?? FlashOptions.Default;
            var t = row.Timing;
            string[] cells =
            [
                Terminal.Name(row.Backend), row.Case.ToSpec(), row.Case.FamilyName, AttentionCase.TypeName(row.Case.ElementType),
                Layout(c), Number(c.Batch), Number(c.QueryHeads), Number(c.KeyValueHeads), Number(c.QueryLength), Number(c.KeyLength),
                Number(c.HeadDim), Number(c.ValueDim), f.Causal ? "true" : "false", Number(f.WindowLeft), Number(f.WindowRight),
                Number(row.Flops), Number(row.Bytes), Number(t?.Samples.Count ?? 0), Number(t?.Median), Number(t?.Min),
                Number(t?.Max), Number(t?.Q1), Number(t?.Q3), Number(row.Gflops), Number(row.BandwidthGBs), Bound(row),
                Number(row.PercentOfPeak), Number(row.Peaks.Gflops), Number(row.Peaks.BandwidthGBs), row.Error ?? "",
            ];
            if (report.AdjacentPeaks)
            {
                var a = row.Adjacent;
                cells = [.. cells, Number(a?.Before.ReadGBs), Number(a?.After.ReadGBs), Number(a?.Before.FmaGflops), Number(a?.After.FmaGflops)];
            }
            csv.AppendLine(string.Join(',', cells.Select(Quote)));
        }
        return csv.ToString();
    }

    public static string Json(BenchReport report)
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("tool", "NativeAttention.Cli bench");
            json.WriteString("version", report.Version);
            json.WriteString("createdAt", report.CreatedAt);
            json.WriteStartObject("machine");
            json.WriteString("cpu", report.CpuModel);
            json.WriteString("runtime", report.Runtime);
            json.WriteNumber("threads", report.Threads);
            json.WriteEndObject();
            json.WriteStartObject("settings");
            json.WriteNumber("warmups", report.Warmups);
            json.WriteNumber("repeats", report.Repeats);
            json.WriteNumber("budgetSeconds", report.BudgetSeconds);
            json.WriteNumber("decodeQueryRows", BenchRow.DecodeQueryRows);
            if (report.AdjacentPeaks) json.WriteBoolean("adjacentPeaks", true);
            json.WriteBoolean("alignedHostMemory", report.AlignedHostMemory);
            json.WriteEndObject();
            if (report.AdjacentPeaks)
            {
                // Per backend probed: what a reading is and the range the readings covered over the run.
                json.WriteStartArray("adjacentProbes");
                foreach (var backend in report.Rows.Select(r => r.Backend).Distinct())
                {
                    if (report.Spread(backend) is not { } spread) continue;
                    json.WriteStartObject();
                    json.WriteString("backend", Terminal.Name(backend));
                    json.WriteString("probe", spread.Description);
                    json.WriteNumber("cases", spread.Cases);
                    Write(json, "readMinGBs", spread.ReadMinGBs);
                    Write(json, "readMaxGBs", spread.ReadMaxGBs);
                    Write(json, "fmaMinGflops", spread.FmaMinGflops);
                    Write(json, "fmaMaxGflops", spread.FmaMaxGflops);
                    json.WriteEndObject();
                }
                json.WriteEndArray();
            }
            json.WriteStartArray("results");
            foreach (var row in report.Rows)
            {
                var c = row.Case.Sizes;
                var f = BenchReport.Flash(row) ?? FlashOptions.Default;
                json.WriteStartObject();
                json.WriteString("backend", Terminal.Name(row.Backend));
                json.WriteString("spec", row.Case.ToSpec());
                json.WriteString("series", report.SeriesLabel(row));
                json.WriteString("family", row.Case.FamilyName);
                json.WriteString("kernel", row.Case.KernelName);
                json.WriteString("dtype", AttentionCase.TypeName(row.Case.ElementType));
                json.WriteString("layout", Layout(c));
                json.WriteNumber("batch", c.Batch);
                json.WriteNumber("queryHeads", c.QueryHeads);
                json.WriteNumber("keyValueHeads", c.KeyValueHeads);
                json.WriteNumber("queryLength", c.QueryLength);
                json.WriteNumber("keyLength", c.KeyLength);
                json.WriteNumber("headDim", c.HeadDim);
                json.WriteNumber("valueDim", c.ValueDim);
                json.WriteBoolean("causal", f.Causal);
                json.WriteNumber("windowLeft", f.WindowLeft);
                json.WriteNumber("windowRight", f.WindowRight);
                json.WriteNumber("flops", row.Flops);
                json.WriteNumber("bytes", row.Bytes);
                json.WriteStartArray("samplesSeconds");
                foreach (double s in row.Timing?.Samples ?? []) json.WriteNumberValue(s);
                json.WriteEndArray();
                Write(json, "medianSeconds", row.Timing?.Median);
                Write(json, "minSeconds", row.Timing?.Min);
                Write(json, "maxSeconds", row.Timing?.Max);
                Write(json, "q1Seconds", row.Timing?.Q1);
                Write(json, "q3Seconds", row.Timing?.Q3);
                Write(json, "gflops", row.Gflops);
                Write(json, "bandwidthGBs", row.BandwidthGBs);
                json.WriteString("bound", Bound(row));
                Write(json, "percentOfPeak", row.PercentOfPeak);
                Write(json, "peakGflops", row.Peaks.Gflops);
                Write(json, "peakBandwidthGBs", row.Peaks.BandwidthGBs);
                json.WriteString("peakSource", row.Peaks.Source);
                if (report.AdjacentPeaks)
                {
                    Write(json, "probeReadBeforeGBs", row.Adjacent?.Before.ReadGBs);
                    Write(json, "probeReadAfterGBs", row.Adjacent?.After.ReadGBs);
                    Write(json, "probeFmaBeforeGflops", row.Adjacent?.Before.FmaGflops);
                    Write(json, "probeFmaAfterGflops", row.Adjacent?.After.FmaGflops);
                }
                if (row.Error is { } error) json.WriteString("error", error);
                else json.WriteNull("error");
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
    }

    public static string Markdown(BenchReport report)
    {
        var md = new StringBuilder();
        md.AppendLine(Invariant, $"# NativeAttention bench, {report.CreatedAt.ToString("yyyy-MM-dd HH:mm 'UTC'", Invariant)}");
        md.AppendLine();
        md.AppendLine(Invariant, $"{report.CpuModel}, {report.Threads} CPU thread(s); {report.Runtime}; NativeAttention {report.Version}.");
        md.AppendLine(Invariant, $"{report.Warmups} warm-up run(s), then up to {report.Repeats} timed runs within {report.BudgetSeconds.ToString("0.#", Invariant)} s per case; median and spread.");
        md.AppendLine("FLOPs are counted on visible (query, key) pairs; decode-like cases (Nq <= " +
            $"{BenchRow.DecodeQueryRows}) and merges are judged against memory bandwidth (minimum bytes read and written).");
        md.AppendLine(report.AlignedHostMemory
            ? "CPU cases run on 64-byte aligned native copies of their tensors."
            : "CPU cases run on the managed arrays their tensors were generated in (--managed-arrays).");
        if (report.AdjacentPeaks)
            md.AppendLine("% of peak: of the mean of the probes run right before and right after each case's timed runs " +
                "(read probe for memory-bound cases, FMA probe for the others); both probes' values are in the table.");
        md.AppendLine();
        if (report.AdjacentPeaks)
        {
            md.AppendLine("| Backend | Case | Median | Min | Max | IQR | GFLOP/s | GB/s | Read probe GB/s (before / after) | FMA probe GFLOP/s (before / after) | % of peak |");
            md.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        }
        else
        {
            md.AppendLine("| Backend | Case | Median | Min | Max | IQR | GFLOP/s | GB/s | % of peak |");
            md.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        }
        foreach (var row in report.Rows)
        {
            var t = row.Timing;
            string Cell(double? v, Func<double, string> f) => v is { } x ? f(x) : "-";
            string probes = !report.AdjacentPeaks ? ""
                : row.Adjacent is { } a
                    ? $"{Units.Rate(a.Before.ReadGBs)} / {Units.Rate(a.After.ReadGBs)} | {Units.Rate(a.Before.FmaGflops)} / {Units.Rate(a.After.FmaGflops)} | "
                    : "- | - | ";
            md.AppendLine(Invariant,
                $"| {Terminal.Name(row.Backend)} | `{row.Case.ToSpec()}` | {Cell(t?.Median, Units.Time)} | {Cell(t?.Min, Units.Time)} | {Cell(t?.Max, Units.Time)} | " +
                $"{Cell(t is null ? null : t.Q3 - t.Q1, Units.Time)} | {Cell(row.Gflops, Units.Gflops)} | {Cell(row.BandwidthGBs, Units.Gflops)} | {probes}" +
                $"{(row.Error is not null ? "error" : Cell(row.PercentOfPeak, p => Units.Percent(p) + (row.MemoryBound ? " BW" : " FMA")))} |");
        }
        var errors = report.Rows.Where(r => r.Error is not null).ToList();
        if (errors.Count > 0)
        {
            md.AppendLine();
            foreach (var row in errors) md.AppendLine(Invariant, $"- {Terminal.Name(row.Backend)} `{row.Case.ToSpec()}`: {row.Error}");
        }
        md.AppendLine();
        foreach (var peaks in report.Rows.GroupBy(r => r.Backend).Select(g => (g.Key, g.First().Peaks)))
            md.AppendLine(Invariant, $"Peaks on {Terminal.Name(peaks.Key)}: {PeakLine(report, peaks.Key, peaks.Peaks)}.");
        return md.ToString();
    }

    /// <summary>
    /// The summary of <paramref name="backend"/>'s peaks: <see cref="Describe"/> of <paramref name="first"/> (its
    /// first row's), or with <c>--adjacent-peaks</c> the probes' range over the run.
    /// </summary>
    public static string PeakLine(BenchReport report, Backend backend, Peaks first)
    {
        if (!report.AdjacentPeaks) return Describe(first);
        if (report.Spread(backend) is { } s) return DescribeSpread(s);
        return report.AdjacentProbeDescriptions.ContainsKey(backend)
            ? "adjacent probes: none ran (every case failed)"
            : $"{Describe(first)}; no adjacent probes on a GPU (the probes measure the CPU)";
    }

    /// <summary>E.g. <c>adjacent probes before and after each of 18 cases (...): read 27.3 .. 33.9 GB/s (max/min 1.24), FMA ...</c>.</summary>
    public static string DescribeSpread(ProbeSpread s) =>
        $"adjacent probes before and after each of {s.Cases} case(s) ({s.Description}): read {Units.Rate(s.ReadMinGBs)} .. {Units.Rate(s.ReadMaxGBs)} GB/s " +
        $"(max/min {Ratio(s.ReadMaxGBs, s.ReadMinGBs)}), FMA {Units.Rate(s.FmaMinGflops)} .. {Units.Rate(s.FmaMaxGflops)} GFLOP/s " +
        $"(max/min {Ratio(s.FmaMaxGflops, s.FmaMinGflops)}); each case's % of peak is of the mean of its own two";

    /// <summary>The probe that judges <paramref name="row"/>, before and after it: e.g. <c>31.2 / 29.8 GB/s</c>.</summary>
    public static string RelevantProbes(BenchRow row, AdjacentReadings a) => row.MemoryBound
        ? $"{Units.Rate(a.Before.ReadGBs)} / {Units.Rate(a.After.ReadGBs)} GB/s"
        : $"{Units.Rate(a.Before.FmaGflops)} / {Units.Rate(a.After.FmaGflops)} GFLOP/s";

    private static string Ratio(double max, double min) => min > 0 ? (max / min).ToString("0.00", Invariant) : "-";

    /// <summary>E.g. <c>FMA 140.2 GFLOP/s, bandwidth 12.0 GB/s (measured on 2 threads)</c>.</summary>
    public static string Describe(Peaks peaks) =>
        $"FMA {(peaks.Gflops is { } g ? Units.Rate(g) + " GFLOP/s" : "unknown")}, bandwidth " +
        $"{(peaks.BandwidthGBs is { } b ? Units.Rate(b) + " GB/s" : "unknown")} ({peaks.Source})";

    private static string Layout(CaseSizes c) => c.Layout == TensorLayout.HeadsFirst ? "bhnd" : "bnhd";

    private static string Bound(BenchRow row) => row.MemoryBound ? "memory" : "compute";

    private static string Number(double? value) => value is { } v ? v.ToString("R", Invariant) : "";

    private static string Number(int value) => value.ToString(Invariant);

    private static string Quote(string cell) =>
        cell.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + cell.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : cell;

    private static void Write(Utf8JsonWriter json, string name, double? value)
    {
        if (value is { } v && double.IsFinite(v)) json.WriteNumber(name, v);
        else json.WriteNull(name);
    }
}
