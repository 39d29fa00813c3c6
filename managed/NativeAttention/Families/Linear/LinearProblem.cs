// Validated description of a chunked linear attention call: sizes, feature size, decay inputs and state shapes.
namespace NativeAttention;

/// <summary>
/// The sizes of a linear attention call after validation. Q and K are <c>[B, H, N, Dk]</c>, V and O are
/// <c>[B, H, N, Dv]</c>, both states are float32 <c>[B, H, F, C]</c> where F is the feature size of
/// <see cref="LinearOptions.FeatureMap"/> and C = <see cref="StateColumns"/>.
/// </summary>
/// <remarks>
/// <para>State layout. Row f of a state belongs to feature f of phi (for <see cref="FeatureMap.Taylor2"/>:
/// f = 0 is the constant 1, f = 1 + i is x_i, f = 1 + D + i D + j is x_i x_j / sqrt(2)). Columns 0..Dv-1 hold
/// <c>S = sum_s (prod g) phi(k_s) v_s^T</c>. With <see cref="LinearOptions.Normalize"/> the state has one more column,
/// <c>C = Dv + 1</c>, holding the normaliser <c>z = sum_s (prod g) phi(k_s)</c>, so that a normalised prefill can be
/// continued exactly from its final state (equivalently: V is extended with a column of ones).</para>
/// <para>Decay. The state recurrence is <c>S_t = g_t S_{t-1} + phi(k_t) [v_t, 1]^T</c>, starting from the initial
/// state (zero when none): the initial state is decayed by every gate of the call, <c>g_1 ... g_t</c>, so that a call
/// split in two, the second continuing from the first's final state, equals one call.</para>
/// <para>Non-causal calls compute <c>phi(Q)(phi(K)^T V)</c> over the whole sequence; they take no decay and no
/// initial or final state (both are rejected), since a state has no meaning without an order.</para>
/// <para>The per-token log gates are not range-checked (they may live on a device); values above 0 make the state
/// grow and are the caller's responsibility.</para>
/// </remarks>
public sealed class LinearProblem
{
    private const string QLayout = "[B, H, N, Dk]";
    private const string VLayout = "[B, H, N, Dv]";

    private LinearProblem(LinearOptions options) => Options = options;

    /// <summary>Batch size B.</summary>
    public int Batch { get; private init; }
    /// <summary>Heads H (queries, keys and values share them).</summary>
    public int Heads { get; private init; }
    /// <summary>Sequence length N.</summary>
    public int Length { get; private init; }
    /// <summary>Query/key head dimension Dk.</summary>
    public int KeyDim { get; private init; }
    /// <summary>Value head dimension Dv.</summary>
    public int ValueDim { get; private init; }
    /// <summary>Feature size F of phi for this Dk.</summary>
    public int FeatureSize { get; private init; }
    /// <summary>State columns: Dv, plus one for the normaliser when <see cref="LinearOptions.Normalize"/> is set.</summary>
    public int StateColumns { get; private init; }
    /// <summary>The storage element type of Q, K, V and O.</summary>
    public ElementType ElementType { get; private init; }
    /// <summary>Whether an initial state was passed.</summary>
    public bool HasInitialState { get; private init; }
    /// <summary>Whether a final state is requested.</summary>
    public bool HasFinalState { get; private init; }
    /// <summary>The options validated.</summary>
    public LinearOptions Options { get; }

    /// <summary>The shape of a state tensor, <c>[B, H, F, C]</c>.</summary>
    public int[] StateShape => [Batch, Heads, FeatureSize, StateColumns];

    /// <summary>
    /// Every tensor of the call by name, optional ones included (null when absent): Q, K, V, O, the initial and final
    /// states, the per-token log gates.
    /// </summary>
    internal IReadOnlyList<NamedTensor> Tensors { get; private init; } = [];

    /// <summary>
    /// Validates a call and returns its sizes. Throws <see cref="ArgumentException"/> naming the offending tensor
    /// or option, or <see cref="ObjectDisposedException"/> for released buffers.
    /// </summary>
    public static LinearProblem Create(in TensorView query, in TensorView key, in TensorView value, in TensorView output, LinearOptions? options, in TensorView? initialState, in TensorView? finalState) =>
        Validate(query, key, value, output, requireOutput: true, options, initialState, finalState);

    /// <summary>
    /// Validates inputs, options and the initial state only, for callers that allocate their own outputs (the
    /// references). <paramref name="wantsFinalState"/> says whether a final state will be produced.
    /// </summary>
    internal static LinearProblem CreateForInputs(in TensorView query, in TensorView key, in TensorView value, LinearOptions? options, in TensorView? initialState, bool wantsFinalState)
    {
        var problem = Validate(query, key, value, default, requireOutput: false, options, initialState, null);
        if (wantsFinalState && !problem.Options.Causal)
            TensorChecks.Throw("A non-causal call has no final state; set options.Causal or do not ask for one.", "finalState");
        return problem;
    }

    private static LinearProblem Validate(in TensorView query, in TensorView key, in TensorView value, in TensorView output, bool requireOutput, LinearOptions? options, in TensorView? initialState, in TensorView? finalState)
    {
        options ??= new LinearOptions();
        var q = TensorChecks.Rank(query, 4, nameof(query), QLayout);
        var k = TensorChecks.Rank(key, 4, nameof(key), QLayout);
        var v = TensorChecks.Rank(value, 4, nameof(value), VLayout);
        TensorChecks.Positive(query, QLayout, key, nameof(key), QLayout, value, nameof(value), VLayout);
        int batch = q[0], heads = q[1], n = q[2], dk = q[3], dv = v[3];
        if (!k.SequenceEqual(q))
            TensorChecks.Throw($"key has shape {TensorView.Format(k)}; expected the query's shape {TensorView.Format(q)} {QLayout}.", nameof(key));
        if (v[0] != batch || v[1] != heads || v[2] != n)
            TensorChecks.Throw($"value has shape {TensorView.Format(v)}; expected [{batch}, {heads}, {n}, Dv] {VLayout}.", nameof(value));
        var type = TensorChecks.HeadDimsAndType(query, dk, key, nameof(key), value, nameof(value), dv);
        if (!Enum.IsDefined(options.FeatureMap))
            TensorChecks.Throw($"options.FeatureMap is {options.FeatureMap}, which is not a known feature map.", "options.FeatureMap");
        int features = options.FeatureSize(dk);
        int columns = dv + (options.Normalize ? 1 : 0);
        int[] stateShape = [batch, heads, features, columns];
        string stateLayout = options.Normalize ? "float32 [B, H, F, Dv + 1] (the last column holds the normaliser)" : "float32 [B, H, F, Dv]";

        if (requireOutput)
        {
            TensorChecks.Written(output, [batch, heads, n, dv], type, nameof(output), "[B, H, N, Dv]");
            TensorChecks.NoAlias(output, nameof(output), query, nameof(query), key, nameof(key), value, nameof(value));
            if (initialState is { } s0) TensorChecks.NoAlias(output, nameof(output), s0, nameof(initialState));
            if (options.LogGate is { } gate) TensorChecks.NoAlias(output, nameof(output), gate, "options.LogGate");
        }

        if (!options.Causal)
        {
            if (initialState.HasValue) TensorChecks.Throw("A non-causal call takes no initial state: phi(Q)(phi(K)^T V) has no order to continue.", nameof(initialState));
            if (finalState.HasValue) TensorChecks.Throw("A non-causal call has no final state; set options.Causal or pass null.", nameof(finalState));
            if (options.Decay != DecayKind.None) TensorChecks.Throw($"options.Decay is {options.Decay}; decay needs an order and applies to causal calls only.", "options.Decay");
        }
        if (initialState is { } initial)
        {
            TensorChecks.Shape(initial, stateShape, nameof(initialState), stateLayout);
            TensorChecks.Type(initial, ElementType.Float32, nameof(initialState));
        }
        if (finalState is { } final)
        {
            TensorChecks.Written(final, stateShape, ElementType.Float32, nameof(finalState), stateLayout);
            TensorChecks.NoAlias(final, nameof(finalState), output, nameof(output));
            TensorChecks.NoAlias(final, nameof(finalState), query, nameof(query), key, nameof(key), value, nameof(value));
            if (initialState is { } s0) TensorChecks.NoAlias(final, nameof(finalState), s0, nameof(initialState));
            if (options.LogGate is { } gate) TensorChecks.NoAlias(final, nameof(finalState), gate, "options.LogGate");
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
            case DecayKind.PerToken:
                if (options.LogGate is not { } logGate)
                {
                    TensorChecks.Throw("options.LogGate is missing; DecayKind.PerToken needs float32 log gates [B, H, N].", "options.LogGate");
                    break;
                }
                TensorChecks.Shape(logGate, [batch, heads, n], "options.LogGate", "float32 [B, H, N]");
                TensorChecks.Type(logGate, ElementType.Float32, "options.LogGate");
                break;
            default:
                TensorChecks.Throw($"options.Decay is {options.Decay}, which is not a known decay.", "options.Decay");
                break;
        }
        if (options.Decay != DecayKind.PerHead && !options.HeadLogDecay.IsEmpty)
            TensorChecks.Throw($"options.HeadLogDecay is set but options.Decay is {options.Decay}; set Decay = PerHead or leave it empty.", "options.HeadLogDecay");
        if (options.Decay != DecayKind.PerToken && options.LogGate.HasValue)
            TensorChecks.Throw($"options.LogGate is set but options.Decay is {options.Decay}; set Decay = PerToken or leave it null.", "options.LogGate");

        if (options.ChunkSize < 1)
            TensorChecks.Throw($"options.ChunkSize is {options.ChunkSize}; expected at least 1.", "options.ChunkSize");
        if (!(options.Epsilon >= 0) || !float.IsFinite(options.Epsilon))
            TensorChecks.Throw($"options.Epsilon is {options.Epsilon}; expected a finite value >= 0.", "options.Epsilon");
        if (!float.IsFinite(options.Scale))
            TensorChecks.Throw($"options.Scale is {options.Scale}; expected a finite value.", "options.Scale");

        return new LinearProblem(options)
        {
            Batch = batch, Heads = heads, Length = n, KeyDim = dk, ValueDim = dv, FeatureSize = features,
            StateColumns = columns, ElementType = type,
            HasInitialState = initialState.HasValue, HasFinalState = finalState.HasValue,
            Tensors =
            [
                new(nameof(query), query), new(nameof(key), key), new(nameof(value), value),
                new(nameof(output), requireOutput ? output : null), new(nameof(initialState), initialState), new(nameof(finalState), finalState),
                new("options.LogGate", options.LogGate),
            ],
        };
    }

    /// <summary>Floating-point operations: 4 Dk Dv per token (DESIGN.md), with F in place of Dk for feature maps that widen.</summary>
    public double Flops() => 4.0 * Batch * Heads * Length * FeatureSize * ValueDim;
}
