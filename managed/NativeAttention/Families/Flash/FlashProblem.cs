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

    private FlashProblem(FlashOptions options) => Options = options;

    /// <summary>Batch size B.</summary>
    public int Batch { get; private init; }
    /// <summary>Query heads Hq.</summary>
    public int QueryHeads { get; private init; }
    /// <summary>Key/value heads Hkv (divides Hq).</summary>
    public int KeyValueHeads { get; private init; }
    /// <summary>Query length Nq.</summary>
    public int QueryLength { get; private init; }
    /// <summary>Key length Nk.</summary>
    public int KeyLength { get; private init; }
    /// <summary>Query/key head dimension Dqk.</summary>
    public int HeadDim { get; private init; }
    /// <summary>Value head dimension Dv.</summary>
    public int ValueDim { get; private init; }
    /// <summary>The score scale after applying the default.</summary>
    public float Scale { get; private init; }
    /// <summary>The options validated.</summary>
    public FlashOptions Options { get; }
    /// <summary>The storage element type of Q, K, V and O.</summary>
    public ElementType ElementType { get; private init; }

    /// <summary>Query heads per key/value head.</summary>
    public int GroupSize => QueryHeads / KeyValueHeads;

    /// <summary>
    /// Every tensor of the call by name, optional ones included (null when absent): Q, K, V, O, the log-sum-exp, then <see cref="OptionTensors"/>. Empty for problems built
    /// from sizes alone.
    /// </summary>
    internal IReadOnlyList<NamedTensor> Tensors { get; private init; } = [];

    /// <summary>
    /// Validates a call and returns its sizes. Throws <see cref="ArgumentException"/> naming the offending tensor
    /// or option, or <see cref="ObjectDisposedException"/> for released buffers.
    /// </summary>
    public static FlashProblem Create(in TensorView query, in TensorView key, in TensorView value, in TensorView output, FlashOptions? options, in TensorView? logSumExp) =>
        Validate(query, key, value, output, requireOutput: true, options, logSumExp);

    /// <summary>Validates the inputs and options only, for callers that allocate their own outputs (the references).</summary>
    internal static FlashProblem CreateForInputs(in TensorView query, in TensorView key, in TensorView value, FlashOptions? options) =>
        Validate(query, key, value, default, requireOutput: false, options, null);

    private static FlashProblem Validate(in TensorView query, in TensorView key, in TensorView value, in TensorView output, bool requireOutput, FlashOptions? options, in TensorView? logSumExp)
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

        return new FlashProblem(options)
        {
            Batch = batch, QueryHeads = hq, KeyValueHeads = hkv, QueryLength = nq, KeyLength = nk,
            HeadDim = dqk, ValueDim = dv, Scale = scale, ElementType = type,
            Tensors =
            [
                new(nameof(query), query), new(nameof(key), key), new(nameof(value), value),
                new(nameof(output), requireOutput ? output : null), new(nameof(logSumExp), logSumExp), .. OptionTensors(options),
            ],
        };
    }

    /// <summary>
    /// The tensors of <see cref="FlashOptions"/> by name, absent ones null: dense bias, low-rank U and W, ALiBi slopes,
    /// sinks. Shared by every entry point that takes flash options.
    /// </summary>
    internal static NamedTensor[] OptionTensors(FlashOptions options) =>
    [
        new("options.Bias", options.Bias), new("options.LowRankBias.U", options.LowRankBias?.U), new("options.LowRankBias.W", options.LowRankBias?.W),
        new("options.AlibiSlopes", options.AlibiSlopes), new("options.Sinks", options.Sinks),
    ];

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
    /// The options for one element of a batch whose ALiBi slopes may be per element (<c>[B, Hq]</c>): the slopes
    /// sliced to <c>[1, Hq]</c>; anything else unchanged.
    /// </summary>
    internal static FlashOptions ForBatchElement(FlashOptions options, int element) =>
        options.AlibiSlopes is { Rank: 2 } slopes ? options with { AlibiSlopes = slopes.Slice(0, element, 1) } : options;

    /// <summary>
    /// A problem of the given sizes without checking any tensor: for callers that validated a larger call (a
    /// variable-length batch, a KV cache) and run it one sequence at a time. <paramref name="options"/> must already
    /// fit the sizes (e.g. ALiBi slopes sliced to the sequence).
    /// </summary>
    internal static FlashProblem FromSizes(int batch, int queryHeads, int keyValueHeads, int queryLength, int keyLength,
        int headDim, int valueDim, float scale, ElementType type, FlashOptions options) =>
        new(options)
        {
            Batch = batch, QueryHeads = queryHeads, KeyValueHeads = keyValueHeads, QueryLength = queryLength, KeyLength = keyLength,
            HeadDim = headDim, ValueDim = valueDim, Scale = scale, ElementType = type,
        };

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
