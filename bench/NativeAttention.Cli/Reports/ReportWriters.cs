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

    public static string Csv(BenchReport report)
    {
        var csv = new StringBuilder();
        csv.AppendLine(string.Join(',', CsvColumns));
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
            json.WriteEndObject();
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
        md.AppendLine();
        md.AppendLine("| Backend | Case | Median | Min | Max | IQR | GFLOP/s | GB/s | % of peak |");
        md.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var row in report.Rows)
        {
            var t = row.Timing;
            string Cell(double? v, Func<double, string> f) => v is { } x ? f(x) : "-";
            md.AppendLine(Invariant,
                $"| {Terminal.Name(row.Backend)} | `{row.Case.ToSpec()}` | {Cell(t?.Median, Units.Time)} | {Cell(t?.Min, Units.Time)} | {Cell(t?.Max, Units.Time)} | " +
                $"{Cell(t is null ? null : t.Q3 - t.Q1, Units.Time)} | {Cell(row.Gflops, Units.Gflops)} | {Cell(row.BandwidthGBs, Units.Gflops)} | " +
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
            md.AppendLine(Invariant, $"Peaks on {Terminal.Name(peaks.Key)}: {Describe(peaks.Peaks)}.");
        return md.ToString();
    }

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
