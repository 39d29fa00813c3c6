// The `bench --svg` figure: throughput against sequence length, one line per series (backend, and whatever else
// differs: dtype, causal, ...), with ticked and labelled axes, a legend, and each point's value as a tooltip.
using System.Globalization;

namespace NativeAttention.Cli.Reports;

internal static class SvgChart
{
    private const double Width = 860, Height = 480;
    private const double Left = 72, Right = 230, Top = 48, Bottom = 56;

    // Colour-blind-safe palette (Okabe and Ito), then repeats with dashes.
    private static readonly string[] Palette = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"];

    /// <summary>
    /// The chart of <paramref name="report"/>'s timed rows: GFLOP/s against the key length, or GB/s when every row
    /// is decode-like. The x axis is logarithmic (base 2) when the lengths span a factor of 4 or more.
    /// </summary>
    public static string Render(BenchReport report)
    {
        var rows = report.Rows.Where(r => r.Throughput is not null).ToList();
        bool memory = rows.Count > 0 && rows.All(r => r.MemoryBound);
        Func<BenchRow, double> y = memory ? r => r.BandwidthGBs!.Value : r => r.Gflops!.Value;
        string unit = memory ? "GB/s" : "GFLOP/s";
        var series = rows.GroupBy(report.SeriesLabel).Select(g => (Label: g.Key, Points: g.OrderBy(r => r.Case.Sizes.KeyLength).ToList())).ToList();

        var svg = new SvgWriter(Width, Height);
        svg.Element("rect", null, ("width", Width), ("height", Height), ("fill", "white"));
        string title = $"{(memory ? "Memory throughput" : "Throughput")} of {string.Join(" and ", rows.Select(r => r.Case.FamilyName).DefaultIfEmpty("flash").Distinct())} attention against sequence length";
        svg.Text(Left + (Width - Left - Right) / 2, 24, title, "middle", ("font-size", 15), ("font-weight", "bold"));
        double plotW = Width - Left - Right, plotH = Height - Top - Bottom;
        if (rows.Count == 0)
        {
            svg.Text(Left + plotW / 2, Top + plotH / 2, "no timed results", "middle");
            return svg.ToString();
        }

        // x: key length.
        int[] lengths = [.. rows.Select(r => r.Case.Sizes.KeyLength).Distinct().Order()];
        bool log = lengths[^1] >= 4 * lengths[0];
        double xMin = log ? Math.Log2(lengths[0]) : 0, xMax = log ? Math.Log2(lengths[^1]) : lengths[^1];
        if (xMax - xMin < 1e-9) (xMin, xMax) = (xMin - 1, xMax + 1);
        double X(double n) => Left + ((log ? Math.Log2(n) : n) - xMin) / (xMax - xMin) * plotW;
        int[] xTicks = log ? [.. PowersOfTwo(lengths[0], lengths[^1]).Union(lengths.Length <= 8 ? lengths : []).Order()] : [.. NiceTicks(0, lengths[^1], 6).Select(v => (int)v)];

        // y: throughput from 0.
        double yTop = NiceTicks(0, rows.Max(y) * 1.05, 6)[^1];
        double Y(double v) => Top + plotH - v / yTop * plotH;

        svg.Begin("g", ("stroke-linecap", "round"));
        foreach (double v in NiceTicks(0, yTop, 6))
        {
            svg.Line(Left, Y(v), Left + plotW, Y(v), "#e0e0e0");
            svg.Text(Left - 8, Y(v) + 4, Format(v), "end");
        }
        foreach (int n in xTicks)
        {
            svg.Line(X(n), Top + plotH, X(n), Top + plotH + 5, "#333");
            svg.Text(X(n), Top + plotH + 19, n.ToString(CultureInfo.InvariantCulture), "middle");
        }
        svg.Line(Left, Top, Left, Top + plotH, "#333");
        svg.Line(Left, Top + plotH, Left + plotW, Top + plotH, "#333");
        svg.Text(Left + plotW / 2, Height - 14, $"sequence length N (keys){(log ? ", log scale" : "")}", "middle");
        svg.Text(18, Top + plotH / 2, unit, "middle", ("transform", $"rotate(-90 18 {SvgWriter.F(Top + plotH / 2)})"));
        svg.End();

        for (int s = 0; s < series.Count; s++)
        {
            var (label, points) = series[s];
            string colour = Palette[s % Palette.Length];
            string dash = s < Palette.Length ? "none" : "6 3";
            string path = string.Join(' ', points.Select((p, i) => $"{(i == 0 ? 'M' : 'L')}{SvgWriter.F(X(p.Case.Sizes.KeyLength))},{SvgWriter.F(Y(y(p)))}"));
            svg.Begin("g", ("class", "series"));
            svg.Element("path", null, ("d", path), ("fill", "none"), ("stroke", colour), ("stroke-width", 2), ("stroke-dasharray", dash));
            foreach (var p in points)
            {
                svg.Begin("circle", ("cx", X(p.Case.Sizes.KeyLength)), ("cy", Y(y(p))), ("r", 3.5), ("fill", colour));
                string percent = p.PercentOfPeak is { } pct ? $", {Units.Percent(pct)} of peak" : "";
                svg.Element("title", $"{label}, N={p.Case.Sizes.KeyLength}: {Format(y(p))} {unit}{percent} ({Units.Time(p.Timing!.Median)})");
                svg.End();
            }
            double ly = Top + 8 + s * 20;
            svg.Line(Left + plotW + 16, ly, Left + plotW + 40, ly, colour, 2);
            svg.Text(Left + plotW + 46, ly + 4, label);
            svg.End();
        }
        return svg.ToString();
    }

    private static IEnumerable<int> PowersOfTwo(int from, int to)
    {
        for (long p = 1; p <= to; p *= 2)
            if (p >= from) yield return (int)p;
    }

    /// <summary>Round ticks (1, 2, 2.5 or 5 times a power of ten) from <paramref name="min"/> covering <paramref name="max"/>.</summary>
    internal static double[] NiceTicks(double min, double max, int target)
    {
        if (max <= min) max = min + 1;
        double raw = (max - min) / target;
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double step = new[] { 1, 2, 2.5, 5, 10 }.Select(m => m * magnitude).First(s => s >= raw);
        var ticks = new List<double>();
        for (double v = Math.Floor(min / step) * step; v < max + step * 0.999; v += step) ticks.Add(Math.Round(v, 10));
        return [.. ticks];
    }

    private static string Format(double value) =>
        value >= 100 ? value.ToString("0", CultureInfo.InvariantCulture) : value.ToString("0.##", CultureInfo.InvariantCulture);
}
