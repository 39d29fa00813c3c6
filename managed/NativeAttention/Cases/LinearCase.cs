// The chunked linear-attention family's case: feature map, decay (per head or per token), normalisation, an initial
// state in and a final state out. Reference-only until the family's kernels land: its tensors, references and FLOP
// count work; Invoke calls the context, which throws NotSupportedException today.
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

namespace NativeAttention;

/// <summary>
/// A reproducible <see cref="AttentionContext.LinearChunked"/> problem: Q, K <c>[B, H, N, Dk]</c> and V
/// <c>[B, H, N, Dv]</c> uniform in <c>[-InputScale, InputScale]</c>; per-head log decays or per-token log gates uniform
/// in <c>[-0.5, 0]</c>; with <see cref="InitialState"/> a float32 initial state uniform in <c>[-1, 1]</c>. Causal
/// cases also write the final state.
/// </summary>
public sealed record LinearCase : IAttentionCase
{
    /// <summary>Names of the linear-attention tensors in <see cref="CaseTensors"/>.</summary>
    public const string InitialStateName = "initialState", FinalStateName = "finalState", LogGateName = "options.LogGate";

    private const string Grammar =
        "dtype (f32|f16|bf16), B<batch>, H<heads>, N<length>, D<dk>/<dv> or D<d>, phi=<identity|elu|relu|taylor|precomputed>, " +
        "decay=<head|token>, normalize, noncausal, state (an initial state), chunk=<tokens>, scale=<x>, amp=<input scale>, seed=<int>";

    /// <summary>The chunked linear-attention family (reference only: no kernels yet).</summary>
    public static CaseFamily Registration { get; } = new("linear", "chunked linear attention (feature maps, decay, states)", Grammar, Parse, HasKernels: false,
    [
        "linear f32 B1 H2 N70 D16/24 phi=elu normalize seed=71",
        "linear f16 B2 H2 N33 D8/8 phi=taylor decay=token state chunk=16 seed=72",
        "linear bf16 B1 H3 N40 D32/16 phi=relu decay=head seed=73",
        "linear f32 B1 H1 N25 D16/16 noncausal scale=0.5 seed=74",
    ]);

    /// <summary>Storage type of Q, K, V and O.</summary>
    public ElementType ElementType { get; init; } = ElementType.Float32;
    /// <summary>Batch size B.</summary>
    public int Batch { get; init; } = 1;
    /// <summary>Heads H.</summary>
    public int Heads { get; init; } = 1;
    /// <summary>Sequence length N.</summary>
    public int Length { get; init; } = 1;
    /// <summary>Query/key head dimension Dk.</summary>
    public int KeyDim { get; init; } = 64;
    /// <summary>Value head dimension Dv.</summary>
    public int ValueDim { get; init; } = 64;
    /// <summary>The feature map phi.</summary>
    public FeatureMap FeatureMap { get; init; }
    /// <summary>The decay.</summary>
    public DecayKind Decay { get; init; }
    /// <summary>Normalise by the decayed sum of feature products.</summary>
    public bool Normalize { get; init; }
    /// <summary>Causal (default) or the non-causal form.</summary>
    public bool Causal { get; init; } = true;
    /// <summary>Pass an initial state (causal only).</summary>
    public bool InitialState { get; init; }
    /// <summary>Chunk length the kernels use (0: the options' default).</summary>
    public int ChunkSize { get; init; }
    /// <summary>The factor on phi(q).phi(k).</summary>
    public float Scale { get; init; } = 1f;
    /// <summary>Seed of the inputs.</summary>
    public int Seed { get; init; } = 1;
    /// <summary>Inputs are uniform in <c>[-InputScale, InputScale]</c>.</summary>
    public double InputScale { get; init; } = 1.0;

    string IAttentionCase.FamilyName => Registration.Name;

    /// <inheritdoc/>
    public string KernelName => "linear";

    /// <inheritdoc/>
    public CaseSizes Sizes => new(Batch, Heads, Heads, Length, Length, KeyDim, ValueDim);

    /// <inheritdoc/>
    public bool IsMemoryBound => false;

    /// <summary>The options of a run on <paramref name="tensors"/> (the log gate taken from them).</summary>
    public LinearOptions OptionsFor(CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var options = new LinearOptions
        {
            FeatureMap = FeatureMap, Decay = Decay, Normalize = Normalize, Causal = Causal, Scale = Scale,
            LogGate = tensors.Find(LogGateName),
        };
        if (ChunkSize > 0) options = options with { ChunkSize = ChunkSize };
        if (Decay == DecayKind.PerHead)
        {
            var random = new Random(unchecked(Seed * 13 + 7));
            options = options with { HeadLogDecay = Enumerable.Range(0, Heads).Select(_ => (float)(-0.5 * random.NextDouble())).ToArray() };
        }
        return options;
    }

    private int FeatureSize => new LinearOptions { FeatureMap = FeatureMap }.FeatureSize(KeyDim);

    private int StateColumns => ValueDim + (Normalize ? 1 : 0);

    /// <inheritdoc/>
    public CaseTensors CreateTensors()
    {
        if (Problem() is { } problem) throw new ArgumentException($"The case \"{ToSpec()}\" is not a valid problem: {problem}.", "case");
        var random = new Random(Seed);
        var tensors = new List<CaseTensor>
        {
            new(CaseTensors.QueryName, CaseData.Random(ElementType, [Batch, Heads, Length, KeyDim], random, InputScale), CaseTensorRole.Input),
            new(CaseTensors.KeyName, CaseData.Random(ElementType, [Batch, Heads, Length, KeyDim], random, InputScale), CaseTensorRole.Input),
            new(CaseTensors.ValueName, CaseData.Random(ElementType, [Batch, Heads, Length, ValueDim], random, InputScale), CaseTensorRole.Input),
        };
        if (InitialState)
            tensors.Add(new(InitialStateName, CaseData.Random(ElementType.Float32, [Batch, Heads, FeatureSize, StateColumns], random, 1.0), CaseTensorRole.Input));
        if (Decay == DecayKind.PerToken)
            tensors.Add(new(LogGateName, CaseData.Uniform(ElementType.Float32, [Batch, Heads, Length], random, -0.5, 0), CaseTensorRole.Option));
        tensors.Add(new(CaseTensors.OutputName, CaseData.Zeros(ElementType, Batch, Heads, Length, ValueDim), CaseTensorRole.Output));
        if (Causal)
            tensors.Add(new(FinalStateName, CaseData.Zeros(ElementType.Float32, Batch, Heads, FeatureSize, StateColumns), CaseTensorRole.Output));
        return new CaseTensors(tensors);
    }

    /// <summary>Calls <see cref="AttentionContext.LinearChunked"/>, which throws <see cref="NotSupportedException"/> on every backend today.</summary>
    public void Invoke(AttentionContext context, CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(tensors);
        context.LinearChunked(tensors.Query, tensors.Key, tensors.Value, tensors.Output, OptionsFor(tensors), tensors.Find(InitialStateName), tensors.Find(FinalStateName));
    }

    /// <inheritdoc/>
    public ReferenceResult ExactReference(CaseTensors tensors) =>
        Reference.LinearChunked(tensors.Query, tensors.Key, tensors.Value, OptionsFor(tensors), tensors.Find(InitialStateName));

    /// <summary>
    /// Until the family has a same-precision naive reference: the exact output stored in the case's type and the exact
    /// state in float32 (the least error any implementation that writes those types makes).
    /// </summary>
    public ReferenceResult NaiveReference(CaseTensors tensors) => CaseData.Rounded(ExactReference(tensors), ElementType);

    /// <summary>
    /// The output, and for causal cases the final state, under <see cref="CaseVerifier.CompareToReference"/>'s output
    /// rule (linear attention has no log-sum-exp), scaled by the largest exact output (state) magnitude.
    /// </summary>
    public ReferenceCheck Check(CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var exact = ExactReference(tensors);
        var rounded = CaseData.Rounded(exact, ElementType);
        var output = CaseVerifier.CompareToReference(CaseData.WithoutLse(exact.Output, exact.OutputShape), CaseData.WithoutLse(rounded.Output, rounded.OutputShape),
            tensors.Output, null, ElementType, CaseData.MaxAbs(exact.Output));
        if (exact.FinalState is not { } state || exact.FinalStateShape is not { } shape || tensors.Find(FinalStateName) is not { } final) return output;
        var check = CaseVerifier.CompareToReference(CaseData.WithoutLse(state, shape), CaseData.WithoutLse(rounded.FinalState!, shape),
            final, null, ElementType.Float32, CaseData.MaxAbs(state));
        return new ReferenceCheck(Math.Max(output.MaxError, check.MaxError), Math.Max(output.NaiveError, check.NaiveError), Math.Max(output.Tolerance, check.Tolerance),
            0, output.Passed && check.Passed, string.Join("; ", new[] { output.Detail, check.Passed ? "" : "final state: " + check.Detail }.Where(d => d.Length > 0)));
    }

    /// <summary>4 F Dv per token and head (DESIGN.md: 4 Dk Dv, with the feature size F for maps that widen).</summary>
    public double Flops() => 4.0 * Batch * Heads * Length * FeatureSize * ValueDim;

    /// <summary>Bytes of Q, K, V and O once, plus the states read and written.</summary>
    public double MinimumBytes() =>
        (double)ElementType.SizeOf() * Batch * Heads * Length * (2.0 * KeyDim + 2.0 * ValueDim)
        + 4.0 * Batch * Heads * FeatureSize * StateColumns * ((InitialState ? 1 : 0) + (Causal ? 1 : 0));

    /// <inheritdoc/>
    public string ToSpec()
    {
        var spec = new StringBuilder();
        spec.Append(CultureInfo.InvariantCulture, $"linear {AttentionCase.TypeName(ElementType)} B{Batch} H{Heads} N{Length} D{KeyDim}/{ValueDim}");
        if (FeatureMap != FeatureMap.Identity) spec.Append(" phi=").Append(MapName(FeatureMap));
        if (Decay != DecayKind.None) spec.Append(Decay == DecayKind.PerHead ? " decay=head" : " decay=token");
        if (Normalize) spec.Append(" normalize");
        if (!Causal) spec.Append(" noncausal");
        if (InitialState) spec.Append(" state");
        if (ChunkSize > 0) spec.Append(CultureInfo.InvariantCulture, $" chunk={ChunkSize}");
        if (Scale != 1f) spec.Append(" scale=").Append(SpecTokens.Number(Scale));
        return SpecTokens.Finish(spec, InputScale, Seed);
    }

    /// <summary>The spec.</summary>
    public override string ToString() => ToSpec();

    /// <inheritdoc/>
    public IEnumerable<IAttentionCase> Shrink()
    {
        if (Batch > 1) yield return this with { Batch = 1 };
        if (Heads > 1) yield return this with { Heads = 1 };
        if (Length > 1) yield return this with { Length = Length / 2 };
        if (KeyDim > 1) yield return this with { KeyDim = KeyDim / 2 };
        if (ValueDim > 1) yield return this with { ValueDim = ValueDim / 2 };
        if (ElementType != ElementType.Float32) yield return this with { ElementType = ElementType.Float32 };
        if (InitialState) yield return this with { InitialState = false };
        if (Decay != DecayKind.None) yield return this with { Decay = DecayKind.None };
    }

    /// <summary>Why this is not a valid problem, or null.</summary>
    internal string? Problem()
    {
        if (Batch < 1 || Heads < 1 || Length < 1 || KeyDim < 1 || ValueDim < 1 || ChunkSize < 0) return "every size must be at least 1";
        if (!Causal && (Decay != DecayKind.None || InitialState)) return "noncausal takes no decay and no initial state";
        if (!float.IsFinite(Scale)) return "scale must be finite";
        if (!double.IsFinite(InputScale) || InputScale <= 0) return "amp must be a positive number";
        return null;
    }

    private static string MapName(FeatureMap map) => map switch
    {
        FeatureMap.EluPlusOne => "elu",
        FeatureMap.Relu => "relu",
        FeatureMap.Taylor2 => "taylor",
        FeatureMap.Precomputed => "precomputed",
        _ => "identity",
    };

    private static FeatureMap? Map(string word) => word switch
    {
        "identity" => FeatureMap.Identity,
        "elu" => FeatureMap.EluPlusOne,
        "relu" => FeatureMap.Relu,
        "taylor" => FeatureMap.Taylor2,
        "precomputed" => FeatureMap.Precomputed,
        _ => null,
    };

    private static bool Parse(IReadOnlyList<string> tokens, string spec, [NotNullWhen(true)] out IAttentionCase? result, [NotNullWhen(false)] out string? error) =>
        SpecTokens.Read(tokens, spec, Grammar, new LinearCase(), Apply, c => c.Problem(), out result, out error);

    /// <summary><paramref name="c"/> with one lower-cased spec token applied, or null when the token is not one of this family's.</summary>
    private static LinearCase? Apply(LinearCase c, string t) => t switch
    {
        "normalize" => c with { Normalize = true },
        "noncausal" => c with { Causal = false },
        "state" => c with { InitialState = true },
        "decay=head" => c with { Decay = DecayKind.PerHead },
        "decay=token" => c with { Decay = DecayKind.PerToken },
        _ when SpecTokens.Value(t, "phi=") is { } phi && Map(phi) is { } map => c with { FeatureMap = map },
        _ when SpecTokens.Type(t) is { } type => c with { ElementType = type },
        _ when SpecTokens.Integer(SpecTokens.Value(t, "seed=")) is int seed => c with { Seed = seed },
        _ when SpecTokens.TryDouble(SpecTokens.Value(t, "amp="), out double amp) => c with { InputScale = amp },
        _ when SpecTokens.TryFloat(SpecTokens.Value(t, "scale="), out float scale) => c with { Scale = scale },
        _ when SpecTokens.Integer(SpecTokens.Value(t, "chunk=")) is int chunk && chunk > 0 => c with { ChunkSize = chunk },
        _ when SpecTokens.Size(t, 'b', '\0') is var (batch, _) => c with { Batch = batch },
        _ when SpecTokens.Size(t, 'h', '\0') is var (heads, _) => c with { Heads = heads },
        _ when SpecTokens.Size(t, 'n', '\0') is var (n, _) => c with { Length = n },
        _ when SpecTokens.Size(t, 'd', '/') is var (dk, dv) => c with { KeyDim = dk, ValueDim = dv },
        _ => null,
    };
}
