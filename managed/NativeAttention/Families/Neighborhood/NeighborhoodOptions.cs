// Options of neighborhood attention (NATTEN semantics). Semantics: DESIGN.md, "Neighborhood".
namespace NativeAttention;

/// <summary>
/// Options of <see cref="AttentionContext.Neighborhood"/>. Tensors are <c>[B, H, X, D]</c>, <c>[B, H, X, Y, D]</c>
/// or <c>[B, H, X, Y, Z, D]</c> (any strides); every per-axis array has one entry per spatial axis. Along an axis,
/// positions split into <c>Dilation</c> interleaved groups; inside its group a query sees exactly
/// <c>KernelSize</c> keys: the window centred on it, shifted inward at borders (even sizes take k/2 left and
/// k/2 - 1 right), or for causal axes the k keys ending at the query. With stride s, each tile of s queries
/// shares the window of the tile's centre query.
/// <para>Relative-position bias (NATTEN's RPB): <see cref="RelativePositionBias"/> adds, to the scaled score of query x
/// and grid key y, <c>bias[h, o_0 + k_0 - 1, .., o_n + k_n - 1]</c>, where h is the query head and
/// <c>o_a = (y_a - x_a) / d_a</c> is the key's offset from the query along axis a in dilation-group steps (query and key
/// share a group, so it is exact). This is NATTEN's index <c>pb_start(x) + step</c> for every case NATTEN allows (odd
/// kernels, borders, dilation), and the same formula defines the cases it does not: even kernels, causal axes (offsets
/// -(k-1)..0, entries k..2k-2 unused) and strides (the offset is from the query itself, not from its tile's leader).
/// Every visible offset lies in <c>[-(k-1), k-1]</c>. Additional keys get no bias. The score is
/// <c>scale q.k + bias</c>.</para>
/// <para>Padding (NATTEN#263): with <see cref="ValidExtent"/>, sample b uses only the box <c>[0, e_b0) x .. x [0, e_bn)</c>
/// of its grid: every window is computed as if the grid of sample b were that box (borders shift at the valid extent),
/// tokens outside it are never keys, and queries outside it are not computed: their output rows are zero and their
/// LSE is -inf (like a query without visible keys). Additional keys stay visible to every valid query.</para>
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

    /// <summary>
    /// Optional relative-position bias per query head, float32 <c>[Hq, 2k_0 - 1]</c>, <c>[Hq, 2k_0 - 1, 2k_1 - 1]</c> or
    /// <c>[Hq, 2k_0 - 1, 2k_1 - 1, 2k_2 - 1]</c> (any strides, on the backend's device), broadcast over the batch. See
    /// the class remarks for the index.
    /// </summary>
    public TensorView? RelativePositionBias { get; init; }

    /// <summary>
    /// Optional valid extent per sample and axis, <c>[B, axes]</c> (host memory, read once per call): sample b's tokens
    /// with coordinate <c>x_a &gt;= ValidExtent[b, a]</c> on some axis are padding. Each extent needs
    /// <c>k_a * d_a &lt;= extent &lt;= axis length</c>. Null: the whole grid is valid.
    /// </summary>
    public int[,]? ValidExtent { get; init; }

    /// <summary>The dilation of axis <paramref name="axis"/>.</summary>
    public int DilationOf(int axis) => Dilation?[axis] ?? 1;

    /// <summary>The stride of axis <paramref name="axis"/>.</summary>
    public int StrideOf(int axis) => Stride?[axis] ?? 1;

    /// <summary>Whether axis <paramref name="axis"/> is causal.</summary>
    public bool IsCausal(int axis) => Causal?[axis] ?? false;
}
