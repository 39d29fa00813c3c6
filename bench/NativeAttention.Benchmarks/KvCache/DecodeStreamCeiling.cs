// `--decode-stream-ceiling [rounds]`: how much of the streaming-read probe a reader can keep while it also computes, next
// to the CPU decode kernel in the same process (issue 17's "80% of the measured streaming-read bandwidth"). A synthetic
// reader walks two buffers in the decode kernel's order (per thread, per KV head: 16 rows of K, then the same 16 rows of
// V, a 4 KB page each at D = 128 in 16 bits) with a fixed number of FMAs per 64-byte line and the kernel's spread
// prefetch (each line read asks L2 for the same line of the next block). Calibrated on one thread with L2-resident
// data, the reader whose arithmetic per line matches the kernel's says what a reader of that arithmetic attains from
// memory on this machine; the kernel's own figure sits beside it, both against read probes of the same rounds.
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NativeAttention.Bench;

namespace NativeAttention.Benchmarks;

/// <summary>The decode kernel's memory throughput beside synthetic readers of known arithmetic per line.</summary>
public static unsafe class DecodeStreamCeiling
{
    private const int Threads = 2;
    private const int KvHeads = 8, QueryHeads = 32, HeadDim = 128, Keys = 65536;

    /// <summary>Bytes of one 16-bit row (D = 128) and of one block of 16 rows: a 4 KB page, as the kernel reads them.</summary>
    private const int RowBytes = HeadDim * 2, BlockBytes = 16 * RowBytes, LinesPerBlock = BlockBytes / 64;

    /// <summary>FMAs per 64-byte line of the synthetic readers (512-bit, over eight independent accumulators).</summary>
    private static readonly int[] Arithmetic = [0, 8, 16, 24, 32];

    private static readonly (string Name, ElementType Type, int KvHeads)[] Cells =
    [
        ("Flash binary16 GQA", ElementType.Float16, KvHeads),
        ("Flash bfloat16 GQA", ElementType.BFloat16, KvHeads),
        ("Flash binary16 MHA", ElementType.Float16, QueryHeads),
    ];

    /// <summary>Runs <paramref name="rounds"/> rounds and prints the calibration and the medians.</summary>
    public static int Run(int rounds, TextWriter output)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rounds, 1);
        if (!Vector512.IsHardwareAccelerated || !Sse.IsSupported)
        {
            output.WriteLine("The synthetic readers are written for 512-bit vectors (the decode kernels' width on AVX-512 hosts); this machine has none.");
            return 2;
        }
        // K and V of 8 KV heads x 65536 keys x 256 B: 128 MiB each, far above the L3 share a VM sees, 2 MiB aligned and
        // first touched by the threads that read them. MHA cells read the same bytes as 32 heads x 16384 keys.
        long bytes = (long)KvHeads * Keys * RowBytes;
        byte* k = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 2 << 20), v = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 2 << 20);
        ParallelRuns.BestSeconds(Threads, 1, t => FillHalves(k + t * bytes / Threads, v + t * bytes / Threads, bytes / Threads));
        using var probe = BandwidthProbe.Allocate(Threads, 256L << 20);
        using var context = AttentionContext.Create(Backend.Cpu, new ContextOptions { Threads = Threads });
        using var single = AttentionContext.Create(Backend.Cpu, new ContextOptions { Threads = 1 });
        float* q = (float*)NativeMemory.AlignedAlloc(QueryHeads * HeadDim * 4, 64), o = (float*)NativeMemory.AlignedAlloc(QueryHeads * HeadDim * 4, 64);
        FillHalves((byte*)q, (byte*)o, QueryHeads * HeadDim * 2);
        try
        {
            // Calibration, one thread, L2-resident, repeated every round and the least time kept (this host's speed
            // changes by up to 2x for seconds at a time): ns per line of each reader over 2 x 64 KB (16 blocks of K
            // and V), and the kernel's marginal ns per line between Nk 128 and 256 (8 KV heads: 0.5 and 1 MiB).
            var readerNs = Arithmetic.Select(_ => double.MaxValue).ToArray();
            var kernelNs = Cells.Select(_ => double.MaxValue).ToArray();

            var probes = new List<double>();
            var readers = Arithmetic.Select(_ => new List<double>()).ToArray();
            var kernels = Cells.Select(_ => new List<double>()).ToArray();
            var calls = Cells.Select(c => Call(context, c.Type, c.KvHeads, QueryHeads, (int)(bytes / RowBytes / c.KvHeads), k, v, q, o)).ToArray();
            foreach (var call in calls) call();
            var loads = new List<string>();
            for (int r = 0; r < rounds; r++)
            {
                loads.Add(File.ReadAllText("/proc/loadavg").Split(' ')[0]);
                for (int i = 0; i < Arithmetic.Length; i++) readerNs[i] = Math.Min(readerNs[i], ReaderNsPerLine(k, v, Arithmetic[i]));
                for (int c = 0; c < Cells.Length; c++) kernelNs[c] = Math.Min(kernelNs[c], KernelNsPerLine(single, Cells[c].Type, Cells[c].KvHeads == QueryHeads, k, v, q, o));
                probes.Add(probe.Measure(3));
                for (int i = 0; i < Arithmetic.Length; i++)
                {
                    int fmas = Arithmetic[i];
                    double seconds = ParallelRuns.BestSeconds(Threads, 3, t => Volatile.Write(ref s_sink, Stream(k, v, bytes, t, fmas)));
                    readers[i].Add(2.0 * bytes / seconds / 1e9);
                }
                for (int c = 0; c < Cells.Length; c++)
                {
                    var times = new double[5];
                    for (int j = 0; j < times.Length; j++)
                    {
                        long t0 = Stopwatch.GetTimestamp();
                        calls[c]();
                        times[j] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                    }
                    kernels[c].Add(2.0 * bytes / times.Min() / 1e9);
                }
            }

            output.WriteLine($"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {rounds} rounds, {Threads} threads, load per round {string.Join(" ", loads)}");
            output.WriteLine($"read probe (256 MiB, best of 3 per round): median {Median(probes):F1} GB/s [{probes.Min():F1}..{probes.Max():F1}]");
            output.WriteLine("synthetic readers: K and V 128 MiB each in the decode kernel's block order, spread prefetch of the next block into L2;");
            output.WriteLine("ns per line calibrated on 1 thread over L2-resident blocks (least of the rounds); GB/s the best of 3 passes per round; % of the round's probe.");
            output.WriteLine("| FMAs per line | ns per line (1 thread, L2) | GB/s (median of rounds) | % of the probe (median [range]) |");
            output.WriteLine("|---|---|---|---|");
            for (int i = 0; i < Arithmetic.Length; i++)
                output.WriteLine($"| {Arithmetic[i]} | {readerNs[i]:F2} | {Median(readers[i]):F1} | {Ratio(readers[i], probes)} |");
            output.WriteLine("kernel cells (B 1, Hq 32, D 128, the same 256 MiB of K and V; best of 5 calls per round), and the reader of the same ns per line:");
            output.WriteLine("| cell | ns per line (1 thread, L2, marginal) | GB/s (median of rounds) | % of the probe | a reader of that arithmetic (interpolated) |");
            output.WriteLine("|---|---|---|---|---|");
            for (int c = 0; c < Cells.Length; c++)
            {
                var readerAt = Interpolate(readerNs, readers.Select(x => Median(x.Zip(probes, (a, p) => a / p))).ToArray(), kernelNs[c]);
                output.WriteLine($"| {Cells[c].Name} Nk {bytes / RowBytes / Cells[c].KvHeads} | {kernelNs[c]:F2} | {Median(kernels[c]):F1} | {Ratio(kernels[c], probes)} | "
                    + (readerAt is { } x ? $"{x:P0}" : "outside the calibrated range") + " |");
            }
        }
        finally
        {
            NativeMemory.AlignedFree(k);
            NativeMemory.AlignedFree(v);
            NativeMemory.AlignedFree(q);
            NativeMemory.AlignedFree(o);
        }
        return 0;
    }

    private static float s_sink;

    /// <summary>Finite binary16 values of magnitude below 1 (bfloat16 reads them as other finite values).</summary>
    private static void FillHalves(byte* k, byte* v, long bytes)
    {
        var random = new Random(17);
        for (long i = 0; i < bytes / 2; i++)
        {
            ushort bits = (ushort)(0x2000 + random.Next(0x1800) | (random.Next(2) << 15));
            ((ushort*)k)[i] = bits;
            ((ushort*)v)[i] = (ushort)(bits ^ 0x8000);
        }
    }

    /// <summary>Thread <paramref name="t"/>'s half of the heads (<see cref="Walk"/>).</summary>
    private static float Stream(byte* k, byte* v, long bytes, int t, int fmas)
    {
        long share = bytes / Threads;
        return Walk(k + t * share, v + t * share, share, fmas);
    }

    /// <summary><paramref name="span"/> bytes of K and of V: each block of K, then the same block of V.</summary>
    private static float Walk(byte* k, byte* v, long span, int fmas)
    {
        var acc = Vector512<float>.Zero;
        for (long offset = 0; offset < span; offset += BlockBytes)
        {
            bool next = offset + BlockBytes < span;
            acc = Block(k + offset, next ? k + offset + BlockBytes : null, acc, fmas);
            acc = Block(v + offset, next ? v + offset + BlockBytes : null, acc, fmas);
        }
        return acc.ToScalar();
    }

    /// <summary>
    /// One block's 64 lines: each line loaded once, folded into a running sum, and fed to <paramref name="fmas"/> FMAs
    /// over eight independent accumulators (port-bound, not latency-bound, as the kernel's tiles are); with
    /// <paramref name="next"/> not null, the same line of the next block is prefetched into L2 as this one is read.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static Vector512<float> Block(byte* block, byte* next, Vector512<float> acc, int fmas)
    {
        var scale = Vector512.Create(1.0001f);
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        for (int line = 0; line < LinesPerBlock; line++)
        {
            if (next != null) Sse.Prefetch1(next + 64 * line);
            var x = Vector512.Load((float*)(block + 64 * line));
            acc += x;
            for (int f = 0; f < fmas; f += 8)
            {
                a0 = Vector512.FusedMultiplyAdd(a0, scale, x); a1 = Vector512.FusedMultiplyAdd(a1, scale, x);
                a2 = Vector512.FusedMultiplyAdd(a2, scale, x); a3 = Vector512.FusedMultiplyAdd(a3, scale, x);
                a4 = Vector512.FusedMultiplyAdd(a4, scale, x); a5 = Vector512.FusedMultiplyAdd(a5, scale, x);
                a6 = Vector512.FusedMultiplyAdd(a6, scale, x); a7 = Vector512.FusedMultiplyAdd(a7, scale, x);
            }
        }
        return acc + (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7) * Vector512<float>.Zero;
    }

    /// <summary>A reader's ns per line on this thread over 16 blocks each of K and V (128 KB, L2-resident), 200 passes, best of 5.</summary>
    private static double ReaderNsPerLine(byte* k, byte* v, int fmas)
    {
        const long span = 16 * BlockBytes;
        const int passes = 200;
        Walk(k, v, span, fmas);
        double best = double.MaxValue;
        for (int r = 0; r < 5; r++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int p = 0; p < passes; p++) s_sink += Walk(k, v, span, fmas);
            best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        return best / passes / (2.0 * span / 64) * 1e9;
    }

    /// <summary>
    /// The kernel's marginal ns per line on one thread: (time at 2 Nk - time at Nk) over the lines the extra keys add,
    /// both L2-resident after the first call (8 KV heads x Nk 128 or 32 heads x Nk 32, and twice that: 0.5 and 1 MiB).
    /// </summary>
    private static double KernelNsPerLine(AttentionContext context, ElementType type, bool mha, byte* k, byte* v, float* q, float* o)
    {
        double Best(int keys)
        {
            var call = Call(context, type, KvHeads, mha ? KvHeads : QueryHeads, keys, k, v, q, o);
            call();
            double best = double.MaxValue;
            for (int r = 0; r < 5; r++)
            {
                long t0 = Stopwatch.GetTimestamp();
                for (int i = 0; i < 20; i++) call();
                best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds / 20);
            }
            return best;
        }
        const int small = 128, large = 2 * small;
        return (Best(large) - Best(small)) / ((double)KvHeads * (large - small) * 2 * RowBytes / 64) * 1e9;
    }

    /// <summary>
    /// <c>Flash</c> with one query per each of <paramref name="queryHeads"/> heads over the first <paramref name="keys"/> rows of each of
    /// <paramref name="kvHeads"/> heads of <paramref name="k"/> and <paramref name="v"/> ([1, Hkv, keys, 128], 16-bit).
    /// </summary>
    private static Action Call(AttentionContext context, ElementType type, int kvHeads, int queryHeads, int keys, byte* k, byte* v, float* q, float* o)
    {
        long kvElements = (long)kvHeads * keys * HeadDim;
        var query = TensorView.FromPointer((IntPtr)q, queryHeads * HeadDim, type, [1, queryHeads, 1, HeadDim], [queryHeads * HeadDim, HeadDim, HeadDim, 1]);
        var output = TensorView.FromPointer((IntPtr)o, queryHeads * HeadDim, type, [1, queryHeads, 1, HeadDim], [queryHeads * HeadDim, HeadDim, HeadDim, 1]);
        var key = TensorView.FromPointer((IntPtr)k, kvElements, type, [1, kvHeads, keys, HeadDim], [kvElements, (long)keys * HeadDim, HeadDim, 1]);
        var value = TensorView.FromPointer((IntPtr)v, kvElements, type, [1, kvHeads, keys, HeadDim], [kvElements, (long)keys * HeadDim, HeadDim, 1]);
        return () => context.Flash(query, key, value, output);
    }

    /// <summary>Linear interpolation of <paramref name="y"/> at <paramref name="x0"/> over increasing <paramref name="x"/>; null outside.</summary>
    private static double? Interpolate(double[] x, double[] y, double x0)
    {
        for (int i = 0; i + 1 < x.Length; i++)
            if (x0 >= x[i] && x0 <= x[i + 1])
                return y[i] + (y[i + 1] - y[i]) * (x0 - x[i]) / (x[i + 1] - x[i]);
        return null;
    }

    private static string Ratio(List<double> values, List<double> probes)
    {
        var r = values.Zip(probes, (a, p) => a / p).ToArray();
        return $"{Median(r):P0} [{r.Min():P0}..{r.Max():P0}]";
    }

    private static double Median(IEnumerable<double> values)
    {
        var a = values.Order().ToArray();
        return a.Length % 2 == 1 ? a[a.Length / 2] : (a[a.Length / 2 - 1] + a[a.Length / 2]) / 2;
    }
}
