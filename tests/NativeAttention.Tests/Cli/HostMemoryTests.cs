// `bench` runs CPU cases on 64-byte aligned native copies of their tensors unless given --managed-arrays, and says which
// in its JSON settings and its Markdown header.
using System.Text.Json;
using NativeAttention.Cli;
using Xunit;

namespace NativeAttention.Tests.CommandLine;

[Collection(nameof(CommandLineTests))]
public class HostMemoryTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Bench_ReportsWhichHostMemoryTheCasesRanOn(bool managedArrays)
    {
        string dir = CliRun.TemporaryDirectory();
        string json = Path.Combine(dir, "r.json"), markdown = Path.Combine(dir, "r.md");
        string[] args = ["bench", "-b", "cpu", "-t", "1", "--n", "32", "--heads", "2", "--d", "8", "--dtype", "f32", "--causal", "false",
            "-w", "0", "-r", "1", "--budget", "0.05", "--no-chart", "--peak-gflops", "10", "--peak-bandwidth", "5",
            "--json", json, "--markdown", markdown];
        var result = CliRun.Invoke(managedArrays ? [.. args, "--managed-arrays"] : args);
        Assert.True(result.ExitCode == ExitCodes.Success, result.ToString());

        using var document = JsonDocument.Parse(File.ReadAllText(json));
        var root = document.RootElement;
        Assert.Equal(!managedArrays, root.GetProperty("settings").GetProperty("alignedHostMemory").GetBoolean());
        var row = Assert.Single(root.GetProperty("results").EnumerateArray().ToList());
        Assert.Equal(JsonValueKind.Null, row.GetProperty("error").ValueKind);
        Assert.Contains(managedArrays ? "CPU cases run on the managed arrays" : "CPU cases run on 64-byte aligned native copies",
            File.ReadAllText(markdown), StringComparison.Ordinal);
    }
}
