// The delta-rule family's case (DeltaNet, Gated DeltaNet, KDA): chunked prefill or an in-place decode step, grouped
// heads, token-major layout, packed sequences, K- or V-major states, q/k L2 normalisation. Kernels on the CPU, OpenCL and CUDA (recurrent on the GPU).
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

namespace NativeAttention;

/// <summary>
/// A reproducible <see cref="AttentionContext.DeltaRuleChunked"/> (or, with <see cref="Decode"/>,
/// <see cref="AttentionContext.DeltaRuleDecodeStep"/>) problem: Q, V uniform in <c>[-InputScale, InputScale]</c>, K
/// uniform in <c>[-InputScale, InputScale] / sqrt(Dk)</c> (unless normalised in the kernel, so that
/// <c>I - beta k k^T</c> stays a contraction), beta uniform in <c>[0, 1]</c>, log gates uniform in <c>[-0.5, 0]</c>;
/// with <see cref="InitialState"/> a float32 initial state uniform in <c>[-InputScale, InputScale]</c> (the magnitude of
/// a state built from such values and unit keys, so that a small case is small throughout and the state's error is held
/// to its own scale). The final state is written.
/// </summary>
/// <remarks>
/// A decode case advances its <c>state</c> tensor in place, starting from a copy of <c>initialState</c> made when the
/// tensors are created: one <see cref="Invoke"/> then <see cref="Check"/> compares with the reference; repeated
/// invocations (benchmarks) keep advancing the state.
/// </remarks>
public sealed record DeltaRuleCase : IAttentionCase
{
    /// <summary>Names of the delta-rule tensors in <see cref="CaseTensors"/>.</summary>
    public const string BetaName = "beta", InitialStateName = "initialState", FinalStateName = "finalState", StateName = "state", LogGateName = "options.LogGate";

    private const string Grammar =
        "dtype (f32|f16|bf16), B<batch>, H<heads>, hq=<query heads>, hk=<key heads>, hv=<value heads>, N<length>, D<dk>/<dv> or D<d>, " +
        "variant=<deltanet|gated|kda>, l2norm, state (an initial state), vmajor (V-major states), decode (an in-place decode step of N tokens), " +
        "tokenmajor ([B, N, H, D] memory), packed=<sequences> (varlen, B = 1), chunk=<tokens>, scale=<x>, amp=<input scale>, seed=<int>";

    /// <summary>The delta-rule family (chunked and decode kernels on the CPU, OpenCL and CUDA).</summary>
    public static CaseFamily Registration { get; } = new("delta", "the delta rule (DeltaNet, Gated DeltaNet, KDA; chunked, decode)", Grammar, Parse, HasKernels: true,
    [
        "delta f32 B1 H2 N70 D16/24 seed=81",
        "delta f16 B2 H2 N33 D8/8 variant=gated state chunk=16 seed=82",
        "delta bf16 B1 H3 N40 D32/16 variant=kda l2norm seed=83",
        "delta f32 B1 H4 hq=2 hk=2 N90 D16/16 variant=gated tokenmajor state vmajor seed=84",
        "delta f32 B1 H2 N100 D8/8 variant=kda packed=3 state seed=85",
        "delta f32 B2 H2 N1 D16/16 variant=gated l2norm decode seed=86",
        "delta f16 B1 H2 N48 D16/16 variant=gated l2norm amp=0.001 seed=87",
    ])
    {
        Sample = Sample,
    };

    /// <summary>
    /// A random delta-rule problem: any variant, dtype, grouped heads, N up to 150 or a decode step of up to 8 tokens,
    /// Dk/Dv weighted to common sizes, sometimes L2 normalisation, an initial state, V-major states, token-major
    /// memory, packed sequences or an explicit chunk size.
    /// </summary>
    public static DeltaRuleCase Sample(Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        int[] dims = [1, 3, 8, 16, 33, 64, 128];
        (int Q, int K, int V)[] heads = [(1, 1, 1), (2, 2, 2), (4, 2, 2), (4, 1, 1), (2, 2, 4), (1, 1, 3)];
        var h = heads[random.Next(heads.Length)];
        int total = Math.Max(h.Q, Math.Max(h.K, h.V));
        bool decode = random.Next(5) == 0;
        bool packed = !decode && random.Next(4) == 0;
        ElementType[] types = [ElementType.Float32, ElementType.Float32, ElementType.Float16, ElementType.BFloat16];
        return new DeltaRuleCase
        {
            ElementType = types[random.Next(types.Length)], Batch = packed ? 1 : random.Next(1, 3), Heads = total,
            QueryHeads = h.Q == total ? 0 : h.Q, KeyHeads = h.K == total ? 0 : h.K, ValueHeads = h.V == total ? 0 : h.V,
            Length = decode ? random.Next(1, LinearProblem.MaxVerifyTokens + 1) : random.Next(1, 151),
            KeyDim = dims[random.Next(dims.Length)], ValueDim = dims[random.Next(dims.Length)],
            Variant = (DeltaRuleVariant)random.Next(3), L2Norm = random.Next(2) == 0, InitialState = random.Next(2) == 0,
            ValueMajor = random.Next(3) == 0, Decode = decode, TokenMajor = random.Next(3) == 0, Packed = packed ? random.Next(1, 4) : 0,
            ChunkSize = random.Next(3) == 0 ? random.Next(1, 80) : 0, Seed = random.Next(),
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
    /// <summary>Token-major memory <c>[B, N, H, D]</c> for Q, K, V, O, beta and the log gates.</summary>
    public bool TokenMajor { get; init; }
    /// <summary>Packed sequences (varlen, B = 1): 0 for a plain batch, else that many sequences of seeded lengths summing to N.</summary>
    public int Packed { get; init; }
    /// <summary>Sequence length N (the token count of a decode step).</summary>
    public int Length { get; init; } = 1;
    /// <summary>Query/key head dimension Dk.</summary>
    public int KeyDim { get; init; } = 64;
    /// <summary>Value head dimension Dv.</summary>
    public int ValueDim { get; init; } = 64;
    /// <summary>DeltaNet, Gated DeltaNet or KDA.</summary>
    public DeltaRuleVariant Variant { get; init; }
    /// <summary>L2-normalise q and k in the kernel.</summary>
    public bool L2Norm { get; init; }
    /// <summary>Pass an initial state (always for decode).</summary>
    public bool InitialState { get; init; }
    /// <summary>V-major states.</summary>
    public bool ValueMajor { get; init; }
    /// <summary>An in-place decode step instead of a chunked prefill.</summary>
    public bool Decode { get; init; }
    /// <summary>Chunk length the kernels use (0: the backend's default).</summary>
    public int ChunkSize { get; init; }
    /// <summary>The factor on <c>S^T q</c> (null: 1 / sqrt(Dk)).</summary>
    public float? Scale { get; init; }
    /// <summary>Seed of the inputs.</summary>
    public int Seed { get; init; } = 1;
    /// <summary>Inputs are uniform in <c>[-InputScale, InputScale]</c> (keys divided by sqrt(Dk) without l2norm).</summary>
    public double InputScale { get; init; } = 1.0;

    string IAttentionCase.FamilyName => Registration.Name;

    /// <inheritdoc/>
    public string KernelName => Decode ? "delta decode" : "delta";

    /// <inheritdoc/>
    public CaseSizes Sizes => new(Batch, Heads, Math.Max(KeyHeads, ValueHeads) is var kv && kv > 0 ? kv : Heads, Length, Length, KeyDim, ValueDim);

    private int HeadsOf(int given) => given > 0 ? given : Heads;

    private int[] Offsets()
    {
        var random = new Random(unchecked(Seed * 31 + 5));
        return Enumerable.Range(0, Packed - 1).Select(_ => random.Next(Length + 1)).Append(0).Append(Length).Order().ToArray();
    }

    private int Sequences => Packed > 0 ? Packed : Batch;

    private int[] StateShape => ValueMajor ? [Sequences, Heads, ValueDim, KeyDim] : [Sequences, Heads, KeyDim, ValueDim];

    private TensorView Input(int heads, int dim, Random random, double scale) =>
        Layout(CaseData.Random(ElementType, TokenMajor ? [Batch, Length, heads, dim] : [Batch, heads, Length, dim], random, scale));

    /// <summary>A head-major logical view of a tensor stored in the case's memory order.</summary>
    private TensorView Layout(TensorView stored) => TokenMajor ? stored.Permute(stored.Rank == 3 ? [0, 2, 1] : [0, 2, 1, 3]) : stored;

    /// <summary>A decode step reads and writes the state once: memory, not arithmetic, bounds it.</summary>
    public bool IsMemoryBound => Decode;

    /// <summary>The options of a run on <paramref name="tensors"/> (the log gate taken from them).</summary>
    public DeltaRuleOptions OptionsFor(CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        return new DeltaRuleOptions
        {
            Variant = Variant, LogGate = tensors.Find(LogGateName), L2NormalizeQueryKey = L2Norm, Scale = Scale, ChunkSize = ChunkSize,
            StateLayout = ValueMajor ? DeltaStateLayout.ValueMajor : DeltaStateLayout.KeyMajor,
            CuSeqLens = Packed > 0 ? Offsets() : ReadOnlyMemory<int>.Empty,
        };
    }

    /// <inheritdoc/>
    public CaseTensors CreateTensors()
    {
        if (Problem() is { } problem) throw new ArgumentException($"The case \"{ToSpec()}\" is not a valid problem: {problem}.", "case");
        var random = new Random(Seed);
        var tensors = new List<CaseTensor>
        {
            new(CaseTensors.QueryName, Input(HeadsOf(QueryHeads), KeyDim, random, InputScale), CaseTensorRole.Input),
            new(CaseTensors.KeyName, Input(HeadsOf(KeyHeads), KeyDim, random, L2Norm ? InputScale : InputScale / Math.Sqrt(KeyDim)), CaseTensorRole.Input),
            new(CaseTensors.ValueName, Input(HeadsOf(ValueHeads), ValueDim, random, InputScale), CaseTensorRole.Input),
            new(BetaName, Layout(CaseData.Uniform(ElementType.Float32, TokenMajor ? [Batch, Length, Heads] : [Batch, Heads, Length], random, 0, 1)), CaseTensorRole.Input),
        };
        if (InitialState || Decode)
        {
            var initial = CaseData.Random(ElementType.Float32, StateShape, random, InputScale);
            tensors.Add(new(InitialStateName, initial, CaseTensorRole.Input));
            if (Decode)
            {
                var state = CaseData.Zeros(ElementType.Float32, StateShape);
                state.CopyFrom(initial.ToDoubleArray());
                tensors.Add(new(StateName, state, CaseTensorRole.Output));
            }
        }
        if (Variant == DeltaRuleVariant.GatedDeltaNet)
            tensors.Add(new(LogGateName, Layout(CaseData.Uniform(ElementType.Float32, TokenMajor ? [Batch, Length, Heads] : [Batch, Heads, Length], random, -0.5, 0)), CaseTensorRole.Option));
        if (Variant == DeltaRuleVariant.Kda)
            tensors.Add(new(LogGateName, Layout(CaseData.Uniform(ElementType.Float32, TokenMajor ? [Batch, Length, Heads, KeyDim] : [Batch, Heads, Length, KeyDim], random, -0.5, 0)), CaseTensorRole.Option));
        tensors.Add(new(CaseTensors.OutputName, Layout(TokenMajor ? CaseData.Zeros(ElementType, Batch, Length, Heads, ValueDim) : CaseData.Zeros(ElementType, Batch, Heads, Length, ValueDim)), CaseTensorRole.Output));
        if (!Decode) tensors.Add(new(FinalStateName, CaseData.Zeros(ElementType.Float32, StateShape), CaseTensorRole.Output));
        return new CaseTensors(tensors);
    }

    /// <summary>Calls <see cref="AttentionContext.DeltaRuleChunked"/>, or <see cref="AttentionContext.DeltaRuleDecodeStep"/> on the <c>state</c> tensor.</summary>
    public void Invoke(AttentionContext context, CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(tensors);
        if (Decode)
            context.DeltaRuleDecodeStep(tensors.Query, tensors.Key, tensors.Value, tensors[BetaName], tensors.Output, tensors[StateName], OptionsFor(tensors));
        else
            context.DeltaRuleChunked(tensors.Query, tensors.Key, tensors.Value, tensors[BetaName], tensors.Output, OptionsFor(tensors), tensors.Find(InitialStateName), tensors[FinalStateName]);
    }

    /// <inheritdoc/>
    public ReferenceResult ExactReference(CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        return Decode
            ? Reference.DeltaRuleDecodeStep(tensors.Query, tensors.Key, tensors.Value, tensors[BetaName], tensors[InitialStateName], OptionsFor(tensors))
            : Reference.DeltaRuleChunked(tensors.Query, tensors.Key, tensors.Value, tensors[BetaName], OptionsFor(tensors), tensors.Find(InitialStateName));
    }

    /// <summary>
    /// Until the family has a same-precision naive reference: the exact output stored in the case's type and the exact
    /// state in float32 (the least error any implementation that writes those types makes).
    /// </summary>
    public ReferenceResult NaiveReference(CaseTensors tensors) => CaseData.Rounded(ExactReference(tensors), ElementType);

    /// <summary>
    /// The output and the final (or advanced) state under <see cref="CaseVerifier.CompareToReference"/>'s output rule,
    /// scaled by the largest exact output (state) magnitude.
    /// </summary>
    public ReferenceCheck Check(CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var exact = ExactReference(tensors);
        var rounded = CaseData.Rounded(exact, ElementType);
        var output = CaseVerifier.CompareToReference(CaseData.WithoutLse(exact.Output, exact.OutputShape), CaseData.WithoutLse(rounded.Output, rounded.OutputShape),
            tensors.Output, null, ElementType, CaseData.MaxAbs(exact.Output));
        var state = exact.FinalState!;
        var shape = exact.FinalStateShape!;
        var final = tensors[Decode ? StateName : FinalStateName];
        var check = CaseVerifier.CompareToReference(CaseData.WithoutLse(state, shape), CaseData.WithoutLse(rounded.FinalState!, shape),
            final, null, ElementType.Float32, CaseData.MaxAbs(state));
        return new ReferenceCheck(Math.Max(output.MaxError, check.MaxError), Math.Max(output.NaiveError, check.NaiveError), Math.Max(output.Tolerance, check.Tolerance),
            0, output.Passed && check.Passed, string.Join("; ", new[] { output.Detail, check.Passed ? "" : "final state: " + check.Detail }.Where(d => d.Length > 0)));
    }

    /// <summary>
    /// Chunked: as fla's delta-rule benchmark counts (benchmarks/ops/benchmark_delta_rule.py), <c>2 B N H Dk (6 Dv + 8 * 64)</c>
    /// (its <c>2 B T H D (6 D + 8 * 64)</c> with Dk and Dv told apart). Decode: <c>8 Dk Dv</c> per token and head
    /// ((G S)^T k, (G S)^T q and the update, the decay folded in).
    /// </summary>
    public double Flops() => Decode
        ? 8.0 * Batch * Heads * Length * KeyDim * ValueDim
        : 2.0 * Batch * Heads * Length * KeyDim * (6.0 * ValueDim + 8.0 * 64);

    /// <summary>Bytes of Q, K, V, beta and O once, plus the states read and written.</summary>
    public double MinimumBytes() =>
        (double)ElementType.SizeOf() * Batch * Length * (HeadsOf(QueryHeads) * KeyDim + HeadsOf(KeyHeads) * KeyDim + HeadsOf(ValueHeads) * ValueDim + Heads * ValueDim)
        + 4.0 * Batch * Heads * Length + 4.0 * Sequences * Heads * KeyDim * ValueDim * ((InitialState || Decode ? 1 : 0) + 1);

    /// <inheritdoc/>
    public string ToSpec()
    {
        var spec = new StringBuilder();
        spec.Append(CultureInfo.InvariantCulture, $"delta {AttentionCase.TypeName(ElementType)} B{Batch} H{Heads} N{Length} D{KeyDim}/{ValueDim}");
        if (Variant != DeltaRuleVariant.DeltaNet) spec.Append(Variant == DeltaRuleVariant.GatedDeltaNet ? " variant=gated" : " variant=kda");
        if (QueryHeads > 0) spec.Append(CultureInfo.InvariantCulture, $" hq={QueryHeads}");
        if (KeyHeads > 0) spec.Append(CultureInfo.InvariantCulture, $" hk={KeyHeads}");
        if (ValueHeads > 0) spec.Append(CultureInfo.InvariantCulture, $" hv={ValueHeads}");
        if (L2Norm) spec.Append(" l2norm");
        if (TokenMajor) spec.Append(" tokenmajor");
        if (Packed > 0) spec.Append(CultureInfo.InvariantCulture, $" packed={Packed}");
        if (InitialState) spec.Append(" state");
        if (ValueMajor) spec.Append(" vmajor");
        if (Decode) spec.Append(" decode");
        if (ChunkSize > 0) spec.Append(CultureInfo.InvariantCulture, $" chunk={ChunkSize}");
        if (Scale is float scale) spec.Append(" scale=").Append(SpecTokens.Number(scale));
        return SpecTokens.Finish(spec, InputScale, Seed);
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
        if (Variant != DeltaRuleVariant.DeltaNet) yield return this with { Variant = DeltaRuleVariant.DeltaNet };
        if (TokenMajor) yield return this with { TokenMajor = false };
        if (Packed > 0) yield return this with { Packed = 0 };
        if (ValueMajor) yield return this with { ValueMajor = false };
        if (L2Norm) yield return this with { L2Norm = false };
    }

    /// <summary>Why this is not a valid problem, or null.</summary>
    internal string? Problem()
    {
        if (Batch < 1 || Heads < 1 || Length < 1 || KeyDim < 1 || ValueDim < 1 || ChunkSize < 0) return "every size must be at least 1";
        if (QueryHeads < 0 || KeyHeads < 0 || ValueHeads < 0 || Heads % HeadsOf(QueryHeads) != 0 || Heads % HeadsOf(KeyHeads) != 0 || Heads % HeadsOf(ValueHeads) != 0
            || Math.Max(HeadsOf(QueryHeads), Math.Max(HeadsOf(KeyHeads), HeadsOf(ValueHeads))) != Heads)
            return "hq, hk and hv must divide H, and the largest must be H";
        if (Packed < 0 || (Packed > 0 && Batch != 1)) return "packed needs B1 and a positive sequence count";
        if (Decode && Packed > 0) return "decode takes no packed sequences";
        if (Decode && Length > LinearProblem.MaxVerifyTokens) return $"decode takes at most {LinearProblem.MaxVerifyTokens} tokens here";
        if (Scale is float s && !float.IsFinite(s)) return "scale must be finite";
        if (SpecTokens.ScaleProblem(InputScale, null) is { } scaleProblem) return scaleProblem;
        return null;
    }

    private static bool Parse(IReadOnlyList<string> tokens, string spec, [NotNullWhen(true)] out IAttentionCase? result, [NotNullWhen(false)] out string? error) =>
        SpecTokens.Read(tokens, spec, Grammar, new DeltaRuleCase(), Apply, c => c.Problem(), out result, out error);

    /// <summary><paramref name="c"/> with one lower-cased spec token applied, or null when the token is not one of this family's.</summary>
    private static DeltaRuleCase? Apply(DeltaRuleCase c, string t) => t switch
    {
        "variant=deltanet" => c with { Variant = DeltaRuleVariant.DeltaNet },
        "variant=gated" => c with { Variant = DeltaRuleVariant.GatedDeltaNet },
        "variant=kda" => c with { Variant = DeltaRuleVariant.Kda },
        "l2norm" => c with { L2Norm = true },
        "state" => c with { InitialState = true },
        "vmajor" => c with { ValueMajor = true },
        "decode" => c with { Decode = true },
        "tokenmajor" => c with { TokenMajor = true },
        _ when SpecTokens.Integer(SpecTokens.Value(t, "hq=")) is int hq => c with { QueryHeads = hq },
        _ when SpecTokens.Integer(SpecTokens.Value(t, "hk=")) is int hk => c with { KeyHeads = hk },
        _ when SpecTokens.Integer(SpecTokens.Value(t, "hv=")) is int hv => c with { ValueHeads = hv },
        _ when SpecTokens.Integer(SpecTokens.Value(t, "packed=")) is int packed && packed > 0 => c with { Packed = packed },
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
