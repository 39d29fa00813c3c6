// The shapes issue 4 asks the suite to track beside the square ones: a causal sliding window, causal GQA and
// cross-attention, fp32, one subclass per backend. FLOPs are counted on visible pairs only, so a window's figure is
// what the kernel makes of the work that exists, not of a full N x N.
using BenchmarkDotNet.Attributes;

namespace NativeAttention.Benchmarks;

/// <summary>Times one synchronised flash forward call (output and LSE) of a named shape.</summary>
public abstract class FlashShapesBenchmark : CaseForwardBenchmark
{
    /// <summary>The shape, by name (see <see cref="CaseOf"/>).</summary>
    [Params("window256-N4096-causal", "gqa8x2-N2048-causal", "cross-256x4096")]
    public string Shape { get; set; } = "window256-N4096-causal";

    public override AttentionCase Case => CaseOf(Shape);

    /// <summary>
    /// window256: H = 8, D = 64, N = 4096, causal with 256 keys back; gqa8x2: Hq = 8 over Hkv = 2, D = 64, N = 2048,
    /// causal; cross: H = 8, D = 64, Nq = 256 against Nk = 4096.
    /// </summary>
    public static AttentionCase CaseOf(string shape)
    {
        var square = AttentionCase.ForFlash(batch: 1, heads: 8, length: 4096, headDim: 64);
        return shape switch
        {
            "window256-N4096-causal" => square with { Flash = new FlashOptions { Causal = true, WindowLeft = 256 } },
            "gqa8x2-N2048-causal" => square with { KeyValueHeads = 2, QueryLength = 2048, KeyLength = 2048, Flash = new FlashOptions { Causal = true } },
            "cross-256x4096" => square with { QueryLength = 256 },
            _ => throw new ArgumentOutOfRangeException(nameof(shape), shape, "Unknown shape."),
        };
    }
}

/// <summary>The managed SIMD kernel on 2 threads (the figures issue 4 targets).</summary>
public class CpuFlashShapes : FlashShapesBenchmark
{
    public override Backend Backend => Backend.Cpu;

    public override ContextOptions ContextOptions => new() { Threads = 2 };
}

/// <summary>The OpenCL kernel on device 0.</summary>
[RequiresBackend(Backend.OpenCl)]
public class OpenClFlashShapes : FlashShapesBenchmark
{
    public override Backend Backend => Backend.OpenCl;
}

/// <summary>The CUDA kernels on device 0.</summary>
[RequiresBackend(Backend.Cuda)]
public class CudaFlashShapes : FlashShapesBenchmark
{
    public override Backend Backend => Backend.Cuda;
}
