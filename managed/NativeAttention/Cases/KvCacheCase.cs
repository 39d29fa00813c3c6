// The decode family's case: a flash problem run through FlashKvCache against a KV cache (contiguous or paged, of
// some capacity, with ragged per-element lengths and an optional in-place append), checked against the float64
// KV-cache reference. Written as a flash spec with the `kvcache` token and its cache tokens.
using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace NativeAttention;

/// <summary>
/// A reproducible <see cref="AttentionContext.FlashKvCache"/> problem. <see cref="Attention"/> gives the query side
/// (B, Hq, Nq, Dqk, Dv, dtype, layout, options, seed) and, as its key length Nk, the number of keys batch element 0
/// attends (<c>L_0 = Nk</c>); the cache holds <see cref="CacheCapacity"/> positions per element (paged in blocks of
/// <see cref="PageSize"/> under a shuffled block table), with random values past each element's length that a kernel
/// must never read. With <see cref="NewTokens"/> the last tokens of each element are appended through
/// <see cref="KvCacheOptions.NewKey"/> / <see cref="KvCacheOptions.NewValue"/> (the caches are then outputs too).
/// </summary>
public sealed record KvCacheCase : IAttentionCase
{
    /// <summary>Names of the decode tensors in <see cref="CaseTensors"/>.</summary>
    public const string KeyCacheName = "keyCache", ValueCacheName = "valueCache", NewKeyName = "cache.NewKey", NewValueName = "cache.NewValue";

    /// <summary>The attention problem: query side, options, and Nk = the keys element 0 attends. Its <see cref="AttentionCase.KvCache"/> is ignored.</summary>
    public required AttentionCase Attention { get; init; }

    /// <summary>Cache positions per batch element (contiguous) or at least that many (paged, rounded up to whole pages); 0 means Nk.</summary>
    public int CacheCapacity { get; init; }

    /// <summary>Tokens per block of a paged cache; 0 means a contiguous cache.</summary>
    public int PageSize { get; init; }

    /// <summary>Tokens appended per batch element before attending (at most the shortest attended length); 0 means none.</summary>
    public int NewTokens { get; init; }

    /// <summary>Batch elements after the first attend a seeded length in <c>[NewTokens, Nk]</c> (0 allowed: rows that see no key) instead of Nk.</summary>
    public bool Ragged { get; init; }

    string IAttentionCase.FamilyName => AttentionCase.Registration.Name;

    /// <inheritdoc/>
    public string KernelName => "flash kvcache";

    /// <inheritdoc/>
    public ElementType ElementType => Attention.ElementType;

    /// <inheritdoc/>
    public int Seed => Attention.Seed;

    /// <inheritdoc/>
    public CaseSizes Sizes => Attention.Sizes;

    /// <inheritdoc/>
    public bool IsMemoryBound => Attention.IsMemoryBound;

    /// <summary>Cache positions per batch element.</summary>
    public int Capacity
    {
        get
        {
            int capacity = Math.Max(CacheCapacity, Attention.KeyLength);
            return PageSize > 0 ? (capacity + PageSize - 1) / PageSize * PageSize : capacity;
        }
    }

    /// <summary>Keys each batch element attends, <c>L_b</c> (cached tokens plus the appended ones).</summary>
    public int[] AttendedLengths()
    {
        var a = Attention;
        var lengths = new int[a.Batch];
        var random = Ragged ? new Random(unchecked(a.Seed * 7919 + 17)) : null;
        for (int b = 0; b < lengths.Length; b++)
            lengths[b] = b == 0 || random is null ? a.KeyLength : random.Next(NewTokens, a.KeyLength + 1);
        return lengths;
    }

    /// <summary>The cache options of a run on <paramref name="tensors"/> (appended tokens taken from them).</summary>
    public KvCacheOptions CacheOptions(CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var cached = AttendedLengths();
        for (int b = 0; b < cached.Length; b++) cached[b] -= NewTokens;
        return new KvCacheOptions
        {
            CacheSeqLens = cached,
            NewKey = tensors.Find(NewKeyName),
            NewValue = tensors.Find(NewValueName),
            BlockTable = PageSize > 0 ? BlockTable() : ReadOnlyMemory<int>.Empty,
            PageSize = PageSize,
        };
    }

    /// <summary>The shuffled block table of a paged cache, <c>[B, Capacity / PageSize]</c> row-major.</summary>
    public int[] BlockTable()
    {
        if (PageSize == 0) return [];
        int blocks = Attention.Batch * (Capacity / PageSize);
        return CaseData.Permutation(blocks, new Random(unchecked(Attention.Seed * 31 + 5)));
    }

    /// <inheritdoc/>
    /// <remarks>
    /// Q, K and V values are drawn as <see cref="Attention"/> draws them (Q, then every cache position of K, then of V,
    /// in canonical order of the contiguous cache), so a case without paging, capacity or append sees the very inputs
    /// its flash case sees.
    /// </remarks>
    public CaseTensors CreateTensors()
    {
        if (Problem() is { } problem) throw new ArgumentException($"The case \"{ToSpec()}\" is not a valid problem: {problem}.", "case");
        var a = Attention;
        int capacity = Capacity;
        var random = new Random(a.Seed);
        var query = CaseData.Random(a.ElementType, [a.Batch, a.QueryHeads, a.QueryLength, a.HeadDim], random, a.QueryMagnitude, a.Layout);
        // The logical caches [B, Hkv, Capacity, D], then copied into pages when paged.
        var keys = CaseData.Random(a.ElementType, [a.Batch, a.KeyValueHeads, capacity, a.HeadDim], random, a.InputScale, a.Layout);
        var values = CaseData.Random(a.ElementType, [a.Batch, a.KeyValueHeads, capacity, a.ValueDim], random, a.InputScale, a.Layout);
        var output = CaseData.Random(a.ElementType, [a.Batch, a.QueryHeads, a.QueryLength, a.ValueDim], null, 0, a.Layout);
        var lse = CaseData.Zeros(ElementType.Float32, a.Batch, a.QueryHeads, a.QueryLength);
        var tensors = new List<CaseTensor> { new(CaseTensors.QueryName, query, CaseTensorRole.Input) };
        var cacheRole = NewTokens > 0 ? CaseTensorRole.Output : CaseTensorRole.Input;
        int[] attended = AttendedLengths();
        if (NewTokens > 0)
        {
            // The appended tokens are the last NewTokens of each element's sequence; the cache slots they go to get other values.
            var newKey = CaseData.Zeros(a.ElementType, a.Batch, a.KeyValueHeads, NewTokens, a.HeadDim);
            var newValue = CaseData.Zeros(a.ElementType, a.Batch, a.KeyValueHeads, NewTokens, a.ValueDim);
            for (int b = 0; b < a.Batch; b++)
                for (int h = 0; h < a.KeyValueHeads; h++)
                    for (int t = 0; t < NewTokens; t++)
                    {
                        int position = attended[b] - NewTokens + t;
                        for (int d = 0; d < a.HeadDim; d++)
                        {
                            newKey.SetDouble(keys.GetDouble(b, h, position, d), b, h, t, d);
                            keys.SetDouble(-keys.GetDouble(b, h, position, d), b, h, position, d);
                        }
                        for (int d = 0; d < a.ValueDim; d++)
                        {
                            newValue.SetDouble(values.GetDouble(b, h, position, d), b, h, t, d);
                            values.SetDouble(-values.GetDouble(b, h, position, d), b, h, position, d);
                        }
                    }
            tensors.Add(new(NewKeyName, newKey, CaseTensorRole.Input));
            tensors.Add(new(NewValueName, newValue, CaseTensorRole.Input));
        }
        tensors.Add(new(KeyCacheName, PageSize > 0 ? Paged(keys) : keys, cacheRole));
        tensors.Add(new(ValueCacheName, PageSize > 0 ? Paged(values) : values, cacheRole));
        tensors.AddRange(a.OptionTensorList());
        tensors.Add(new(CaseTensors.OutputName, output, CaseTensorRole.Output));
        tensors.Add(new(CaseTensors.LogSumExpName, lse, CaseTensorRole.Output));
        return new CaseTensors(tensors);
    }

    /// <summary>The logical cache <c>[B, Hkv, Capacity, D]</c> copied into pages <c>[B x Capacity / PageSize, Hkv, PageSize, D]</c> under <see cref="BlockTable"/>.</summary>
    private TensorView Paged(TensorView logical)
    {
        int batch = logical.Shape[0], heads = logical.Shape[1], capacity = logical.Shape[2], d = logical.Shape[3];
        int perSequence = capacity / PageSize;
        var table = BlockTable();
        var pages = CaseData.Random(logical.ElementType, [batch * perSequence, heads, PageSize, d], null, 0, Attention.Layout);
        for (int b = 0; b < batch; b++)
            for (int p = 0; p < capacity; p++)
            {
                int block = table[b * perSequence + p / PageSize], slot = p % PageSize;
                for (int h = 0; h < heads; h++)
                    for (int i = 0; i < d; i++) pages.SetDouble(logical.GetDouble(b, h, p, i), block, h, slot, i);
            }
        return pages;
    }

    /// <inheritdoc/>
    public void Invoke(AttentionContext context, CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(tensors);
        context.FlashKvCache(tensors.Query, tensors[KeyCacheName], tensors[ValueCacheName], tensors.Output, CacheOptions(tensors),
            Attention.OptionsFor(tensors), tensors.LogSumExp);
    }

    /// <inheritdoc/>
    public ReferenceResult ExactReference(CaseTensors tensors) =>
        Reference.FlashKvCache(tensors.Query, tensors[KeyCacheName], tensors[ValueCacheName], CacheOptions(tensors), Attention.OptionsFor(tensors));

    /// <inheritdoc/>
    public ReferenceResult NaiveReference(CaseTensors tensors) =>
        Reference.FlashKvCacheNaive(tensors.Query, tensors[KeyCacheName], tensors[ValueCacheName], CacheOptions(tensors), Attention.OptionsFor(tensors), ElementType);

    /// <inheritdoc/>
    public ReferenceCheck Check(CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        // The value scale: the largest value any row may attend (cache and appended tokens).
        double valueScale = Math.Max(CaseData.MaxAbs(tensors[ValueCacheName]), tensors.Find(NewValueName) is { } nv ? CaseData.MaxAbs(nv) : 0);
        return CaseVerifier.CompareToReference(ExactReference(tensors), NaiveReference(tensors), tensors.Output, tensors.LogSumExp, ElementType, valueScale);
    }

    /// <summary>FLOPs on visible pairs, each batch element against its own attended length.</summary>
    public double Flops()
    {
        var a = Attention;
        double total = 0;
        foreach (int length in AttendedLengths())
        {
            long pairs = 0;
            for (int i = 0; i < a.QueryLength && length > 0; i++)
            {
                var (s, e) = FlashProblem.VisibleKeys(i, a.QueryLength, length, a.Flash.Causal, a.Flash.WindowLeft, a.Flash.WindowRight);
                pairs += Math.Max(0, e - s);
            }
            total += (double)pairs * a.QueryHeads * (2.0 * a.HeadDim + 2.0 * a.ValueDim);
        }
        return total;
    }

    /// <summary>Bytes of Q and O, and of every attended key and value (read once), plus the appended tokens (read and written).</summary>
    public double MinimumBytes()
    {
        var a = Attention;
        double attended = AttendedLengths().Sum(l => (double)l);
        return (double)a.ElementType.SizeOf() * (
            (double)a.Batch * a.QueryHeads * a.QueryLength * (a.HeadDim + a.ValueDim)
            + attended * a.KeyValueHeads * (a.HeadDim + a.ValueDim)
            + (double)a.Batch * NewTokens * a.KeyValueHeads * (a.HeadDim + a.ValueDim));
    }

    /// <inheritdoc/>
    public string ToSpec()
    {
        var decode = new StringBuilder("kvcache");
        if (CacheCapacity != 0) decode.Append(" cache=").Append(CacheCapacity);
        if (PageSize != 0) decode.Append(" page=").Append(PageSize);
        if (NewTokens != 0) decode.Append(" new=").Append(NewTokens);
        if (Ragged) decode.Append(" ragged");
        return (Attention with { KvCache = false }).Spec(decode.ToString(), null);
    }

    /// <summary>The spec.</summary>
    public override string ToString() => ToSpec();

    /// <inheritdoc/>
    public IEnumerable<IAttentionCase> Shrink()
    {
        if (NewTokens > 0) yield return this with { NewTokens = 0 };
        if (PageSize > 0) yield return this with { PageSize = 0 };
        if (Ragged) yield return this with { Ragged = false };
        if (CacheCapacity > 0) yield return this with { CacheCapacity = 0 };
        foreach (var smaller in CaseSampler.Shrink(Attention with { KvCache = false }))
        {
            var candidate = this with { Attention = smaller, NewTokens = Math.Min(NewTokens, smaller.KeyLength) };
            if (candidate.Problem() is null) yield return candidate;
        }
        yield return Attention with { KvCache = false };
    }

    /// <summary>Why this is not a valid problem, or null.</summary>
    internal string? Problem()
    {
        ArgumentNullException.ThrowIfNull(Attention);
        if ((Attention with { KvCache = false }).Problem() is { } problem) return problem;
        if (Attention.Family != AttentionFamily.Flash) return "kvcache applies to flash cases only";
        if (CacheCapacity < 0 || PageSize < 0 || NewTokens < 0) return "cache=, page= and new= take positive numbers";
        if (CacheCapacity != 0 && CacheCapacity < Attention.KeyLength)
            return $"cache={CacheCapacity} is smaller than the {Attention.KeyLength} attended keys";
        if (NewTokens > Attention.KeyLength) return $"new={NewTokens} exceeds the {Attention.KeyLength} attended keys";
        var o = Attention.Flash;
        var t = Attention.OptionTensors;
        if (o.Bias is not null || o.LowRankBias is not null || t is { DenseBias: true } || t is { LowRank: > 0 })
            return "a KV cache takes ALiBi and sinks, not a dense or low-rank bias (their shape fixes Nk)";
        return null;
    }

    /// <summary>
    /// <paramref name="attention"/> run through FlashKvCache with a random cache layout: half the time a larger capacity,
    /// a third of the time paged (pages of 1 to 64 tokens), a third of the time an append of 1..8 tokens, and ragged
    /// lengths for half the batched cases. A dense or low-rank bias, which a cache does not take, is dropped.
    /// </summary>
    public static KvCacheCase Sample(Random random, AttentionCase attention)
    {
        ArgumentNullException.ThrowIfNull(random);
        ArgumentNullException.ThrowIfNull(attention);
        var a = attention with
        {
            KvCache = false,
            Flash = attention.Flash with { Bias = null, LowRankBias = null },
            OptionTensors = attention.OptionTensors is { } t && (t.DenseBias || t.LowRank > 0)
                ? (t with { DenseBias = false, LowRank = 0 }) is var kept && (kept.AlibiRank > 0 || kept.Sinks) ? kept : null
                : attention.OptionTensors,
        };
        return new KvCacheCase
        {
            Attention = a,
            CacheCapacity = random.Next(2) == 0 ? a.KeyLength + random.Next(1, 65) : 0,
            PageSize = random.Next(3) == 0 ? new[] { 1, 3, 16, 64 }[random.Next(4)] : 0,
            NewTokens = random.Next(3) == 0 ? random.Next(1, Math.Min(8, a.KeyLength) + 1) : 0,
            Ragged = a.Batch > 1 && random.Next(2) == 0,
        };
    }

    /// <summary>Reads a flash spec with the kvcache token (see <see cref="AttentionCase.SpecGrammar"/>).</summary>
    public static bool TryParse(string spec, [NotNullWhen(true)] out KvCacheCase? result, [NotNullWhen(false)] out string? error)
    {
        result = null;
        if (!AttentionCaseSpec.TryParse(spec, out var parsed, out error)) return false;
        result = parsed as KvCacheCase;
        if (result is null) error = $"Case spec \"{spec.Trim()}\" is not a KV-cache case (no kvcache token).";
        return result is not null;
    }
}
