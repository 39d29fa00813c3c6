// `bench --adjacent-peaks`: the probes beside each case, with a fake probe so that no probe is timed. The reports
// carry the probes' columns only with the option, and each case's % of peak is of the mean of its own two probes.
using System.Globalization;
using System.Text.Json;
using NativeAttention.Cli;
using Xunit;

namespace NativeAttention.Tests.CommandLine;

[Collection(nameof(CommandLineTests))]
public class AdjacentPeaksTests
{
    // One decode-like case (judged against the read probe) and one prefill (against the FMA probe).
    private const string DecodeSpec = "flash f32 B1 H2/1 N1x64 D8/8 seed=1";
    private const string PrefillSpec = "flash f32 B1 H2/2 N32x32 D8/8 seed=2";

    /// <summary>Readings 10, 20, 30, ... GB/s and 100, 200, 300, ... GFLOP/s in call order, nothing measured.</summary>
    private sealed class FakeProbe(int threads) : IAdjacentProbe
    {
        public int Threads { get; } = threads;
        public List<(bool MemoryBound, bool Before)> Calls { get; } = [];
        public bool Disposed { get; private set; }

        public string Description => "fake probe";

        public ProbeReading Measure(bool memoryBound, bool before)
        {
            Calls.Add((memoryBound, before));
            return new ProbeReading(10.0 * Calls.Count, 100.0 * Calls.Count);
        }

        public void Dispose() => Disposed = true;
    }

    private static (string Dir, string[] Args) Run(bool adjacent)
    {
        string dir = CliRun.TemporaryDirectory();
        string cases = Path.Combine(dir, "cases.json");
        File.WriteAllText(cases, $$"""["{{DecodeSpec}}", "{{PrefillSpec}}"]""");
        string[] args = ["bench", "-b", "cpu", "-t", "1", "--cases", cases, "-w", "0", "-r", "2", "--budget", "0.05", "--no-chart",
            "--csv", Path.Combine(dir, "r.csv"), "--json", Path.Combine(dir, "r.json"), "--markdown", Path.Combine(dir, "r.md")];
        return (dir, adjacent ? [.. args, "--adjacent-peaks"] : [.. args, "--peak-gflops", "10", "--peak-bandwidth", "5"]);
    }

    [Fact]
    public void PercentOfPeak_IsOfTheMeanOfTheCasesOwnProbes_AndReportsCarryTheProbeColumns()
    {
        var probes = new List<FakeProbe>();
        var (dir, args) = Run(adjacent: true);
        var result = CliRun.InvokeOn(host => host with { AdjacentProbeFactory = t => { var p = new FakeProbe(t); probes.Add(p); return p; } }, args);
        Assert.True(result.ExitCode == ExitCodes.Success, result.ToString());

        // One probe for the run, on the kernels' threads, disposed at the end; before and after each case, in order.
        var probe = Assert.Single(probes);
        Assert.Equal(1, probe.Threads);
        Assert.True(probe.Disposed);
        Assert.Equal([(true, true), (true, false), (false, true), (false, false)], probe.Calls);

        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "r.json")));
        var root = document.RootElement;
        Assert.True(root.GetProperty("settings").GetProperty("adjacentPeaks").GetBoolean());
        var rows = root.GetProperty("results").EnumerateArray().ToList();
        Assert.Equal(2, rows.Count);
        for (int i = 0; i < rows.Count; i++)
        {
            var row = rows[i];
            double readBefore = 10.0 * (2 * i + 1), readAfter = 10.0 * (2 * i + 2);
            Assert.Equal(readBefore, row.GetProperty("probeReadBeforeGBs").GetDouble());
            Assert.Equal(readAfter, row.GetProperty("probeReadAfterGBs").GetDouble());
            Assert.Equal(10 * readBefore, row.GetProperty("probeFmaBeforeGflops").GetDouble());
            Assert.Equal(10 * readAfter, row.GetProperty("probeFmaAfterGflops").GetDouble());
            bool memory = row.GetProperty("bound").GetString() == "memory";
            Assert.Equal(i == 0, memory);
            double mean = memory ? (readBefore + readAfter) / 2 : 10 * (readBefore + readAfter) / 2;
            double figure = row.GetProperty(memory ? "bandwidthGBs" : "gflops").GetDouble();
            Assert.Equal(100 * figure / mean, row.GetProperty("percentOfPeak").GetDouble(), 9);
            Assert.Equal(mean, row.GetProperty(memory ? "peakBandwidthGBs" : "peakGflops").GetDouble(), 9);
        }
        var spread = Assert.Single(root.GetProperty("adjacentProbes").EnumerateArray().ToList());
        Assert.Equal("cpu", spread.GetProperty("backend").GetString());
        Assert.Equal(2, spread.GetProperty("cases").GetInt32());
        Assert.Equal((10.0, 40.0, 100.0, 400.0), (spread.GetProperty("readMinGBs").GetDouble(), spread.GetProperty("readMaxGBs").GetDouble(),
            spread.GetProperty("fmaMinGflops").GetDouble(), spread.GetProperty("fmaMaxGflops").GetDouble()));

        string[] csv = File.ReadAllLines(Path.Combine(dir, "r.csv"));
        string[] columns = [.. Cli.Reports.ReportWriters.CsvColumns, .. Cli.Reports.ReportWriters.AdjacentCsvColumns];
        Assert.Equal(string.Join(',', columns), csv[0]);
        var decode = csv[1].Split(',');
        Assert.Equal(AttentionCaseSpec.Parse(DecodeSpec).ToSpec(), decode[1]);
        Assert.Equal(20.0, double.Parse(decode[Array.IndexOf(columns, "probe_read_after_gbs")], CultureInfo.InvariantCulture));

        string md = File.ReadAllText(Path.Combine(dir, "r.md"));
        Assert.Contains("| Read probe GB/s (before / after) | FMA probe GFLOP/s (before / after) | % of peak |", md, StringComparison.Ordinal);
        Assert.Contains("| 10.0 / 20.0 | 100 / 200 |", md, StringComparison.Ordinal);
        Assert.Contains("read 10.0 .. 40.0 GB/s (max/min 4.00), FMA 100 .. 400 GFLOP/s", md, StringComparison.Ordinal);

        // The console: the judging probe beside each case and the spread in the summary.
        Assert.Contains("10.0 / 20.0 GB/s", result.Output, StringComparison.Ordinal);
        Assert.Contains("300 / 400 GFLOP/s", result.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void WithoutTheOption_NoProbeRuns_AndTheReportsAreUnchanged()
    {
        int made = 0;
        var (dir, args) = Run(adjacent: false);
        var result = CliRun.InvokeOn(host => host with { AdjacentProbeFactory = t => { made++; return new FakeProbe(t); } }, args);
        Assert.True(result.ExitCode == ExitCodes.Success, result.ToString());
        Assert.Equal(0, made);

        Assert.Equal(string.Join(',', Cli.Reports.ReportWriters.CsvColumns), File.ReadLines(Path.Combine(dir, "r.csv")).First());
        string json = File.ReadAllText(Path.Combine(dir, "r.json"));
        Assert.DoesNotContain("adjacent", json, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("probe", json, StringComparison.OrdinalIgnoreCase);
        string md = File.ReadAllText(Path.Combine(dir, "r.md"));
        Assert.Contains("| Backend | Case | Median | Min | Max | IQR | GFLOP/s | GB/s | % of peak |", md, StringComparison.Ordinal);
        Assert.DoesNotContain("probe", md, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void Help_DocumentsTheOption()
    {
        var result = CliRun.Invoke("bench", "--help");
        Assert.Equal(ExitCodes.Success, result.ExitCode);
        Assert.Contains("--adjacent-peaks", result.Output, StringComparison.Ordinal);
    }
}
