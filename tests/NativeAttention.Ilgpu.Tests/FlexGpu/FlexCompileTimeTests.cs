// The compile time of a new modification on OpenCL: its first use (ILGPU compiles the C# kernel to OpenCL C, the
// driver builds it), then from the in-process cache. Run twice with the same NATIVEATTENTION_CACHE_DIR and
// POCL_CACHE_DIR to see a new process's first use with the disk caches warm (bench/results/opencl.md).
using System.Diagnostics;
using NativeAttention.Ilgpu.Flex.Gpu;
using Xunit;
using Xunit.Abstractions;
using static NativeAttention.Ilgpu.Tests.FlexOnGpu.FlexCheck;

namespace NativeAttention.Ilgpu.Tests.FlexOnGpu;

/// <summary>A modification no other test uses, so that its first use here compiles.</summary>
public struct CompileTimeScore : IScoreMod
{
    public float Weight;
    public readonly float Score(float score, int batch, int head, int query, int key) => score * Weight + ((query ^ key) & 1) * 0.25f;
}

public sealed class FlexCompileTimeTests(OpenClFixture fixture, ITestOutputHelper output) : IClassFixture<OpenClFixture>
{
    [SkippableFact]
    public void NewModification_FirstUse_ThenFromCache()
    {
        var context = fixture.Context;
        var random = new Random(17);
        var q = Upload(context, Random(random, 2 * 32 * 64), 1, 2, 32, 64);
        var kv = Upload(context, Random(random, 32 * 64), 1, 1, 32, 64);
        var o = context.Allocate(ElementType.Float32, 1, 2, 32, 64);
        var score = new CompileTimeScore { Weight = 0.5f };
        var mask = new CausalMask();
        var clock = Stopwatch.StartNew();
        FlexGpu.Run(context, q, kv, kv, o, null, 0.125f, null, score, mask);
        context.Synchronize();
        var first = clock.Elapsed;
        var kernel = typeof(FlexKernels).GetMethod(nameof(FlexKernels.Forward))!.MakeGenericMethod(typeof(CompileTimeScore), typeof(CausalMask), typeof(FlexTile64), typeof(float), typeof(Fp32Element));
        var text = FlexCompiler.Get(kernel, NativeAttention.Gpu.KernelApi.OpenCl);   // the in-memory entry the first call made
        clock.Restart();
        FlexGpu.Run(context, q, kv, kv, o, null, 0.125f, null, score, mask);
        context.Synchronize();
        var cached = clock.Elapsed;
        output.WriteLine($"first use {first.TotalMilliseconds:F0} ms (ILGPU's text {(text.FromCache ? "from the disk cache" : $"compiled in {text.CompileTime.TotalMilliseconds:F0} ms")}); " +
            $"from the in-process cache {cached.TotalMilliseconds:F1} ms; on {context.DeviceName}");
        var ptx = FlexCompiler.Get(kernel, NativeAttention.Gpu.KernelApi.Cuda);
        output.WriteLine($"the same modification's PTX (sm_80, no device): {(ptx.FromCache ? "from the disk cache" : $"compiled in {ptx.CompileTime.TotalMilliseconds:F0} ms")}");
        // What the test checks is the cache, not the clock (times are only printed: a noisy machine, or a first use
        // served from warm disk caches, can make the second call the slower one): the second call found the text the
        // first one made in memory, and gave the same output.
        Assert.Same(text, FlexCompiler.Get(kernel, NativeAttention.Gpu.KernelApi.OpenCl));
        var firstOutput = Read(o);
        FlexGpu.Run(context, q, kv, kv, o, null, 0.125f, null, score, mask);
        context.Synchronize();
        Assert.Equal(firstOutput, Read(o));
    }
}
