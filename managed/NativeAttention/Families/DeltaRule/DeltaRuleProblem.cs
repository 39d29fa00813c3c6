// Validated description of a delta-rule call (chunked prefill, decode step or verify): sizes, head mapping, beta,
// gates, varlen sequences and state shapes in either layout.
namespace NativeAttention;

/// <summary>
/// The sizes of a delta-rule call after validation. Q is <c>[B, Hq, N, Dk]</c>, K <c>[B, Hk, N, Dk]</c>, V
/// <c>[B, Hv, N, Dv]</c>, beta <c>[B, H, N]</c> and O <c>[B, H, N, Dv]</c> with <c>H = max(Hq, Hk, Hv)</c> and each
/// of Hq, Hk, Hv dividing H: output head h reads query head <c>h / (H / Hq)</c>, key head <c>h / (H / Hk)</c> and
/// value head <c>h / (H / Hv)</c> (GQA, and grouped value heads as in Qwen3-Next). States are float32
/// <c>[S, H, Dk, Dv]</c> (K-major) or <c>[S, H, Dv, Dk]</c> (V-major), S = B or the packed sequence count.
/// </summary>
/// <remarks>
/// <para>Semantics: <see cref="DeltaRuleOptions"/>. The initial state is decayed by every gate of the call, so that a
/// call split in two, the second continuing from the first's final state, equals one call, and a prefill followed by
/// decode steps equals one prefill.</para>
/// <para>beta may be float32 or the storage type of Q, K, V; log gates are float32. Host tensors of beta and log gates
/// are checked element by element (beta in [0, 2], log g finite and &lt;= 0) before any kernel runs; device tensors are
/// the caller's responsibility.</para>
/// </remarks>
public sealed class DeltaRuleProblem
{
    /// <summary>The tensors a call names, in <see cref="Tensors"/>' order.</summary>
    private const int TensorCount = 8;

    /// <summary>The options of a call that passes none (records are immutable, so one instance serves every call).</summary>
    private static readonly DeltaRuleOptions DefaultOptions = new();

    [ThreadStatic] private static DeltaRuleProblem? t_call;

    private DeltaRuleProblem(DeltaRuleOptions options) => Options = options;

    /// <summary>Batch size B (1 with varlen packing).</summary>
    public int Batch { get; private set; }
    /// <summary>Output and state heads H, the largest of the query, key and value head counts.</summary>
    public int Heads { get; private set; }
    /// <summary>Query heads Hq.</summary>
    public int QueryHeads { get; private set; }
    /// <summary>Key heads Hk.</summary>
    public int KeyHeads { get; private set; }
    /// <summary>Value heads Hv.</summary>
    public int ValueHeads { get; private set; }
    /// <summary>Sequence length N (the packed length with varlen; the token count of a decode or verify call).</summary>
    public int Length { get; private set; }
    /// <summary>Query/key head dimension Dk.</summary>
    public int KeyDim { get; private set; }
    /// <summary>Value head dimension Dv.</summary>
    public int ValueDim { get; private set; }
    /// <summary>The storage element type of Q, K, V and O.</summary>
    public ElementType ElementType { get; private set; }
    /// <summary>The factor on <c>S^T q</c>: the option, or <c>1 / sqrt(Dk)</c>.</summary>
    public float Scale { get; private set; }
    /// <summary>Whether an initial state is read (always for decode and verify calls).</summary>
    public bool HasInitialState { get; private set; }
    /// <summary>Whether a final state is written (decode steps write it over the initial one).</summary>
    public bool HasFinalState { get; private set; }
    /// <summary>The entry point.</summary>
    public LinearCall Call { get; private set; }
    /// <summary>Sequences S: B, or the varlen sequence count.</summary>
    public int Sequences { get; private set; }
    /// <summary>The options validated.</summary>
    public DeltaRuleOptions Options { get; private set; }

    private int[] _offsets = [];

    /// <summary>The first token of sequence <paramref name="s"/> along N (0 without varlen).</summary>
    public int SequenceStart(int s) => _offsets.Length == 0 ? 0 : _offsets[s];
    /// <summary>The token count of sequence <paramref name="s"/> (N without varlen).</summary>
    public int SequenceLength(int s) => _offsets.Length == 0 ? Length : _offsets[s + 1] - _offsets[s];
    /// <summary>Whether the call packs sequences with <see cref="DeltaRuleOptions.CuSeqLens"/>.</summary>
    public bool IsVarlen => _offsets.Length > 0;

    /// <summary>The shape of a state tensor: <c>[S, H, Dk, Dv]</c> K-major, <c>[S, H, Dv, Dk]</c> V-major.</summary>
    public int[] StateShape => Options.StateLayout == DeltaStateLayout.ValueMajor ? [Sequences, Heads, ValueDim, KeyDim] : [Sequences, Heads, KeyDim, ValueDim];

    /// <summary>The query head output head <paramref name="h"/> reads.</summary>
    public int QueryHead(int h) => h / (Heads / QueryHeads);
    /// <summary>The key head output head <paramref name="h"/> reads.</summary>
    public int KeyHead(int h) => h / (Heads / KeyHeads);
    /// <summary>The value head output head <paramref name="h"/> reads.</summary>
    public int ValueHead(int h) => h / (Heads / ValueHeads);

    /// <summary>Every tensor of the call by name, optional ones included (null when absent).</summary>
    internal IReadOnlyList<NamedTensor> Tensors { get; private set; } = [];

    /// <summary>
    /// Validates a <see cref="AttentionContext.DeltaRuleChunked"/> call and returns its sizes. Throws
    /// <see cref="ArgumentException"/> naming the offending tensor or option, or <see cref="ObjectDisposedException"/>
    /// for released buffers.
    /// </summary>
    public static DeltaRuleProblem Create(in TensorView query, in TensorView key, in TensorView value, in TensorView beta, in TensorView output,
        DeltaRuleOptions? options, in TensorView? initialState, in TensorView? finalState) =>
        Validate(query, key, value, beta, output, options, initialState, finalState, LinearCall.Chunked, null);

    /// <summary>
    /// Validates a <see cref="AttentionContext.DeltaRuleDecodeStep"/> call: <paramref name="state"/> is read and,
    /// without <paramref name="intermediateStates"/>, written in place; with them (verify, at most
    /// <see cref="LinearProblem.MaxVerifyTokens"/> tokens) the state after token j goes to
    /// <c>intermediateStates[:, j]</c>, <c>[B, T, H, ..]</c>, and the state is only read.
    /// </summary>
    public static DeltaRuleProblem CreateDecode(in TensorView query, in TensorView key, in TensorView value, in TensorView beta, in TensorView output,
        in TensorView state, DeltaRuleOptions? options, in TensorView? intermediateStates) =>
        Validate(query, key, value, beta, output, options, state, intermediateStates, intermediateStates.HasValue ? LinearCall.Verify : LinearCall.DecodeStep, null);

    /// <summary>
    /// <see cref="Create"/> into this thread's reusable problem, for <see cref="AttentionContext.DeltaRuleChunked"/>: as
    /// <see cref="CreateDecodeForCall"/>.
    /// </summary>
    internal static DeltaRuleProblem CreateForCall(in TensorView query, in TensorView key, in TensorView value, in TensorView beta, in TensorView output,
        DeltaRuleOptions? options, in TensorView? initialState, in TensorView? finalState) =>
        Validate(query, key, value, beta, output, options, initialState, finalState, LinearCall.Chunked, t_call ??= new DeltaRuleProblem(DefaultOptions));

    /// <summary>
    /// <see cref="CreateDecode"/> into this thread's reusable problem, for <see cref="AttentionContext.DeltaRuleDecodeStep"/>:
    /// no allocation once warm (a decode loop). The result is valid until this thread validates its next call; nothing
    /// may keep it, and the caller ends the call with <see cref="ReleaseCall"/>.
    /// </summary>
    internal static DeltaRuleProblem CreateDecodeForCall(in TensorView query, in TensorView key, in TensorView value, in TensorView beta, in TensorView output,
        in TensorView state, DeltaRuleOptions? options, in TensorView? intermediateStates) =>
        Validate(query, key, value, beta, output, options, state, intermediateStates, intermediateStates.HasValue ? LinearCall.Verify : LinearCall.DecodeStep,
            t_call ??= new DeltaRuleProblem(DefaultOptions));

    /// <summary>Drops what a finished <see cref="CreateDecodeForCall"/> problem refers to (the caller's tensors and options).</summary>
    internal void ReleaseCall()
    {
        if (Tensors is NamedTensor[] tensors) Array.Clear(tensors);
        Options = DefaultOptions;
    }

    private static DeltaRuleProblem Validate(in TensorView query, in TensorView key, in TensorView value, in TensorView beta, in TensorView output,
        DeltaRuleOptions? options, in TensorView? initialState, in TensorView? finalState, LinearCall call, DeltaRuleProblem? reuse)
    {
        options ??= DefaultOptions;
        bool decode = call != LinearCall.Chunked;
        string initialName = decode ? "state" : nameof(initialState), finalName = decode ? "intermediateStates" : nameof(finalState);
        var (batch, queryHeads, keyHeads, valueHeads, heads, n, dk, dv, type) = RecurrentInputs.Check(query, key, value);
        if (!Enum.IsDefined(options.Variant))
            TensorChecks.Throw($"options.Variant is {options.Variant}, which is not a known delta-rule variant.", "options.Variant");
        if (!Enum.IsDefined(options.StateLayout))
            TensorChecks.Throw($"options.StateLayout is {options.StateLayout}, which is not a known state layout.", "options.StateLayout");
        int[] offsets = RecurrentInputs.Offsets(options.CuSeqLens, decode, batch, n);
        int sequences = offsets.Length > 0 ? offsets.Length - 1 : batch;
        bool valueMajor = options.StateLayout == DeltaStateLayout.ValueMajor;
        int rows = valueMajor ? dv : dk, cols = valueMajor ? dk : dv;
        ReadOnlySpan<int> stateShape = [sequences, heads, rows, cols];
        ReadOnlySpan<int> verifyShape = [batch, n, heads, rows, cols];
        string stateLayout = StateLayout(offsets.Length > 0, valueMajor);

        // beta [B, H, N] in [0, 2].
        TensorChecks.Rank(beta, 3, nameof(beta), "[B, H, N]");
        TensorChecks.Shape(beta, [batch, heads, n], nameof(beta), "[B, H, N]");
        if (beta.ElementType != ElementType.Float32 && beta.ElementType != type)
            TensorChecks.Throw($"beta has element type {beta.ElementType}; expected Float32 or the inputs' {type}.", nameof(beta));
        if (beta.Location == MemoryLocation.Host)
            RecurrentInputs.CheckHostValues(beta, x => x >= 0 && x <= 2, nameof(beta), "a value in [0, 2]");

        // Gates: none for DeltaNet, [B, H, N] for Gated DeltaNet, [B, H, N, Dk] for KDA.
        if (options.Variant == DeltaRuleVariant.DeltaNet)
        {
            if (options.LogGate.HasValue)
                TensorChecks.Throw("options.LogGate is set but options.Variant is DeltaNet, which has no gate; set GatedDeltaNet or Kda, or leave it null.", "options.LogGate");
        }
        else
        {
            bool perKey = options.Variant == DeltaRuleVariant.Kda;
            string gateLayout = perKey ? "float32 [B, H, N, Dk]" : "float32 [B, H, N]";
            if (options.LogGate is not { } logGate)
                TensorChecks.Throw($"options.LogGate is missing; {options.Variant} needs log gates {gateLayout}.", "options.LogGate");
            else
            {
                TensorChecks.Shape(logGate, perKey ? [batch, heads, n, dk] : [batch, heads, n], "options.LogGate", gateLayout);
                TensorChecks.Type(logGate, ElementType.Float32, "options.LogGate");
                if (logGate.Location == MemoryLocation.Host) RecurrentInputs.CheckLogGateValues(logGate);
            }
        }

        TensorChecks.Written(output, [batch, heads, n, dv], type, nameof(output), "[B, H, N, Dv]");
        TensorChecks.NoAlias(output, nameof(output), query, nameof(query), key, nameof(key), value, nameof(value));
        TensorChecks.NoAlias(output, nameof(output), beta, nameof(beta));
        if (initialState is { } s0) TensorChecks.NoAlias(output, nameof(output), s0, initialName);
        if (options.LogGate is { } g0) TensorChecks.NoAlias(output, nameof(output), g0, "options.LogGate");

        if (initialState is { } initial)
        {
            if (call == LinearCall.DecodeStep) TensorChecks.Written(initial, stateShape, ElementType.Float32, initialName, stateLayout);
            else TensorChecks.Shape(initial, stateShape, initialName, stateLayout);
            TensorChecks.Type(initial, ElementType.Float32, initialName);
            if (call == LinearCall.DecodeStep)
            {
                TensorChecks.NoAlias(initial, initialName, query, nameof(query), key, nameof(key), value, nameof(value));
                TensorChecks.NoAlias(initial, initialName, beta, nameof(beta));
                if (options.LogGate is { } gate) TensorChecks.NoAlias(initial, initialName, gate, "options.LogGate");
            }
        }
        if (finalState is { } final)
        {
            ReadOnlySpan<int> finalShape = stateShape;
            string finalLayout = stateLayout;
            if (call == LinearCall.Verify)
            {
                if (n > LinearProblem.MaxVerifyTokens)
                    TensorChecks.Throw($"query has {n} tokens; a verify call (with intermediate states) takes at most {LinearProblem.MaxVerifyTokens} draft tokens.", nameof(query));
                finalShape = verifyShape;
                finalLayout = valueMajor
                    ? "float32 [B, T, H, Dv, Dk]: the state after each of the T draft tokens"
                    : "float32 [B, T, H, Dk, Dv]: the state after each of the T draft tokens";
            }
            TensorChecks.Written(final, finalShape, ElementType.Float32, finalName, finalLayout);
            TensorChecks.NoAlias(final, finalName, output, nameof(output));
            TensorChecks.NoAlias(final, finalName, query, nameof(query), key, nameof(key), value, nameof(value));
            TensorChecks.NoAlias(final, finalName, beta, nameof(beta));
            if (initialState is { } s1) TensorChecks.NoAlias(final, finalName, s1, initialName);
            if (options.LogGate is { } gate) TensorChecks.NoAlias(final, finalName, gate, "options.LogGate");
        }

        if (options.ChunkSize < 0)
            TensorChecks.Throw($"options.ChunkSize is {options.ChunkSize}; expected 0 (the backend's default) or a positive chunk length.", "options.ChunkSize");
        if (options.Scale is float given && !float.IsFinite(given))
            TensorChecks.Throw($"options.Scale is {given}; expected a finite value (or null for 1 / sqrt(Dk)).", "options.Scale");

        var problem = reuse ?? new DeltaRuleProblem(options);
        problem.Options = options;
        (problem.Batch, problem.Heads, problem.QueryHeads, problem.KeyHeads, problem.ValueHeads) = (batch, heads, queryHeads, keyHeads, valueHeads);
        (problem.Length, problem.KeyDim, problem.ValueDim, problem.ElementType) = (n, dk, dv, type);
        problem.Scale = options.Scale ?? (float)(1.0 / Math.Sqrt(dk));
        problem.HasInitialState = initialState.HasValue;
        problem.HasFinalState = finalState.HasValue || call == LinearCall.DecodeStep;
        (problem.Call, problem.Sequences, problem._offsets) = (call, sequences, offsets);
        var tensors = problem.Tensors as NamedTensor[] is { Length: TensorCount } reused ? reused : new NamedTensor[TensorCount];
        tensors[0] = new(nameof(query), query);
        tensors[1] = new(nameof(key), key);
        tensors[2] = new(nameof(value), value);
        tensors[3] = new(nameof(beta), beta);
        tensors[4] = new(nameof(output), output);
        tensors[5] = new(decode ? "state" : nameof(initialState), initialState);
        tensors[6] = new(decode ? "intermediateStates" : nameof(finalState), finalState);
        tensors[7] = new("options.LogGate", options.LogGate);
        problem.Tensors = tensors;
        return problem;
    }

    /// <summary>The state's layout, as error messages name it (a constant per case, so validation builds no string).</summary>
    private static string StateLayout(bool varlen, bool valueMajor) => (varlen, valueMajor) switch
    {
        (false, false) => "float32 [B, H, Dk, Dv] (options.StateLayout = KeyMajor)",
        (false, true) => "float32 [B, H, Dv, Dk] (options.StateLayout = ValueMajor)",
        (true, false) => "float32 [S, H, Dk, Dv] (options.StateLayout = KeyMajor)",
        (true, true) => "float32 [S, H, Dv, Dk] (options.StateLayout = ValueMajor)",
    };

    /// <summary>
    /// Floating-point operations as fla's delta-rule benchmark counts them (benchmarks/ops/benchmark_delta_rule.py,
    /// <c>2 B T H D (6 D + 8 * 64)</c>, its chunk fixed at 64), with Dk and Dv told apart: <c>2 B N H Dk (6 Dv + 512)</c>.
    /// </summary>
    public double Flops() => 2.0 * Batch * Length * Heads * KeyDim * (6.0 * ValueDim + 8.0 * 64);
}
