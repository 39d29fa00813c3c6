// The decode and issue-4 shape benchmarks of NativeAttention.GpuBench (the flash sweep lives in Program.cs).
using System.Diagnostics;
using System.Globalization;
using NativeAttention.Gpu;

namespace NativeAttention.GpuBench;

internal static class GpuBenchmarks
{
    /// <summary>
    /// FlashKvCache decode: B = 1, Hq = 32, D = 128, one query per head against Nk cached tokens, contiguous and paged
    /// (page 256), automatic splits. GB/s counts K and V read once; torch_decode.py times PyTorch on the same shapes.
    /// </summary>
    public static int Decode(AttentionContext context, bool quick)
    {
        Console.WriteLine($"# {context.Backend} FlashKvCache decode on {context.DeviceName}");
        Console.WriteLine("| dtype | B | Hq | Hkv | D | Nk | paged | ms | GB/s |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
        const int batch = 1, heads = 32, d = 128, page = 256;
        foreach (var type in new[] { ElementType.Float16, ElementType.BFloat16 })
            foreach (int kvHeads in new[] { 32, 8 })
                foreach (int nk in quick ? [4096] : new[] { 4096, 16384 })
                    foreach (bool paged in new[] { false, true })
                    {
                        int blocks = nk / page;
                        int[] cacheShape = paged ? [batch * blocks, kvHeads, page, d] : [batch, kvHeads, nk, d];
                        var q = DeviceTensors.Random(context, type, [batch, heads, 1, d], 1);
                        var k = DeviceTensors.Random(context, type, cacheShape, 2);
                        var v = DeviceTensors.Random(context, type, cacheShape, 3);
                        var o = context.Allocate(type, batch, heads, 1, d);
                        // A shuffled block table, as a serving engine's allocator leaves it.
                        var table = Enumerable.Range(0, batch * blocks).OrderBy(i => (i * 7919) % (batch * blocks)).ToArray();
                        var cache = new KvCacheOptions
                        {
                            CacheSeqLens = Enumerable.Repeat(nk, batch).ToArray(),
                            BlockTable = paged ? table : ReadOnlyMemory<int>.Empty, PageSize = paged ? page : 0,
                        };
                        double ms = Time(context, () => context.FlashKvCache(q, k, v, o, cache), 2e-3 * nk / 4096);
                        double bytes = 2.0 * batch * kvHeads * nk * d * type.SizeOf();
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"| {Name(type)} | {batch} | {heads} | {kvHeads} | {d} | {nk} | {paged} | {ms:F4} | {bytes / ms / 1e6:F1} |"));
                        foreach (var view in new[] { q, k, v, o }) ((DeviceBuffer)view.Storage!).Dispose();
                    }
        return 0;
    }

    /// <summary>
    /// Issue 4's shapes at GPU scale (B = 4, D = 64, fp16 and bf16): a causal sliding window of 256 at N = 4096 (H = 16),
    /// causal GQA Hq = 16 over Hkv = 4 at N = 2048, and cross-attention Nq = 256 against Nk = 4096. FLOPs on visible pairs.
    /// </summary>
    public static int Shapes(AttentionContext context)
    {
        Console.WriteLine($"# {context.Backend} flash forward, issue-4 shapes, on {context.DeviceName}");
        Console.WriteLine("| dtype | shape | ms | TFLOP/s |");
        Console.WriteLine("|---|---|---|---|");
        const int batch = 4, d = 64;
        var shapes = new (string Name, int Hq, int Hkv, int Nq, int Nk, FlashOptions Options)[]
        {
            ("window256 N4096 causal H16", 16, 16, 4096, 4096, new FlashOptions { Causal = true, WindowLeft = 256 }),
            ("GQA 16/4 N2048 causal", 16, 4, 2048, 2048, new FlashOptions { Causal = true }),
            ("cross 256x4096 H16", 16, 16, 256, 4096, FlashOptions.Default),
        };
        foreach (var type in new[] { ElementType.Float16, ElementType.BFloat16 })
            foreach (var (name, hq, hkv, nq, nk, options) in shapes)
            {
                var q = DeviceTensors.Random(context, type, [batch, hq, nq, d], 1);
                var k = DeviceTensors.Random(context, type, [batch, hkv, nk, d], 2);
                var v = DeviceTensors.Random(context, type, [batch, hkv, nk, d], 3);
                var o = context.Allocate(type, batch, hq, nq, d);
                double flops = new AttentionCase
                {
                    Batch = batch, QueryHeads = hq, KeyValueHeads = hkv, QueryLength = nq, KeyLength = nk, HeadDim = d, ValueDim = d, Flash = options,
                }.Flops();
                double ms = Time(context, () => context.Flash(q, k, v, o, options), flops / 2e14);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {Name(type)} | {name} | {ms:F3} | {flops / ms / 1e9:F1} |"));
                foreach (var view in new[] { q, k, v, o }) ((DeviceBuffer)view.Storage!).Dispose();
            }
        return 0;
    }

    /// <summary>Milliseconds per call: a warm-up call (which also compiles), then enough calls for about half a second.</summary>
    private static double Time(AttentionContext context, Action call, double expectedSeconds)
    {
        call();
        context.Synchronize();
        int iterations = (int)Math.Clamp(0.5 / Math.Max(expectedSeconds, 1e-6), 3, 2000);
        var watch = Stopwatch.StartNew();
        for (int i = 0; i < iterations; i++) call();
        context.Synchronize();
        return watch.Elapsed.TotalMilliseconds / iterations;
    }

    private static string Name(ElementType type) => type switch { ElementType.Float16 => "fp16", ElementType.BFloat16 => "bf16", _ => "fp32" };
}
