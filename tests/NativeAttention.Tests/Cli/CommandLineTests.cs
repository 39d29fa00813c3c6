// The tool end to end, in-process: exit codes, one-line errors for user mistakes, and the files `bench` writes.
using System.Text.Json;
using System.Xml.Linq;
using NativeAttention.Cli;
using Xunit;

namespace NativeAttention.Tests.CommandLine;

// Kernel timings and the planted fault must not overlap other CLI tests' runs.
[Collection(nameof(CommandLineTests))]
public class CommandLineTests
{
    // Tiny shapes and given peaks: no peak probe runs, each bench finishes in milliseconds.
    private static readonly string[] TinyBench =
        ["bench", "-b", "cpu", "-t", "1", "--n", "16,32,64", "--heads", "2", "--d", "8", "--dtype", "f32,f16", "--causal", "both",
         "-w", "0", "-r", "2", "--budget", "0.05", "--peak-gflops", "10", "--peak-bandwidth", "5", "--no-chart"];

    [Theory]
    [InlineData("--bogus")]
    [InlineData("bench", "--n", "12x")]
    [InlineData("bench", "--dtype", "f64")]
    [InlineData("bench", "--causal", "maybe")]
    [InlineData("bench", "--backend", "tpu")]
    [InlineData("verify", "--threads", "0")]
    [InlineData("fuzz", "--seconds", "-1")]
    [InlineData("fuzz", "--replay", "flash H3/2")]
    [InlineData("verify", "--case", "flash f99")]
    [InlineData("bench", "--cases", "/no/such/file.json")]
    [InlineData("bench", "--family", "linear")]
    [InlineData("bench", "--heads", "6", "--kv-heads", "4")]
    [InlineData("bench", "--csv", "/no/such/directory/out.csv")]
    [InlineData("bench", "-b", "cpu", "-d", "128")]
    [InlineData("bench", "-b", "cpu", "--n", "16", "--d", "1000")]
    [InlineData("bench", "-b", "cpu", "--n", "16", "--d", "64", "--dv", "300")]
    [InlineData("bench", "-b", "cpu", "--n", "16", "--adjacent-peaks", "--peak-bandwidth", "5")]
    [InlineData("bench", "-b", "cpu", "--n", "16", "--adjacent-peaks", "--peak-gflops", "5")]
    [InlineData("bench", "-b", "cpu", "--n", "16", "--adjacent-peaks", "maybe")]
    public void UserMistake_ExitsTwo_WithOneLineAndNoStackTrace(params string[] args)
    {
        var result = CliRun.Invoke(args);
        Assert.True(result.ExitCode == ExitCodes.Usage, result.ToString());
        Assert.Single(result.ErrorLines);
        Assert.StartsWith("error: ", result.ErrorLines[0], StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void HeadDimAboveTheKernelLimit_IsRefusedBeforeAnyPeakProbe()
    {
        var result = CliRun.Invoke("bench", "-b", "cpu", "--n", "16", "--d", "1000");
        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("head dim 1000 exceeds", Assert.Single(result.ErrorLines), StringComparison.Ordinal);
        Assert.DoesNotContain("peak", result.Output, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void CaseFile_NotJson_ExitsTwo_SayingJsonOnly()
    {
        string dir = CliRun.TemporaryDirectory();
        string file = Path.Combine(dir, "cases.yaml");
        File.WriteAllText(file, "cases:\n  - flash N16\n");
        var result = CliRun.Invoke("bench", "-b", "cpu", "--cases", file);
        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("only JSON", Assert.Single(result.ErrorLines), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("bench", "--help")]
    [InlineData("verify", "--help")]
    [InlineData("fuzz", "--help")]
    [InlineData("info", "--help")]
    public void Help_ExitsZero_WithExamples(params string[] args)
    {
        var result = CliRun.Invoke(args);
        Assert.Equal(ExitCodes.Success, result.ExitCode);
        Assert.Contains("Examples:", result.Output, StringComparison.Ordinal);
    }

    // Asserts on every machine: an unavailable backend exits 3 with one line; an available one runs the case (exit 0),
    // so the test never passes by doing nothing (it used to return early wherever CUDA was present).
    [Theory]
    [InlineData("cuda")]
    [InlineData("opencl")]
    public void UnavailableBackend_ExitsThree_WithOneLine(string backend)
    {
        bool available = Backends.Query(Enum.Parse<Backend>(backend, ignoreCase: true)).IsSupported;
        var result = CliRun.Invoke("verify", "--backend", backend, "--case", "flash f32 B1 H1/1 N4x4 D8/8 seed=1");
        if (available)
        {
            Assert.True(result.ExitCode == ExitCodes.Success, result.ToString());
            return;
        }
        Assert.True(result.ExitCode == ExitCodes.Unavailable, result.ToString());
        Assert.Single(result.ErrorLines);
    }

    [Fact]
    public void Bench_WritesCsvJsonMarkdownAndWellFormedSvg()
    {
        string dir = CliRun.TemporaryDirectory();
        string csv = Path.Combine(dir, "r.csv"), json = Path.Combine(dir, "r.json"), md = Path.Combine(dir, "r.md"), svg = Path.Combine(dir, "r.svg");
        var result = CliRun.Invoke([.. TinyBench, "--csv", csv, "--json", json, "--markdown", md, "--svg", svg]);
        Assert.True(result.ExitCode == ExitCodes.Success, result.ToString());

        string[] lines = File.ReadAllLines(csv);
        Assert.Equal(string.Join(',', Cli.Reports.ReportWriters.CsvColumns), lines[0]);
        Assert.Equal(12, lines.Length - 1);
        int median = Array.IndexOf(Cli.Reports.ReportWriters.CsvColumns, "median_s");
        Assert.All(lines.Skip(1), line => Assert.True(double.Parse(line.Split(',')[median], System.Globalization.CultureInfo.InvariantCulture) > 0));

        using var document = JsonDocument.Parse(File.ReadAllText(json));
        var results = document.RootElement.GetProperty("results");
        Assert.Equal(12, results.GetArrayLength());
        foreach (var row in results.EnumerateArray())
        {
            Assert.True(row.GetProperty("gflops").GetDouble() > 0);
            Assert.True(row.GetProperty("percentOfPeak").GetDouble() > 0);
            Assert.Equal(row.GetProperty("spec").GetString(), AttentionCase.Parse(row.GetProperty("spec").GetString()!).ToSpec());
        }

        Assert.Contains("| Backend | Case | Median |", File.ReadAllText(md), StringComparison.Ordinal);

        var chart = XDocument.Parse(File.ReadAllText(svg));
        XNamespace ns = "http://www.w3.org/2000/svg";
        Assert.Equal(ns + "svg", chart.Root!.Name);
        Assert.Equal(4, chart.Descendants(ns + "path").Count());
        Assert.Equal(12, chart.Descendants(ns + "circle").Count());
        var labels = chart.Descendants(ns + "text").Select(t => t.Value).ToList();
        Assert.Contains("cpu f32 causal", labels);
        Assert.Contains("cpu f16 full", labels);
        Assert.Contains("64", labels);
        Assert.Contains("GFLOP/s", labels);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Bench_DecodeCases_ReportBandwidth(bool kvCache)
    {
        string dir = CliRun.TemporaryDirectory();
        string json = Path.Combine(dir, "decode.json");
        string[] args = ["bench", "-b", "cpu", "-t", "1", "--nq", "1", "--n", "64,256", "--heads", "4", "--kv-heads", "1", "--d", "16",
            "-w", "0", "-r", "1", "--peak-gflops", "10", "--peak-bandwidth", "5", "--json", json];
        var result = CliRun.Invoke(kvCache ? [.. args, "--kvcache"] : args);
        Assert.True(result.ExitCode == ExitCodes.Success, result.ToString());
        using var document = JsonDocument.Parse(File.ReadAllText(json));
        foreach (var row in document.RootElement.GetProperty("results").EnumerateArray())
        {
            Assert.Equal(kvCache, row.GetProperty("spec").GetString()!.Contains(" kvcache", StringComparison.Ordinal));
            Assert.Equal("memory", row.GetProperty("bound").GetString());
            Assert.Equal(100 * row.GetProperty("bandwidthGBs").GetDouble() / 5, row.GetProperty("percentOfPeak").GetDouble(), 9);
        }
    }

    [Fact]
    public void Bench_ReadsJsonCaseFile_WithCasesAndSweeps()
    {
        string dir = CliRun.TemporaryDirectory();
        string file = Path.Combine(dir, "cases.json"), csv = Path.Combine(dir, "out.csv");
        File.WriteAllText(file, """
            {
              // Comments and trailing commas are allowed.
              "cases": ["flash f16 B1 H4/2 N24x40 D16 causal seed=3"],
              "sweeps": [{ "n": [16, 32], "heads": 2, "d": [8], "dtype": ["f32", "bf16"], "causal": "yes", "layout": ["bnhd"], "kvcache": true }],
            }
            """);
        var result = CliRun.Invoke("bench", "-b", "cpu", "-t", "1", "--cases", file, "-w", "0", "-r", "1",
            "--peak-gflops", "10", "--peak-bandwidth", "5", "--csv", csv, "--no-chart");
        Assert.True(result.ExitCode == ExitCodes.Success, result.ToString());
        string[] specs = [.. File.ReadAllLines(csv).Skip(1).Select(line => line.Split(',')[1])];
        Assert.Equal(
        [
            "flash f16 B1 H4/2 N24x40 D16/16 causal seed=3",
            "flash f32 B1 H2/2 N16x16 D8/8 bnhd kvcache causal seed=1",
            "flash f32 B1 H2/2 N32x32 D8/8 bnhd kvcache causal seed=1",
            "flash bf16 B1 H2/2 N16x16 D8/8 bnhd kvcache causal seed=1",
            "flash bf16 B1 H2/2 N32x32 D8/8 bnhd kvcache causal seed=1",
        ], specs);
    }

    [Fact]
    public void Verify_CorrectKernel_ExitsZero()
    {
        var result = CliRun.Invoke("verify", "-b", "cpu", "-t", "1");
        Assert.True(result.ExitCode == ExitCodes.Success, result.ToString());
        Assert.Contains("0 failed", result.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_PlantedWrongKernel_ExitsOne_WithReplayableSpec()
    {
        var result = CliRun.Invoke(new KernelFault(0.05, MinKeyLength: 20), "verify", "-b", "cpu", "-t", "1",
            "--case", "flash f32 B1 H2/1 N8x8 D16 seed=1", "--case", "flash f16 B1 H2/1 N8x33 D16 causal seed=2");
        Assert.True(result.ExitCode == ExitCodes.CheckFailed, result.ToString());
        Assert.Contains("1 failed, 1 passed", result.Output, StringComparison.Ordinal);
        string spec = ReplaySpec(result.Output);
        Assert.Equal(AttentionCase.Parse("flash f16 B1 H2/1 N8x33 D16 causal seed=2"), AttentionCase.Parse(spec));
    }

    [Fact]
    public void Verify_SplitKeysMerge_CatchesPlantedFault_AndReplaysWithSplitKeys()
    {
        const string spec = "flash f32 B1 H2/1 N4x40 D16/16 seed=3";
        var clean = CliRun.Invoke("verify", "-b", "cpu", "-t", "1", "--split-keys", "3", "--case", spec);
        Assert.True(clean.ExitCode == ExitCodes.Success, clean.ToString());
        Assert.Contains("flash x3 + merge", clean.Output, StringComparison.Ordinal);

        var faulty = CliRun.Invoke(new KernelFault(0.05), "verify", "-b", "cpu", "-t", "1", "--split-keys", "3", "--case", spec);
        Assert.True(faulty.ExitCode == ExitCodes.CheckFailed, faulty.ToString());
        Assert.Contains($"verify --backend cpu --split-keys 3 --case \"{spec}\"", faulty.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void Fuzz_PlantedWrongKernel_ExitsOne_AndShrinksToTheFaultBoundary()
    {
        var fault = new KernelFault(0.1, MinKeyLength: 20);
        var result = CliRun.Invoke(fault, "fuzz", "-b", "cpu", "-t", "1", "--count", "40", "--seed", "7");
        Assert.True(result.ExitCode == ExitCodes.CheckFailed, result.ToString());
        Assert.Contains("seed 7", result.Output, StringComparison.Ordinal);

        var smallest = AttentionCase.Parse(ReplaySpec(result.Output));
        Assert.InRange(smallest.KeyLength, 20, 39);
        Assert.Equal((1, 1, 1, 1, 1), (smallest.Batch, smallest.QueryHeads, smallest.QueryLength, smallest.HeadDim, smallest.ValueDim));
        Assert.Equal(ElementType.Float32, smallest.ElementType);

        // The printed command replays it: failing with the fault planted, passing without.
        Assert.Equal(ExitCodes.CheckFailed, CliRun.Invoke(fault, "fuzz", "-b", "cpu", "-t", "1", "--replay", smallest.ToSpec()).ExitCode);
        Assert.Equal(ExitCodes.Success, CliRun.Invoke("fuzz", "-b", "cpu", "-t", "1", "--replay", smallest.ToSpec()).ExitCode);
    }

    [Fact]
    public void Fuzz_CorrectKernel_ExitsZero()
    {
        var result = CliRun.Invoke("fuzz", "-b", "cpu", "-t", "1", "--count", "15", "--seed", "11");
        Assert.True(result.ExitCode == ExitCodes.Success, result.ToString());
        Assert.Contains("15 random case(s) passed", result.Output, StringComparison.Ordinal);
        var plain = CliRun.Invoke("fuzz", "-b", "cpu", "-t", "1", "--count", "5", "--seed", "11", "--no-small-inputs");
        Assert.True(plain.ExitCode == ExitCodes.Success, plain.ToString());
    }

    [Fact]
    public void Fuzz_LinearFamily_RunsLinearCases_AndShrinksAPlantedFault()
    {
        var clean = CliRun.Invoke("fuzz", "-b", "cpu", "-t", "1", "--family", "linear", "--count", "12", "--seed", "5");
        Assert.True(clean.ExitCode == ExitCodes.Success, clean.ToString());
        Assert.Contains("12 random case(s) passed", clean.Output, StringComparison.Ordinal);

        var fault = new KernelFault(0.5, MinKeyLength: 20);
        var faulty = CliRun.Invoke(fault, "fuzz", "-b", "cpu", "-t", "1", "--family", "linear", "--count", "30", "--seed", "5");
        Assert.True(faulty.ExitCode == ExitCodes.CheckFailed, faulty.ToString());
        var smallest = Assert.IsType<LinearCase>(AttentionCaseSpec.Parse(ReplaySpec(faulty.Output)));
        Assert.InRange(smallest.Length, 20, 39);
        Assert.Equal((1, 1, ElementType.Float32), (smallest.Batch, smallest.Heads, smallest.ElementType));
        Assert.Equal(ExitCodes.Success, CliRun.Invoke("fuzz", "-b", "cpu", "-t", "1", "--replay", smallest.ToSpec()).ExitCode);
    }

    [Fact]
    public void Info_ShowsBackendsAndTheCachedPeaks()
    {
        string? saved = Environment.GetEnvironmentVariable(Bench.MachinePeaks.CacheDirectoryVariable);
        try
        {
            // A cached peak, so that no probe runs.
            Environment.SetEnvironmentVariable(Bench.MachinePeaks.CacheDirectoryVariable, CliRun.TemporaryDirectory());
            var peaks = new Bench.MachinePeaks(Bench.MachinePeaks.CpuModelName(), 1, 123.4, "test", 5.6, DateTimeOffset.UtcNow);
            File.WriteAllText(Bench.MachinePeaks.CachePath(1), JsonSerializer.Serialize(peaks, Bench.PeaksJsonContext.Default.MachinePeaks));

            var result = CliRun.Invoke("info", "--threads", "1");
            Assert.True(result.ExitCode == ExitCodes.Success, result.ToString());
            Assert.Contains("Backends", result.Output, StringComparison.Ordinal);
            Assert.Contains("123.4 GFLOP/s", result.Output, StringComparison.Ordinal);
        }
        finally
        {
            Environment.SetEnvironmentVariable(Bench.MachinePeaks.CacheDirectoryVariable, saved);
        }
    }

    [Fact]
    public void KernelFault_ParsesTheEnvironmentForm()
    {
        Assert.Equal(new KernelFault(0.1, 20), KernelFault.Parse("offset=0.1,min-keys=20"));
        Assert.Throws<FormatException>(() => KernelFault.Parse("scale=2"));
    }

    /// <summary>The spec inside the first printed replay command: <c>... --replay "spec"</c>.</summary>
    private static string ReplaySpec(string output)
    {
        const string marker = "--replay \"";
        int start = output.IndexOf(marker, StringComparison.Ordinal);
        Assert.True(start >= 0, output);
        start += marker.Length;
        return output[start..output.IndexOf('"', start)];
    }
}
