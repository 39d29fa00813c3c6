// The merge family's case: S random partial results with log-sum-exps (some -inf, whole rows of them now and
// then) merged by MergeStates, checked against the float64 merge.
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

namespace NativeAttention;

/// <summary>
/// A reproducible <see cref="AttentionContext.MergeStates"/> problem: partial outputs <c>[S, B, H, N, Dv]</c> in
/// <see cref="ElementType"/> uniform in <c>[-InputScale, InputScale]</c>, float32 partial LSEs <c>[S, B, H, N]</c>
/// uniform in <c>[-6, 6]</c> of which about one in four is -inf (so some rows have no partial at all), merged into an
/// output <c>[B, H, N, Dv]</c> of <see cref="OutputType"/> and a float32 LSE.
/// </summary>
public sealed record MergeCase : IAttentionCase
{
    /// <summary>Names of the merge tensors in <see cref="CaseTensors"/>.</summary>
    public const string PartialOutputsName = "partialOutputs", PartialLogSumExpName = "partialLogSumExp";

    private const string Grammar =
        "dtype of the partials (f32|f16|bf16), S<parts>, B<batch>, H<heads>, N<rows>, D<dv>, out=<dtype> (default: the partials'), amp=<scale>, seed=<int>";

    /// <summary>The merge family.</summary>
    public static CaseFamily Registration { get; } = new("merge", "MergeStates of split-KV partial results", Grammar, Parse, HasKernels: true,
    [
        "merge f32 S3 B1 H2 N17 D64 seed=41",
        "merge f16 S2 B2 H4 N33 D128 out=bf16 seed=42",
        "merge bf16 S5 B1 H3 N9 D80 out=f32 seed=43",
        "merge f32 S4 B1 H1 N40 D256 out=f16 amp=3 seed=44",
    ])
    {
        Sample = Sample,
    };

    /// <summary>
    /// A random merge: 1 to 8 parts of any dtype into any output dtype, B 1..2, H 1..4, N 1..70 (tails around 16, 32,
    /// 64), Dv 1..256 weighted to common sizes, amplitude 1 or 8.
    /// </summary>
    public static MergeCase Sample(Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        ElementType[] types = [ElementType.Float32, ElementType.Float16, ElementType.BFloat16];
        var type = types[random.Next(3)];
        return new MergeCase
        {
            ElementType = type, OutputType = random.Next(2) == 0 ? null : types[random.Next(3)], Parts = random.Next(1, 9),
            Batch = random.Next(1, 3), Heads = random.Next(1, 5), Rows = random.Next(3) == 0 ? new[] { 1, 15, 16, 17, 33, 64, 65 }[random.Next(7)] : random.Next(1, 71),
            ValueDim = CaseSampler.HeadDim(random), InputScale = random.Next(4) == 0 ? 8 : 1, Seed = random.Next(0, int.MaxValue),
        };
    }

    /// <summary>Storage type of the partial outputs.</summary>
    public ElementType ElementType { get; init; } = ElementType.Float32;
    /// <summary>Storage type of the merged output (default: <see cref="ElementType"/>).</summary>
    public ElementType? OutputType { get; init; }
    /// <summary>Number of partial results S.</summary>
    public int Parts { get; init; } = 2;
    /// <summary>Batch size B.</summary>
    public int Batch { get; init; } = 1;
    /// <summary>Heads H.</summary>
    public int Heads { get; init; } = 1;
    /// <summary>Rows per head N.</summary>
    public int Rows { get; init; } = 1;
    /// <summary>Value dimension Dv.</summary>
    public int ValueDim { get; init; } = 64;
    /// <summary>Seed of the generated partials.</summary>
    public int Seed { get; init; } = 1;
    /// <summary>Partial outputs are uniform in <c>[-InputScale, InputScale]</c>.</summary>
    public double InputScale { get; init; } = 1.0;

    string IAttentionCase.FamilyName => Registration.Name;

    /// <inheritdoc/>
    public string KernelName => "merge";

    /// <inheritdoc/>
    public CaseSizes Sizes => new(Batch, Heads, Heads, Rows, Parts, ValueDim, ValueDim);

    /// <summary>Always true: a merge reads each partial once and does a few operations per element.</summary>
    public bool IsMemoryBound => true;

    private ElementType Output => OutputType ?? ElementType;

    /// <inheritdoc/>
    public CaseTensors CreateTensors()
    {
        if (Problem() is { } problem) throw new ArgumentException($"The case \"{ToSpec()}\" is not a valid problem: {problem}.", "case");
        var random = new Random(Seed);
        var partials = CaseData.Random(ElementType, [Parts, Batch, Heads, Rows, ValueDim], random, InputScale);
        var lse = new double[(long)Parts * Batch * Heads * Rows];
        for (long i = 0; i < lse.Length; i++)
        {
            double value = random.NextDouble() * 12 - 6;
            lse[i] = random.Next(4) == 0 ? double.NegativeInfinity : value;
        }
        var partialLse = CaseData.Zeros(ElementType.Float32, Parts, Batch, Heads, Rows);
        partialLse.CopyFrom(lse);
        return new CaseTensors([
            new(PartialOutputsName, partials, CaseTensorRole.Input),
            new(PartialLogSumExpName, partialLse, CaseTensorRole.Input),
            new(CaseTensors.OutputName, CaseData.Zeros(Output, Batch, Heads, Rows, ValueDim), CaseTensorRole.Output),
            new(CaseTensors.LogSumExpName, CaseData.Zeros(ElementType.Float32, Batch, Heads, Rows), CaseTensorRole.Output),
        ]);
    }

    /// <inheritdoc/>
    public void Invoke(AttentionContext context, CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(tensors);
        context.MergeStates(tensors[PartialOutputsName], tensors[PartialLogSumExpName], tensors.Output, tensors.LogSumExp);
    }

    /// <inheritdoc/>
    public ReferenceResult ExactReference(CaseTensors tensors) => Reference.MergeStates(tensors[PartialOutputsName], tensors[PartialLogSumExpName]);

    /// <summary>
    /// The exact merge stored in the output type: a merge has no same-precision naive reference, and storing the
    /// exact result is the least error any implementation makes.
    /// </summary>
    public ReferenceResult NaiveReference(CaseTensors tensors) => CaseData.Rounded(ExactReference(tensors), Output);

    /// <inheritdoc/>
    public ReferenceCheck Check(CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var exact = ExactReference(tensors);
        return CaseVerifier.CompareToReference(exact, CaseData.Rounded(exact, Output), tensors.Output, tensors.LogSumExp, Output,
            CaseData.MaxAbs(tensors[PartialOutputsName]));
    }

    /// <summary>Two operations per partial element (a weighted sum), the exponentials left out.</summary>
    public double Flops() => 2.0 * Parts * Batch * Heads * Rows * ValueDim;

    /// <summary>Bytes of the partials and their LSEs read once, the output and its LSE written once.</summary>
    public double MinimumBytes()
    {
        double rows = (double)Batch * Heads * Rows;
        return rows * (Parts * (ValueDim * (double)ElementType.SizeOf() + 4) + ValueDim * (double)Output.SizeOf() + 4);
    }

    /// <inheritdoc/>
    public string ToSpec()
    {
        var spec = new StringBuilder();
        spec.Append(CultureInfo.InvariantCulture, $"merge {AttentionCase.TypeName(ElementType)} S{Parts} B{Batch} H{Heads} N{Rows} D{ValueDim}");
        if (OutputType is { } output) spec.Append(" out=").Append(AttentionCase.TypeName(output));
        return SpecTokens.Finish(spec, InputScale, Seed);
    }

    /// <summary>The spec.</summary>
    public override string ToString() => ToSpec();

    /// <inheritdoc/>
    public IEnumerable<IAttentionCase> Shrink()
    {
        if (Batch > 1) yield return this with { Batch = 1 };
        if (Heads > 1) yield return this with { Heads = 1 };
        if (Parts > 1) yield return this with { Parts = Parts / 2 };
        if (Rows > 1) yield return this with { Rows = Rows / 2 };
        if (ValueDim > 1) yield return this with { ValueDim = ValueDim / 2 };
        if (ElementType != ElementType.Float32) yield return this with { ElementType = ElementType.Float32 };
        if (OutputType is not null) yield return this with { OutputType = null };
    }

    /// <summary>Why this is not a valid problem, or null.</summary>
    internal string? Problem()
    {
        if (Parts < 1 || Batch < 1 || Heads < 1 || Rows < 1 || ValueDim < 1) return "every size must be at least 1";
        if (SpecTokens.ScaleProblem(InputScale, null) is { } scaleProblem) return scaleProblem;
        return null;
    }

    private static bool Parse(IReadOnlyList<string> tokens, string spec, [NotNullWhen(true)] out IAttentionCase? result, [NotNullWhen(false)] out string? error) =>
        SpecTokens.Read(tokens, spec, Grammar, new MergeCase(), Apply, c => c.Problem(), out result, out error);

    /// <summary><paramref name="c"/> with one lower-cased spec token applied, or null when the token is not one of this family's.</summary>
    private static MergeCase? Apply(MergeCase c, string t) => t switch
    {
        _ when SpecTokens.Type(t) is { } type => c with { ElementType = type },
        _ when SpecTokens.Value(t, "out=") is { } o && SpecTokens.Type(o) is { } output => c with { OutputType = output },
        _ when SpecTokens.Integer(SpecTokens.Value(t, "seed=")) is int seed => c with { Seed = seed },
        _ when SpecTokens.TryDouble(SpecTokens.Value(t, "amp="), out double amp) => c with { InputScale = amp },
        _ when SpecTokens.Size(t, 's', '\0') is var (parts, _) => c with { Parts = parts },
        _ when SpecTokens.Size(t, 'b', '\0') is var (batch, _) => c with { Batch = batch },
        _ when SpecTokens.Size(t, 'h', '\0') is var (heads, _) => c with { Heads = heads },
        _ when SpecTokens.Size(t, 'n', '\0') is var (rows, _) => c with { Rows = rows },
        _ when SpecTokens.Size(t, 'd', '\0') is var (dv, _) => c with { ValueDim = dv },
        _ => null,
    };
}
