// Validated description of a linear attention call (chunked prefill, decode step or verify): sizes, head mapping,
// feature size, decay inputs, varlen sequences and state shapes.
namespace NativeAttention;

/// <summary>Which linear-attention entry point a <see cref="LinearProblem"/> describes.</summary>
public enum LinearCall
{
    /// <summary><see cref="AttentionContext.LinearChunked"/>: a prefill with optional initial and final states.</summary>
    Chunked,
    /// <summary><see cref="AttentionContext.LinearDecodeStep"/> advancing the state in place.</summary>
    DecodeStep,
    /// <summary><see cref="AttentionContext.LinearDecodeStep"/> with intermediate states: the state is only read.</summary>
    Verify,
}

/// <summary>
/// The sizes of a linear attention call after validation. Q is <c>[B, Hq, N, Dk]</c>, K <c>[B, Hk, N, Dk]</c>,
/// V <c>[B, Hv, N, Dv]</c> and O <c>[B, H, N, Dv]</c> with <c>H = max(Hq, Hk, Hv)</c> and each of Hq, Hk, Hv dividing
/// H: output head h reads query head <c>h / (H / Hq)</c>, key head <c>h / (H / Hk)</c> and value head
/// <c>h / (H / Hv)</c> (GQA: Hq = H with fewer key/value heads; grouped value heads, GVA: Hv = H with fewer query/key
/// heads). States are float32 <c>[B, H, F, C]</c> (<c>[S, H, F, C]</c> with <see cref="LinearOptions.CuSeqLens"/>),
/// F the feature size of <see cref="LinearOptions.FeatureMap"/> and C = <see cref="StateColumns"/>.
/// </summary>
/// <remarks>
/// <para>Layouts. Every tensor is given by its logical shape and any strides, so token-major memory
/// <c>[B, N, H, D]</c> (fla, vLLM) is passed as a permuted view, <c>view.Permute(0, 2, 1, 3)</c>, without copies.</para>
/// <para>State layout. Row f of a state belongs to feature f of phi (for <see cref="FeatureMap.Taylor2"/>:
/// f = 0 is the constant 1, f = 1 + i is x_i, f = 1 + D + i D + j is x_i x_j / sqrt(2)). Columns 0..Dv-1 hold
/// <c>S = sum_s (prod g) phi(k_s) v_s^T</c>. With <see cref="LinearOptions.Normalize"/> the state has one more column,
/// <c>C = Dv + 1</c>, holding the normaliser <c>z = sum_s (prod g) phi(k_s)</c>, so that a normalised prefill can be
/// continued exactly from its final state (equivalently: V is extended with a column of ones).</para>
/// <para>Decay. The state recurrence is <c>S_t = g_t S_{t-1} + phi(k_t) [v_t, 1]^T</c> (<c>diag(g_t)</c> for a per-key
/// gate), starting from the initial state (zero when none): the initial state is decayed by every gate of the call,
/// <c>g_1 ... g_t</c>, so that a call split in two, the second continuing from the first's final state, equals one
/// call, and a prefill followed by decode steps equals one prefill.</para>
/// <para>Non-causal calls compute <c>phi(Q)(phi(K)^T V)</c> over the whole sequence; they take no decay and no
/// initial or final state (both are rejected), since a state has no meaning without an order.</para>
/// <para>Log gates must be finite and &lt;= 0; host tensors are checked element by element before any kernel runs.</para>
/// </remarks>
public sealed class LinearProblem
{
    /// <summary>The most draft tokens a verify call (<see cref="AttentionContext.LinearDecodeStep"/> with intermediate states) takes.</summary>
    public const int MaxVerifyTokens = 8;

    /// <summary>The tensors a call names, in <see cref="Tensors"/>' order.</summary>
    private const int TensorCount = 7;

    /// <summary>The options of a call that passes none (records are immutable, so one instance serves every call).</summary>
    private static readonly LinearOptions DefaultOptions = new();

    [ThreadStatic] private static LinearProblem? t_call;

    private LinearProblem(LinearOptions options) => Options = options;

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
    /// <summary>Feature size F of phi for this Dk.</summary>
    public int FeatureSize { get; private set; }
    /// <summary>State columns: Dv, plus one for the normaliser when <see cref="LinearOptions.Normalize"/> is set.</summary>
    public int StateColumns { get; private set; }
    /// <summary>The storage element type of Q, K, V and O.</summary>
    public ElementType ElementType { get; private set; }
    /// <summary>Whether an initial state is read (always for decode and verify calls).</summary>
    public bool HasInitialState { get; private set; }
    /// <summary>Whether a final state is written (decode steps write it over the initial one).</summary>
    public bool HasFinalState { get; private set; }
    /// <summary>The entry point.</summary>
    public LinearCall Call { get; private set; }
    /// <summary>Sequences S: B, or the varlen sequence count.</summary>
    public int Sequences { get; private set; }
    /// <summary>The options validated.</summary>
    public LinearOptions Options { get; private set; }

    private int[] _offsets = [];

    /// <summary>The first token of sequence <paramref name="s"/> along N (0 without varlen).</summary>
    public int SequenceStart(int s) => _offsets.Length == 0 ? 0 : _offsets[s];
    /// <summary>The token count of sequence <paramref name="s"/> (N without varlen).</summary>
    public int SequenceLength(int s) => _offsets.Length == 0 ? Length : _offsets[s + 1] - _offsets[s];
    /// <summary>Whether the call packs sequences with <see cref="LinearOptions.CuSeqLens"/>.</summary>
    public bool IsVarlen => _offsets.Length > 0;

    /// <summary>The shape of a state tensor, <c>[S, H, F, C]</c> (S = B without varlen).</summary>
    public int[] StateShape => [Sequences, Heads, FeatureSize, StateColumns];

    /// <summary>The query head output head <paramref name="h"/> reads.</summary>
    public int QueryHead(int h) => h / (Heads / QueryHeads);
    /// <summary>The key head output head <paramref name="h"/> reads.</summary>
    public int KeyHead(int h) => h / (Heads / KeyHeads);
    /// <summary>The value head output head <paramref name="h"/> reads.</summary>
    public int ValueHead(int h) => h / (Heads / ValueHeads);

    /// <summary>
    /// Every tensor of the call by name, optional ones included (null when absent): Q, K, V, O, the states (initial and
    /// final for chunked calls; the state and the intermediate states for decode calls), the log gates.
    /// </summary>
    internal IReadOnlyList<NamedTensor> Tensors { get; private set; } = [];

    /// <summary>
    /// Validates a <see cref="AttentionContext.LinearChunked"/> call and returns its sizes. Throws
    /// <see cref="ArgumentException"/> naming the offending tensor or option, or <see cref="ObjectDisposedException"/>
    /// for released buffers.
    /// </summary>
    public static LinearProblem Create(in TensorView query, in TensorView key, in TensorView value, in TensorView output, LinearOptions? options, in TensorView? initialState, in TensorView? finalState) =>
        Validate(query, key, value, output, requireOutput: true, options, initialState, finalState, LinearCall.Chunked, null, null);

    /// <summary>
    /// Validates a <see cref="AttentionContext.LinearDecodeStep"/> call: <paramref name="state"/> <c>[B, H, F, C]</c> is
    /// read and, without <paramref name="intermediateStates"/>, written in place; with them (verify, at most
    /// <see cref="MaxVerifyTokens"/> tokens) the state after each token j goes to <c>intermediateStates[:, j]</c>,
    /// <c>[B, T, H, F, C]</c>, and the state is only read.
    /// </summary>
    public static LinearProblem CreateDecode(in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView state, LinearOptions? options, in TensorView? intermediateStates) =>
        Validate(query, key, value, output, requireOutput: true, options, state, intermediateStates,
            intermediateStates.HasValue ? LinearCall.Verify : LinearCall.DecodeStep, state, null);

    /// <summary>
    /// <see cref="Create"/> into this thread's reusable problem, for <see cref="AttentionContext.LinearChunked"/>: as
    /// <see cref="CreateDecodeForCall"/>.
    /// </summary>
    internal static LinearProblem CreateForCall(in TensorView query, in TensorView key, in TensorView value, in TensorView output, LinearOptions? options, in TensorView? initialState,
        in TensorView? finalState) =>
        Validate(query, key, value, output, requireOutput: true, options, initialState, finalState, LinearCall.Chunked, null, t_call ??= new LinearProblem(DefaultOptions));

    /// <summary>
    /// <see cref="CreateDecode"/> into this thread's reusable problem, for <see cref="AttentionContext.LinearDecodeStep"/>:
    /// no allocation once warm (a decode loop). The result is valid until this thread validates its next call; nothing
    /// may keep it, and the caller ends the call with <see cref="ReleaseCall"/>.
    /// </summary>
    internal static LinearProblem CreateDecodeForCall(in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView state, LinearOptions? options,
        in TensorView? intermediateStates) =>
        Validate(query, key, value, output, requireOutput: true, options, state, intermediateStates,
            intermediateStates.HasValue ? LinearCall.Verify : LinearCall.DecodeStep, state, t_call ??= new LinearProblem(DefaultOptions));

    /// <summary>Drops what a finished <see cref="CreateDecodeForCall"/> problem refers to (the caller's tensors and options).</summary>
    internal void ReleaseCall()
    {
        if (Tensors is NamedTensor[] tensors) Array.Clear(tensors);
        Options = DefaultOptions;
    }

    /// <summary>
    /// Validates inputs, options and the initial state only, for callers that allocate their own outputs (the
    /// references). <paramref name="wantsFinalState"/> says whether a final state will be produced.
    /// </summary>
    internal static LinearProblem CreateForInputs(in TensorView query, in TensorView key, in TensorView value, LinearOptions? options, in TensorView? initialState, bool wantsFinalState)
    {
        var problem = Validate(query, key, value, default, requireOutput: false, options, initialState, null, LinearCall.Chunked, null, null);
        if (wantsFinalState && !problem.Options.Causal)
            TensorChecks.Throw("A non-causal call has no final state; set options.Causal or do not ask for one.", "finalState");
        return problem;
    }

    private static LinearProblem Validate(in TensorView query, in TensorView key, in TensorView value, in TensorView output, bool requireOutput, LinearOptions? options,
        in TensorView? initialState, in TensorView? finalState, LinearCall call, TensorView? decodeState, LinearProblem? reuse)
    {
        options ??= DefaultOptions;
        bool decode = call != LinearCall.Chunked;
        string initialName = decode ? "state" : nameof(initialState), finalName = decode ? "intermediateStates" : nameof(finalState);
        var (batch, queryHeads, keyHeads, valueHeads, heads, n, dk, dv, type) = RecurrentInputs.Check(query, key, value);
        if (!Enum.IsDefined(options.FeatureMap))
            TensorChecks.Throw($"options.FeatureMap is {options.FeatureMap}, which is not a known feature map.", "options.FeatureMap");
        int features = options.FeatureSize(dk);
        int columns = dv + (options.Normalize ? 1 : 0);

        // Varlen: B = 1 and S sequences along N, one state each.
        int[] offsets = RecurrentInputs.Offsets(options.CuSeqLens, decode, batch, n);
        int sequences = offsets.Length > 0 ? offsets.Length - 1 : batch;
        ReadOnlySpan<int> stateShape = [sequences, heads, features, columns];
        string stateLayout = StateLayout(offsets.Length > 0, options.Normalize);
        ReadOnlySpan<int> outputShape = [batch, heads, n, dv];
        ReadOnlySpan<int> verifyShape = [batch, n, heads, features, columns];

        if (requireOutput)
        {
            TensorChecks.Written(output, outputShape, type, nameof(output), "[B, H, N, Dv]");
            TensorChecks.NoAlias(output, nameof(output), query, nameof(query), key, nameof(key), value, nameof(value));
            if (initialState is { } s0) TensorChecks.NoAlias(output, nameof(output), s0, initialName);
            if (options.LogGate is { } gate) TensorChecks.NoAlias(output, nameof(output), gate, "options.LogGate");
        }

        if (!options.Causal)
        {
            if (decode) TensorChecks.Throw("options.Causal is false; a decode step is causal by nature.", "options.Causal");
            if (initialState.HasValue) TensorChecks.Throw("A non-causal call takes no initial state: phi(Q)(phi(K)^T V) has no order to continue.", nameof(initialState));
            if (finalState.HasValue) TensorChecks.Throw("A non-causal call has no final state; set options.Causal or pass null.", nameof(finalState));
            if (options.Decay != DecayKind.None) TensorChecks.Throw($"options.Decay is {options.Decay}; decay needs an order and applies to causal calls only.", "options.Decay");
        }
        if (initialState is { } initial)
        {
            if (decode) TensorChecks.Written(initial, stateShape, ElementType.Float32, initialName, stateLayout);
            else TensorChecks.Shape(initial, stateShape, initialName, stateLayout);
            TensorChecks.Type(initial, ElementType.Float32, initialName);
            if (decode && call == LinearCall.DecodeStep)
                TensorChecks.NoAlias(initial, initialName, query, nameof(query), key, nameof(key), value, nameof(value));
            if (decode && call == LinearCall.DecodeStep && options.LogGate is { } gate) TensorChecks.NoAlias(initial, initialName, gate, "options.LogGate");
        }
        if (finalState is { } final)
        {
            ReadOnlySpan<int> finalShape = stateShape;
            string finalLayout = stateLayout;
            if (call == LinearCall.Verify)
            {
                if (n > MaxVerifyTokens)
                    TensorChecks.Throw($"query has {n} tokens; a verify call (with intermediate states) takes at most {MaxVerifyTokens} draft tokens.", nameof(query));
                finalShape = verifyShape;
                finalLayout = "float32 [B, T, H, F, C]: the state after each of the T draft tokens";
            }
            TensorChecks.Written(final, finalShape, ElementType.Float32, finalName, finalLayout);
            TensorChecks.NoAlias(final, finalName, output, nameof(output));
            TensorChecks.NoAlias(final, finalName, query, nameof(query), key, nameof(key), value, nameof(value));
            if (initialState is { } s0) TensorChecks.NoAlias(final, finalName, s0, initialName);
            if (options.LogGate is { } gate) TensorChecks.NoAlias(final, finalName, gate, "options.LogGate");
        }

        switch (options.Decay)
        {
            case DecayKind.None:
                break;
            case DecayKind.PerHead:
            {
                var decay = options.HeadLogDecay.Span;
                if (decay.Length != heads)
                    TensorChecks.Throw($"options.HeadLogDecay has {decay.Length} values; expected one log decay per head, [H] = [{heads}].", "options.HeadLogDecay");
                for (int h = 0; h < heads; h++)
                    if (!(decay[h] <= 0) || !float.IsFinite(decay[h]))
                        TensorChecks.Throw($"options.HeadLogDecay[{h}] is {decay[h]}; expected a finite log decay <= 0.", "options.HeadLogDecay");
                break;
            }
            case DecayKind.PerToken or DecayKind.PerTokenPerKey:
            {
                bool perKey = options.Decay == DecayKind.PerTokenPerKey;
                string gateLayout = perKey ? "float32 [B, H, N, Dk]" : "float32 [B, H, N]";
                if (perKey && options.FeatureMap == FeatureMap.Taylor2)
                    TensorChecks.Throw("options.Decay is PerTokenPerKey with the Taylor2 feature map; a per-key gate needs features that are key dimensions.", "options.Decay");
                if (options.LogGate is not { } logGate)
                {
                    TensorChecks.Throw($"options.LogGate is missing; DecayKind.{options.Decay} needs log gates {gateLayout}.", "options.LogGate");
                    break;
                }
                TensorChecks.Shape(logGate, perKey ? [batch, heads, n, dk] : [batch, heads, n], "options.LogGate", gateLayout);
                TensorChecks.Type(logGate, ElementType.Float32, "options.LogGate");
                if (logGate.Location == MemoryLocation.Host) RecurrentInputs.CheckLogGateValues(logGate);
                break;
            }
            default:
                TensorChecks.Throw($"options.Decay is {options.Decay}, which is not a known decay.", "options.Decay");
                break;
        }
        if (options.Decay != DecayKind.PerHead && !options.HeadLogDecay.IsEmpty)
            TensorChecks.Throw($"options.HeadLogDecay is set but options.Decay is {options.Decay}; set Decay = PerHead or leave it empty.", "options.HeadLogDecay");
        if (options.Decay is not (DecayKind.PerToken or DecayKind.PerTokenPerKey) && options.LogGate.HasValue)
            TensorChecks.Throw($"options.LogGate is set but options.Decay is {options.Decay}; set Decay = PerToken or PerTokenPerKey, or leave it null.", "options.LogGate");

        if (options.ChunkSize < 0)
            TensorChecks.Throw($"options.ChunkSize is {options.ChunkSize}; expected 0 (the backend's default) or a positive chunk length.", "options.ChunkSize");
        if (!(options.Epsilon >= 0) || !float.IsFinite(options.Epsilon))
            TensorChecks.Throw($"options.Epsilon is {options.Epsilon}; expected a finite value >= 0.", "options.Epsilon");
        if (!float.IsFinite(options.Scale))
            TensorChecks.Throw($"options.Scale is {options.Scale}; expected a finite value.", "options.Scale");

        var problem = reuse ?? new LinearProblem(options);
        problem.Options = options;
        (problem.Batch, problem.Heads, problem.QueryHeads, problem.KeyHeads, problem.ValueHeads) = (batch, heads, queryHeads, keyHeads, valueHeads);
        (problem.Length, problem.KeyDim, problem.ValueDim, problem.FeatureSize, problem.StateColumns, problem.ElementType) = (n, dk, dv, features, columns, type);
        problem.HasInitialState = initialState.HasValue;
        problem.HasFinalState = finalState.HasValue || call == LinearCall.DecodeStep;
        (problem.Call, problem.Sequences, problem._offsets) = (call, sequences, offsets);
        var tensors = problem.Tensors as NamedTensor[] is { Length: TensorCount } reused ? reused : new NamedTensor[TensorCount];
        tensors[0] = new(nameof(query), query);
        tensors[1] = new(nameof(key), key);
        tensors[2] = new(nameof(value), value);
        if (decode)
        {
            tensors[3] = new(nameof(output), output);
            tensors[4] = new("state", decodeState);
            tensors[5] = new("intermediateStates", finalState);
        }
        else
        {
            tensors[3] = new(nameof(output), requireOutput ? output : null);
            tensors[4] = new(nameof(initialState), initialState);
            tensors[5] = new(nameof(finalState), finalState);
        }
        tensors[6] = new("options.LogGate", options.LogGate);
        problem.Tensors = tensors;
        return problem;
    }

    /// <summary>The state's layout, as error messages name it (a constant per case, so validation builds no string).</summary>
    private static string StateLayout(bool varlen, bool normalize) => (varlen, normalize) switch
    {
        (false, false) => "float32 [B, H, F, Dv]",
        (false, true) => "float32 [B, H, F, Dv + 1] (the last column holds the normaliser)",
        (true, false) => "float32 [S, H, F, Dv]",
        (true, true) => "float32 [S, H, F, Dv + 1] (the last column holds the normaliser)",
    };

    /// <summary>
    /// Validates a <see cref="AttentionContext.LinearCommit"/> call: <paramref name="intermediateStates"/> float32
    /// <c>[B, T, H, F, C]</c> from a verify call, <paramref name="state"/> float32 <c>[B, H, F, C]</c> (written), and
    /// <paramref name="accepted"/> with B counts in <c>[0, T]</c>. Returns the tensors by name.
    /// </summary>
    internal static IReadOnlyList<NamedTensor> CheckCommit(in TensorView intermediateStates, in TensorView state, ReadOnlySpan<int> accepted)
    {
        const string layout = "float32 [B, T, H, F, C] (a verify call's intermediate states)";
        var all = TensorChecks.Rank(intermediateStates, 5, nameof(intermediateStates), layout);
        TensorChecks.Positive(intermediateStates, nameof(intermediateStates), layout);
        TensorChecks.Type(intermediateStates, ElementType.Float32, nameof(intermediateStates));
        int batch = all[0], tokens = all[1];
        if (tokens > MaxVerifyTokens)
            TensorChecks.Throw($"intermediateStates holds {tokens} tokens; a verify call keeps at most {MaxVerifyTokens}.", nameof(intermediateStates));
        TensorChecks.Written(state, [batch, all[2], all[3], all[4]], ElementType.Float32, nameof(state), "float32 [B, H, F, C]");
        TensorChecks.NoAlias(state, nameof(state), intermediateStates, nameof(intermediateStates));
        if (accepted.Length != batch)
            TensorChecks.Throw($"accepted has {accepted.Length} counts; expected one per batch element, [B] = [{batch}].", nameof(accepted));
        for (int b = 0; b < batch; b++)
            if (accepted[b] < 0 || accepted[b] > tokens)
                TensorChecks.Throw($"accepted[{b}] is {accepted[b]}; expected a count of accepted draft tokens in [0, {tokens}].", nameof(accepted));
        return [new(nameof(intermediateStates), intermediateStates), new(nameof(state), state)];
    }

    /// <summary>Floating-point operations: 4 Dk Dv per token and head (DESIGN.md), with F in place of Dk for feature maps that widen.</summary>
    public double Flops() => 4.0 * Batch * Heads * Length * FeatureSize * ValueDim;
}
