// Flex attention against the built-in options it re-expresses, as same-process ratios (`--flex-ratios [rounds]`):
// CPU, fp32, 2 threads, B = 1, H = 8, N = 4096, D = 64, causal with ALiBi. Each round times the built-in call and the
// flex calls back to back (interleaved, so a busy neighbour slows both alike), as this process's CPU time per call and
// as wall time; the figure is the median over rounds of built-in time / flex time (>= 85% is issue 15's target). Also
// states the compile time of a new modification: the first call with a new pair of struct types (the JIT specialises
// the kernel for them) against the next calls, on a tiny problem where the kernel itself costs microseconds.
using System.Diagnostics;
using System.Runtime.Intrinsics;
using BenchmarkDotNet.Attributes;

namespace NativeAttention.Benchmarks;

/// <summary>Bottom-right causal mask, as a user writes it.</summary>
public readonly struct BenchCausal(int queryLength, int keyLength) : IMaskMod
{
    public bool Visible(int batch, int head, int query, int key) => key <= query + keyLength - queryLength;
}

/// <summary>ALiBi as a user writes it, with the optional vector form.</summary>
public readonly struct BenchAlibi(float[] slopes, int queryLength, int keyLength) : IScoreModVector
{
    public float Score(float score, int batch, int head, int query, int key) =>
        score - slopes[head] * Math.Abs(query + keyLength - queryLength - key);

    public Vector256<float> Score(Vector256<float> score, int batch, Vector256<int> head, Vector256<int> query, int key) =>
        score - FlexVector.Gather(slopes, head) * Vector256.ConvertToSingle(Vector256.Abs(query + Vector256.Create(keyLength - queryLength - key)));
}

/// <summary>ALiBi with the scalar form only.</summary>
public readonly struct BenchScalarAlibi(float[] slopes, int queryLength, int keyLength) : IScoreMod
{
    public float Score(float score, int batch, int head, int query, int key) =>
        score - slopes[head] * Math.Abs(query + keyLength - queryLength - key);
}

/// <summary>A fresh pair of types for the compile-time measurement (never called before it).</summary>
public readonly struct BenchFreshScore(float bias) : IScoreMod
{
    public float Score(float score, int batch, int head, int query, int key) => score + bias * (head + 1);
}

/// <summary>A fresh mask type for the compile-time measurement.</summary>
public readonly struct BenchFreshMask(int window) : IMaskMod
{
    public bool Visible(int batch, int head, int query, int key) => Math.Abs(query - key) <= window;
}

/// <summary>A second fresh pair: a new modification once Flex has run in the process.</summary>
public readonly struct BenchFreshScore2(float bias) : IScoreMod
{
    public float Score(float score, int batch, int head, int query, int key) => score - bias * (key & 3);
}

/// <summary>A second fresh mask type.</summary>
public readonly struct BenchFreshMask2(int stride) : IMaskMod
{
    public bool Visible(int batch, int head, int query, int key) => key % stride != 1 || key <= query;
}

/// <summary>The issue-15 CPU figure as ratios measured in one process (bench/results/cpu.md, "Flex").</summary>
public static class FlexRatios
{
    private const int Threads = 2, Heads = 8, N = 4096, D = 64;

    /// <summary>Runs the compile-time measurement, then <paramref name="rounds"/> interleaved rounds, and prints the medians.</summary>
    public static int Run(int rounds, TextWriter output)
    {
        using var context = AttentionContext.Create(Backend.Cpu, new ContextOptions { Threads = Threads });
        output.WriteLine($"// {context.DeviceName}; {Threads} threads");
        CompileTime(context, output);

        var random = new Random(1);
        TensorView Tensor() => Uniform(random, 1, Heads, N, D);
        TensorView q = Tensor(), k = Tensor(), v = Tensor(), o = Tensor();
        var slopes = Enumerable.Range(1, Heads).Select(h => (float)Math.Pow(2, -8.0 * h / Heads)).ToArray();
        var flash = new FlashOptions { Causal = true, AlibiSlopes = TensorView.FromMemory<float>(slopes.ToArray(), Heads) };
        var mask = new BenchCausal(N, N);
        var clock = Stopwatch.StartNew();
        var blockMask = context.CreateBlockMask(mask, 1, 1, N, N);
        output.WriteLine($"CreateBlockMask (causal, {N} x {N}, blocks 128): {clock.Elapsed.TotalMilliseconds:F1} ms wall");
        var flex = new FlexOptions { BlockMask = blockMask };
        var causalOnly = new FlashOptions { Causal = true };
        // Baseline: the index of the built-in call each flex call is compared with (-1: itself a baseline).
        var calls = new (string Name, int Baseline, Action Call)[]
        {
            ("built-in Flash (Causal, AlibiSlopes)", -1, () => context.Flash(q, k, v, o, flash)),
            ("Flex, ALiBi struct with vector form + causal mask, block mask", 0, () => context.Flex(q, k, v, o, new BenchAlibi(slopes, N, N), mask, flex)),
            ("Flex, ALiBi struct scalar form only + causal mask, block mask", 0, () => context.Flex(q, k, v, o, new BenchScalarAlibi(slopes, N, N), mask, flex)),
            ("built-in Flash (Causal)", -1, () => context.Flash(q, k, v, o, causalOnly)),
            ("Flex, NoScoreMod + causal mask, block mask (the mask's own cost)", 3, () => context.Flex(q, k, v, o, new NoScoreMod(), mask, flex)),
        };
        foreach (var (_, _, call) in calls) { call(); call(); }
        foreach (var (name, _, call) in calls)
        {
            long before = GC.GetTotalAllocatedBytes(precise: true);
            call();
            output.WriteLine($"{name}: {GC.GetTotalAllocatedBytes(precise: true) - before} bytes allocated per call");
        }
        var cpu = calls.Select(_ => new List<double>()).ToArray();
        var wall = calls.Select(_ => new List<double>()).ToArray();
        for (int r = 0; r < rounds; r++)
        {
            for (int i = 0; i < calls.Length; i++)
            {
                var before = CpuTime();
                clock.Restart();
                calls[i].Call();
                wall[i].Add(clock.Elapsed.TotalSeconds);
                cpu[i].Add((CpuTime() - before).TotalSeconds);
            }
        }
        for (int i = 0; i < calls.Length; i++)
        {
            output.WriteLine($"{calls[i].Name}: CPU time median {Median(cpu[i]) * 1e3:F1} ms, wall median {Median(wall[i]) * 1e3:F1} ms (fastest {wall[i].Min() * 1e3:F1} ms)");
            int b = calls[i].Baseline;
            if (b < 0) continue;
            var cpuRatio = Enumerable.Range(0, rounds).Select(r => cpu[b][r] / cpu[i][r]).ToArray();
            var wallRatio = Enumerable.Range(0, rounds).Select(r => wall[b][r] / wall[i][r]).ToArray();
            output.WriteLine($"    speed vs {calls[b].Name}: CPU-time ratio median {Median(cpuRatio):P1} (range {cpuRatio.Min():P1}..{cpuRatio.Max():P1}),"
                + $" wall ratio median {Median(wallRatio):P1} (range {wallRatio.Min():P1}..{wallRatio.Max():P1})");
        }
        return 0;
    }

    /// <summary>First call with new struct types (JIT specialisation plus a tiny kernel) against the median of the next ten.</summary>
    private static void CompileTime(AttentionContext context, TextWriter output)
    {
        var random = new Random(2);
        TensorView q = Uniform(random, 1, 2, 64, D), k = Uniform(random, 1, 2, 64, D), v = Uniform(random, 1, 2, 64, D), o = Uniform(random, 1, 2, 64, D);
        var clock = Stopwatch.StartNew();
        context.Flex(q, k, v, o, new BenchFreshScore(0.1f), new BenchFreshMask(8));
        double first = clock.Elapsed.TotalMilliseconds;
        var later = new List<double>();
        for (int i = 0; i < 10; i++)
        {
            clock.Restart();
            context.Flex(q, k, v, o, new BenchFreshScore(0.2f), new BenchFreshMask(9));
            later.Add(clock.Elapsed.TotalMilliseconds);
        }
        clock.Restart();
        context.Flex(q, k, v, o, new BenchFreshScore2(0.1f), new BenchFreshMask2(3));
        double second = clock.Elapsed.TotalMilliseconds;
        output.WriteLine($"Compile time of a new modification pair (B1 H2 N64 D64): first Flex call of the process {first:F1} ms, later calls of that pair median {Median(later):F3} ms;"
            + $" first call of another new pair {second:F1} ms");
    }

    private static TensorView Uniform(Random random, params int[] shape)
    {
        var view = NativeAttention.Gpu.TensorCopy.AllocateHost(ElementType.Float32, shape);
        var values = new double[view.ElementCount];
        for (int i = 0; i < values.Length; i++) values[i] = 2 * random.NextDouble() - 1;
        view.CopyFrom(values);
        return view;
    }

    private static TimeSpan CpuTime() => Process.GetCurrentProcess().TotalProcessorTime;

    private static double Median(IEnumerable<double> values)
    {
        var a = values.Order().ToArray();
        return a.Length % 2 == 1 ? a[a.Length / 2] : (a[a.Length / 2 - 1] + a[a.Length / 2]) / 2;
    }
}

/// <summary>BenchmarkDotNet view of the same comparison: built-in causal + ALiBi against Flex with user structs (CPU, fp32, 2 threads, N = 4096).</summary>
public class CpuFlexAlibiCausal
{
    private const int Heads = 8, N = 4096, D = 64;
    private AttentionContext _context = null!;
    private TensorView _q, _k, _v, _o;
    private float[] _slopes = [];
    private FlashOptions _flash = null!;
    private FlexOptions _flex = null!;

    [GlobalSetup]
    public void Setup()
    {
        _context = AttentionContext.Create(Backend.Cpu, new ContextOptions { Threads = 2 });
        var random = new Random(1);
        TensorView Tensor()
        {
            var view = NativeAttention.Gpu.TensorCopy.AllocateHost(ElementType.Float32, [1, Heads, N, D]);
            view.CopyFrom(Enumerable.Range(0, (int)view.ElementCount).Select(_ => 2 * random.NextDouble() - 1).ToArray());
            return view;
        }
        (_q, _k, _v, _o) = (Tensor(), Tensor(), Tensor(), Tensor());
        _slopes = Enumerable.Range(1, Heads).Select(h => (float)Math.Pow(2, -8.0 * h / Heads)).ToArray();
        _flash = new FlashOptions { Causal = true, AlibiSlopes = TensorView.FromMemory<float>(_slopes.ToArray(), Heads) };
        _flex = new FlexOptions { BlockMask = _context.CreateBlockMask(new BenchCausal(N, N), 1, 1, N, N) };
    }

    [GlobalCleanup]
    public void Cleanup() => _context.Dispose();

    [Benchmark(Baseline = true)]
    public void BuiltIn() => _context.Flash(_q, _k, _v, _o, _flash);

    [Benchmark]
    public void FlexUserStructs() => _context.Flex(_q, _k, _v, _o, new BenchAlibi(_slopes, N, N), new BenchCausal(N, N), _flex);
}
