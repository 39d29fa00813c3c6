// Opt-in timing of the OpenCL variants for 32 KB of local memory (decode with V staged through K's buffer,
// neighborhood with half-size key tiles) next to the plain ones, in one process, alternating: the figures of
// bench/results/opencl-pocl.md. Runs only with NATIVEATTENTION_OCL32K_TIMING=1 (it is a measurement, not a check).
using System.Diagnostics;
using NativeAttention.Gpu.OpenCl;
using Xunit;
using Xunit.Abstractions;

namespace NativeAttention.Tests.Gpu;

public sealed class OpenCl32KTimingTests(ITestOutputHelper output)
{
    private const int Rounds = 9;

    [SkippableFact]
    [Trait("Backend", "OpenCl")]
    public void SmallLocalMemoryVariants_TimedNextToThePlainOnes()
    {
        Skip.IfNot(Environment.GetEnvironmentVariable("NATIVEATTENTION_OCL32K_TIMING") == "1", "A measurement: set NATIVEATTENTION_OCL32K_TIMING=1 to run it.");
        using var plain = (OpenClContext)TestBackend.CreateOrSkip(Backend.OpenCl);
        using var small = (OpenClContext)TestBackend.CreateOrSkip(Backend.OpenCl);
        small.LocalMemoryLimit = 32 * 1024;
        var random = new Random(1);
        TensorView Host(params int[] shape) => TestTensors.Uniform(ElementType.Float32, random, 1.0, shape);

        // Decode: B 1, Hkv 8, G 4 (4 rows per work-group), one query, 8192 cached keys, D 128, fp32.
        var (q, kc, vc, o) = (Host(1, 32, 1, 128), Host(1, 8, 8192, 128), Host(1, 8, 8192, 128), Host(1, 32, 1, 128));
        var cache = new KvCacheOptions { CacheSeqLens = new[] { 8192 } };
        Compare("decode B1 Hq32/Hkv8 Nq1 L8192 D128 f32", plain, small, (context, on) =>
        {
            var (dq, dk, dv, dout) = (on.Put(q), on.Put(kc), on.Put(vc), on.Put(o));
            return () => context.FlashKvCache(dq, dk, dv, dout, cache);
        });

        // Neighborhood: B 1, H 4, a 48 x 48 grid, 7 x 7 windows, D 128, fp32.
        var (nq, nk, nv, no) = (Host(1, 4, 48, 48, 128), Host(1, 4, 48, 48, 128), Host(1, 4, 48, 48, 128), Host(1, 4, 48, 48, 128));
        var options = new NeighborhoodOptions { KernelSize = [7, 7] };
        Compare("neighborhood B1 H4 48x48 k7x7 D128 f32", plain, small, (context, on) =>
        {
            var (dq, dk, dv, dout) = (on.Put(nq), on.Put(nk), on.Put(nv), on.Put(no));
            return () => context.Neighborhood(dq, dk, dv, dout, options);
        });
        Assert.True(plain.HasModule("decode_fwd.hd128.f32.r4") && small.HasModule("decode_fwd.hd128.f32.r4.kv1"), "not the decode variants meant");
        Assert.True(plain.HasModule("neighborhood_fwd.hd128.f32") && small.HasModule("neighborhood_fwd.hd128.f32.n16"), "not the neighborhood variants meant");
    }

    /// <summary>Medians of <see cref="Rounds"/> synchronised calls on each context, alternating, after one warm-up call each.</summary>
    private void Compare(string what, OpenClContext plain, OpenClContext small, Func<AttentionContext, OnContext, Action> prepare)
    {
        using var onPlain = new OnContext(plain);
        using var onSmall = new OnContext(small);
        var (runPlain, runSmall) = (prepare(plain, onPlain), prepare(small, onSmall));
        double Time(AttentionContext context, Action run)
        {
            var clock = Stopwatch.StartNew();
            run();
            context.Synchronize();
            return clock.Elapsed.TotalMilliseconds;
        }
        Time(plain, runPlain);
        Time(small, runSmall);
        var (a, b) = (new List<double>(), new List<double>());
        for (int i = 0; i < Rounds; i++)
        {
            a.Add(Time(plain, runPlain));
            b.Add(Time(small, runSmall));
        }
        double ma = a.Order().ElementAt(Rounds / 2), mb = b.Order().ElementAt(Rounds / 2);
        output.WriteLine($"{what}: plain {ma:F2} ms (min {a.Min():F2}), 32 KB variant {mb:F2} ms (min {b.Min():F2}), ratio {mb / ma:F3}");
    }
}
