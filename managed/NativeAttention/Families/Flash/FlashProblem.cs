// Validated description of one flash attention call: sizes, resolved scale and the visible key range.
namespace NativeAttention;

/// <summary>
/// The sizes of a flash attention call after validation. Q is <c>[B, Hq, Nq, Dqk]</c>, K is
/// <c>[B, Hkv, Nk, Dqk]</c>, V is <c>[B, Hkv, Nk, Dv]</c>, O is <c>[B, Hq, Nq, Dv]</c>, LSE is float32 <c>[B, Hq, Nq]</c>.
/// </summary>
public sealed class FlashProblem
{
    /// <summary>Largest head dimension any backend accepts.</summary>
    public const int MaxHeadDim = 256;

    /// <summary>Tensors a call lists: Q, K, V, O, LSE, then the five of <see cref="OptionTensors"/>.</summary>
    private const int TensorCount = 10;

    /// <summary>This thread's problem for <see cref="AttentionContext.Flash"/> calls, refilled by each (see <see cref="CreateForCall"/>).</summary>
    [ThreadStatic] private static FlashProblem? t_call;

    private FlashProblem(FlashOptions options) => Options = options;

    /// <summary>Batch size B.</summary>
    public int Batch { get; private set; }
    /// <summary>Query heads Hq.</summary>
    public int QueryHeads { get; private set; }
    /// <summary>Key/value heads Hkv (divides Hq).</summary>
    public int KeyValueHeads { get; private set; }
    /// <summary>Query length Nq.</summary>
    public int QueryLength { get; private set; }
    /// <summary>Key length Nk.</summary>
    public int KeyLength { get; private set; }
    /// <summary>Query/key head dimension Dqk.</summary>
    public int HeadDim { get; private set; }
    /// <summary>Value head dimension Dv.</summary>
    public int ValueDim { get; private set; }
    /// <summary>The score scale after applying the default.</summary>
    public float Scale { get; private set; }
    /// <summary>The options validated.</summary>
    public FlashOptions Options { get; private set; }
    /// <summary>The storage element type of Q, K, V and O.</summary>
    public ElementType ElementType { get; private set; }

    /// <summary>Query heads per key/value head.</summary>
    public int GroupSize => QueryHeads / KeyValueHeads;

    /// <summary>
    /// The row of per-element ALiBi slopes <c>[B', Hq]</c> that batch element 0 of this problem reads (element b reads
    /// row <c>AlibiRow + b</c>): 0 for a validated call, the sequence or element index for the batch-1 problems a
    /// variable-length or KV-cache call runs one at a time over the caller's whole slopes (no sliced view, no copied
    /// options). Ignored for <c>[Hq]</c> slopes.
    /// </summary>
    internal int AlibiRow { get; private set; }

    /// <summary>
    /// Elements from the first slope of <paramref name="slopes"/> to the first that batch element 0 of this problem reads:
    /// <see cref="AlibiRow"/> rows for per-element <c>[B', Hq]</c> slopes, 0 for <c>[Hq]</c> slopes.
    /// </summary>
    internal long AlibiRowOffset(in TensorView slopes) => AlibiRowOffset(slopes, AlibiRow);

    /// <summary>Elements from the first slope to row <paramref name="row"/> of per-element <c>[B', Hq]</c> slopes; 0 for <c>[Hq]</c> slopes.</summary>
    internal static long AlibiRowOffset(in TensorView slopes, int row) => slopes.Rank == 2 ? row * slopes.Strides[0] : 0;

    /// <summary>
    /// Every tensor of the call by name, optional ones included (null when absent): Q, K, V, O, the log-sum-exp, then <see cref="OptionTensors"/>. Empty for problems built
    /// from sizes alone.
    /// </summary>
    internal IReadOnlyList<NamedTensor> Tensors { get; private set; } = [];

    /// <summary>
    /// Validates a call and returns its sizes. Throws <see cref="ArgumentException"/> naming the offending tensor
    /// or option, or <see cref="ObjectDisposedException"/> for released buffers.
    /// </summary>
    public static FlashProblem Create(in TensorView query, in TensorView key, in TensorView value, in TensorView output, FlashOptions? options, in TensorView? logSumExp) =>
        Validate(query, key, value, output, requireOutput: true, options, logSumExp, reuse: null);

    /// <summary>
    /// <see cref="Create"/> into this thread's reusable problem, for <see cref="AttentionContext.Flash"/>: no allocation
    /// once warm. The result is valid until this thread validates its next call; nothing may keep it.
    /// </summary>
    internal static FlashProblem CreateForCall(in TensorView query, in TensorView key, in TensorView value, in TensorView output, FlashOptions? options, in TensorView? logSumExp) =>
        Validate(query, key, value, output, requireOutput: true, options, logSumExp, t_call ??= new FlashProblem(FlashOptions.Default));

    /// <summary>
    /// <see cref="Create"/> into <paramref name="reuse"/> (a new problem when null): for callers that keep their own
    /// problem per thread and run flash on views they derived (a whole-grid neighborhood), so that a steady stream of
    /// calls allocates nothing. The caller ends each call with <see cref="ReleaseCall"/>.
    /// </summary>
    internal static FlashProblem CreateInto(FlashProblem? reuse, in TensorView query, in TensorView key, in TensorView value, in TensorView output, FlashOptions options, in TensorView? logSumExp) =>
        Validate(query, key, value, output, requireOutput: true, options, logSumExp, reuse ?? new FlashProblem(options));

    /// <summary>
    /// Drops what a finished <see cref="CreateForCall"/> problem refers to (the caller's tensors and options, and the
    /// decode problem a routed call derived from it), so the thread's reusable problem keeps no caller memory alive.
    /// </summary>
    internal void ReleaseCall()
    {
        if (Tensors is NamedTensor[] tensors) Array.Clear(tensors);
        Options = FlashOptions.Default;
        KvCacheProblem.ReleaseFlashCall();
    }

    /// <summary>Validates the inputs and options only, for callers that allocate their own outputs (the references).</summary>
    internal static FlashProblem CreateForInputs(in TensorView query, in TensorView key, in TensorView value, FlashOptions? options) =>
        Validate(query, key, value, default, requireOutput: false, options, null, reuse: null);

    private static FlashProblem Validate(in TensorView query, in TensorView key, in TensorView value, in TensorView output, bool requireOutput, FlashOptions? options, in TensorView? logSumExp,
        FlashProblem? reuse)
    {
        options ??= FlashOptions.Default;
        var shapes = AttentionShapes.Of(query, key, value);
        var (batch, hq, hkv, nq, nk, dqk, dv, type) = shapes;

        shapes.CheckOutputs(query, key, value, output, requireOutput, logSumExp);

        float scale = CheckPerRowOptions(options, batch, hq, dqk);
        if (options.Bias is { } bias)
        {
            TensorChecks.Rank(bias, 4, "options.Bias", "[B|1, Hq|1, Nq, Nk]");
            TensorChecks.Broadcast(bias.Shape[0], batch, "options.Bias", "batch");
            TensorChecks.Broadcast(bias.Shape[1], hq, "options.Bias", "head");
            if (bias.Shape[2] != nq || bias.Shape[3] != nk)
                TensorChecks.Throw($"options.Bias has shape {TensorView.Format(bias.Shape)}; expected [B|1, Hq|1, {nq}, {nk}].", "options.Bias");
            TensorChecks.NoAlias(output, nameof(output), bias, "options.Bias");
        }
        if (options.LowRankBias is { } lowRank)
        {
            TensorChecks.Rank(lowRank.U, 4, "options.LowRankBias.U", "[B|1, Hq|1, Nq, r]");
            TensorChecks.Rank(lowRank.W, 4, "options.LowRankBias.W", "[B|1, Hq|1, Nk, r]");
            TensorChecks.Positive(lowRank.U, "options.LowRankBias.U", "[B|1, Hq|1, Nq, r]");
            TensorChecks.Positive(lowRank.W, "options.LowRankBias.W", "[B|1, Hq|1, Nk, r]");
            TensorChecks.Broadcast(lowRank.U.Shape[0], batch, "options.LowRankBias.U", "batch");
            TensorChecks.Broadcast(lowRank.U.Shape[1], hq, "options.LowRankBias.U", "head");
            TensorChecks.Broadcast(lowRank.W.Shape[0], batch, "options.LowRankBias.W", "batch");
            TensorChecks.Broadcast(lowRank.W.Shape[1], hq, "options.LowRankBias.W", "head");
            if (lowRank.U.Shape[2] != nq) TensorChecks.Throw($"options.LowRankBias.U has {lowRank.U.Shape[2]} rows; expected Nq = {nq}.", "options.LowRankBias.U");
            if (lowRank.W.Shape[2] != nk) TensorChecks.Throw($"options.LowRankBias.W has {lowRank.W.Shape[2]} rows; expected Nk = {nk}.", "options.LowRankBias.W");
            if (lowRank.U.Shape[3] != lowRank.W.Shape[3])
                TensorChecks.Throw($"options.LowRankBias has rank {lowRank.U.Shape[3]} in U but {lowRank.W.Shape[3]} in W.", "options.LowRankBias.W");
        }

        var problem = reuse ?? new FlashProblem(options);
        (problem.Options, problem.Batch, problem.QueryHeads, problem.KeyValueHeads, problem.QueryLength, problem.KeyLength) = (options, batch, hq, hkv, nq, nk);
        (problem.HeadDim, problem.ValueDim, problem.Scale, problem.ElementType, problem.AlibiRow) = (dqk, dv, scale, type, 0);
        var tensors = problem.Tensors as NamedTensor[] is { Length: TensorCount } reused ? reused : new NamedTensor[TensorCount];
        tensors[0] = new(nameof(query), query);
        tensors[1] = new(nameof(key), key);
        tensors[2] = new(nameof(value), value);
        tensors[3] = new(nameof(output), requireOutput ? output : null);
        tensors[4] = new(nameof(logSumExp), logSumExp);
        WriteOptionTensors(options, tensors.AsSpan(5));
        problem.Tensors = tensors;
        return problem;
    }

    /// <summary>
    /// The tensors of <see cref="FlashOptions"/> by name, absent ones null: dense bias, low-rank U and W, ALiBi slopes,
    /// sinks. Shared by every entry point that takes flash options.
    /// </summary>
    internal static NamedTensor[] OptionTensors(FlashOptions options)
    {
        var tensors = new NamedTensor[OptionTensorCount];
        WriteOptionTensors(options, tensors);
        return tensors;
    }

    /// <summary>The number of tensors <see cref="OptionTensors"/> lists.</summary>
    internal const int OptionTensorCount = 5;

    /// <summary><see cref="OptionTensors"/> written into the first five entries of <paramref name="into"/> (no allocation).</summary>
    internal static void WriteOptionTensors(FlashOptions options, Span<NamedTensor> into)
    {
        into[0] = new("options.Bias", options.Bias);
        into[1] = new("options.LowRankBias.U", options.LowRankBias?.U);
        into[2] = new("options.LowRankBias.W", options.LowRankBias?.W);
        into[3] = new("options.AlibiSlopes", options.AlibiSlopes);
        into[4] = new("options.Sinks", options.Sinks);
    }

    /// <summary>
    /// Checks the options that do not depend on the key length (scale, masks, softcap, sigmoid bias, ALiBi slopes
    /// <c>[Hq]</c> or <c>[B, Hq]</c>, sinks) and returns the resolved scale. Shared with the variable-length and
    /// KV-cache entry points, whose key lengths differ per sequence.
    /// </summary>
    internal static float CheckPerRowOptions(FlashOptions options, int batch, int hq, int dqk)
    {
        float scale = options.Scale ?? (float)(1.0 / Math.Sqrt(dqk));
        if (!float.IsFinite(scale)) TensorChecks.Throw($"Scale is {scale}; expected a finite value.", nameof(options));
        if (options.WindowLeft < -1) TensorChecks.Throw($"WindowLeft is {options.WindowLeft}; expected -1 (unbounded) or a non-negative extent.", nameof(options));
        if (options.WindowRight < -1) TensorChecks.Throw($"WindowRight is {options.WindowRight}; expected -1 (unbounded) or a non-negative extent.", nameof(options));
        if (!(options.Softcap >= 0) || !float.IsFinite(options.Softcap)) TensorChecks.Throw($"Softcap is {options.Softcap}; expected 0 (off) or a positive finite cap.", nameof(options));
        if (!float.IsFinite(options.SigmoidBias)) TensorChecks.Throw($"SigmoidBias is {options.SigmoidBias}; expected a finite value.", nameof(options));
        if (options.AlibiSlopes is { } slopes)
        {
            if (slopes.Rank == 1) TensorChecks.Shape(slopes, [hq], "options.AlibiSlopes", "float32 [Hq] or [B, Hq]");
            else TensorChecks.Shape(slopes, [batch, hq], "options.AlibiSlopes", "float32 [Hq] or [B, Hq]");
            TensorChecks.Type(slopes, ElementType.Float32, "options.AlibiSlopes");
        }
        if (options.Sinks is { } sinks)
        {
            TensorChecks.Shape(sinks, [hq], "options.Sinks", "float32 [Hq]");
            TensorChecks.Type(sinks, ElementType.Float32, "options.Sinks");
            if (options.ScoreFunction == ScoreFunction.Sigmoid)
                TensorChecks.Throw("Sinks join the softmax denominator and have no meaning with sigmoid scoring.", "options.Sinks");
        }
        return scale;
    }

    /// <summary>
    /// A problem of the given sizes without checking any tensor: for callers that validated a larger call (a
    /// variable-length batch, a KV cache) and run it one sequence at a time. <paramref name="options"/> are the call's,
    /// unchanged: per-element ALiBi slopes <c>[B', Hq]</c> stay whole, and <paramref name="alibiRow"/> says which row
    /// batch element 0 reads (<see cref="AlibiRow"/>).
    /// </summary>
    internal static FlashProblem FromSizes(int batch, int queryHeads, int keyValueHeads, int queryLength, int keyLength,
        int headDim, int valueDim, float scale, ElementType type, FlashOptions options, int alibiRow = 0) =>
        FromSizes(batch, queryHeads, keyValueHeads, queryLength, keyLength, headDim, valueDim, scale, type, options, alibiRow, reuse: null);

    /// <summary><see cref="FromSizes(int, int, int, int, int, int, int, float, ElementType, FlashOptions, int)"/> into <paramref name="reuse"/> when given (no allocation).</summary>
    internal static FlashProblem FromSizes(int batch, int queryHeads, int keyValueHeads, int queryLength, int keyLength,
        int headDim, int valueDim, float scale, ElementType type, FlashOptions options, int alibiRow, FlashProblem? reuse)
    {
        var p = reuse ?? new FlashProblem(options);
        (p.Options, p.Batch, p.QueryHeads, p.KeyValueHeads, p.QueryLength, p.KeyLength) = (options, batch, queryHeads, keyValueHeads, queryLength, keyLength);
        (p.HeadDim, p.ValueDim, p.Scale, p.ElementType, p.AlibiRow) = (headDim, valueDim, scale, type, alibiRow);
        return p;
    }

    /// <summary>
    /// True when the call is decode-shaped for a backend whose split-KV decode kernel takes up to
    /// <paramref name="maxRows"/> rows per kv head: <c>GroupSize x Nq &lt;= maxRows</c> (the query heads of a GQA group
    /// folded into rows that share each K/V read), and no dense or low-rank bias, which the decode kernels lack.
    /// </summary>
    internal bool IsDecodeShaped(int maxRows) =>
        Options.Bias is null && Options.LowRankBias is null && (long)GroupSize * QueryLength <= maxRows;

    /// <summary>
    /// The keys query <paramref name="queryIndex"/> may see, <c>[start, end)</c> (empty when start &gt;= end),
    /// from causal masking (bottom-right aligned) and the sliding window.
    /// </summary>
    public (int Start, int End) VisibleKeys(int queryIndex) =>
        VisibleKeys(queryIndex, QueryLength, KeyLength, Options.Causal, Options.WindowLeft, Options.WindowRight);

    /// <summary>The visible key range of a query under causal/window masking, <c>[start, end)</c>.</summary>
    public static (int Start, int End) VisibleKeys(int queryIndex, int queryLength, int keyLength, bool causal, int windowLeft, int windowRight)
    {
        long aligned = (long)queryIndex + keyLength - queryLength;
        long start = windowLeft >= 0 ? aligned - windowLeft : 0;
        long end = keyLength;
        if (windowRight >= 0) end = Math.Min(end, aligned + windowRight + 1);
        if (causal) end = Math.Min(end, aligned + 1);
        start = Math.Clamp(start, 0, keyLength);
        end = Math.Clamp(end, start, keyLength);
        return ((int)start, (int)end);
    }

    /// <summary>The number of visible (query, key) pairs per (batch, head): the FLOP count's base.</summary>
    public long VisiblePairsPerHead()
    {
        long total = 0;
        for (int i = 0; i < QueryLength; i++)
        {
            var (s, e) = VisibleKeys(i);
            if (e > s) total += e - s;
        }
        return total;
    }

    /// <summary>Floating-point operations counted on visible pairs: (2 Dqk + 2 Dv) per pair (DESIGN.md).</summary>
    public double Flops() => (double)VisiblePairsPerHead() * Batch * QueryHeads * (2.0 * HeadDim + 2.0 * ValueDim);
}
