// Options of neighborhood attention (NATTEN semantics). Semantics: DESIGN.md, "Neighborhood".
namespace NativeAttention;

/// <summary>
/// Options of <see cref="AttentionContext.Neighborhood"/>. Tensors are <c>[B, H, X, D]</c>, <c>[B, H, X, Y, D]</c>
/// or <c>[B, H, X, Y, Z, D]</c> (any strides); every per-axis array has one entry per spatial axis. Along an axis,
/// positions split into <c>Dilation</c> interleaved groups; inside its group a query sees exactly
/// <c>KernelSize</c> keys: the window centred on it, shifted inward at borders (even sizes take k/2 left and
/// k/2 - 1 right), or for causal axes the k keys ending at the query. With stride s, each tile of s queries
/// shares the window of the tile's centre query.
/// </summary>
public sealed record NeighborhoodOptions
{
    /// <summary>Window size per spatial axis, 1 &lt;= k &lt;= axis length / dilation.</summary>
    public required int[] KernelSize { get; init; }

    /// <summary>Dilation per axis (default 1 on every axis).</summary>
    public int[]? Dilation { get; init; }

    /// <summary>Query stride per axis (default 1), 1 &lt;= s &lt;= k.</summary>
    public int[]? Stride { get; init; }

    /// <summary>Causal flag per axis (default false).</summary>
    public bool[]? Causal { get; init; }

    /// <summary>Score scale; null means <c>1 / sqrt(Dqk)</c>.</summary>
    public float? Scale { get; init; }

    /// <summary>Extra keys <c>[B, Hkv, Nextra, Dqk]</c> that every query sees, in addition to its neighborhood.</summary>
    public TensorView? AdditionalKeys { get; init; }

    /// <summary>Values for <see cref="AdditionalKeys"/>, <c>[B, Hkv, Nextra, Dv]</c>.</summary>
    public TensorView? AdditionalValues { get; init; }

    /// <summary>The dilation of axis <paramref name="axis"/>.</summary>
    public int DilationOf(int axis) => Dilation?[axis] ?? 1;

    /// <summary>The stride of axis <paramref name="axis"/>.</summary>
    public int StrideOf(int axis) => Stride?[axis] ?? 1;

    /// <summary>Whether axis <paramref name="axis"/> is causal.</summary>
    public bool IsCausal(int axis) => Causal?[axis] ?? false;
}
