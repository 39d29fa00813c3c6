// Validated description of a neighborhood attention call, and the NATTEN window rule every backend shares.
namespace NativeAttention;

/// <summary>
/// The keys one query sees along one spatial axis: <see cref="Count"/> positions starting at
/// <see cref="Start"/>, <see cref="Step"/> (the dilation) apart, in the axis' own coordinates.
/// </summary>
/// <param name="Start">The first visible key position.</param>
/// <param name="Count">How many keys are visible (at least 1).</param>
/// <param name="Step">The distance between consecutive visible keys: the axis' dilation.</param>
public readonly record struct AxisWindow(int Start, int Count, int Step)
{
    /// <summary>The position of the <paramref name="n"/>-th visible key.</summary>
    public int KeyAt(int n) => Start + n * Step;

    /// <summary>One past the last visible key position.</summary>
    public int End => Start + (Count - 1) * Step + 1;

    /// <summary>True when <paramref name="position"/> is one of the visible keys.</summary>
    public bool Contains(int position) =>
        position >= Start && position < End && (position - Start) % Step == 0;
}

/// <summary>
/// The sizes of a neighborhood attention call after validation. Q is <c>[B, Hq, X.., Dqk]</c>, K is
/// <c>[B, Hkv, X.., Dqk]</c>, V is <c>[B, Hkv, X.., Dv]</c>, O is <c>[B, Hq, X.., Dv]</c> and LSE is float32
/// <c>[B, Hq, X..]</c>, where <c>X..</c> is one, two or three spatial axes, the same for every tensor.
/// </summary>
/// <remarks>
/// <para>The visible set of a query is the product over axes of <see cref="WindowOnAxis(int, int, int, int, int, bool)"/>,
/// plus every additional key. Along one axis of length L with kernel k, dilation d and stride s (NATTEN 0.20
/// semantics, checked against NATTEN's reference mask):</para>
/// <list type="number">
/// <item>Dilation: position x belongs to group <c>g = x mod d</c> at group coordinate <c>x' = x / d</c>; the group
/// holds <c>Lg = ceil((L - g) / d)</c> positions and the query only sees keys of its own group. Everything below
/// works in group coordinates and maps back with <c>x = x' d + g</c>.</item>
/// <item>Stride: queries are cut into tiles of s consecutive group coordinates, <c>[t, t + s)</c> with
/// <c>t = (x' / s) s</c>. Every query of a tile uses the window of the tile's leader.</item>
/// <item>Non-causal: the leader is the tile's centre <c>t + s / 2</c> (integer division, so the right one of the two
/// middle queries when s is even), clamped to <c>Lg - 1</c>: a tile cut off by the end of the axis uses the last
/// position of the axis as its centre. The window has <c>k / 2</c> keys left of the leader and
/// <c>k / 2 - (k even ? 1 : 0)</c> right of it and is shifted inward at both borders so that it always holds
/// exactly k keys: <c>start = clamp(leader - k / 2, 0, Lg - k)</c>.</item>
/// <item>Causal: the leader is the tile's last query <c>t + s - 1</c>, clamped to <c>Lg - 1</c>; keys run from
/// <c>max(leader - k + 1, 0)</c> up to and including the query itself. With s = 1 that is the k keys ending at the
/// query, fewer at the start of the axis (causal windows shrink there instead of shifting).</item>
/// <item>Padding: with <see cref="NeighborhoodOptions.ValidExtent"/>, L above is sample b's valid extent
/// <c>e_ba</c> instead of the axis length, and queries at <c>x &gt;= e_ba</c> see nothing (zero output, LSE -inf).</item>
/// <item>Relative-position bias: the pair (x, y) adds <c>bias[h, .., (y' - x') + k - 1, ..]</c> per axis, in group
/// coordinates (see <see cref="NeighborhoodOptions"/>); every visible offset lies in <c>[-(k-1), k-1]</c>.</item>
/// </list>
/// </remarks>
public sealed class NeighborhoodProblem
{
    private const string Layouts = "[B, H, X, D], [B, H, X, Y, D] or [B, H, X, Y, Z, D]";

    /// <summary>Tensors a call lists: Q, K, V, O, LSE, the additional keys and values, the relative-position bias.</summary>
    private const int TensorCount = 8;

    /// <summary>This thread's problem for <see cref="AttentionContext.Neighborhood"/> calls, refilled by each (see <see cref="CreateForCall"/>).</summary>
    [ThreadStatic] private static NeighborhoodProblem? t_call;

    // Per spatial axis; a reused problem keeps its arrays while the axis count (and batch) stay the same.
    private int[] _spatialShape = [];
    private int[] _kernelSize = [];
    private int[] _dilation = [];
    private int[] _stride = [];
    private bool[] _causal = [];
    private int[]? _validExtent;
    /// <summary>The valid-extent array of the last call that had one, kept for the next (<see cref="_validExtent"/> is null when a call has none).</summary>
    private int[] _validExtentBuffer = [];

    private NeighborhoodProblem(NeighborhoodOptions options) => Options = options;

    /// <summary>Batch size B.</summary>
    public int Batch { get; private set; }
    /// <summary>Query heads Hq.</summary>
    public int QueryHeads { get; private set; }
    /// <summary>Key/value heads Hkv (divides Hq).</summary>
    public int KeyValueHeads { get; private set; }
    /// <summary>Query/key head dimension Dqk.</summary>
    public int HeadDim { get; private set; }
    /// <summary>Value head dimension Dv.</summary>
    public int ValueDim { get; private set; }
    /// <summary>Number of additional key/value tokens every query sees (0 when none).</summary>
    public int AdditionalKeyCount { get; private set; }
    /// <summary>The score scale after applying the default <c>1 / sqrt(Dqk)</c>.</summary>
    public float Scale { get; private set; }
    /// <summary>The storage element type of Q, K, V and O.</summary>
    public ElementType ElementType { get; private set; }
    /// <summary>The options validated.</summary>
    public NeighborhoodOptions Options { get; private set; }

    /// <summary>Number of spatial axes (1, 2 or 3).</summary>
    public int SpatialRank => _spatialShape.Length;
    /// <summary>The size of each spatial axis.</summary>
    public ReadOnlySpan<int> SpatialShape => _spatialShape;
    /// <summary>Kernel size per axis.</summary>
    public ReadOnlySpan<int> KernelSize => _kernelSize;
    /// <summary>Dilation per axis (defaults resolved).</summary>
    public ReadOnlySpan<int> Dilation => _dilation;
    /// <summary>Stride per axis (defaults resolved).</summary>
    public ReadOnlySpan<int> Stride => _stride;
    /// <summary>Causal flag per axis (defaults resolved).</summary>
    public ReadOnlySpan<bool> Causal => _causal;

    /// <summary>True when <see cref="NeighborhoodOptions.ValidExtent"/> is set (some samples may be padded).</summary>
    public bool HasValidExtent => _validExtent is not null;

    /// <summary>True when <see cref="NeighborhoodOptions.RelativePositionBias"/> is set.</summary>
    public bool HasRelativePositionBias => Options.RelativePositionBias.HasValue;

    /// <summary>
    /// The valid length of axis <paramref name="axis"/> in sample <paramref name="sample"/>: the option's value (copied at
    /// validation), or the axis length without <see cref="NeighborhoodOptions.ValidExtent"/>.
    /// </summary>
    public int ValidExtentOf(int sample, int axis) =>
        _validExtent is { } e ? e[sample * _spatialShape.Length + axis] : _spatialShape[axis];

    /// <summary>Tokens per (batch, head): the product of the spatial sizes.</summary>
    public int TokenCount
    {
        get
        {
            int n = 1;
            foreach (int s in _spatialShape) n *= s;
            return n;
        }
    }

    /// <summary>Query heads per key/value head.</summary>
    public int GroupSize => QueryHeads / KeyValueHeads;

    /// <summary>
    /// Every tensor of the call by name, optional ones included (null when absent): Q, K, V, O, the log-sum-exp, the
    /// additional keys and values, the relative-position bias.
    /// </summary>
    internal IReadOnlyList<NamedTensor> Tensors { get; private set; } = [];

    /// <summary>
    /// Validates a call and returns its sizes. Throws <see cref="ArgumentException"/> naming the offending tensor
    /// or option, or <see cref="ObjectDisposedException"/> for released buffers.
    /// </summary>
    public static NeighborhoodProblem Create(in TensorView query, in TensorView key, in TensorView value, in TensorView output, NeighborhoodOptions options, in TensorView? logSumExp) =>
        Validate(query, key, value, output, requireOutput: true, options, logSumExp, reuse: null);

    /// <summary>
    /// <see cref="Create"/> into this thread's reusable problem, for <see cref="AttentionContext.Neighborhood"/>: no
    /// allocation once warm (its per-axis arrays and tensor list are refilled). The result is valid until this thread
    /// validates its next neighborhood call; nothing may keep it, and the caller ends the call with <see cref="ReleaseCall"/>.
    /// </summary>
    internal static NeighborhoodProblem CreateForCall(in TensorView query, in TensorView key, in TensorView value, in TensorView output, NeighborhoodOptions options, in TensorView? logSumExp) =>
        Validate(query, key, value, output, requireOutput: true, options, logSumExp, t_call ??= new NeighborhoodProblem(s_noOptions));

    /// <summary>What an idle reusable problem refers to instead of a caller's options.</summary>
    private static readonly NeighborhoodOptions s_noOptions = new() { KernelSize = [] };

    /// <summary>Drops what a finished <see cref="CreateForCall"/> problem refers to (the caller's tensors and options).</summary>
    internal void ReleaseCall()
    {
        if (Tensors is NamedTensor[] tensors) Array.Clear(tensors);
        Options = s_noOptions;
    }

    /// <summary>Validates the inputs and options only, for callers that allocate their own outputs (the references).</summary>
    internal static NeighborhoodProblem CreateForInputs(in TensorView query, in TensorView key, in TensorView value, NeighborhoodOptions options) =>
        Validate(query, key, value, default, requireOutput: false, options, null, reuse: null);

    /// <summary><paramref name="array"/> when it has <paramref name="length"/> elements, else a new array of that length.</summary>
    private static T[] Fit<T>(T[] array, int length) => array.Length == length ? array : new T[length];

    private static NeighborhoodProblem Validate(in TensorView query, in TensorView key, in TensorView value, in TensorView output, bool requireOutput, NeighborhoodOptions options, in TensorView? logSumExp,
        NeighborhoodProblem? reuse)
    {
        ArgumentNullException.ThrowIfNull(options);
        // A rank outside 4..6 is clamped to the nearest legal one, so Rank throws with the layout in the message.
        int rank = Math.Clamp(query.Rank, 4, 6);
        var q = TensorChecks.Rank(query, rank, nameof(query), Layouts);
        var k = TensorChecks.Rank(key, rank, nameof(key), "the query's rank, [B, Hkv, X.., Dqk]");
        var v = TensorChecks.Rank(value, rank, nameof(value), "the query's rank, [B, Hkv, X.., Dv]");
        TensorChecks.Positive(query, Layouts, key, nameof(key), "[B, Hkv, X.., Dqk]", value, nameof(value), "[B, Hkv, X.., Dv]");
        int axes = rank - 3;
        int batch = q[0], hq = q[1], dqk = q[rank - 1];
        int hkv = k[1], dv = v[rank - 1];
        // Messages format the spatial shape only to throw: a valid call allocates nothing here.
        var spatial = q.Slice(2, axes);
        if (k[0] != batch) TensorChecks.Throw($"key has batch {k[0]}; query has batch {batch}.", nameof(key));
        if (!k.Slice(2, axes).SequenceEqual(spatial))
            TensorChecks.Throw($"key has spatial shape {TensorView.Format(k.Slice(2, axes))}; expected the query's {TensorView.Format(spatial)}.", nameof(key));
        if (k[rank - 1] != dqk) TensorChecks.Throw($"key has head dim {k[rank - 1]}; query has {dqk}.", nameof(key));
        if (hq % hkv != 0) TensorChecks.Throw($"key has {hkv} heads, which does not divide the query's {hq} heads (GQA/MQA need Hq % Hkv == 0).", nameof(key));
        if (v[0] != batch || v[1] != hkv || !v.Slice(2, axes).SequenceEqual(spatial))
            TensorChecks.Throw($"value has shape {TensorView.Format(v)}; expected [{batch}, {hkv}, {string.Join(", ", spatial.ToArray())}, Dv] to match key.", nameof(value));
        var type = TensorChecks.HeadDimsAndType(query, dqk, key, nameof(key), value, nameof(value), dv);

        int extra = 0;
        if (options.AdditionalKeys.HasValue != options.AdditionalValues.HasValue)
        {
            string missing = options.AdditionalKeys.HasValue ? "options.AdditionalValues" : "options.AdditionalKeys";
            TensorChecks.Throw($"{missing} is missing; additional keys and values come together or not at all.", missing);
        }
        if (options.AdditionalKeys is { } extraKeys && options.AdditionalValues is { } extraValues)
        {
            const string ek = "options.AdditionalKeys", evn = "options.AdditionalValues";
            TensorChecks.Rank(extraKeys, 4, ek, "[B, Hkv, Nextra, Dqk]");
            TensorChecks.Positive(extraKeys, ek, "[B, Hkv, Nextra, Dqk]");
            extra = extraKeys.Shape[2];
            TensorChecks.Shape(extraKeys, [batch, hkv, extra, dqk], ek, "[B, Hkv, Nextra, Dqk]");
            TensorChecks.Shape(extraValues, [batch, hkv, extra, dv], evn, "[B, Hkv, Nextra, Dv]");
            TensorChecks.Type(extraKeys, type, ek);
            TensorChecks.Type(extraValues, type, evn);
        }

        if (requireOutput)
        {
            Span<int> outShape = stackalloc int[rank];
            (outShape[0], outShape[1], outShape[rank - 1]) = (batch, hq, dv);
            spatial.CopyTo(outShape[2..]);
            TensorChecks.Written(output, outShape, type, nameof(output), "[B, Hq, X.., Dv]");
            TensorChecks.NoAlias(output, nameof(output), query, nameof(query), key, nameof(key), value, nameof(value));
            if (options.AdditionalKeys is { } ak) TensorChecks.NoAlias(output, nameof(output), ak, "options.AdditionalKeys");
            if (options.AdditionalValues is { } av) TensorChecks.NoAlias(output, nameof(output), av, "options.AdditionalValues");
            if (logSumExp is { } lse)
            {
                var lseShape = outShape[..^1];
                TensorChecks.Written(lse, lseShape, ElementType.Float32, nameof(logSumExp), "float32 [B, Hq, X..]");
                TensorChecks.NoAlias(lse, nameof(logSumExp), output, nameof(output));
                TensorChecks.NoAlias(lse, nameof(logSumExp), query, nameof(query), key, nameof(key), value, nameof(value));
                if (options.AdditionalKeys is { } ak2) TensorChecks.NoAlias(lse, nameof(logSumExp), ak2, "options.AdditionalKeys");
                if (options.AdditionalValues is { } av2) TensorChecks.NoAlias(lse, nameof(logSumExp), av2, "options.AdditionalValues");
            }
        }

        float scale = options.Scale ?? (float)(1.0 / Math.Sqrt(dqk));
        if (!float.IsFinite(scale)) TensorChecks.Throw($"Scale is {scale}; expected a finite value.", "options.Scale");

        if (options.KernelSize is null || options.KernelSize.Length != axes)
            TensorChecks.Throw($"options.KernelSize has {options.KernelSize?.Length ?? 0} entries; expected one per spatial axis ({axes}) of {TensorView.Format(spatial)}.", "options.KernelSize");
        CheckAxisCount(options.Dilation?.Length, axes, "options.Dilation", spatial);
        CheckAxisCount(options.Stride?.Length, axes, "options.Stride", spatial);
        CheckAxisCount(options.Causal?.Length, axes, "options.Causal", spatial);
        var problem = reuse ?? new NeighborhoodProblem(options);
        var kernel = problem._kernelSize = Fit(problem._kernelSize, axes);
        var dilation = problem._dilation = Fit(problem._dilation, axes);
        var stride = problem._stride = Fit(problem._stride, axes);
        var causal = problem._causal = Fit(problem._causal, axes);
        for (int a = 0; a < axes; a++)
        {
            int ks = options.KernelSize[a], d = options.DilationOf(a), s = options.StrideOf(a), length = spatial[a];
            if (d < 1)
                TensorChecks.Throw($"options.Dilation[{a}] is {d}; expected at least 1.", "options.Dilation");
            if (ks < 1 || (long)ks * d > length)
                TensorChecks.Throw($"options.KernelSize[{a}] is {ks}; expected 1 <= k and k * dilation ({ks} * {d}) <= axis length {length} of {TensorView.Format(spatial)}.", "options.KernelSize");
            if (s < 1 || s > ks)
                TensorChecks.Throw($"options.Stride[{a}] is {s}; expected 1 <= stride <= kernel size {ks}.", "options.Stride");
            (kernel[a], dilation[a], stride[a], causal[a]) = (ks, d, s, options.IsCausal(a));
        }

        if (options.RelativePositionBias is { } rpb)
        {
            const string rn = "options.RelativePositionBias";
            string layout = axes switch { 1 => "float32 [Hq, 2k0-1]", 2 => "float32 [Hq, 2k0-1, 2k1-1]", _ => "float32 [Hq, 2k0-1, 2k1-1, 2k2-1]" };
            Span<int> expected = stackalloc int[axes + 1];
            expected[0] = hq;
            for (int a = 0; a < axes; a++) expected[a + 1] = 2 * kernel[a] - 1;
            if (rpb.Rank != axes + 1 || !rpb.Shape.SequenceEqual(expected))
                TensorChecks.Throw($"{rn} has shape {TensorView.Format(rpb.Shape)}; expected {layout} = {TensorView.Format<int>(expected)} (per query head, 2k-1 offsets per axis).", rn);
            TensorChecks.Type(rpb, ElementType.Float32, rn);
            if (requireOutput)
            {
                TensorChecks.NoAlias(output, nameof(output), rpb, rn);
                if (logSumExp is { } lse) TensorChecks.NoAlias(lse, nameof(logSumExp), rpb, rn);
            }
        }

        int[]? validExtent = null;
        if (options.ValidExtent is { } extents)
        {
            const string vn = "options.ValidExtent";
            if (extents.GetLength(0) != batch || extents.GetLength(1) != axes)
                TensorChecks.Throw($"{vn} is [{extents.GetLength(0)}, {extents.GetLength(1)}]; expected [B, axes] = [{batch}, {axes}].", vn);
            validExtent = problem._validExtentBuffer = Fit(problem._validExtentBuffer, batch * axes);
            for (int b = 0; b < batch; b++)
                for (int a = 0; a < axes; a++)
                {
                    int e = extents[b, a];
                    if (e < 1 || e > spatial[a])
                        TensorChecks.Throw($"{vn}[{b}, {a}] is {e}; expected 1 <= extent <= axis length {spatial[a]} of {TensorView.Format(spatial)}.", vn);
                    if ((long)kernel[a] * dilation[a] > e)
                        TensorChecks.Throw($"{vn}[{b}, {a}] is {e}; the kernel must fit the valid extent: k * dilation ({kernel[a]} * {dilation[a]}) <= extent.", vn);
                    validExtent[b * axes + a] = e;
                }
        }

        problem._spatialShape = Fit(problem._spatialShape, axes);
        spatial.CopyTo(problem._spatialShape);
        problem._validExtent = validExtent;
        problem.Options = options;
        (problem.Batch, problem.QueryHeads, problem.KeyValueHeads, problem.HeadDim, problem.ValueDim) = (batch, hq, hkv, dqk, dv);
        (problem.AdditionalKeyCount, problem.Scale, problem.ElementType) = (extra, scale, type);
        var tensors = problem.Tensors as NamedTensor[] is { Length: TensorCount } reused ? reused : new NamedTensor[TensorCount];
        tensors[0] = new(nameof(query), query);
        tensors[1] = new(nameof(key), key);
        tensors[2] = new(nameof(value), value);
        tensors[3] = new(nameof(output), requireOutput ? output : null);
        tensors[4] = new(nameof(logSumExp), logSumExp);
        tensors[5] = new("options.AdditionalKeys", options.AdditionalKeys);
        tensors[6] = new("options.AdditionalValues", options.AdditionalValues);
        tensors[7] = new("options.RelativePositionBias", options.RelativePositionBias);
        problem.Tensors = tensors;
        return problem;
    }

    private static void CheckAxisCount(int? length, int axes, string name, ReadOnlySpan<int> spatial)
    {
        if (length is int n && n != axes)
            TensorChecks.Throw($"{name} has {n} entries; expected one per spatial axis ({axes}) of {TensorView.Format(spatial)}, or null for the default.", name);
    }

    /// <summary>The keys query position <paramref name="queryIndex"/> sees along spatial axis <paramref name="axis"/> (sample 0).</summary>
    public AxisWindow WindowOnAxis(int axis, int queryIndex) => WindowOnAxis(0, axis, queryIndex);

    /// <summary>
    /// The keys query position <paramref name="queryIndex"/> of sample <paramref name="sample"/> sees along spatial axis
    /// <paramref name="axis"/>, inside the sample's valid extent; <c>default</c> (no keys) for a padding position.
    /// </summary>
    public AxisWindow WindowOnAxis(int sample, int axis, int queryIndex)
    {
        int extent = ValidExtentOf(sample, axis);
        return queryIndex >= extent ? default
            : WindowOnAxis(queryIndex, extent, _kernelSize[axis], _dilation[axis], _stride[axis], _causal[axis]);
    }

    /// <summary>
    /// Fills <paramref name="windows"/> (one entry per spatial axis) with the keys the query at multi-index
    /// <paramref name="queryIndex"/> sees; its visible neighbourhood is their product. Allocates nothing.
    /// </summary>
    public void VisibleKeys(ReadOnlySpan<int> queryIndex, Span<AxisWindow> windows)
    {
        if (queryIndex.Length != SpatialRank || windows.Length < SpatialRank)
            throw new ArgumentException($"Expected {SpatialRank} query coordinates and room for {SpatialRank} windows.", nameof(queryIndex));
        for (int a = 0; a < _spatialShape.Length; a++)
            windows[a] = WindowOnAxis(a, queryIndex[a]);
    }

    /// <summary>
    /// The NATTEN window of one query along one axis (see the remarks on <see cref="NeighborhoodProblem"/>). Arguments
    /// must satisfy what <see cref="Create"/> checks: <c>k * dilation &lt;= length</c> and <c>1 &lt;= stride &lt;= k</c>.
    /// </summary>
    public static AxisWindow WindowOnAxis(int queryIndex, int length, int kernelSize, int dilation, int stride, bool causal)
    {
        int group = queryIndex % dilation;
        int x = queryIndex / dilation;
        int groupLength = (length - group + dilation - 1) / dilation;
        int tile = x / stride * stride;
        int start, end;
        if (causal)
        {
            int leader = Math.Min(tile + stride - 1, groupLength - 1);
            start = Math.Max(leader - kernelSize + 1, 0);
            end = x + 1;
        }
        else
        {
            int leader = Math.Min(tile + stride / 2, groupLength - 1);
            start = Math.Clamp(leader - kernelSize / 2, 0, groupLength - kernelSize);
            end = start + kernelSize;
        }
        return new AxisWindow(start * dilation + group, end - start, dilation);
    }

    /// <summary>The number of visible (query, key) pairs per head of sample 0 (of every sample without a valid extent), additional keys included.</summary>
    public long VisiblePairsPerHead() => VisiblePairsPerHead(0);

    /// <summary>The number of visible (query, key) pairs per head of sample <paramref name="sample"/>, additional keys included.</summary>
    public long VisiblePairsPerHead(int sample)
    {
        // Axes are independent, so the total is the product of per-axis sums of window sizes.
        long pairs = 1, queries = 1;
        for (int a = 0; a < SpatialRank; a++)
        {
            long axisSum = 0;
            for (int x = 0; x < _spatialShape[a]; x++) axisSum += WindowOnAxis(sample, a, x).Count;
            pairs *= axisSum;
            queries *= ValidExtentOf(sample, a);
        }
        return pairs + queries * AdditionalKeyCount;
    }

    /// <summary>Floating-point operations counted on visible pairs: (2 Dqk + 2 Dv) per pair (DESIGN.md), every sample.</summary>
    public double Flops()
    {
        double pairs = 0;
        for (int b = 0; b < (HasValidExtent ? Batch : 1); b++) pairs += VisiblePairsPerHead(b);
        return pairs * (HasValidExtent ? 1 : Batch) * QueryHeads * (2.0 * HeadDim + 2.0 * ValueDim);
    }
}
