// The neighborhood shapes issue 11 sets targets for (fp32, 2 threads on the CPU), and the dense flash call on the same
// grid flattened, so that the speedup over dense attention is read off one run. FLOPs are counted on visible pairs.
using BenchmarkDotNet.Attributes;

namespace NativeAttention.Benchmarks;

/// <summary>Times one synchronised neighborhood forward call (output and LSE) of a named shape, or its dense flash twin.</summary>
public abstract class NeighborhoodShapesBenchmark : CaseForwardBenchmark
{
    /// <summary>The shape, by name (see <see cref="CaseOf"/>).</summary>
    [Params("2d-64x64-H4-D32-k7", "2d-64x64-H4-D32-k7-dil2", "2d-64x64-H4-D32-k13", "2d-64x64-H4-D32-k13-dil2",
        "1d-N4096-H8-D64-k33", "1d-N4096-H8-D64-k33-dil4", "3d-16x32x32-H1-D64-k3x7x7")]
    public string Shape { get; set; } = "2d-64x64-H4-D32-k7";

    /// <summary>The neighborhood call, or (true) dense flash attention on the flattened grid with the same sizes.</summary>
    [Params(false, true)]
    public bool Dense { get; set; }

    public override IAttentionCase Case => Dense ? DenseOf(Shape) : CaseOf(Shape);

    /// <summary>The shapes as case specs (fp32, B = 1, Dv = Dqk).</summary>
    public static string SpecOf(string shape) => shape switch
    {
        "2d-64x64-H4-D32-k7" => "neighborhood f32 B1 H4/4 grid=64x64 k=7x7 D32/32",
        "2d-64x64-H4-D32-k7-dil2" => "neighborhood f32 B1 H4/4 grid=64x64 k=7x7 D32/32 dil=2x2",
        "2d-64x64-H4-D32-k13" => "neighborhood f32 B1 H4/4 grid=64x64 k=13x13 D32/32",
        "2d-64x64-H4-D32-k13-dil2" => "neighborhood f32 B1 H4/4 grid=64x64 k=13x13 D32/32 dil=2x2",
        "1d-N4096-H8-D64-k33" => "neighborhood f32 B1 H8/8 grid=4096 k=33 D64/64",
        "1d-N4096-H8-D64-k33-dil4" => "neighborhood f32 B1 H8/8 grid=4096 k=33 D64/64 dil=4",
        "3d-16x32x32-H1-D64-k3x7x7" => "neighborhood f32 B1 H1/1 grid=16x32x32 k=3x7x7 D64/64",
        _ => throw new ArgumentOutOfRangeException(nameof(shape), shape, "Unknown shape."),
    };

    /// <summary>The neighborhood case of a shape.</summary>
    public static IAttentionCase CaseOf(string shape) =>
        AttentionCaseSpec.TryParse(SpecOf(shape), out var parsed, out string? error) ? parsed : throw new InvalidOperationException(error);

    /// <summary>Dense (unmasked) flash attention over the same tokens, heads and head dims.</summary>
    public static IAttentionCase DenseOf(string shape)
    {
        var sizes = CaseOf(shape).Sizes;
        return AttentionCase.ForFlash(batch: sizes.Batch, heads: sizes.QueryHeads, length: sizes.QueryLength, headDim: sizes.HeadDim);
    }
}

/// <summary>The managed SIMD kernel on 2 threads (the figures issue 11 targets).</summary>
public class CpuNeighborhoodShapes : NeighborhoodShapesBenchmark
{
    public override Backend Backend => Backend.Cpu;

    public override ContextOptions ContextOptions => new() { Threads = 2 };
}
