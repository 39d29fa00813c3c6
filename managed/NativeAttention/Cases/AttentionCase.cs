// One description of an attention problem (family, shapes, options, dtype, seed) shared by the tests,
// the benchmarks and the command-line tool, so a failing fuzz case, a benchmark row and a test agree.
using System.Globalization;
using System.Text;

namespace NativeAttention;

/// <summary>The four kernel families.</summary>
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
/// A reproducible attention problem: everything needed to build its inputs, run it on any backend, run the
/// float64 reference and count its FLOPs. Inputs are drawn uniformly from <c>[-InputScale, InputScale]</c> by a
/// generator seeded with <see cref="Seed"/>.
/// </summary>
public sealed partial record AttentionCase
{
    /// <summary>The family.</summary>
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
    /// <summary>Inputs are uniform in <c>[-InputScale, InputScale]</c>.</summary>
    public double InputScale { get; init; } = 1.0;
    /// <summary>Flash options (family Flash).</summary>
    public FlashOptions Flash { get; init; } = FlashOptions.Default;
    /// <summary>
    /// Run through <see cref="AttentionContext.FlashKvCache"/> instead of <see cref="AttentionContext.Flash"/>: K and V
    /// are a full contiguous cache (<c>CacheSeqLens[b] = Nk</c>, nothing appended), which computes the same attention
    /// through the decode kernels. Spec token <c>kvcache</c>.
    /// </summary>
    public bool KvCache { get; init; }

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

    /// <summary>A flash case with equal query and key lengths and head dims.</summary>
    public static AttentionCase ForFlash(int batch, int heads, int length, int headDim, bool causal = false, ElementType type = ElementType.Float32, int seed = 1) =>
        new()
        {
            Family = AttentionFamily.Flash, ElementType = type, Batch = batch, QueryHeads = heads, KeyValueHeads = heads,
            QueryLength = length, KeyLength = length, HeadDim = headDim, ValueDim = headDim, Seed = seed,
            Flash = new FlashOptions { Causal = causal },
        };

    /// <summary>Allocates host tensors holding this case's inputs, and zeroed outputs.</summary>
    public CaseTensors CreateTensors()
    {
        if (Family != AttentionFamily.Flash)
            throw new NotSupportedException($"AttentionCase cannot generate {Family} inputs yet.");
        var random = new Random(Seed);
        var query = Allocate(Batch, QueryHeads, QueryLength, HeadDim, random);
        var key = Allocate(Batch, KeyValueHeads, KeyLength, HeadDim, random);
        var value = Allocate(Batch, KeyValueHeads, KeyLength, ValueDim, random);
        var output = Allocate(Batch, QueryHeads, QueryLength, ValueDim, null);
        var lse = TensorView.FromMemory(new float[(long)Batch * QueryHeads * QueryLength].AsMemory(), Batch, QueryHeads, QueryLength);
        return new CaseTensors(query, key, value, output, lse);
    }

    /// <summary>The validated problem this case describes.</summary>
    public FlashProblem CreateFlashProblem(CaseTensors tensors) =>
        FlashProblem.Create(tensors.Query, tensors.Key, tensors.Value, tensors.Output, Flash, tensors.LogSumExp);

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
        if (InputScale != 1.0) sb.Append(CultureInfo.InvariantCulture, $" amp={InputScale:R}");
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

    private TensorView Allocate(int b, int h, int n, int d, Random? random)
    {
        long count = (long)b * h * n * d;
        var values = new double[count];
        if (random is not null)
            for (long i = 0; i < count; i++) values[i] = (random.NextDouble() * 2 - 1) * InputScale;
        TensorView view = ElementType switch
        {
            ElementType.Float32 => Create(new float[count]),
            ElementType.Float16 => Create(new Half[count]),
            _ => Create(new BFloat16[count]),
        };
        // Fill in canonical [B, H, N, D] order whatever the memory layout.
        view.CopyFrom(values);
        return view;

        TensorView Create<T>(T[] storage) where T : unmanaged => Layout == TensorLayout.HeadsFirst
            ? TensorView.FromMemory(storage.AsMemory(), b, h, n, d)
            : TensorView.FromMemory(storage.AsMemory(), b, n, h, d).Permute(0, 2, 1, 3);
    }
}

/// <summary>Host tensors of one case.</summary>
/// <param name="Query">Q <c>[B, Hq, Nq, Dqk]</c>.</param>
/// <param name="Key">K <c>[B, Hkv, Nk, Dqk]</c>.</param>
/// <param name="Value">V <c>[B, Hkv, Nk, Dv]</c>.</param>
/// <param name="Output">O <c>[B, Hq, Nq, Dv]</c>, zeroed.</param>
/// <param name="LogSumExp">float32 LSE <c>[B, Hq, Nq]</c>.</param>
public sealed record CaseTensors(TensorView Query, TensorView Key, TensorView Value, TensorView Output, TensorView LogSumExp);
