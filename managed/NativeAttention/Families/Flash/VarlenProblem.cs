// Validated description of a variable-length flash call: packed tensors, per-sequence offsets, and per-sequence views.
namespace NativeAttention;

/// <summary>
/// The sizes of a <see cref="AttentionContext.FlashVarlen"/> call after validation. Q is <c>[TotalQ, Hq, Dqk]</c>,
/// K is <c>[TotalK, Hkv, Dqk]</c>, V is <c>[TotalK, Hkv, Dv]</c>, O is <c>[TotalQ, Hq, Dv]</c> and LSE float32
/// <c>[Hq, TotalQ]</c>; sequence b is a flash problem with <see cref="QueryLength"/>(b) queries and
/// <see cref="KeyLength"/>(b) keys.
/// </summary>
public sealed class VarlenProblem
{
    private const string QLayout = "[TotalQ, Hq, Dqk]";
    private const string KLayout = "[TotalK, Hkv, Dqk]";
    private const string VLayout = "[TotalK, Hkv, Dv]";

    private readonly int[] _queryStart, _queryLength, _keyStart, _keyLength;

    private VarlenProblem(FlashOptions options, int[] queryStart, int[] queryLength, int[] keyStart, int[] keyLength)
    {
        Options = options;
        _queryStart = queryStart;
        _queryLength = queryLength;
        _keyStart = keyStart;
        _keyLength = keyLength;
    }

    /// <summary>The number of sequences B.</summary>
    public int SequenceCount => _queryStart.Length;
    /// <summary>Query heads Hq.</summary>
    public int QueryHeads { get; private init; }
    /// <summary>Key/value heads Hkv (divides Hq).</summary>
    public int KeyValueHeads { get; private init; }
    /// <summary>Packed query rows TotalQ.</summary>
    public int TotalQueries { get; private init; }
    /// <summary>Packed key rows TotalK.</summary>
    public int TotalKeys { get; private init; }
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

    /// <summary>
    /// Every tensor of the call by name, optional ones included (null when absent): Q, K, V, O, the log-sum-exp, then
    /// <see cref="FlashProblem.OptionTensors"/>.
    /// </summary>
    internal IReadOnlyList<NamedTensor> Tensors { get; private init; } = [];

    /// <summary>The first packed query row of sequence <paramref name="sequence"/>.</summary>
    public int QueryStart(int sequence) => _queryStart[sequence];
    /// <summary>The query length of sequence <paramref name="sequence"/>.</summary>
    public int QueryLength(int sequence) => _queryLength[sequence];
    /// <summary>The first packed key row of sequence <paramref name="sequence"/>.</summary>
    public int KeyStart(int sequence) => _keyStart[sequence];
    /// <summary>The keys sequence <paramref name="sequence"/> attends to: its key length, or its used length when given.</summary>
    public int KeyLength(int sequence) => _keyLength[sequence];

    /// <summary>
    /// Validates a call. Throws <see cref="ArgumentException"/> naming the offending tensor, offset array
    /// (<c>layout.CuSeqLensQ</c>, <c>layout.CuSeqLensK</c>, <c>layout.SeqUsedK</c>) or option, or
    /// <see cref="ObjectDisposedException"/> for released buffers.
    /// </summary>
    public static VarlenProblem Create(in TensorView query, in TensorView key, in TensorView value, in TensorView output, VarlenLayout layout, FlashOptions? options, in TensorView? logSumExp) =>
        Validate(query, key, value, output, requireOutput: true, layout, options, logSumExp);

    /// <summary>Validates the inputs, layout and options only (the references allocate their own outputs).</summary>
    internal static VarlenProblem CreateForInputs(in TensorView query, in TensorView key, in TensorView value, VarlenLayout layout, FlashOptions? options) =>
        Validate(query, key, value, default, requireOutput: false, layout, options, null);

    private static VarlenProblem Validate(in TensorView query, in TensorView key, in TensorView value, in TensorView output, bool requireOutput, VarlenLayout layout, FlashOptions? options, in TensorView? logSumExp)
    {
        ArgumentNullException.ThrowIfNull(layout);
        options ??= FlashOptions.Default;
        var q = TensorChecks.Rank(query, 3, nameof(query), QLayout);
        var k = TensorChecks.Rank(key, 3, nameof(key), KLayout);
        var v = TensorChecks.Rank(value, 3, nameof(value), VLayout);
        TensorChecks.Positive(query, QLayout, key, nameof(key), KLayout, value, nameof(value), VLayout);
        int totalQ = q[0], hq = q[1], dqk = q[2], totalK = k[0], hkv = k[1], dv = v[2];
        if (k[2] != dqk) TensorChecks.Throw($"key has head dim {k[2]}; query has {dqk} ({KLayout}).", nameof(key));
        if (hq % hkv != 0) TensorChecks.Throw($"key has {hkv} heads, which does not divide the query's {hq} heads (GQA/MQA need Hq % Hkv == 0).", nameof(key));
        if (v[0] != totalK || v[1] != hkv)
            TensorChecks.Throw($"value has shape {TensorView.Format(v)}; expected [{totalK}, {hkv}, Dv] to match key {VLayout}.", nameof(value));
        var type = TensorChecks.HeadDimsAndType(query, dqk, key, nameof(key), value, nameof(value), dv);

        var cuQ = layout.CuSeqLensQ.Span;
        var cuK = layout.CuSeqLensK.Span;
        if (cuQ.Length < 2) TensorChecks.Throw($"layout.CuSeqLensQ has {cuQ.Length} entries; expected B + 1 >= 2 cumulative offsets starting at 0.", "layout.CuSeqLensQ");
        int sequences = cuQ.Length - 1;
        if (cuK.Length != cuQ.Length) TensorChecks.Throw($"layout.CuSeqLensK has {cuK.Length} entries; layout.CuSeqLensQ has {cuQ.Length} (both B + 1).", "layout.CuSeqLensK");
        CheckOffsets(cuQ, totalQ, "layout.CuSeqLensQ", "query", "TotalQ");
        CheckOffsets(cuK, totalK, "layout.CuSeqLensK", "key", "TotalK");
        var queryStart = new int[sequences];
        var queryLength = new int[sequences];
        var keyStart = new int[sequences];
        var keyLength = new int[sequences];
        ReadOnlySpan<int> used = layout.SeqUsedK.Span;
        bool hasUsed = !layout.SeqUsedK.IsEmpty;
        if (hasUsed && used.Length != sequences)
            TensorChecks.Throw($"layout.SeqUsedK has {used.Length} entries; expected one per sequence ({sequences}).", "layout.SeqUsedK");
        for (int b = 0; b < sequences; b++)
        {
            queryStart[b] = cuQ[b];
            queryLength[b] = cuQ[b + 1] - cuQ[b];
            keyStart[b] = cuK[b];
            keyLength[b] = cuK[b + 1] - cuK[b];
            if (hasUsed)
            {
                if (used[b] < 0 || used[b] > keyLength[b])
                    TensorChecks.Throw($"layout.SeqUsedK[{b}] is {used[b]}; sequence {b} has {keyLength[b]} keys, so expected 0..{keyLength[b]}.", "layout.SeqUsedK");
                keyLength[b] = used[b];
            }
        }

        if (requireOutput)
        {
            TensorChecks.Written(output, [totalQ, hq, dv], type, nameof(output), "[TotalQ, Hq, Dv]");
            TensorChecks.NoAlias(output, nameof(output), query, nameof(query), key, nameof(key), value, nameof(value));
        }
        if (logSumExp is { } lse)
        {
            TensorChecks.Written(lse, [hq, totalQ], ElementType.Float32, nameof(logSumExp), "float32 [Hq, TotalQ]");
            TensorChecks.NoAlias(lse, nameof(logSumExp), output, nameof(output));
            TensorChecks.NoAlias(lse, nameof(logSumExp), query, nameof(query), key, nameof(key), value, nameof(value));
        }

        if (options.Bias is not null)
            TensorChecks.Throw("A dense bias [B, Hq, Nq, Nk] has no packed form for variable-length batches; use ALiBi, or call Flash per sequence.", "options.Bias");
        if (options.LowRankBias is not null)
            TensorChecks.Throw("A low-rank bias has no packed form for variable-length batches; call Flash per sequence.", "options.LowRankBias");
        float scale = FlashProblem.CheckPerRowOptions(options, sequences, hq, dqk);

        return new VarlenProblem(options, queryStart, queryLength, keyStart, keyLength)
        {
            QueryHeads = hq, KeyValueHeads = hkv, TotalQueries = totalQ, TotalKeys = totalK,
            HeadDim = dqk, ValueDim = dv, Scale = scale, ElementType = type,
            Tensors =
            [
                new(nameof(query), query), new(nameof(key), key), new(nameof(value), value),
                new(nameof(output), requireOutput ? output : null), new(nameof(logSumExp), logSumExp), .. FlashProblem.OptionTensors(options),
            ],
        };
    }

    private static void CheckOffsets(ReadOnlySpan<int> offsets, int total, string name, string tensor, string totalName)
    {
        if (offsets[0] != 0) TensorChecks.Throw($"{name}[0] is {offsets[0]}; cumulative offsets start at 0.", name);
        for (int b = 1; b < offsets.Length; b++)
            if (offsets[b] < offsets[b - 1])
                TensorChecks.Throw($"{name} decreases from {offsets[b - 1]} to {offsets[b]} at entry {b}; cumulative offsets must not decrease.", name);
        if (offsets[^1] != total)
            TensorChecks.Throw($"{name} ends at {offsets[^1]}, but {tensor} has {totalName} = {total} rows; the last offset must equal the packed total.", name);
    }

    /// <summary>The flash problem of one sequence, <c>[1, H, n, D]</c>; needs a query and at least one key.</summary>
    internal FlashProblem SequenceProblem(int sequence) =>
        FlashProblem.FromSizes(1, QueryHeads, KeyValueHeads, _queryLength[sequence], _keyLength[sequence], HeadDim, ValueDim, Scale, ElementType,
            FlashProblem.ForBatchElement(Options, sequence));

    /// <summary>Rows <c>[start, start + length)</c> of a packed <c>[Total, H, D]</c> tensor as a <c>[1, H, length, D]</c> view (no copy).</summary>
    internal static TensorView SequenceView(in TensorView packed, int start, int length) =>
        AddBatchAxis(packed.Slice(0, start, length).Permute(1, 0, 2));

    /// <summary>Columns <c>[start, start + length)</c> of a packed <c>[H, Total]</c> log-sum-exp as a <c>[1, H, length]</c> view.</summary>
    internal static TensorView SequenceLogSumExp(in TensorView packed, int start, int length) =>
        AddBatchAxis(packed.Slice(1, start, length));

    /// <summary>The same view with a leading axis of size 1.</summary>
    internal static TensorView AddBatchAxis(in TensorView view)
    {
        var shape = new int[view.Rank + 1];
        var strides = new long[view.Rank + 1];
        shape[0] = 1;
        strides[0] = Math.Max(1, view.ElementCount);
        view.Shape.CopyTo(shape.AsSpan(1));
        view.Strides.CopyTo(strides.AsSpan(1));
        return new TensorView(view.Storage!, shape, strides, view.Offset);
    }
}
