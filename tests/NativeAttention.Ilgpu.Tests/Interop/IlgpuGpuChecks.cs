// The interop checks on a GPU accelerator of ILGPU (CUDA, or OpenCL where ILGPU accepts the device): results, stream
// ordering with ILGPU's own kernels, wrapper sharing, disposal, and that the accelerator works after our context is gone.
using ILGPU;
using ILGPU.Runtime;
using NativeAttention.Ilgpu;
using Xunit;
using Xunit.Abstractions;

namespace NativeAttention.Ilgpu.Tests.Interop;

internal static class IlgpuGpuChecks
{
    private static void Scale(Index1D i, ArrayView<float> data, float factor) => data[i] *= factor;

    /// <summary>
    /// On a new stream of <paramref name="accelerator"/>: an ILGPU kernel doubles V, flash runs on the same stream with no
    /// synchronisation between, and ILGPU copies O back on that stream; O must equal the CPU's flash with doubled V. Then
    /// a disposed ILGPU buffer is refused, and ILGPU's kernels still run after the interop context is disposed.
    /// </summary>
    public static void Run<TContext>(Accelerator accelerator, ITestOutputHelper output) where TContext : AttentionContext
    {
        const int b = 1, h = 4, hkv = 2, n = 40, d = 32;
        var random = new Random(5);
        float[] Draw(int count) => [.. Enumerable.Range(0, count).Select(_ => (float)random.NextDouble() - 0.5f)];
        var q = Draw(b * h * n * d);
        var k = Draw(b * hkv * n * d);
        var v = Draw(b * hkv * n * d);
        var options = new FlashOptions { Causal = true };
        var expected = new float[q.Length];
        using (var cpu = AttentionContext.Create(Backend.Cpu))
            cpu.Flash(TensorView.FromMemory<float>(q, b, h, n, d), TensorView.FromMemory<float>(k, b, hkv, n, d),
                TensorView.FromMemory<float>(v.Select(x => 2 * x).ToArray(), b, hkv, n, d), TensorView.FromMemory<float>(expected, b, h, n, d), options);

        var scale = accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<float>, float>(Scale);
        using var stream = accelerator.CreateStream();
        using var qb = accelerator.Allocate1D(q);
        using var kb = accelerator.Allocate1D(k);
        using var vb = accelerator.Allocate1D(v);
        using var ob = accelerator.Allocate1D<float>(q.Length);
        accelerator.Synchronize();
        var actual = new float[q.Length];
        using (var attention = IlgpuAttention.Create(accelerator, stream))
        {
            Assert.IsType<TContext>(attention.Context);
            var tq = attention.View<float>(qb.View, b, h, n, d);
            // Views of one ILGPU buffer share one wrapper: overlap checks see them as one allocation.
            Assert.Same(tq.Storage, attention.View<float>(qb.View.SubView(d, n * d), n, d).Storage);
            var tv = attention.View<float>(vb.View, b, hkv, n, d);
            scale(stream, (int)vb.Length, vb.View, 2f);
            attention.Context.Flash(tq, attention.View<float>(kb.View, b, hkv, n, d), tv, attention.View<float>(ob.View, b, h, n, d), options);
            ob.View.CopyToCPU(stream, actual);
            stream.Synchronize();
            for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 2e-4f);
            output.WriteLine($"flash on {accelerator.Name} ordered between ILGPU kernels on one stream matches the CPU.");

            using var gone = accelerator.Allocate1D(k);
            var tgone = attention.View<float>(gone.View, b, hkv, n, d);
            gone.Dispose();
            Assert.Throws<ObjectDisposedException>(() => attention.Context.Flash(tq, tgone, tv, attention.View<float>(ob.View, b, h, n, d), options));
        }

        // The interop context released only what it owned: ILGPU's context, stream and buffers still work.
        scale(stream, (int)vb.Length, vb.View, 0.5f);
        stream.Synchronize();
        Assert.Equal(v, vb.GetAsArray1D());
    }
}
