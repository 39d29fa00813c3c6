// The flash family's case: one description of an exact-attention problem (shapes, options, option tensors, dtype,
// seed) shared by the tests, the benchmarks and the command-line tool, so a failing fuzz case, a benchmark row and a
// test agree. KV-cache decoding (KvCacheCase) and split-KV + merge (SplitKeysCase) wrap one.
using System.Globalization;
using System.Text;

namespace NativeAttention;

/// <summary>The four attention families of the API (the case types are registered in <see cref="CaseFamilies"/>).</summary>
public enum AttentionFamily
{
    /// <summary>Exact attention with masks and score modifiers.</summary>
    Flash,
    /// <summary>Neighborhood attention on a 1-D, 2-D or 3-D grid.</summary>
    Neighborhood,
    /// <summary>Block-sparse attention.</summary>
    BlockSparse,
    /// <summary>Chunked linear attention.</summary>
    Linear,
}

/// <summary>How the generated Q, K, V and O are laid out in memory.</summary>
public enum TensorLayout
{
    /// <summary><c>[B, H, N, D]</c>, contiguous.</summary>
    HeadsFirst,
    /// <summary><c>[B, N, H, D]</c> in memory, passed as a permuted <c>[B, H, N, D]</c> view.</summary>
    SequenceFirst,
}

/// <summary>
/// A reproducible flash-attention problem: everything needed to build its inputs, run it on any backend, run the
/// float64 reference and count its FLOPs. Inputs are drawn uniformly from <c>[-InputScale, InputScale]</c> by a
/// generator seeded with <see cref="Seed"/>; tensor-valued options come either from <see cref="Flash"/> (the caller's
/// own host tensors) or from <see cref="OptionTensors"/> (generated from their own seed, with a text form).
/// </summary>
public sealed partial record AttentionCase : IAttentionCase
{
    /// <summary>Cases with at most this many query rows are decode-like: memory traffic, not arithmetic, bounds them.</summary>
    public const int DecodeQueryRows = 16;

    /// <summary>Names of the option tensors in <see cref="CaseTensors"/>.</summary>
    public const string AlibiSlopesName = "alibiSlopes", BiasName = "bias", LowRankUName = "lowRankBias.U", LowRankWName = "lowRankBias.W", SinksName = "sinks";

    /// <summary>The family. Only <see cref="AttentionFamily.Flash"/> runs; the other families have their own case types.</summary>
    public AttentionFamily Family { get; init; } = AttentionFamily.Flash;
    /// <summary>Storage type of Q, K, V and O.</summary>
    public ElementType ElementType { get; init; } = ElementType.Float32;
    /// <summary>Memory layout of the generated tensors.</summary>
    public TensorLayout Layout { get; init; } = TensorLayout.HeadsFirst;
    /// <summary>Batch size B.</summary>
    public int Batch { get; init; } = 1;
    /// <summary>Query heads Hq.</summary>
    public int QueryHeads { get; init; } = 1;
    /// <summary>Key/value heads Hkv (divides Hq).</summary>
    public int KeyValueHeads { get; init; } = 1;
    /// <summary>Query length Nq.</summary>
    public int QueryLength { get; init; } = 1;
    /// <summary>Key length Nk.</summary>
    public int KeyLength { get; init; } = 1;
    /// <summary>Query/key head dimension.</summary>
    public int HeadDim { get; init; } = 64;
    /// <summary>Value head dimension.</summary>
    public int ValueDim { get; init; } = 64;
    /// <summary>Seed of the input generator.</summary>
    public int Seed { get; init; } = 1;
    /// <summary>Inputs are uniform in <c>[-InputScale, InputScale]</c> (queries: see <see cref="QueryScale"/>).</summary>
    public double InputScale { get; init; } = 1.0;
    /// <summary>
    /// Queries are uniform in <c>[-QueryScale, QueryScale]</c> when set (null: <see cref="InputScale"/>). Spec token
    /// <c>qamp=</c>. Small keys and values with queries of the inverse magnitude keep the scores near magnitude 1, so
    /// a wrong score still moves the output (with all three small, softmax is nearly flat).
    /// </summary>
    public double? QueryScale { get; init; }
    /// <summary>The magnitude the queries are drawn at: <see cref="QueryScale"/>, else <see cref="InputScale"/>.</summary>
    internal double QueryMagnitude => QueryScale ?? InputScale;
    /// <summary>Flash options; tensor-valued ones given here are the caller's host tensors and have no text form.</summary>
    public FlashOptions Flash { get; init; } = FlashOptions.Default;
    /// <summary>
    /// Option tensors generated for this case by <see cref="FlashOptionSpec.Build"/> (ALiBi slopes, dense and low-rank
    /// bias, sinks; its softcap and sigmoid must be left unset: those live in <see cref="Flash"/>), or null. They have a
    /// text form (spec tokens <c>alibi</c>, <c>bias</c>, <c>lowrank4</c>, <c>sinks</c>, ...).
    /// </summary>
    public FlashOptionSpec? OptionTensors { get; init; }
    /// <summary>
    /// Run through <see cref="AttentionContext.FlashKvCache"/> instead of <see cref="AttentionContext.Flash"/>: K and V
    /// are a full contiguous cache (<c>CacheSeqLens[b] = Nk</c>, nothing appended), which computes the same attention
    /// through the decode kernels. Spec token <c>kvcache</c>. Such a case behaves as the <see cref="KvCacheCase"/>
    /// <see cref="ToKvCacheCase"/> returns.
    /// </summary>
    public bool KvCache { get; init; }

    /// <summary>The flash family: plain flash specs, <c>kvcache</c> ones (<see cref="KvCacheCase"/>) and <c>split=</c> ones (<see cref="SplitKeysCase"/>).</summary>
    public static CaseFamily Registration { get; } = new("flash",
        "exact attention (Flash), KV-cache decoding (FlashKvCache) and split-KV + MergeStates", FamilyGrammar, ParseFamily, HasKernels: true, VerifySpecs)
    {
        Sample = random => new CaseSampler(random.Next(), allowWindows: true, allowKvCache: true) { AllowOptionTensors = true, AllowCacheLayouts = true }.NextCase(),
    };

    /// <summary>A flash case with equal query and key lengths and head dims.</summary>
    public static AttentionCase ForFlash(int batch, int heads, int length, int headDim, bool causal = false, ElementType type = ElementType.Float32, int seed = 1) =>
        new()
        {
            Family = AttentionFamily.Flash, ElementType = type, Batch = batch, QueryHeads = heads, KeyValueHeads = heads,
            QueryLength = length, KeyLength = length, HeadDim = headDim, ValueDim = headDim, Seed = seed,
            Flash = new FlashOptions { Causal = causal },
        };

    /// <summary>This case as the decode family's case: a full contiguous cache of Nk tokens, nothing appended.</summary>
    public KvCacheCase ToKvCacheCase() => new() { Attention = this with { KvCache = false } };

    string IAttentionCase.FamilyName => Registration.Name;

    /// <inheritdoc/>
    public string KernelName => KvCache ? ToKvCacheCase().KernelName : "flash";

    /// <inheritdoc/>
    public CaseSizes Sizes => new(Batch, QueryHeads, KeyValueHeads, QueryLength, KeyLength, HeadDim, ValueDim, Layout);

    /// <inheritdoc/>
    public bool IsMemoryBound => QueryLength <= DecodeQueryRows;

    /// <summary>
    /// Makes this case's kernel call on <paramref name="context"/> with the given (placed) tensors: <see cref="AttentionContext.Flash"/>,
    /// or <see cref="AttentionContext.FlashKvCache"/> when <see cref="KvCache"/> is set.
    /// </summary>
    public void Invoke(AttentionContext context, in TensorView query, in TensorView key, in TensorView value, in TensorView output, FlashOptions options, in TensorView? logSumExp)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (!KvCache)
        {
            context.Flash(query, key, value, output, options, logSumExp);
            return;
        }
        var lengths = new int[Batch];
        Array.Fill(lengths, KeyLength);
        context.FlashKvCache(query, key, value, output, new KvCacheOptions { CacheSeqLens = lengths }, options, logSumExp);
    }

    /// <inheritdoc/>
    public void Invoke(AttentionContext context, CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(tensors);
        if (KvCache)
        {
            ToKvCacheCase().Invoke(context, tensors);
            return;
        }
        context.Flash(tensors.Query, tensors.Key, tensors.Value, tensors.Output, OptionsFor(tensors), tensors.LogSumExp);
    }

    /// <summary>
    /// <see cref="Flash"/> with its tensor-valued options taken from <paramref name="tensors"/> where it holds them
    /// (so placed copies reach the kernel), else as <see cref="Flash"/> gives them.
    /// </summary>
    public FlashOptions OptionsFor(CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var o = Flash;
        var slopes = tensors.Find(AlibiSlopesName);
        var bias = tensors.Find(BiasName);
        var u = tensors.Find(LowRankUName);
        var w = tensors.Find(LowRankWName);
        var sinks = tensors.Find(SinksName);
        if (slopes is null && bias is null && u is null && sinks is null) return o;
        return o with
        {
            AlibiSlopes = slopes ?? o.AlibiSlopes,
            Bias = bias ?? o.Bias,
            LowRankBias = u is { } lu && w is { } lw ? new LowRankBias(lu, lw) : o.LowRankBias,
            Sinks = sinks ?? o.Sinks,
        };
    }

    /// <summary>
    /// Allocates host tensors holding this case's inputs (Q, K, V drawn from <see cref="Seed"/>), its option tensors
    /// (those of <see cref="Flash"/> as given, those of <see cref="OptionTensors"/> generated) and zeroed outputs
    /// (O and the float32 LSE). A <see cref="KvCache"/> case gets <see cref="KvCacheCase"/>'s tensors.
    /// </summary>
    /// <exception cref="NotSupportedException"><see cref="Family"/> is not Flash (other families have their own case types).</exception>
    /// <exception cref="ArgumentException">The case is not a valid problem.</exception>
    public CaseTensors CreateTensors()
    {
        if (Family != AttentionFamily.Flash)
            throw new NotSupportedException($"AttentionCase describes flash problems; {FamilyName(Family)} cases are {Family}Case (see CaseFamilies).");
        if (Problem() is { } problem) throw new ArgumentException($"The case \"{this}\" is not a valid problem: {problem}.", "case");
        if (KvCache) return ToKvCacheCase().CreateTensors();
        var random = new Random(Seed);
        var query = CaseData.Random(ElementType, [Batch, QueryHeads, QueryLength, HeadDim], random, QueryMagnitude, Layout);
        var key = CaseData.Random(ElementType, [Batch, KeyValueHeads, KeyLength, HeadDim], random, InputScale, Layout);
        var value = CaseData.Random(ElementType, [Batch, KeyValueHeads, KeyLength, ValueDim], random, InputScale, Layout);
        var output = CaseData.Random(ElementType, [Batch, QueryHeads, QueryLength, ValueDim], null, 0, Layout);
        var lse = CaseData.Zeros(ElementType.Float32, Batch, QueryHeads, QueryLength);
        return new CaseTensors([
            new(CaseTensors.QueryName, query, CaseTensorRole.Input), new(CaseTensors.KeyName, key, CaseTensorRole.Input),
            new(CaseTensors.ValueName, value, CaseTensorRole.Input), .. OptionTensorList(),
            new(CaseTensors.OutputName, output, CaseTensorRole.Output), new(CaseTensors.LogSumExpName, lse, CaseTensorRole.Output),
        ]);
    }

    /// <summary>The option tensors of <see cref="Flash"/> and the ones <see cref="OptionTensors"/> generates, named.</summary>
    internal IEnumerable<CaseTensor> OptionTensorList()
    {
        var o = Flash;
        if (OptionTensors is { } spec)
        {
            var built = spec.Build(this);
            o = o with
            {
                AlibiSlopes = built.AlibiSlopes ?? o.AlibiSlopes, Bias = built.Bias ?? o.Bias,
                LowRankBias = built.LowRankBias ?? o.LowRankBias, Sinks = built.Sinks ?? o.Sinks,
            };
        }
        if (o.AlibiSlopes is { } slopes) yield return new(AlibiSlopesName, slopes, CaseTensorRole.Option);
        if (o.Bias is { } bias) yield return new(BiasName, bias, CaseTensorRole.Option);
        if (o.LowRankBias is { } lowRank)
        {
            yield return new(LowRankUName, lowRank.U, CaseTensorRole.Option);
            yield return new(LowRankWName, lowRank.W, CaseTensorRole.Option);
        }
        if (o.Sinks is { } sinks) yield return new(SinksName, sinks, CaseTensorRole.Option);
    }

    /// <summary>The validated problem this case describes.</summary>
    public FlashProblem CreateFlashProblem(CaseTensors tensors) =>
        FlashProblem.Create(tensors.Query, tensors.Key, tensors.Value, tensors.Output, OptionsFor(tensors), tensors.LogSumExp);

    /// <inheritdoc/>
    public ReferenceResult ExactReference(CaseTensors tensors) => KvCache
        ? ToKvCacheCase().ExactReference(tensors)
        : Reference.Flash(tensors.Query, tensors.Key, tensors.Value, OptionsFor(tensors));

    /// <inheritdoc/>
    public ReferenceResult NaiveReference(CaseTensors tensors) => KvCache
        ? ToKvCacheCase().NaiveReference(tensors)
        : Reference.FlashNaive(tensors.Query, tensors.Key, tensors.Value, OptionsFor(tensors), ElementType);

    /// <inheritdoc/>
    public ReferenceCheck Check(CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        if (KvCache) return ToKvCacheCase().Check(tensors);
        return CaseVerifier.CompareToReference(ExactReference(tensors), NaiveReference(tensors), tensors.Output, tensors.LogSumExp,
            ElementType, CaseData.MaxAbs(tensors.Value));
    }

    /// <summary>FLOPs on visible pairs: (2 Dqk + 2 Dv) per visible (query, key) pair (DESIGN.md).</summary>
    public double Flops()
    {
        long pairs = 0;
        for (int i = 0; i < QueryLength; i++)
        {
            var (s, e) = FlashProblem.VisibleKeys(i, QueryLength, KeyLength, Flash.Causal, Flash.WindowLeft, Flash.WindowRight);
            pairs += e - s;
        }
        return (double)pairs * Batch * QueryHeads * (2.0 * HeadDim + 2.0 * ValueDim);
    }

    /// <summary>Bytes of Q, K, V and O one call reads and writes at least once.</summary>
    public double MinimumBytes() =>
        (double)ElementType.SizeOf() * Batch *
        ((double)QueryHeads * QueryLength * (HeadDim + ValueDim) + (double)KeyValueHeads * KeyLength * (HeadDim + ValueDim));

    IEnumerable<IAttentionCase> IAttentionCase.Shrink() => CaseSampler.Shrink(this);

    /// <summary>A compact one-line description, e.g. <c>flash f32 B1 H8/8 N512x512 D64/64 causal seed=1</c>.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"{Family.ToString().ToLowerInvariant()} {TypeName(ElementType)} B{Batch} H{QueryHeads}/{KeyValueHeads} N{QueryLength}x{KeyLength} D{HeadDim}/{ValueDim}");
        if (Layout == TensorLayout.SequenceFirst) sb.Append(" bnhd");
        if (KvCache) sb.Append(" kvcache");
        if (Flash.Causal) sb.Append(" causal");
        if (Flash.WindowLeft >= 0 || Flash.WindowRight >= 0) sb.Append(CultureInfo.InvariantCulture, $" window({Flash.WindowLeft},{Flash.WindowRight})");
        if (Flash.Scale is float scale) sb.Append(CultureInfo.InvariantCulture, $" scale={scale:R}");
        if (OptionTensors is { } spec) sb.Append(' ').Append(spec.ToSpecTokens());
        if (InputScale != 1.0) sb.Append(CultureInfo.InvariantCulture, $" amp={InputScale:R}");
        if (QueryScale is double queryScale) sb.Append(CultureInfo.InvariantCulture, $" qamp={queryScale:R}");
        sb.Append(CultureInfo.InvariantCulture, $" seed={Seed}");
        return sb.ToString();
    }

    /// <summary>Short dtype names used in reports: f32, f16, bf16.</summary>
    public static string TypeName(ElementType type) => type switch
    {
        ElementType.Float32 => "f32",
        ElementType.Float16 => "f16",
        _ => "bf16",
    };
}
