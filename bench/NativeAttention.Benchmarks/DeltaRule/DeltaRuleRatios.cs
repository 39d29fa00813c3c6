// Same-process ratios for a shared, loaded machine (`--delta-ratios [rounds]`): every kernel timing is preceded by
// the FMA peak probe (or, for decode steps, the read-bandwidth probe), and both are measured as work per second of
// this process's own CPU time, so that time slices taken by other processes do not count against either side (and,
// for comparison, as wall-clock rates against the probe's best run).
using System.Diagnostics;
using NativeAttention.Bench;

namespace NativeAttention.Benchmarks;

/// <summary>The issue-14 figures as ratios measured in one process (see bench/results/cpu.md, "Delta rule").</summary>
public static class DeltaRuleRatios
{
    private const int Threads = 2;

    /// <summary>The shapes: Gated DeltaNet at N = 2048/8192/16384, DeltaNet and KDA at 2048, decode steps at D = 128.</summary>
    public static readonly string[] Specs =
    [
        "delta f32 B1 H8 N2048 D128 variant=gated l2norm",
        "delta f32 B1 H8 N8192 D128 variant=gated l2norm",
        "delta f32 B1 H8 N16384 D128 variant=gated l2norm",
        "delta f32 B1 H8 N2048 D128 l2norm",
        "delta f32 B1 H8 N2048 D128 variant=kda l2norm",
        "delta f32 B32 H32 N1 D128 variant=gated l2norm decode",
        "delta f32 B32 H32 N1 D128 variant=gated l2norm vmajor decode",
    ];

    /// <summary>Runs <paramref name="rounds"/> interleaved rounds and prints the medians.</summary>
    public static int Run(int rounds, TextWriter output)
    {
        using var context = AttentionContext.Create(Backend.Cpu, new ContextOptions { Threads = Threads });
        var cases = Specs.Select(AttentionCaseSpec.Parse).ToArray();
        var tensors = cases.Select(c => c.CreateTensors()).ToArray();
        var ratios = cases.Select(_ => new List<double>()).ToArray();
        var cpuSeconds = cases.Select(_ => new List<double>()).ToArray();
        var wallSeconds = cases.Select(_ => new List<double>()).ToArray();
        var probeRates = cases.Select(_ => new List<double>()).ToArray();
        var wallRatios = cases.Select(_ => new List<double>()).ToArray();
        for (int i = 0; i < cases.Length; i++)
        {
            cases[i].Invoke(context, tensors[i]);
            cases[i].Invoke(context, tensors[i]);
        }
        FmaProbe.Measure(Threads, 1);
        for (int r = 0; r < rounds; r++)
        for (int i = 0; i < cases.Length; i++)
        {
            var c = cases[i];
            var before = CpuTime();
            double probeRate, probeWall;
            if (c.IsMemoryBound)
            {
                const long bytes = 512L << 20;
                probeWall = BandwidthProbe.Measure(Threads, bytes, runs: 2);
                // One pass fills the buffer, then two timed passes read it.
                probeRate = 3.0 * bytes / (CpuTime() - before).TotalSeconds / 1e9;
            }
            else
            {
                probeWall = FmaProbe.Measure(Threads, runs: 2).Gflops;
                // 6.4 GFLOP per thread and run (FmaProbe's FlopsPerRun).
                probeRate = 2 * Threads * 6.4e9 / (CpuTime() - before).TotalSeconds / 1e9;
            }
            probeRates[i].Add(probeRate);
            int repeats = c.IsMemoryBound ? 10 : 1;
            before = CpuTime();
            var clock = Stopwatch.StartNew();
            for (int j = 0; j < repeats; j++) c.Invoke(context, tensors[i]);
            double wall = clock.Elapsed.TotalSeconds / repeats, cpu = (CpuTime() - before).TotalSeconds / repeats;
            ratios[i].Add((c.IsMemoryBound ? c.MinimumBytes() : c.Flops()) / cpu / 1e9 / probeRate);
            wallRatios[i].Add((c.IsMemoryBound ? c.MinimumBytes() : c.Flops()) / wall / 1e9 / probeWall);
            cpuSeconds[i].Add(cpu);
            wallSeconds[i].Add(wall);
        }
        for (int i = 0; i < cases.Length; i++)
        {
            var c = cases[i];
            string unit = c.IsMemoryBound ? "GB" : "GFLOP";
            output.WriteLine(c.ToSpec());
            output.WriteLine($"    per CPU second: kernel {(c.IsMemoryBound ? c.MinimumBytes() : c.Flops()) / Median(cpuSeconds[i]) / 1e9:F1} {unit}, probe {Median(probeRates[i]):F1} {unit}"
                + $" -> ratio median {Median(ratios[i]):P1} (range {ratios[i].Min():P1}..{ratios[i].Max():P1}); CPU time median {Median(cpuSeconds[i]) * 1e3:F2} ms,"
                + $" wall median {Median(wallSeconds[i]) * 1e3:F2} ms, fastest wall {wallSeconds[i].Min() * 1e3:F2} ms;"
                + $" wall-clock ratio to the probe's best run, median {Median(wallRatios[i]):P1} (range {wallRatios[i].Min():P1}..{wallRatios[i].Max():P1})");
        }
        var gated = cases.Select((c, i) => (c, i)).Where(x => x.c.ToSpec().Contains("variant=gated", StringComparison.Ordinal) && !x.c.IsMemoryBound).ToArray();
        var cpuRatio = Enumerable.Range(0, rounds).Select(r => cpuSeconds[gated[2].i][r] / cpuSeconds[gated[0].i][r]).ToArray();
        var wallRatio = Enumerable.Range(0, rounds).Select(r => wallSeconds[gated[2].i][r] / wallSeconds[gated[0].i][r]).ToArray();
        output.WriteLine($"time(16384)/time(2048), Gated DeltaNet: CPU time per round median {Median(cpuRatio):F2} (range {cpuRatio.Min():F2}..{cpuRatio.Max():F2});"
            + $" wall per round median {Median(wallRatio):F2} (range {wallRatio.Min():F2}..{wallRatio.Max():F2})");
        return 0;
    }

    private static TimeSpan CpuTime() => Process.GetCurrentProcess().TotalProcessorTime;

    private static double Median(IEnumerable<double> values)
    {
        var a = values.Order().ToArray();
        return a.Length % 2 == 1 ? a[a.Length / 2] : (a[a.Length / 2 - 1] + a[a.Length / 2]) / 2;
    }
}
