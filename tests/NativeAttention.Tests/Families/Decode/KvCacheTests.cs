// KV-cache decoding properties, written once and bound to every backend below.
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace NativeAttention.Tests;

/// <summary>Rotary embedding of a KV-cache case.</summary>
public enum RotaryMode { None, HalfSplit, Interleaved }

/// <summary>
/// A random KV-cache problem: cache lengths, the append, paging, rotary, masks, modifiers and splits. Keys and values
/// (cached and new) are uniform in <c>[-Amplitude, Amplitude]</c>, queries in <c>[-1/Amplitude, 1/Amplitude]</c>: small
/// keys meet large queries, so the scores keep magnitude 1 and a wrong score still moves the output.
/// </summary>
public sealed record KvCase(
    ElementType Type, int[] CacheLengths, int KeyValueHeads, int GroupSize, int QueryLength, int NewLength, int HeadDim, int ValueDim,
    int PageSize, RotaryMode Rotary, int RotaryDim, bool Causal, int WindowLeft, int WindowRight, float Softcap, bool Sinks, int Alibi,
    int? Splits, int Seed, double Amplitude = 1.0)
{
    public int Batch => CacheLengths.Length;
    public int QueryHeads => KeyValueHeads * GroupSize;
    public bool Paged => PageSize > 0;
    public int KeyLength(int b) => CacheLengths[b] + NewLength;

    public override string ToString() =>
        $"kvcache {AttentionCase.TypeName(Type)} cache[{string.Join(",", CacheLengths)}] +{NewLength} Nq{QueryLength} H{QueryHeads}/{KeyValueHeads} D{HeadDim}/{ValueDim}" +
        $"{(Paged ? $" page{PageSize}" : "")} rotary={Rotary}/{RotaryDim}{(Causal ? " causal" : "")} window({WindowLeft},{WindowRight})" +
        $"{(Softcap > 0 ? $" softcap={Softcap}" : "")}{(Sinks ? " sinks" : "")}{(Alibi > 0 ? $" alibi{Alibi}" : "")} splits={Splits?.ToString() ?? "auto"}" +
        $"{(Amplitude != 1.0 ? $" amp={Amplitude}" : "")} seed={Seed}";
}

/// <summary>The tensors of one <see cref="KvCase"/>, built from logical per-position data so paged and contiguous caches can hold the same tokens.</summary>
public sealed class KvData
{
    public required TensorView Query, KeyCache, ValueCache, Output, LogSumExp;
    public required KvCacheOptions Cache;
    public required FlashOptions Options;

    /// <summary>
    /// Builds a case's tensors. Cache slots past <c>CacheSeqLens[b]</c> hold NaN, so a kernel that reads them (or
    /// reads a block the table does not give) poisons its output.
    /// </summary>
    /// <param name="c">The case.</param>
    /// <param name="paged">Lay the cache out in blocks of <c>c.PageSize</c> through a shuffled block table.</param>
    /// <param name="extraTokens">Room for this many more tokens per element (later appends).</param>
    public static KvData Create(KvCase c, bool paged, int extraTokens = 0, double[]? logicalKeys = null, double[]? logicalValues = null, double[]? queries = null, double[]? newKeys = null, double[]? newValues = null)
    {
        var random = new Random(c.Seed);
        int b = c.Batch, hkv = c.KeyValueHeads, d = c.HeadDim, dv = c.ValueDim;
        int capacity = c.CacheLengths.Select((_, i) => c.KeyLength(i)).Max() + 3 + extraTokens;
        logicalKeys ??= Values(random, (long)b * hkv * capacity * d, c.Amplitude);
        logicalValues ??= Values(random, (long)b * hkv * capacity * dv, c.Amplitude);
        var query = TestTensors.Zeros(c.Type, b, c.QueryHeads, c.QueryLength, d);
        query.CopyFrom(queries ?? Values(random, query.ElementCount, 1 / c.Amplitude));

        int[]? table = null;
        TensorView keyCache, valueCache;
        if (paged)
        {
            int page = c.PageSize, perSequence = (capacity + page - 1) / page;
            var used = Enumerable.Range(0, b).Select(i => (c.KeyLength(i) + extraTokens + page - 1) / page).ToArray();
            int blocks = used.Sum() + 2;
            var shuffle = new Random(c.Seed ^ 0xB10C);
            var order = Enumerable.Range(0, blocks).OrderBy(_ => shuffle.Next()).ToArray();
            table = new int[b * perSequence];
            Array.Fill(table, -1);
            int next = 0;
            for (int i = 0; i < b; i++)
                for (int s = 0; s < used[i]; s++) table[i * perSequence + s] = order[next++];
            keyCache = Fill(c.Type, [blocks, hkv, page, d], logicalKeys, capacity, c, (i, pos) => (table[i * perSequence + pos / page], pos % page));
            valueCache = Fill(c.Type, [blocks, hkv, page, dv], logicalValues, capacity, c, (i, pos) => (table[i * perSequence + pos / page], pos % page));
        }
        else
        {
            keyCache = Fill(c.Type, [b, hkv, capacity, d], logicalKeys, capacity, c, (i, pos) => (i, pos));
            valueCache = Fill(c.Type, [b, hkv, capacity, dv], logicalValues, capacity, c, (i, pos) => (i, pos));
        }

        TensorView? newKey = null, newValue = null;
        if (c.NewLength > 0)
        {
            newKey = TestTensors.Zeros(c.Type, b, hkv, c.NewLength, d);
            newKey.Value.CopyFrom(newKeys ?? Values(random, newKey.Value.ElementCount, c.Amplitude));
            newValue = TestTensors.Zeros(c.Type, b, hkv, c.NewLength, dv);
            newValue.Value.CopyFrom(newValues ?? Values(random, newValue.Value.ElementCount, c.Amplitude));
        }
        TensorView? cos = null, sin = null;
        if (c.Rotary != RotaryMode.None)
        {
            int positions = capacity + 2, half = c.RotaryDim / 2;
            var cosines = new float[positions * half];
            var sines = new float[positions * half];
            for (int p = 0; p < positions; p++)
                for (int i = 0; i < half; i++)
                {
                    double angle = p * Math.Pow(10000, -2.0 * i / c.RotaryDim);
                    cosines[p * half + i] = (float)Math.Cos(angle);
                    sines[p * half + i] = (float)Math.Sin(angle);
                }
            cos = TensorView.FromMemory(cosines.AsMemory(), positions, half);
            sin = TensorView.FromMemory(sines.AsMemory(), positions, half);
        }
        var options = new FlashOptions { Causal = c.Causal, WindowLeft = c.WindowLeft, WindowRight = c.WindowRight, Softcap = c.Softcap };
        var optionRandom = new Random(c.Seed ^ 0x5EED);
        if (c.Sinks)
            options = options with { Sinks = TestTensors.Uniform(ElementType.Float32, optionRandom, 2.0, [c.QueryHeads]) };
        if (c.Alibi > 0)
        {
            // Slopes uniform in [0, 0.5]: [-0.25, 0.25] shifted up.
            var slopes = TestTensors.Values(optionRandom, (c.Alibi == 2 ? b : 1) * c.QueryHeads, 0.25).Select(v => v + 0.25).ToArray();
            options = options with { AlibiSlopes = c.Alibi == 2 ? TestTensors.Of(ElementType.Float32, [b, c.QueryHeads], slopes) : TestTensors.Of(ElementType.Float32, [c.QueryHeads], slopes) };
        }
        return new KvData
        {
            Query = query, KeyCache = keyCache, ValueCache = valueCache,
            Output = TestTensors.Zeros(c.Type, b, c.QueryHeads, c.QueryLength, dv),
            LogSumExp = TensorView.FromMemory(new float[b * c.QueryHeads * c.QueryLength].AsMemory(), b, c.QueryHeads, c.QueryLength),
            Options = options,
            Cache = new KvCacheOptions
            {
                CacheSeqLens = c.CacheLengths.ToArray(), NewKey = newKey, NewValue = newValue,
                BlockTable = table ?? [], PageSize = paged ? c.PageSize : 0,
                RotaryCos = cos, RotarySin = sin, RotaryInterleaved = c.Rotary == RotaryMode.Interleaved, Splits = c.Splits,
            },
        };
    }

    internal static double[] Values(Random random, long count, double amplitude = 1.0) => TestTensors.Values(random, count, amplitude);

    /// <summary>A cache holding logical <c>[B, Hkv, capacity, D]</c> data at positions before each element's cache length, NaN elsewhere.</summary>
    private static TensorView Fill(ElementType type, int[] shape, double[] logical, int capacity, KvCase c, Func<int, int, (int Block, int Slot)> locate)
    {
        var data = new double[shape.Aggregate(1L, (x, y) => x * y)];
        Array.Fill(data, double.NaN);
        int heads = shape[1], slots = shape[2], dim = shape[3];
        for (int b = 0; b < c.Batch; b++)
            for (int h = 0; h < heads; h++)
                for (int pos = 0; pos < c.CacheLengths[b]; pos++)
                {
                    var (block, slot) = locate(b, pos);
                    Array.Copy(logical, (((long)b * heads + h) * capacity + pos) * dim, data, (((long)block * heads + h) * slots + slot) * dim, dim);
                }
        var view = TestTensors.Zeros(type, shape);
        view.CopyFrom(data);
        return view;
    }

    public void Run(AttentionContext context) => Run(context, Cache);

    /// <summary>
    /// Runs the call with <paramref name="cache"/> on <paramref name="context"/>: device backends get mirrors of every
    /// tensor (same layout), and the output, LSE and both caches (the append writes them) are copied back.
    /// </summary>
    public void Run(AttentionContext context, KvCacheOptions cache)
    {
        using var on = new OnContext(context);
        TensorView? Put(TensorView? host) => host is { } view ? on.Put(view) : null;
        var (query, keyCache, valueCache, output, lse) = (on.Put(Query), on.Put(KeyCache), on.Put(ValueCache), on.Put(Output), on.Put(LogSumExp));
        var placed = cache with { NewKey = Put(cache.NewKey), NewValue = Put(cache.NewValue), RotaryCos = Put(cache.RotaryCos), RotarySin = Put(cache.RotarySin) };
        var options = Options with { Sinks = Put(Options.Sinks), AlibiSlopes = Put(Options.AlibiSlopes) };
        context.FlashKvCache(query, keyCache, valueCache, output, placed, options, lse);
        on.Back(output, Output);
        on.Back(lse, LogSumExp);
        on.Back(keyCache, KeyCache);
        on.Back(valueCache, ValueCache);
    }

    /// <summary>Compares the outputs with the float64 reference under the error rule (call before or after <see cref="Run"/>: the reference reads only what the append does not change).</summary>
    public ReferenceCheck Check(KvCase c)
    {
        var exact = Reference.FlashKvCache(Query, KeyCache, ValueCache, Cache, Options);
        var naive = Reference.FlashKvCacheNaive(Query, KeyCache, ValueCache, Cache, Options, c.Type);
        double valueScale = ValueCache.ToDoubleArray().Where(double.IsFinite).Concat(Cache.NewValue?.ToDoubleArray() ?? []).Select(Math.Abs).DefaultIfEmpty(0).Max();
        return CaseVerifier.CompareToReference(exact, naive, Output, LogSumExp, c.Type, valueScale);
    }

    /// <summary>Cache row (batch, head, position) through the block table when paged.</summary>
    public double[] CacheRow(TensorView cache, int batch, int head, int position)
    {
        int block = batch, slot = position;
        if (!Cache.BlockTable.IsEmpty)
        {
            var t = Cache.BlockTable;
            int perSequence = t.Length / Query.Shape[0];
            block = t.Span[batch * perSequence + position / Cache.PageSize];
            slot = position % Cache.PageSize;
        }
        return cache.Slice(0, block, 1).Slice(1, head, 1).Slice(2, slot, 1).ToDoubleArray();
    }
}

/// <summary>KV-cache decoding against the float64 reference, plus paged/contiguous, decode/prefill and split metamorphic properties.</summary>
public abstract class KvCacheTests
{
    protected abstract Backend Backend { get; }

    private protected static Gen<KvCase> Cases(bool allowModifiers) =>
        from type in Gen.Elements(ElementType.Float32, ElementType.Float16, ElementType.BFloat16)
        from batch in Gen.Choose(1, 3)
        from lengths in Gen.Frequency((1, Gen.Constant(0)), (4, Gen.Choose(1, 40)), (2, Gen.Choose(60, 300))).ArrayOf(batch)
        from kvHeads in Gen.Choose(1, 2)
        from groupSize in Gen.Elements(1, 2, 4)
        from nq in Gen.Elements(1, 1, 1, 2, 3, 5)
        from nnew in Gen.Elements(0, 0, 1, 1, 2, 4)
        from dqk in Gen.Elements(16, 32, 64, 128, 13, 40)
        from dv in Gen.Frequency((3, Gen.Constant(dqk)), (1, Gen.Elements(8, 24, 64)))
        from page in Gen.Elements(0, 0, 4, 16, 32)
        from rotary in Gen.Elements(RotaryMode.None, RotaryMode.None, RotaryMode.HalfSplit, RotaryMode.Interleaved)
        from rotaryFraction in Gen.Elements(1, 2)
        from causal in Gen.Elements(false, true, true)
        from window in Gen.Frequency((3, Gen.Constant((-1, -1))), (1, Gen.Choose(0, 50).Zip(Gen.Choose(-1, 3))))
        from softcap in allowModifiers ? Gen.Frequency((4, Gen.Constant(0f)), (1, Gen.Elements(5f, 20f))) : Gen.Constant(0f)
        from sinks in allowModifiers ? Gen.Elements(false, false, true) : Gen.Constant(false)
        from alibi in allowModifiers ? Gen.Elements(0, 0, 0, 1, 2) : Gen.Constant(0)
        from splits in Gen.Elements<int?>(null, null, 1, 2, 3, 7)
        // A quarter of the cases hold small inputs: at magnitude 0.1 about 6 in 10^4 binary16 values are subnormal (around
        // where the CPU decode's SubnormalWatch moves a block to the exact widening), at 0.01 about 6 in 10^3 (it does).
        from amplitude in Gen.Frequency((6, Gen.Constant(1.0)), (1, Gen.Constant(0.1)), (1, Gen.Constant(0.01)))
        from seed in Gen.Choose(0, int.MaxValue)
        let rotaryDim = rotary == RotaryMode.None ? 0 : dqk / rotaryFraction / 2 * 2
        // Rotary places query i at L_b - Nq + i, which must not be negative.
        let cacheLengths = rotaryDim > 0 ? lengths.Select(l => Math.Max(l, nq - nnew)).ToArray() : lengths
        select new KvCase(type, cacheLengths, kvHeads, groupSize, nq, nnew, dqk, dv, page, rotaryDim > 0 ? rotary : RotaryMode.None, rotaryDim,
            causal, window.Item1, window.Item2, softcap, sinks, alibi, splits, seed, amplitude);

    [SkippableFact]
    public void KvCache_MatchesReference_AndAppendsIntoTheCache()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        Properties.Check(Cases(allowModifiers: true).ToArbitrary(), c =>
        {
            var data = KvData.Create(c, c.Paged);
            data.Run(context);
            var check = data.Check(c);
            Assert.True(check.Passed, $"{c}: {check}");
            if (c.NewLength == 0) return;
            // The new tokens sit at positions CacheSeqLens[b].. of the cache, keys rotated there, in the cache's type.
            var expectedKeys = c.Rotary == RotaryMode.None
                ? data.Cache.NewKey!.Value.ToDoubleArray()
                : Reference.ApplyRotary(data.Cache.NewKey!.Value, data.Cache.RotaryCos!.Value, data.Cache.RotarySin!.Value, c.CacheLengths, c.Rotary == RotaryMode.Interleaved);
            var newValues = data.Cache.NewValue!.Value.ToDoubleArray();
            double u = c.Type.UnitRoundoff();
            for (int b = 0; b < c.Batch; b++)
                for (int h = 0; h < c.KeyValueHeads; h++)
                    for (int t = 0; t < c.NewLength; t++)
                    {
                        var key = data.CacheRow(data.KeyCache, b, h, c.CacheLengths[b] + t);
                        var value = data.CacheRow(data.ValueCache, b, h, c.CacheLengths[b] + t);
                        long row = ((long)b * c.KeyValueHeads + h) * c.NewLength + t;
                        for (int d = 0; d < c.HeadDim; d++)
                        {
                            double expected = expectedKeys[row * c.HeadDim + d];
                            Assert.True(Math.Abs(key[d] - expected) <= 2 * u * Math.Abs(expected) + 1e-6, $"{c}: appended key {b},{h},{t},{d}: {key[d]} vs {expected}");
                        }
                        for (int d = 0; d < c.ValueDim; d++) Assert.Equal(newValues[row * c.ValueDim + d], value[d]);
                    }
        }, count: 60);
    }

    [SkippableFact]
    public void KvCache_PagedCache_EqualsContiguousCacheBitForBit()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        Properties.Check(Cases(allowModifiers: false).Select(c => c with { PageSize = c.PageSize == 0 ? 8 : c.PageSize }).ToArbitrary(), c =>
        {
            var contiguous = KvData.Create(c, paged: false);
            var paged = KvData.Create(c, paged: true);
            contiguous.Run(context);
            paged.Run(context);
            Assert.Equal(contiguous.Output.ToDoubleArray(), paged.Output.ToDoubleArray());
            Assert.Equal(contiguous.LogSumExp.ToDoubleArray(), paged.LogSumExp.ToDoubleArray());
        }, count: 25);
    }

    [SkippableFact]
    public void KvCache_DecodingOneTokenAtATime_EqualsPrefill()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var arbitrary = Cases(allowModifiers: false)
            .SelectMany(c => Gen.Choose(1, 12).Select(n => c with { QueryLength = n, NewLength = n, Causal = true, GroupSize = Math.Min(c.GroupSize, 2) }))
            .ToArbitrary();
        Properties.Check(arbitrary, c =>
        {
            int n = c.NewLength, b = c.Batch, hkv = c.KeyValueHeads, hq = c.QueryHeads;
            var prefill = KvData.Create(c, c.Paged);
            prefill.Run(context);
            double tolerance = prefill.Check(c).Tolerance;
            var queries = prefill.Query.ToDoubleArray();
            var newKeys = prefill.Cache.NewKey!.Value.ToDoubleArray();
            var newValues = prefill.Cache.NewValue!.Value.ToDoubleArray();
            var prefillOutput = prefill.Output.ToDoubleArray();

            // The same cache contents, then the tokens appended and attended one at a time.
            var step = c with { QueryLength = 1, NewLength = 1 };
            var decode = KvData.Create(step, c.Paged, extraTokens: n - 1);
            var lengths = c.CacheLengths.ToArray();
            for (int t = 0; t < n; t++)
            {
                var single = decode;
                var q = Token(queries, b, hq, n, c.HeadDim, t);
                var k = Token(newKeys, b, hkv, n, c.HeadDim, t);
                var v = Token(newValues, b, hkv, n, c.ValueDim, t);
                single.Query.CopyFrom(q);
                single.Cache.NewKey!.Value.CopyFrom(k);
                single.Cache.NewValue!.Value.CopyFrom(v);
                single.Run(context, single.Cache with { CacheSeqLens = lengths.ToArray() });
                var output = single.Output.ToDoubleArray();
                for (int bi = 0; bi < b; bi++)
                    for (int h = 0; h < hq; h++)
                        for (int d = 0; d < c.ValueDim; d++)
                        {
                            double expected = prefillOutput[(((long)bi * hq + h) * n + t) * c.ValueDim + d], actual = output[((long)bi * hq + h) * c.ValueDim + d];
                            Assert.True(Math.Abs(expected - actual) <= 2 * tolerance + 1e-6, $"{c}: token {t} batch {bi} head {h} dim {d}: decode {actual} vs prefill {expected}");
                        }
                for (int bi = 0; bi < b; bi++) lengths[bi]++;
            }
            // Both ways leave the same tokens in the cache.
            for (int bi = 0; bi < b; bi++)
                for (int h = 0; h < hkv; h++)
                    for (int p = c.CacheLengths[bi]; p < c.KeyLength(bi); p++)
                    {
                        Assert.Equal(prefill.CacheRow(prefill.KeyCache, bi, h, p), decode.CacheRow(decode.KeyCache, bi, h, p));
                        Assert.Equal(prefill.CacheRow(prefill.ValueCache, bi, h, p), decode.CacheRow(decode.ValueCache, bi, h, p));
                    }
        }, count: 15);
    }

    private static double[] Token(double[] data, int batch, int heads, int n, int dim, int t)
    {
        var token = new double[batch * heads * dim];
        for (int bh = 0; bh < batch * heads; bh++) Array.Copy(data, ((long)bh * n + t) * dim, token, (long)bh * dim, dim);
        return token;
    }

    [SkippableFact]
    public void KvCache_SplitCounts_AgreeWithinToleranceAndRepeatBitForBit()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var arbitrary = Cases(allowModifiers: true).SelectMany(c => Gen.Choose(2, 9).Select(s => (Case: c with { Splits = 1 }, Splits: s))).ToArbitrary();
        Properties.Check(arbitrary, x =>
        {
            var (c, splits) = x;
            var one = KvData.Create(c, c.Paged);
            one.Run(context);
            double tolerance = one.Check(c).Tolerance;
            var split = c with { Splits = splits };
            var first = KvData.Create(split, c.Paged);
            first.Run(context);
            var second = KvData.Create(split, c.Paged);
            second.Run(context);
            Assert.Equal(first.Output.ToDoubleArray(), second.Output.ToDoubleArray());
            Assert.Equal(first.LogSumExp.ToDoubleArray(), second.LogSumExp.ToDoubleArray());
            AssertSplitAgrees(one, first, tolerance, $"{c} splits {splits}");
        }, count: 25);
    }

    [SkippableFact]
    public void KvCache_SigmoidScoring_MatchesReference()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        // Unnormalised sigmoid(s' + b) weights (FlashSigmoid): split partials add up instead of being reweighted.
        var arbitrary = Cases(allowModifiers: true).Select(c => c with { Sinks = false })
            .SelectMany(c => Gen.Elements(-6f, -1f, 0f, 2f).Select(bias => (Case: c, Bias: bias))).ToArbitrary();
        Properties.Check(arbitrary, x =>
        {
            var (c, bias) = x;
            var data = KvData.Create(c, c.Paged);
            data.Options = data.Options with { ScoreFunction = ScoreFunction.Sigmoid, SigmoidBias = bias };
            data.Run(context);
            var check = data.Check(c);
            Assert.True(check.Passed, $"{c} sigmoid bias {bias}: {check}");
        }, count: 30);
    }

    [SkippableFact]
    public void KvCache_MoreBatchElementsThanInlineLengths_MatchTheReference()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        // GPU kernels take up to 64 cache lengths inside their parameters and the rest from device memory; 70
        // elements take the second path, and the same context then runs a small batch again (first path).
        var random = new Random(70);
        int[] lengths = [.. Enumerable.Range(0, 70).Select(_ => random.Next(0, 24))];
        foreach (int page in new[] { 0, 4 })
            foreach (var c in new[]
            {
                new KvCase(ElementType.Float16, lengths, 1, 2, 1, 1, 32, 32, page, RotaryMode.HalfSplit, 16, true, -1, -1, 0, false, 0, null, 5),
                new KvCase(ElementType.Float32, [9, 0, 30], 2, 1, 2, 1, 16, 16, page, RotaryMode.None, 0, true, 4, -1, 0, true, 0, 2, 6),
            })
            {
                AssertMatchesReference(context, c);
            }
    }

    [SkippableFact]
    public void KvCache_PrefillChunksAgainstTheCache_MatchTheReference()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        // Many query rows per kv head: GPU backends hand contiguous caches without append or rotary to the flash
        // kernel and keep the rest (paged, appending, rotary, given splits) on the decode kernel; both must agree
        // with the reference.
        var arbitrary = Cases(allowModifiers: true)
            .SelectMany(c => Gen.Choose(40, 90).Select(n => c with
            {
                QueryLength = n, GroupSize = 2, CacheLengths = [.. c.CacheLengths.Select(l => Math.Max(l, n))],
            })).ToArbitrary();
        Properties.Check(arbitrary, c =>
        {
            AssertMatchesReference(context, c);
        }, count: 12);
    }

    /// <summary>
    /// Prefill-shaped calls on contiguous caches without append, rotary or given splits, which GPU backends run as flash
    /// per batch element (over the problem's kept element views and problem; the CPU runs its decode kernel): per-element
    /// ALiBi rows, an empty cache and masks included, calls of different shapes in a row on one context.
    /// </summary>
    [SkippableFact]
    public void KvCache_PrefillShapedContiguous_MatchesTheReference()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var arbitrary = Cases(allowModifiers: true)
            .SelectMany(c => Gen.Choose(40, 90).Select(n => c with
            {
                QueryLength = n, GroupSize = 2, NewLength = 0, PageSize = 0, Rotary = RotaryMode.None, RotaryDim = 0, Splits = null,
                CacheLengths = [.. c.CacheLengths.Select((l, b) => b == 1 ? 0 : Math.Max(l, n)), n + 7], Alibi = c.Seed % 2 == 0 ? 2 : c.Alibi,
            })).ToArbitrary();
        Properties.Check(arbitrary, c =>
        {
            AssertMatchesReference(context, c);
        }, count: 10);
    }

    [SkippableFact]
    public void KvCache_OneContextFromSeveralThreads_GivesEachCallItsOwnResult()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        // Calls with different block tables, lengths and split counts race on one context (GPU backends share their
        // scratch memory and uploaded tables between calls); each must still match its own reference.
        var cases = Enumerable.Range(0, 8).Select(i => new KvCase(
            i % 2 == 0 ? ElementType.Float32 : ElementType.BFloat16, [40 + 13 * i, 3 + 7 * i], 2, 1 + i % 3, 1 + i % 2, i % 3, 32, 32,
            i % 4 == 0 ? 0 : 8, i % 3 == 0 ? RotaryMode.HalfSplit : RotaryMode.None, i % 3 == 0 ? 16 : 0, true, -1, -1, 0, i % 2 == 1, 0,
            1 + i % 4, 100 + i)).ToArray();
        for (int round = 0; round < 3; round++)
        {
            var runs = cases.Select(c => KvData.Create(c, c.Paged)).ToArray();
            Parallel.For(0, runs.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => runs[i].Run(context));
            for (int i = 0; i < runs.Length; i++)
            {
                var check = runs[i].Check(cases[i]);
                Assert.True(check.Passed, $"round {round}, {cases[i]}: {check}");
            }
        }
    }

    [SkippableFact]
    public void KvCache_TokenMajorAndOffsetLayouts_MatchTheReference()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        // FlashAttention's layouts: q/o/new tokens [B, N, H, D] and caches [B | NumBlocks, Slots, Hkv, D], seen through
        // permuted views; the caches also start at an offset inside a larger allocation.
        Properties.Check(Cases(allowModifiers: true).ToArbitrary(), c =>
        {
            var data = KvData.Create(c, c.Paged);
            var strided = new KvData
            {
                Query = TokenMajor(data.Query, 0), KeyCache = TokenMajor(data.KeyCache, 5), ValueCache = TokenMajor(data.ValueCache, 3),
                Output = TokenMajor(data.Output, 0), LogSumExp = StridedLse(c, out var lseStorage), Options = data.Options,
                Cache = data.Cache with
                {
                    NewKey = data.Cache.NewKey is { } nk ? TokenMajor(nk, 0) : null,
                    NewValue = data.Cache.NewValue is { } nv ? TokenMajor(nv, 0) : null,
                },
            };
            strided.Run(context);
            var check = strided.Check(c);
            Assert.True(check.Passed, $"{c}: {check}");
            // The LSE view is query-major with a gap after every element and 5 unused floats first: the gaps stay untouched.
            for (int i = 0; i < lseStorage.Length; i++)
                if (i < 5 || (i - 5) % 2 == 1) Assert.True(lseStorage[i] == 77.25f, $"{c}: LSE storage element {i} outside the view was written");
        }, count: 20);
    }

    /// <summary>A float32 LSE view <c>[B, Hq, Nq]</c> stored <c>[Nq, B, Hq]</c>, two floats per element, after 5 unused floats (all 77.25).</summary>
    private static TensorView StridedLse(KvCase c, out float[] storage)
    {
        int b = c.Batch, h = c.QueryHeads, n = c.QueryLength;
        storage = new float[5 + 2 * b * h * n];
        Array.Fill(storage, 77.25f);
        return TensorView.FromMemory(storage.AsMemory(), [b, h, n], [2L * h, 2, 2L * b * h], 5);
    }

    /// <summary>The float32 twin of a 16-bit case's data: the same rounded values, held as float32 (caches with their NaN slots).</summary>
    private static KvData ToFloat32(KvData data) => new()
    {
        Query = TestTensors.Copy(data.Query, ElementType.Float32), KeyCache = TestTensors.Copy(data.KeyCache, ElementType.Float32),
        ValueCache = TestTensors.Copy(data.ValueCache, ElementType.Float32), Output = TestTensors.Zeros(ElementType.Float32, data.Output.Shape.ToArray()),
        LogSumExp = TestTensors.Zeros(ElementType.Float32, data.LogSumExp.Shape.ToArray()), Options = data.Options,
        Cache = data.Cache with
        {
            NewKey = data.Cache.NewKey is { } nk ? TestTensors.Copy(nk, ElementType.Float32) : null,
            NewValue = data.Cache.NewValue is { } nv ? TestTensors.Copy(nv, ElementType.Float32) : null,
        },
    };

    /// <summary>
    /// A float16/bfloat16 decode equals the float32 decode of the same rounded inputs rounded once (see
    /// <see cref="SixteenBit"/>). Appends with rotary are left out: the rotated new keys are stored in the cache's type
    /// before they are attended to, which is a second rounding by design.
    /// </summary>
    [SkippableFact]
    public void KvCache_SixteenBitRun_IsTheFloat32RunRoundedOnce()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var arbitrary = Cases(allowModifiers: true)
            .Select(c => c with
            {
                Type = c.Type != ElementType.Float32 ? c.Type : c.Seed % 2 == 0 ? ElementType.Float16 : ElementType.BFloat16,
                NewLength = c.Rotary == RotaryMode.None ? c.NewLength : 0,
                // Rotary places query i at L_b - Nq + i, which must stay non-negative without the append.
                CacheLengths = c.Rotary == RotaryMode.None ? c.CacheLengths : [.. c.CacheLengths.Select(l => Math.Max(l, c.QueryLength))],
            })
            .ToArbitrary();
        Properties.Check(arbitrary, c =>
        {
            var sixteen = KvData.Create(c, c.Paged);
            var thirtyTwo = ToFloat32(sixteen);
            sixteen.Run(context);
            thirtyTwo.Run(context);
            double maxValue = SixteenBit.MaxAbs(sixteen.ValueCache.ToDoubleArray());
            SixteenBit.AssertRoundedOnce(c.Type, sixteen.Output.ToDoubleArray(), thirtyTwo.Output.ToDoubleArray(), SixteenBit.Slack(Backend, c.Type, maxValue), c.ToString());
            SixteenBit.AssertSameLse(thirtyTwo.LogSumExp.ToDoubleArray(), sixteen.LogSumExp.ToDoubleArray(), c.ToString());
        }, count: 15);
    }

    /// <summary>Head dims past 128 (160, 256: the GPU decode kernel's large-D variant and the CPU's widest rows), with every option.</summary>
    [SkippableFact]
    public void KvCache_HeadDimsAbove128_MatchTheReference()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var arbitrary = Cases(allowModifiers: true)
            .SelectMany(c => Gen.Elements(160, 256).SelectMany(d => Gen.Elements(d, d, 64, 160).Select(dv => c with
            {
                HeadDim = d, ValueDim = dv, RotaryDim = c.Rotary == RotaryMode.None ? 0 : c.Seed % 2 == 0 ? d : d / 2,
                CacheLengths = [.. c.CacheLengths.Select(l => Math.Min(l, 130))],
            })))
            .ToArbitrary();
        Properties.Check(arbitrary, c =>
        {
            AssertMatchesReference(context, c);
        }, count: 12);
    }

    /// <summary>
    /// Small inputs, mostly binary16: at magnitude 0.01 about 6 in 10^3 binary16 values are subnormal and at 0.001 about 6
    /// in 100, so the CPU decode reads such blocks with the exact widening (its scaled reads would make them denormal
    /// floats); every backend's results at that scale are held to the reference.
    /// </summary>
    [SkippableFact]
    public void KvCache_SmallInputs_MatchTheReference()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var arbitrary = Cases(allowModifiers: true)
            .Select(c => c with { Type = c.Seed % 4 == 0 ? c.Type : ElementType.Float16, Amplitude = c.Seed % 2 == 0 ? 0.01 : 0.001 })
            .ToArbitrary();
        Properties.Check(arbitrary, c =>
        {
            AssertMatchesReference(context, c);
        }, count: 12);
    }

    /// <summary>Runs <paramref name="c"/> (paged when it says so) on <paramref name="context"/> and holds it to the reference.</summary>
    private static void AssertMatchesReference(AttentionContext context, KvCase c)
    {
        var data = KvData.Create(c, c.Paged);
        data.Run(context);
        var check = data.Check(c);
        Assert.True(check.Passed, $"{c}: {check}");
    }

    /// <summary>More (batch, query head) pairs than the random cases draw (at most 3 x 8 = 24), paged or not, split or not.</summary>
    [SkippableFact]
    public void KvCache_ManyBatchHeadPairs_MatchTheReference()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        foreach (var c in new[]
        {
            new KvCase(ElementType.BFloat16, [17, 40, 3, 90], 4, 8, 1, 1, 64, 64, 16, RotaryMode.HalfSplit, 64, true, -1, -1, 0, true, 0, null, 31),
            new KvCase(ElementType.Float32, [5, 33, 64, 2, 0, 71], 6, 4, 2, 0, 32, 32, 0, RotaryMode.None, 0, true, 20, -1, 0, false, 1, 3, 32),
            new KvCase(ElementType.Float16, [50], 2, 40, 3, 2, 16, 16, 8, RotaryMode.None, 0, false, -1, -1, 10, false, 2, 2, 33),
        })
        {
            AssertMatchesReference(context, c);
        }
    }

    /// <summary>The same logical tensor stored [d0, d2, d1, d3] after <paramref name="offset"/> unused elements.</summary>
    private static TensorView TokenMajor(TensorView view, int offset)
    {
        var shape = view.Shape.ToArray();
        var storage = TestTensors.Zeros(view.ElementType, offset + shape[0] * shape[1] * shape[2] * shape[3]);
        var result = new TensorView(storage.Storage!, shape,
            [(long)shape[1] * shape[2] * shape[3], shape[3], (long)shape[1] * shape[3], 1], offset);
        result.CopyFrom(view.ToDoubleArray());
        return result;
    }

    [SkippableFact]
    public void KvCache_InterleavedRotary_EqualsHalfSplitOnPermutedDimensions()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        // Pair (2i, 2i + 1) of x is pair (i, i + R/2) of x permuted; q.k does not change when q and k share a permutation.
        var c = new KvCase(ElementType.Float32, [37, 5], 2, 2, 2, 3, 24, 16, 0, RotaryMode.Interleaved, 16, true, -1, -1, 0, false, 0, null, 21);
        var interleaved = KvData.Create(c, paged: false);
        interleaved.Run(context);
        Assert.True(interleaved.Check(c).Passed);
        int[] order = Enumerable.Range(0, 24).ToArray();
        for (int i = 0; i < 8; i++) (order[i], order[i + 8]) = (2 * i, 2 * i + 1);
        var random = new Random(c.Seed);
        int capacity = c.CacheLengths.Select((_, b) => c.KeyLength(b)).Max() + 3;
        var keys = Permute(KvData.Values(random, 2L * 2 * capacity * 24), order);
        var values = KvData.Values(random, 2L * 2 * capacity * 16);
        var queries = Permute(KvData.Values(random, 2L * 4 * 2 * 24), order);
        var newKeys = Permute(KvData.Values(random, 2L * 2 * 3 * 24), order);
        var newValues = KvData.Values(random, 2L * 2 * 3 * 16);
        var halfSplit = KvData.Create(c with { Rotary = RotaryMode.HalfSplit }, paged: false, 0, keys, values, queries, newKeys, newValues);
        halfSplit.Run(context);
        var a = interleaved.Output.ToDoubleArray();
        var h = halfSplit.Output.ToDoubleArray();
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - h[i]) <= 1e-5, $"element {i}: {h[i]} vs {a[i]}");
    }

    private static double[] Permute(double[] rows, int[] order)
    {
        int d = order.Length;
        var result = new double[rows.Length];
        for (long r = 0; r < rows.Length / d; r++)
            for (int i = 0; i < d; i++) result[r * d + i] = rows[r * d + order[i]];
        return result;
    }

    [SkippableFact]
    public void KvCache_BadInput_NamesTheArgument()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var c = new KvCase(ElementType.Float32, [10, 20], 1, 2, 1, 1, 16, 16, 8, RotaryMode.HalfSplit, 16, true, -1, -1, 0, false, 0, null, 3);
        var data = KvData.Create(c, paged: true);
        void Expect(KvCacheOptions cache, string name, string fragment, TensorView? keyCache = null, TensorView? valueCache = null)
        {
            var e = Assert.ThrowsAny<ArgumentException>(() =>
                context.FlashKvCache(data.Query, keyCache ?? data.KeyCache, valueCache ?? data.ValueCache, data.Output, cache, data.Options, data.LogSumExp));
            Assert.Equal(name, e.ParamName);
            Assert.Contains(fragment, e.Message);
        }
        var table = data.Cache.BlockTable.ToArray();
        var outside = table.ToArray();
        outside[1] = 1000;
        Expect(data.Cache with { BlockTable = outside }, "cache.BlockTable", "outside");
        var shared = table.ToArray();
        int perSequence = table.Length / 2;
        shared[perSequence + 2] = shared[1]; // element 1 block 2 (appended into) is element 0's block 1
        Expect(data.Cache with { BlockTable = shared }, "cache.BlockTable", "append writes");
        Expect(data.Cache with { BlockTable = table[..2] }, "cache.BlockTable", "needs 11");
        Expect(data.Cache with { PageSize = 4 }, "cache.PageSize", "8 tokens per block");
        Expect(data.Cache with { CacheSeqLens = new[] { 1, 2, 3 } }, "cache.CacheSeqLens", "one per batch element");
        Expect(data.Cache with { CacheSeqLens = new[] { 1, -2 } }, "cache.CacheSeqLens", "non-negative");
        Expect(data.Cache with { NewValue = null }, "cache.NewValue", "both or neither");
        Expect(data.Cache with { RotaryCos = data.Cache.RotaryCos!.Value.Slice(0, 0, 20), RotarySin = data.Cache.RotarySin!.Value.Slice(0, 0, 20) }, "cache.RotaryCos", "needs position 20");
        Expect(data.Cache with { RotarySin = null }, "cache.RotarySin", "needs cache.RotarySin");
        Expect(data.Cache with { Splits = 0 }, "cache.Splits", "1..");

        var contiguous = KvData.Create(c with { PageSize = 0 }, paged: false);
        var small = contiguous.KeyCache.Slice(2, 0, 20);
        var e = Assert.ThrowsAny<ArgumentException>(() => context.FlashKvCache(contiguous.Query, small, contiguous.ValueCache.Slice(2, 0, 20), contiguous.Output, contiguous.Cache, contiguous.Options));
        Assert.Equal("keyCache", e.ParamName);
        Assert.Contains("needs 21", e.Message);
        var aliasingOutput = new TensorView(contiguous.KeyCache.Storage!, [2, 2, 1, 16], [24 * 16, 16, 16, 1]);
        e = Assert.ThrowsAny<ArgumentException>(() => context.FlashKvCache(contiguous.Query, contiguous.KeyCache, contiguous.ValueCache, aliasingOutput, contiguous.Cache));
        Assert.Equal("output", e.ParamName);
        Assert.Contains("overlaps keyCache", e.Message);
        e = Assert.ThrowsAny<ArgumentException>(() => context.FlashKvCache(contiguous.Query, contiguous.KeyCache, contiguous.ValueCache, contiguous.Output, contiguous.Cache,
            new FlashOptions { Bias = TensorView.FromMemory(new float[2 * 2 * 21].AsMemory(), 2, 2, 1, 21) }));
        Assert.Equal("options.Bias", e.ParamName);
    }

    [SkippableFact]
    public void KvCache_EmptyCacheWithoutAppend_WritesZerosAndNegativeInfinityLse()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var c = new KvCase(ElementType.BFloat16, [0, 12], 2, 2, 2, 0, 32, 32, 0, RotaryMode.None, 0, false, -1, -1, 0, true, 0, null, 8);
        var data = KvData.Create(c, paged: false);
        data.Run(context);
        Assert.True(data.Check(c).Passed);
        for (int h = 0; h < 4; h++)
            for (int i = 0; i < 2; i++)
            {
                Assert.True(double.IsNegativeInfinity(data.LogSumExp.GetDouble(0, h, i)));
                for (int d = 0; d < 32; d++) Assert.Equal(0.0, data.Output.GetDouble(0, h, i, d));
            }
    }

    /// <summary>
    /// A split run agrees with the one-split run: outputs within twice the reference tolerance (plus 1e-6), LSEs equal
    /// or within 1e-5 relative.
    /// </summary>
    protected static void AssertSplitAgrees(KvData one, KvData split, double tolerance, string label)
    {
        var a = one.Output.ToDoubleArray();
        var s = split.Output.ToDoubleArray();
        for (int i = 0; i < a.Length; i++)
            Assert.True(Math.Abs(a[i] - s[i]) <= 2 * tolerance + 1e-6, $"{label}: element {i}: {s[i]} vs {a[i]}");
        var la = one.LogSumExp.ToDoubleArray();
        var ls = split.LogSumExp.ToDoubleArray();
        for (int i = 0; i < la.Length; i++)
            Assert.True(la[i].Equals(ls[i]) || Math.Abs(la[i] - ls[i]) <= 1e-5 * (1 + Math.Abs(la[i])), $"{label}: LSE {i}: {ls[i]} vs {la[i]}");
    }
}

[Trait("Backend", "OpenCl")]
public sealed class OpenClKvCacheTests : KvCacheTests
{
    protected override Backend Backend => Backend.OpenCl;

    /// <summary>The local memory every OpenCL device has (Apple, Mali and some Intel and Qualcomm devices have no more).</summary>
    private const int MinimumLocalMemory = 32 * 1024;

    /// <summary>
    /// On a device with 32 KB of local memory (a pretend limit on the context), head dims 64 and up run the decode
    /// kernel that stages V through K's buffer, with every option the random cases draw, and match the reference and
    /// the plain variant bit for bit (same tiles, same arithmetic); the plain variants that would not fit are never built.
    /// </summary>
    [SkippableFact]
    public void KvCache_On32KLocalMemory_SharedKvVariant_MatchesReference()
    {
        using var context = (NativeAttention.Gpu.OpenCl.OpenClContext)TestBackend.CreateOrSkip(Backend);
        using var plain = TestBackend.CreateOrSkip(Backend);
        context.LocalMemoryLimit = MinimumLocalMemory;
        var arbitrary = Cases(allowModifiers: true)
            .SelectMany(c => Gen.Elements(64, 100, 128, 160, 256).Select(d => c with
            {
                HeadDim = d, ValueDim = c.ValueDim == c.HeadDim ? d : c.ValueDim,
                RotaryDim = c.Rotary == RotaryMode.None ? 0 : c.Seed % 2 == 0 ? d : d / 2,
                CacheLengths = [.. c.CacheLengths.Select(l => Math.Min(l, 130))],
            }))
            .ToArbitrary();
        Properties.Check(arbitrary, c =>
        {
            var data = KvData.Create(c, c.Paged);
            var twin = KvData.Create(c, c.Paged);
            data.Run(context);
            twin.Run(plain);
            var check = data.Check(c);
            Assert.True(check.Passed, $"{c}: {check}");
            Assert.Equal(twin.Output.ToDoubleArray(), data.Output.ToDoubleArray());
            Assert.Equal(twin.LogSumExp.ToDoubleArray(), data.LogSumExp.ToDoubleArray());
        }, count: 14);
        var variants = NativeAttention.Gpu.DecodeVariant.All(NativeAttention.Gpu.KernelApi.OpenCl).ToArray();
        Assert.Contains(variants, v => v.SharedKv && context.HasModule(v.Name));
        Assert.DoesNotContain(variants, v => !v.SharedKv && v.LocalBytes > MinimumLocalMemory && context.HasModule(v.Name));
    }

    /// <summary>
    /// The host picks a decode variant by <see cref="NativeAttention.Gpu.DecodeVariant.LocalBytes"/>: that must be what
    /// each compiled kernel declares (as OpenCL reports it), and every shared-K/V variant must fit 32 KB, at every head dim.
    /// </summary>
    [SkippableFact]
    public void DecodeKernels_DeclareTheLocalMemoryTheHostAssumes_AndTheSharedKvOnesFit32K()
    {
        using var context = (NativeAttention.Gpu.OpenCl.OpenClContext)TestBackend.CreateOrSkip(Backend);
        var api = NativeAttention.Gpu.KernelApi.OpenCl;
        var variants = NativeAttention.Gpu.DecodeVariant.All(api).Where(v => v.ElementType == ElementType.Float32).ToArray();
        foreach (var variant in variants)
        {
            using var module = context.BuildSource(variant.Source(api), NativeAttention.Gpu.DecodeVariant.EntryPoint);
            long bytes = module.LocalMemoryBytes(context.Device);
            Assert.True(bytes == variant.LocalBytes, $"{variant.Name}: OpenCL reports {bytes} bytes of local memory, the host assumes {variant.LocalBytes}");
            if (variant.SharedKv) Assert.True(bytes <= MinimumLocalMemory, $"{variant.Name}: {bytes} bytes of local memory");
            else if (bytes > MinimumLocalMemory) Assert.Contains(variant with { SharedKv = true }, variants);
        }
        foreach (int d in NativeAttention.Gpu.FlashVariant.HeadDimBuckets.ToArray())
            Assert.Contains(variants, v => v.HeadDim == d && v.LocalBytes <= MinimumLocalMemory);
    }
}

[Trait("Backend", "Cuda")]
public sealed class CudaKvCacheTests : KvCacheTests
{
    protected override Backend Backend => Backend.Cuda;
}

[Trait("Backend", "Cpu")]
public sealed class CpuKvCacheTests : KvCacheTests
{
    protected override Backend Backend => Backend.Cpu;

    [Fact]
    public void KvCache_GivenSplits_ResultsDoNotDependOnThreadCount()
    {
        var c = new KvCase(ElementType.Float16, [700, 33, 2], 2, 4, 3, 1, 64, 64, 16, RotaryMode.HalfSplit, 32, true, -1, -1, 0, true, 0, 5, 12);
        using var one = AttentionContext.Create(Backend.Cpu, new ContextOptions { Threads = 1 });
        using var three = AttentionContext.Create(Backend.Cpu, new ContextOptions { Threads = 3 });
        var a = KvData.Create(c, paged: true);
        var b = KvData.Create(c, paged: true);
        a.Run(one);
        b.Run(three);
        Assert.Equal(a.Output.ToDoubleArray(), b.Output.ToDoubleArray());
        Assert.Equal(a.LogSumExp.ToDoubleArray(), b.LogSumExp.ToDoubleArray());
    }

    /// <summary>Random KV cases for sigmoid scoring: no sinks (they have no meaning there), GQA groups up to 8.</summary>
    private static Gen<(KvCase Case, float Bias)> SigmoidCases() =>
        from type in Gen.Elements(ElementType.Float32, ElementType.Float16, ElementType.BFloat16)
        from batch in Gen.Choose(1, 3)
        from lengths in Gen.Frequency((1, Gen.Constant(0)), (4, Gen.Choose(1, 40)), (2, Gen.Choose(60, 300))).ArrayOf(batch)
        from kvHeads in Gen.Choose(1, 2)
        from groupSize in Gen.Elements(1, 2, 4, 8)
        from nq in Gen.Elements(1, 1, 1, 2, 3)
        from nnew in Gen.Elements(0, 0, 1, 2)
        from dqk in Gen.Elements(16, 32, 64, 128, 13, 40)
        from dv in Gen.Frequency((3, Gen.Constant(dqk)), (1, Gen.Elements(8, 24, 64)))
        from page in Gen.Elements(0, 0, 4, 16)
        from rotary in Gen.Elements(RotaryMode.None, RotaryMode.None, RotaryMode.HalfSplit)
        from causal in Gen.Elements(false, true, true)
        from window in Gen.Frequency((3, Gen.Constant((-1, -1))), (1, Gen.Choose(0, 50).Zip(Gen.Choose(-1, 3))))
        from softcap in Gen.Frequency((3, Gen.Constant(0f)), (1, Gen.Elements(5f, 20f)))
        from alibi in Gen.Elements(0, 0, 1, 2)
        from splits in Gen.Elements<int?>(null, 1, 1, 2, 3, 7)
        from bias in Gen.Elements(0f, -2f, -5f, 3f, -40f)
        from seed in Gen.Choose(0, int.MaxValue)
        let rotaryDim = rotary == RotaryMode.None ? 0 : dqk / 2 * 2
        let cacheLengths = rotaryDim > 0 ? lengths.Select(l => Math.Max(l, nq - nnew)).ToArray() : lengths
        select (new KvCase(type, cacheLengths, kvHeads, groupSize, nq, nnew, dqk, dv, page, rotaryDim > 0 ? rotary : RotaryMode.None, rotaryDim,
            causal, window.Item1, window.Item2, softcap, false, alibi, splits, seed), bias);

    private static FlashOptions Sigmoid(KvData data, float bias) =>
        data.Options with { ScoreFunction = ScoreFunction.Sigmoid, SigmoidBias = bias, Sinks = null };

    private static void RunSigmoid(AttentionContext context, KvData data, float bias) =>
        context.FlashKvCache(data.Query, data.KeyCache, data.ValueCache, data.Output, data.Cache, Sigmoid(data, bias), data.LogSumExp);

    /// <summary>KvData.Check with sigmoid options: the references read only what the append leaves unchanged.</summary>
    private static ReferenceCheck CheckSigmoid(KvCase c, KvData data, float bias)
    {
        var options = Sigmoid(data, bias);
        var exact = Reference.FlashKvCache(data.Query, data.KeyCache, data.ValueCache, data.Cache, options);
        var naive = Reference.FlashKvCacheNaive(data.Query, data.KeyCache, data.ValueCache, data.Cache, options, c.Type);
        double valueScale = data.ValueCache.ToDoubleArray().Where(double.IsFinite).Concat(data.Cache.NewValue?.ToDoubleArray() ?? []).Select(Math.Abs).DefaultIfEmpty(0).Max();
        return CaseVerifier.CompareToReference(exact, naive, data.Output, data.LogSumExp, c.Type, valueScale);
    }

    [Fact]
    public void KvCache_SigmoidScoring_MatchesReference_PagedOrNot_AnySplitCount()
    {
        using var context = AttentionContext.Create(Backend.Cpu);
        Properties.Check(SigmoidCases().ToArbitrary(), x =>
        {
            var (c, bias) = x;
            var data = KvData.Create(c, c.Paged);
            RunSigmoid(context, data, bias);
            var check = CheckSigmoid(c, data, bias);
            Assert.True(check.Passed, $"{c} sigmoid({bias}): {check}");
            // Repeating the call gives the same bits (the append writes the same tokens again).
            var again = KvData.Create(c, c.Paged);
            RunSigmoid(context, again, bias);
            Assert.Equal(data.Output.ToDoubleArray(), again.Output.ToDoubleArray());
            Assert.Equal(data.LogSumExp.ToDoubleArray(), again.LogSumExp.ToDoubleArray());
        }, count: 60);
    }

    [Fact]
    public void KvCache_SigmoidScoring_SplitsAgreeWithOneSplit_PagedEqualsContiguous()
    {
        using var context = AttentionContext.Create(Backend.Cpu);
        var arbitrary = SigmoidCases().SelectMany(x => Gen.Choose(2, 9).Select(s => (x.Case with { Splits = 1, PageSize = x.Case.PageSize == 0 ? 8 : x.Case.PageSize }, x.Bias, Splits: s))).ToArbitrary();
        Properties.Check(arbitrary, x =>
        {
            var (c, bias, splits) = x;
            var one = KvData.Create(c, paged: false);
            RunSigmoid(context, one, bias);
            double tolerance = CheckSigmoid(c, one, bias).Tolerance;
            var split = c with { Splits = splits };
            var contiguous = KvData.Create(split, paged: false);
            RunSigmoid(context, contiguous, bias);
            var paged = KvData.Create(split, paged: true);
            RunSigmoid(context, paged, bias);
            Assert.True(CheckSigmoid(split, paged, bias).Passed, $"{split} sigmoid({bias}) paged");
            Assert.Equal(contiguous.Output.ToDoubleArray(), paged.Output.ToDoubleArray());
            Assert.Equal(contiguous.LogSumExp.ToDoubleArray(), paged.LogSumExp.ToDoubleArray());
            AssertSplitAgrees(one, contiguous, tolerance, $"{c} sigmoid({bias}) splits {splits}");
        }, count: 25);
    }

    [Fact]
    public void KvCache_SigmoidScoring_WithSinks_IsRejectedBeforeAnythingIsWritten()
    {
        var c = new KvCase(ElementType.Float32, [10], 1, 1, 1, 1, 16, 16, 0, RotaryMode.None, 0, false, -1, -1, 0, true, 0, null, 2);
        using var context = AttentionContext.Create(Backend.Cpu);
        var data = KvData.Create(c, paged: false);
        var before = data.KeyCache.ToDoubleArray();
        var e = Assert.ThrowsAny<ArgumentException>(() =>
            context.FlashKvCache(data.Query, data.KeyCache, data.ValueCache, data.Output, data.Cache, data.Options with { ScoreFunction = ScoreFunction.Sigmoid }));
        Assert.Equal("options.Sinks", e.ParamName);
        Assert.Equal(before, data.KeyCache.ToDoubleArray());
    }
}
