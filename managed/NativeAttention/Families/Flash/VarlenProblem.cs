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

    /// <summary>Tensors a call lists: Q, K, V, O, LSE, then the five of <see cref="FlashProblem.OptionTensors"/>.</summary>
    private const int TensorCount = 5 + FlashProblem.OptionTensorCount;

    /// <summary>This thread's problem for <see cref="AttentionContext.FlashVarlen"/> calls, refilled by each (see <see cref="CreateForCall"/>).</summary>
    [ThreadStatic] private static VarlenProblem? t_call;

    // Per sequence; a reused problem keeps them while the sequence count stays the same.
    private int[] _queryStart = [], _queryLength = [], _keyStart = [], _keyLength = [];

    /// <summary>The per-sequence flash problem <see cref="SequenceProblem"/> refills (one sequence runs at a time).</summary>
    private FlashProblem? _sequence;

    /// <summary>
    /// Shape and stride arrays of the per-sequence views (<see cref="SequenceView(int, in TensorView, int, int)"/>),
    /// one pair per slot (Q, K, V, O: rank 4; LSE: rank 3), refilled for each sequence: the base varlen loop hands a
    /// sequence's views to the backend, which reads them before it returns, and only then builds the next ones.
    /// </summary>
    private readonly FlashViewSlots _views = new();

    private VarlenProblem(FlashOptions options) => Options = options;

    /// <summary>The number of sequences B.</summary>
    public int SequenceCount => _queryStart.Length;
    /// <summary>Query heads Hq.</summary>
    public int QueryHeads { get; private set; }
    /// <summary>Key/value heads Hkv (divides Hq).</summary>
    public int KeyValueHeads { get; private set; }
    /// <summary>Packed query rows TotalQ.</summary>
    public int TotalQueries { get; private set; }
    /// <summary>Packed key rows TotalK.</summary>
    public int TotalKeys { get; private set; }
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

    /// <summary>
    /// Every tensor of the call by name, optional ones included (null when absent): Q, K, V, O, the log-sum-exp, then
    /// <see cref="FlashProblem.OptionTensors"/>.
    /// </summary>
    internal IReadOnlyList<NamedTensor> Tensors { get; private set; } = [];

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
        Validate(query, key, value, output, requireOutput: true, layout, options, logSumExp, reuse: null);

    /// <summary>
    /// <see cref="Create"/> into this thread's reusable problem, for <see cref="AttentionContext.FlashVarlen"/>: no
    /// allocation once warm (its per-sequence arrays, tensor list, sequence problem and view arrays are refilled). The
    /// result is valid until this thread validates its next varlen call; nothing may keep it, and the caller ends the
    /// call with <see cref="ReleaseCall"/>.
    /// </summary>
    internal static VarlenProblem CreateForCall(in TensorView query, in TensorView key, in TensorView value, in TensorView output, VarlenLayout layout, FlashOptions? options, in TensorView? logSumExp) =>
        Validate(query, key, value, output, requireOutput: true, layout, options, logSumExp, t_call ??= new VarlenProblem(FlashOptions.Default));

    /// <summary>
    /// Drops what a finished <see cref="CreateForCall"/> problem refers to (the caller's tensors and options, and the
    /// sequence and decode problems derived from it), so the thread's reusable problem keeps no caller memory alive.
    /// </summary>
    internal void ReleaseCall()
    {
        if (Tensors is NamedTensor[] tensors) Array.Clear(tensors);
        Options = FlashOptions.Default;
        if (_sequence is { } sequence) FlashProblem.FromSizes(1, 1, 1, 1, 1, 1, 1, 1f, ElementType.Float32, FlashOptions.Default, 0, sequence);
        KvCacheProblem.ReleaseFlashCall();
    }

    /// <summary><paramref name="array"/> when it has <paramref name="length"/> elements, else a new array of that length.</summary>
    private static int[] Fit(int[] array, int length) => array.Length == length ? array : new int[length];

    /// <summary>Validates the inputs, layout and options only (the references allocate their own outputs).</summary>
    internal static VarlenProblem CreateForInputs(in TensorView query, in TensorView key, in TensorView value, VarlenLayout layout, FlashOptions? options) =>
        Validate(query, key, value, default, requireOutput: false, layout, options, null, reuse: null);

    private static VarlenProblem Validate(in TensorView query, in TensorView key, in TensorView value, in TensorView output, bool requireOutput, VarlenLayout layout, FlashOptions? options, in TensorView? logSumExp,
        VarlenProblem? reuse)
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
        var problem = reuse ?? new VarlenProblem(options);
        var queryStart = problem._queryStart = Fit(problem._queryStart, sequences);
        var queryLength = problem._queryLength = Fit(problem._queryLength, sequences);
        var keyStart = problem._keyStart = Fit(problem._keyStart, sequences);
        var keyLength = problem._keyLength = Fit(problem._keyLength, sequences);
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

        problem.Options = options;
        (problem.QueryHeads, problem.KeyValueHeads, problem.TotalQueries, problem.TotalKeys) = (hq, hkv, totalQ, totalK);
        (problem.HeadDim, problem.ValueDim, problem.Scale, problem.ElementType) = (dqk, dv, scale, type);
        var tensors = problem.Tensors as NamedTensor[] is { Length: TensorCount } reused ? reused : new NamedTensor[TensorCount];
        tensors[0] = new(nameof(query), query);
        tensors[1] = new(nameof(key), key);
        tensors[2] = new(nameof(value), value);
        tensors[3] = new(nameof(output), requireOutput ? output : null);
        tensors[4] = new(nameof(logSumExp), logSumExp);
        FlashProblem.WriteOptionTensors(options, tensors.AsSpan(5));
        problem.Tensors = tensors;
        return problem;
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

    /// <summary>
    /// The flash problem of one sequence, <c>[1, H, n, D]</c>; needs a query and at least one key. It takes the call's
    /// options as they are: per-sequence ALiBi slopes <c>[B, Hq]</c> stay whole and the problem's
    /// <see cref="FlashProblem.AlibiRow"/> names the sequence's row (no sliced view or options copy per sequence).
    /// </summary>
    internal FlashProblem SequenceProblem(int sequence) =>
        _sequence = FlashProblem.FromSizes(1, QueryHeads, KeyValueHeads, _queryLength[sequence], _keyLength[sequence], HeadDim, ValueDim, Scale, ElementType,
            Options, sequence, _sequence);

    /// <summary>
    /// <see cref="SequenceView(in TensorView, int, int)"/> over this problem's arrays of view slot <paramref name="slot"/>
    /// (no allocation): valid until the slot's next view, so a caller uses one sequence's views before asking for the next.
    /// </summary>
    internal TensorView SequenceView(int slot, in TensorView packed, int start, int length)
    {
        // packed.Slice(0, start, length).Permute(1, 0, 2) with a batch axis of 1 in front: [1, H, n, D].
        var (shape, strides) = _views[slot];
        var ps = packed.Shape;
        var pt = packed.Strides;
        (shape[0], shape[1], shape[2], shape[3]) = (1, ps[1], length, ps[2]);
        (strides[1], strides[2], strides[3]) = (pt[1], pt[0], pt[2]);
        strides[0] = Math.Max(1, (long)ps[1] * length * ps[2]);
        return new TensorView(packed.Storage!, shape, strides, length == 0 ? packed.Offset : packed.Offset + start * pt[0], adopt: true);
    }

    /// <summary><see cref="SequenceLogSumExp(in TensorView, int, int)"/> over this problem's arrays (no allocation), as <see cref="SequenceView(int, in TensorView, int, int)"/>.</summary>
    internal TensorView SequenceLogSumExpView(in TensorView packed, int start, int length)
    {
        // packed.Slice(1, start, length) with a batch axis of 1 in front: [1, H, n].
        var (shape, strides) = _views[FlashViewSlots.LogSumExp];
        var ps = packed.Shape;
        var pt = packed.Strides;
        (shape[0], shape[1], shape[2]) = (1, ps[0], length);
        (strides[1], strides[2]) = (pt[0], pt[1]);
        strides[0] = Math.Max(1, (long)ps[0] * length);
        return new TensorView(packed.Storage!, shape, strides, length == 0 ? packed.Offset : packed.Offset + start * pt[1], adopt: true);
    }

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
