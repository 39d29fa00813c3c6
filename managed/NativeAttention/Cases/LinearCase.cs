// The chunked linear-attention family's case: feature map, decay (per head, per token or per token and key),
// normalisation, grouped heads, token-major layout, packed sequences, an initial state in and a final state out, or an
// in-place decode step. Kernels on the CPU, OpenCL and CUDA.
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

namespace NativeAttention;

/// <summary>
/// A reproducible <see cref="AttentionContext.LinearChunked"/> (or, with <see cref="Decode"/>,
/// <see cref="AttentionContext.LinearDecodeStep"/>) problem: Q, K <c>[B, H, N, Dk]</c> and V <c>[B, H, N, Dv]</c>
/// uniform in <c>[-InputScale, InputScale]</c>; per-head log decays or per-token log gates uniform in <c>[-0.5, 0]</c>;
/// with <see cref="InitialState"/> a float32 initial state uniform in <c>[-1, 1]</c>, except that a normalised case's
/// normaliser column is <c>|x| + 0.5</c> (positive, as a real prefix leaves it). Causal chunked cases also write the
/// final state.
/// </summary>
/// <remarks>
/// A decode case advances its <c>state</c> tensor in place, starting from a copy of <c>initialState</c> made when the
/// tensors are created: one <see cref="Invoke"/> then <see cref="Check"/> compares with the reference; repeated
/// invocations (benchmarks) keep advancing the state.
/// </remarks>
public sealed record LinearCase : IAttentionCase
{
    /// <summary>Names of the linear-attention tensors in <see cref="CaseTensors"/>.</summary>
    public const string InitialStateName = "initialState", FinalStateName = "finalState", StateName = "state", LogGateName = "options.LogGate";

    private const string Grammar =
        "dtype (f32|f16|bf16), B<batch>, H<heads>, hq=<query heads>, hk=<key heads>, hv=<value heads>, N<length>, D<dk>/<dv> or D<d>, " +
        "phi=<identity|elu|relu|taylor|precomputed>, decay=<head|token|key>, normalize, noncausal, state (an initial state), " +
        "decode (an in-place decode step of N tokens), " +
        "tokenmajor ([B, N, H, D] memory), packed=<sequences> (varlen, B = 1), chunk=<tokens>, scale=<x>, amp=<input scale>, qamp=<query scale>, seed=<int>";

    /// <summary>The chunked linear-attention family (kernels on the CPU, OpenCL and CUDA).</summary>
    public static CaseFamily Registration { get; } = new("linear", "chunked linear attention (feature maps, decay, states)", Grammar, Parse, HasKernels: true,
    [
        "linear f32 B1 H2 N70 D16/24 phi=elu normalize seed=71",
        "linear f16 B2 H2 N33 D8/8 phi=taylor decay=token state chunk=16 seed=72",
        "linear bf16 B1 H3 N40 D32/16 phi=relu decay=head seed=73",
        "linear f32 B1 H1 N25 D16/16 noncausal scale=0.5 seed=74",
        "linear f32 B1 H4 hq=2 hk=2 N90 D16/16 decay=key tokenmajor state seed=75",
        "linear f32 B1 H2 N100 D8/8 decay=token packed=3 state seed=76",
        "linear f32 B2 H2 N3 D16/16 phi=elu decay=key normalize decode seed=77",
        "linear f16 B1 H2 N48 D16/16 phi=relu decay=head amp=0.01 qamp=100 seed=78",
    ])
    {
        Sample = Sample,
    };

    /// <summary>
    /// A random linear-attention problem over every option: dtype, grouped query/key/value heads (GQA and GVA), N up to
    /// 150 or a decode step of up to 8 tokens, Dk/Dv weighted to common sizes (Dk at most 8 for the Taylor map), any
    /// feature map, any decay the map allows (per-key gates included), normalisation with the non-negative maps (elu,
    /// relu, Taylor: with signed features the normaliser can cancel to zero, an ill-posed problem rather than a kernel
    /// fault), non-causal calls, an initial state, token-major memory, packed sequences, an explicit chunk size (1 to
    /// 80, dividing N or not) and a scale of 1 or 0.25.
    /// </summary>
    public static LinearCase Sample(Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        int[] dims = [1, 3, 8, 16, 33, 64, 128];
        int[] taylorDims = [1, 2, 5, 8];
        (int Q, int K, int V)[] heads = [(1, 1, 1), (2, 2, 2), (4, 2, 2), (4, 1, 1), (2, 2, 4), (1, 1, 3)];
        ElementType[] types = [ElementType.Float32, ElementType.Float32, ElementType.Float16, ElementType.BFloat16];
        var h = heads[random.Next(heads.Length)];
        int total = Math.Max(h.Q, Math.Max(h.K, h.V));
        var map = (FeatureMap)random.Next(5);
        bool decode = random.Next(5) == 0;
        bool causal = decode || random.Next(4) != 0;
        bool packed = !decode && random.Next(4) == 0;
        DecayKind[] decays = map == FeatureMap.Taylor2 ? [DecayKind.None, DecayKind.PerHead, DecayKind.PerToken] : Enum.GetValues<DecayKind>();
        return new LinearCase
        {
            ElementType = types[random.Next(types.Length)], Batch = packed ? 1 : random.Next(1, 3), Heads = total,
            QueryHeads = h.Q == total ? 0 : h.Q, KeyHeads = h.K == total ? 0 : h.K, ValueHeads = h.V == total ? 0 : h.V,
            Length = decode ? random.Next(1, LinearProblem.MaxVerifyTokens + 1) : random.Next(1, 151),
            KeyDim = map == FeatureMap.Taylor2 ? taylorDims[random.Next(taylorDims.Length)] : dims[random.Next(dims.Length)],
            ValueDim = dims[random.Next(dims.Length)],
            FeatureMap = map, Decay = causal ? decays[random.Next(decays.Length)] : DecayKind.None,
            Normalize = (map is FeatureMap.EluPlusOne or FeatureMap.Relu or FeatureMap.Taylor2) && random.Next(2) == 0,
            Causal = causal, InitialState = causal && random.Next(2) == 0, Decode = decode,
            TokenMajor = random.Next(3) == 0, Packed = packed ? random.Next(1, 4) : 0,
            ChunkSize = !decode && random.Next(3) == 0 ? random.Next(1, 81) : 0, Scale = random.Next(3) == 0 ? 0.25f : 1f,
            Seed = random.Next(),
        };
    }

    /// <summary>Storage type of Q, K, V and O.</summary>
    public ElementType ElementType { get; init; } = ElementType.Float32;
    /// <summary>Batch size B.</summary>
    public int Batch { get; init; } = 1;
    /// <summary>Output and state heads H.</summary>
    public int Heads { get; init; } = 1;
    /// <summary>Query heads (0: H); must divide H.</summary>
    public int QueryHeads { get; init; }
    /// <summary>Key heads (0: H); must divide H.</summary>
    public int KeyHeads { get; init; }
    /// <summary>Value heads (0: H); must divide H.</summary>
    public int ValueHeads { get; init; }
    /// <summary>Token-major memory <c>[B, N, H, D]</c> for Q, K, V, O and the log gates.</summary>
    public bool TokenMajor { get; init; }
    /// <summary>Packed sequences (varlen, B = 1): 0 for a plain batch, else that many sequences of seeded lengths summing to N.</summary>
    public int Packed { get; init; }
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
    /// <summary>Pass an initial state (causal only; always for decode).</summary>
    public bool InitialState { get; init; }
    /// <summary>An in-place decode step (<see cref="AttentionContext.LinearDecodeStep"/>) instead of a chunked call.</summary>
    public bool Decode { get; init; }
    /// <summary>Chunk length the kernels use (0: the options' default).</summary>
    public int ChunkSize { get; init; }
    /// <summary>The factor on phi(q).phi(k).</summary>
    public float Scale { get; init; } = 1f;
    /// <summary>Seed of the inputs.</summary>
    public int Seed { get; init; } = 1;
    /// <summary>Inputs are uniform in <c>[-InputScale, InputScale]</c> (queries: see <see cref="QueryScale"/>).</summary>
    public double InputScale { get; init; } = 1.0;
    /// <summary>
    /// Queries are uniform in <c>[-QueryScale, QueryScale]</c> when set (null: <see cref="InputScale"/>); spec token
    /// <c>qamp=</c>. With small keys and values, queries of the inverse magnitude keep the scores near magnitude 1.
    /// </summary>
    public double? QueryScale { get; init; }

    string IAttentionCase.FamilyName => Registration.Name;

    /// <inheritdoc/>
    public string KernelName => Decode ? "linear decode" : "linear";

    /// <inheritdoc/>
    public CaseSizes Sizes => new(Batch, Heads, Math.Max(KeyHeads, ValueHeads) is var kv && kv > 0 ? kv : Heads, Length, Length, KeyDim, ValueDim);

    private int HeadsOf(int given) => given > 0 ? given : Heads;

    /// <summary>The packed sequences' offsets (S + 1 of them, from 0 to N), drawn from the seed.</summary>
    private int[] Offsets()
    {
        var random = new Random(unchecked(Seed * 31 + 5));
        var cuts = Enumerable.Range(0, Packed - 1).Select(_ => random.Next(Length + 1)).Append(0).Append(Length).Order().ToArray();
        return cuts;
    }

    private int Sequences => Packed > 0 ? Packed : Batch;

    private TensorView Input(int heads, int dim, Random random, double scale) => Layout(CaseData.Random(ElementType, TokenMajor ? [Batch, Length, heads, dim] : [Batch, heads, Length, dim], random, scale));

    /// <summary>A head-major logical view of a tensor stored in the case's memory order.</summary>
    private TensorView Layout(TensorView stored) => TokenMajor ? stored.Permute(stored.Rank == 3 ? [0, 2, 1] : [0, 2, 1, 3]) : stored;

    /// <summary>A decode step reads and writes the state once: memory, not arithmetic, bounds it.</summary>
    public bool IsMemoryBound => Decode;

    /// <summary>The options of a run on <paramref name="tensors"/> (the log gate taken from them).</summary>
    public LinearOptions OptionsFor(CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var options = new LinearOptions
        {
            FeatureMap = FeatureMap, Decay = Decay, Normalize = Normalize, Causal = Causal, Scale = Scale,
            LogGate = tensors.Find(LogGateName),
            CuSeqLens = Packed > 0 ? Offsets() : ReadOnlyMemory<int>.Empty,
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
            new(CaseTensors.QueryName, Input(HeadsOf(QueryHeads), KeyDim, random, QueryScale ?? InputScale), CaseTensorRole.Input),
            new(CaseTensors.KeyName, Input(HeadsOf(KeyHeads), KeyDim, random, InputScale), CaseTensorRole.Input),
            new(CaseTensors.ValueName, Input(HeadsOf(ValueHeads), ValueDim, random, InputScale), CaseTensorRole.Input),
        };
        if (InitialState || Decode)
        {
            var initial = CaseData.Random(ElementType.Float32, [Sequences, Heads, FeatureSize, StateColumns], random, 1.0);
            if (Normalize)
            {
                var values = initial.ToDoubleArray();
                for (int i = ValueDim; i < values.Length; i += StateColumns) values[i] = Math.Abs(values[i]) + 0.5;
                initial.CopyFrom(values);
            }
            tensors.Add(new(InitialStateName, initial, CaseTensorRole.Input));
            if (Decode)
            {
                var state = CaseData.Zeros(ElementType.Float32, Sequences, Heads, FeatureSize, StateColumns);
                state.CopyFrom(initial.ToDoubleArray());
                tensors.Add(new(StateName, state, CaseTensorRole.Output));
            }
        }
        if (Decay == DecayKind.PerToken)
            tensors.Add(new(LogGateName, Layout(CaseData.Uniform(ElementType.Float32, TokenMajor ? [Batch, Length, Heads] : [Batch, Heads, Length], random, -0.5, 0)), CaseTensorRole.Option));
        if (Decay == DecayKind.PerTokenPerKey)
            tensors.Add(new(LogGateName, Layout(CaseData.Uniform(ElementType.Float32, TokenMajor ? [Batch, Length, Heads, KeyDim] : [Batch, Heads, Length, KeyDim], random, -0.5, 0)), CaseTensorRole.Option));
        tensors.Add(new(CaseTensors.OutputName, Layout(TokenMajor ? CaseData.Zeros(ElementType, Batch, Length, Heads, ValueDim) : CaseData.Zeros(ElementType, Batch, Heads, Length, ValueDim)), CaseTensorRole.Output));
        if (Causal && !Decode)
            tensors.Add(new(FinalStateName, CaseData.Zeros(ElementType.Float32, Sequences, Heads, FeatureSize, StateColumns), CaseTensorRole.Output));
        return new CaseTensors(tensors);
    }

    /// <summary>Calls <see cref="AttentionContext.LinearChunked"/>, or <see cref="AttentionContext.LinearDecodeStep"/> on the <c>state</c> tensor (kernels on every backend).</summary>
    public void Invoke(AttentionContext context, CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(tensors);
        if (Decode)
            context.LinearDecodeStep(tensors.Query, tensors.Key, tensors.Value, tensors.Output, tensors[StateName], OptionsFor(tensors));
        else
            context.LinearChunked(tensors.Query, tensors.Key, tensors.Value, tensors.Output, OptionsFor(tensors), tensors.Find(InitialStateName), tensors.Find(FinalStateName));
    }

    /// <inheritdoc/>
    public ReferenceResult ExactReference(CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        return Decode
            ? Reference.LinearDecodeStep(tensors.Query, tensors.Key, tensors.Value, tensors[InitialStateName], OptionsFor(tensors))
            : Reference.LinearChunked(tensors.Query, tensors.Key, tensors.Value, OptionsFor(tensors), tensors.Find(InitialStateName));
    }

    /// <summary>
    /// Until the family has a same-precision naive reference: the exact output stored in the case's type and the exact
    /// state in float32 (the least error any implementation that writes those types makes).
    /// </summary>
    public ReferenceResult NaiveReference(CaseTensors tensors) => CaseData.Rounded(ExactReference(tensors), ElementType);

    /// <summary>
    /// The output, and for causal cases the final (or advanced) state, under <see cref="CaseVerifier.CompareToReference"/>'s output
    /// rule (linear attention has no log-sum-exp), scaled by the largest exact output (state) magnitude.
    /// </summary>
    public ReferenceCheck Check(CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var exact = ExactReference(tensors);
        var rounded = CaseData.Rounded(exact, ElementType);
        var output = CaseVerifier.CompareToReference(CaseData.WithoutLse(exact.Output, exact.OutputShape), CaseData.WithoutLse(rounded.Output, rounded.OutputShape),
            tensors.Output, null, ElementType, CaseData.MaxAbs(exact.Output));
        if (exact.FinalState is not { } state || exact.FinalStateShape is not { } shape || tensors.Find(Decode ? StateName : FinalStateName) is not { } final) return output;
        var check = CaseVerifier.CompareToReference(CaseData.WithoutLse(state, shape), CaseData.WithoutLse(rounded.FinalState!, shape),
            final, null, ElementType.Float32, CaseData.MaxAbs(state));
        return new ReferenceCheck(Math.Max(output.MaxError, check.MaxError), Math.Max(output.NaiveError, check.NaiveError), Math.Max(output.Tolerance, check.Tolerance),
            0, output.Passed && check.Passed, string.Join("; ", new[] { output.Detail, check.Passed ? "" : "final state: " + check.Detail }.Where(d => d.Length > 0)));
    }

    /// <summary>4 F Dv per token and head (DESIGN.md: 4 Dk Dv, with the feature size F for maps that widen).</summary>
    public double Flops() => 4.0 * Batch * Heads * Length * FeatureSize * ValueDim;

    /// <summary>Bytes of Q, K, V and O once, plus the states read and written (a decode step reads and writes its state once).</summary>
    public double MinimumBytes() =>
        (double)ElementType.SizeOf() * Batch * Heads * Length * (2.0 * KeyDim + 2.0 * ValueDim)
        + 4.0 * Sequences * Heads * FeatureSize * StateColumns * ((InitialState || Decode ? 1 : 0) + (Causal ? 1 : 0));

    /// <inheritdoc/>
    public string ToSpec()
    {
        var spec = new StringBuilder();
        spec.Append(CultureInfo.InvariantCulture, $"linear {AttentionCase.TypeName(ElementType)} B{Batch} H{Heads} N{Length} D{KeyDim}/{ValueDim}");
        if (FeatureMap != FeatureMap.Identity) spec.Append(" phi=").Append(MapName(FeatureMap));
        if (QueryHeads > 0) spec.Append(CultureInfo.InvariantCulture, $" hq={QueryHeads}");
        if (KeyHeads > 0) spec.Append(CultureInfo.InvariantCulture, $" hk={KeyHeads}");
        if (ValueHeads > 0) spec.Append(CultureInfo.InvariantCulture, $" hv={ValueHeads}");
        if (Decay != DecayKind.None) spec.Append(Decay switch { DecayKind.PerHead => " decay=head", DecayKind.PerToken => " decay=token", _ => " decay=key" });
        if (TokenMajor) spec.Append(" tokenmajor");
        if (Packed > 0) spec.Append(CultureInfo.InvariantCulture, $" packed={Packed}");
        if (Normalize) spec.Append(" normalize");
        if (!Causal) spec.Append(" noncausal");
        if (InitialState) spec.Append(" state");
        if (Decode) spec.Append(" decode");
        if (ChunkSize > 0) spec.Append(CultureInfo.InvariantCulture, $" chunk={ChunkSize}");
        if (Scale != 1f) spec.Append(" scale=").Append(SpecTokens.Number(Scale));
        return SpecTokens.Finish(spec, InputScale, Seed, QueryScale);
    }

    /// <summary>The spec.</summary>
    public override string ToString() => ToSpec();

    /// <inheritdoc/>
    public IEnumerable<IAttentionCase> Shrink()
    {
        if (Batch > 1) yield return this with { Batch = 1 };
        if (Heads > 1) yield return this with { Heads = 1, QueryHeads = 0, KeyHeads = 0, ValueHeads = 0 };
        if (Length > 1) yield return this with { Length = Length / 2 };
        if (KeyDim > 1) yield return this with { KeyDim = KeyDim / 2 };
        if (ValueDim > 1) yield return this with { ValueDim = ValueDim / 2 };
        if (ElementType != ElementType.Float32) yield return this with { ElementType = ElementType.Float32 };
        if (InitialState) yield return this with { InitialState = false };
        if (Decay != DecayKind.None) yield return this with { Decay = DecayKind.None };
        if (TokenMajor) yield return this with { TokenMajor = false };
        if (Packed > 0) yield return this with { Packed = 0 };
        if (Decode) yield return this with { Decode = false, InitialState = true };
        if (Normalize) yield return this with { Normalize = false };
        if (FeatureMap != FeatureMap.Identity && !Normalize) yield return this with { FeatureMap = FeatureMap.Identity };
        if (QueryScale is not null) yield return this with { InputScale = 1, QueryScale = null };
        if (ChunkSize > 0) yield return this with { ChunkSize = 0 };
        if (QueryHeads > 0 || KeyHeads > 0 || ValueHeads > 0) yield return this with { QueryHeads = 0, KeyHeads = 0, ValueHeads = 0 };
    }

    /// <summary>Why this is not a valid problem, or null.</summary>
    internal string? Problem()
    {
        if (Batch < 1 || Heads < 1 || Length < 1 || KeyDim < 1 || ValueDim < 1 || ChunkSize < 0) return "every size must be at least 1";
        if (!Causal && (Decay != DecayKind.None || InitialState)) return "noncausal takes no decay and no initial state";
        if (QueryHeads < 0 || KeyHeads < 0 || ValueHeads < 0 || Heads % HeadsOf(QueryHeads) != 0 || Heads % HeadsOf(KeyHeads) != 0 || Heads % HeadsOf(ValueHeads) != 0
            || Math.Max(HeadsOf(QueryHeads), Math.Max(HeadsOf(KeyHeads), HeadsOf(ValueHeads))) != Heads)
            return "hq, hk and hv must divide H, and the largest must be H";
        if (Decay == DecayKind.PerTokenPerKey && FeatureMap == FeatureMap.Taylor2) return "decay=key needs features that are key dimensions (not phi=taylor)";
        if (Packed < 0 || (Packed > 0 && Batch != 1)) return "packed needs B1 and a positive sequence count";
        if (Decode && !Causal) return "decode is causal (no noncausal)";
        if (Decode && Packed > 0) return "decode takes no packed sequences";
        if (Decode && Length > LinearProblem.MaxVerifyTokens) return $"decode takes at most {LinearProblem.MaxVerifyTokens} tokens here";
        if (!float.IsFinite(Scale)) return "scale must be finite";
        if (SpecTokens.ScaleProblem(InputScale, QueryScale) is { } scaleProblem) return scaleProblem;
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
        "decode" => c with { Decode = true },
        "decay=head" => c with { Decay = DecayKind.PerHead },
        "decay=token" => c with { Decay = DecayKind.PerToken },
        "decay=key" => c with { Decay = DecayKind.PerTokenPerKey },
        "tokenmajor" => c with { TokenMajor = true },
        _ when SpecTokens.Integer(SpecTokens.Value(t, "hq=")) is int hq => c with { QueryHeads = hq },
        _ when SpecTokens.Integer(SpecTokens.Value(t, "hk=")) is int hk => c with { KeyHeads = hk },
        _ when SpecTokens.Integer(SpecTokens.Value(t, "hv=")) is int hv => c with { ValueHeads = hv },
        _ when SpecTokens.Integer(SpecTokens.Value(t, "packed=")) is int packed && packed > 0 => c with { Packed = packed },
        _ when SpecTokens.Value(t, "phi=") is { } phi && Map(phi) is { } map => c with { FeatureMap = map },
        _ when SpecTokens.Type(t) is { } type => c with { ElementType = type },
        _ when SpecTokens.Integer(SpecTokens.Value(t, "seed=")) is int seed => c with { Seed = seed },
        _ when SpecTokens.TryDouble(SpecTokens.Value(t, "amp="), out double amp) => c with { InputScale = amp },
        _ when SpecTokens.TryDouble(SpecTokens.Value(t, "qamp="), out double queryAmp) => c with { QueryScale = queryAmp },
        _ when SpecTokens.TryFloat(SpecTokens.Value(t, "scale="), out float scale) => c with { Scale = scale },
        _ when SpecTokens.Integer(SpecTokens.Value(t, "chunk=")) is int chunk && chunk > 0 => c with { ChunkSize = chunk },
        _ when SpecTokens.Size(t, 'b', '\0') is var (batch, _) => c with { Batch = batch },
        _ when SpecTokens.Size(t, 'h', '\0') is var (heads, _) => c with { Heads = heads },
        _ when SpecTokens.Size(t, 'n', '\0') is var (n, _) => c with { Length = n },
        _ when SpecTokens.Size(t, 'd', '/') is var (dk, dv) => c with { KeyDim = dk, ValueDim = dv },
        _ => null,
    };
}
