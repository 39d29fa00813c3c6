// KV-cache decoding in float64: the append and rotary embedding done on copies, then the flash rows per element.
namespace NativeAttention;

public static partial class Reference
{
    /// <summary>
    /// Rotary position embedding in float64: token n of batch element b sits at position
    /// <c>startPositions[b] + n</c>, and pair i of its first <c>RotaryDim = 2 x cos.Shape[1]</c> dimensions,
    /// <c>(x, y)</c>, becomes <c>(x cos - y sin, x sin + y cos)</c> with <c>cos = cos[pos, i]</c>, <c>sin = sin[pos, i]</c>.
    /// Pairs are <c>(2i, 2i + 1)</c> when <paramref name="interleaved"/>, else <c>(i, i + RotaryDim / 2)</c>; the other
    /// dimensions are copied.
    /// </summary>
    /// <param name="input">The tensor to rotate, <c>[B, H, N, D]</c>.</param>
    /// <param name="cos">Cosines, float32 <c>[MaxPositions, RotaryDim / 2]</c>.</param>
    /// <param name="sin">Sines, the shape of <paramref name="cos"/>.</param>
    /// <param name="startPositions">The position of token 0 of each batch element, <c>[B]</c>.</param>
    /// <param name="interleaved">The pairing, as <see cref="KvCacheOptions.RotaryInterleaved"/>.</param>
    /// <returns>The rotated tensor, row-major <c>[B, H, N, D]</c>.</returns>
    /// <exception cref="ArgumentException">A shape is wrong or a position falls outside the tables.</exception>
    public static double[] ApplyRotary(TensorView input, TensorView cos, TensorView sin, ReadOnlySpan<int> startPositions, bool interleaved)
    {
        var x = Check.Rank(input, 4, nameof(input), "[B, H, N, D]");
        var c = Check.Rank(cos, 2, nameof(cos), "float32 [MaxPositions, RotaryDim / 2]");
        Check.Type(cos, ElementType.Float32, nameof(cos));
        Check.Shape(sin, c, nameof(sin), "float32, the shape of cos");
        Check.Type(sin, ElementType.Float32, nameof(sin));
        int batch = x[0], heads = x[1], n = x[2], d = x[3], positions = c[0], half = c[1];
        if (2 * half > d) Check.Fail(nameof(cos), $"cos has {half} columns, so RotaryDim = {2 * half} exceeds the head dim {d}.");
        if (startPositions.Length != batch)
            Check.Fail(nameof(startPositions), $"startPositions has {startPositions.Length} entries; expected {batch}.");
        for (int b = 0; b < batch; b++)
            if (n > 0 && (startPositions[b] < 0 || (long)startPositions[b] + n > positions))
                Check.Fail(nameof(startPositions), $"batch element {b} needs positions {startPositions[b]}..{(long)startPositions[b] + n - 1}; the tables cover 0..{positions - 1}.");
        var data = ReadHost(input);
        var cosines = ReadHost(cos);
        var sines = ReadHost(sin);
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < heads; h++)
                for (int t = 0; t < n; t++)
                    Rotate(data.AsSpan((int)((((long)b * heads + h) * n + t) * d), d), startPositions[b] + t, cosines, sines, half, interleaved, Arith.Exact);
        return data;
    }

    /// <summary>Rotates the first <c>2 x half</c> entries of <paramref name="row"/> at <paramref name="position"/> (tables row-major <c>[positions, half]</c>).</summary>
    private static void Rotate(Span<double> row, int position, double[] cos, double[] sin, int half, bool interleaved, in Arith a)
    {
        for (int i = 0; i < half; i++)
        {
            int ix = interleaved ? 2 * i : i, iy = interleaved ? 2 * i + 1 : i + half;
            double c = cos[(long)position * half + i], s = sin[(long)position * half + i];
            double x = row[ix], y = row[iy];
            row[ix] = a.Op(a.Op(x * c) - a.Op(y * s));
            row[iy] = a.Op(a.Op(x * s) + a.Op(y * c));
        }
    }

    /// <summary>
    /// KV-cache decoding in float64, as <see cref="AttentionContext.FlashKvCache"/> defines it, without touching the
    /// caller's caches. Batch element b attends to <c>L_b = CacheSeqLens[b] + Nnew</c> keys: position p &lt;
    /// <c>CacheSeqLens[b]</c> is read from the cache (block <c>BlockTable[b, p / PageSize]</c>, slot
    /// <c>p % PageSize</c> when paged; row p of element b otherwise), position <c>CacheSeqLens[b] + t</c> is new token
    /// t (rotated at that position and rounded to the cache's element type, as the append stores it). Query i is
    /// rotated at position <c>L_b - Nq + i</c>, and the masks align bottom-right against <c>L_b</c>.
    /// </summary>
    /// <returns>Output <c>[B, Hq, Nq, Dv]</c> and LSE <c>[B, Hq, Nq]</c>.</returns>
    /// <exception cref="ArgumentException">A tensor or option is invalid, as for <see cref="AttentionContext.FlashKvCache"/>.</exception>
    public static ReferenceResult FlashKvCache(TensorView query, TensorView keyCache, TensorView valueCache, KvCacheOptions cache, FlashOptions? options = null) =>
        FlashKvCacheCore(query, keyCache, valueCache, cache, options, Arith.Exact);

    /// <summary>
    /// <see cref="FlashKvCache"/> computed the way <see cref="FlashNaive"/> computes flash in <paramref name="precision"/>
    /// (rotary products in float32, rotated queries stored in <paramref name="precision"/>): the error rule's yardstick.
    /// </summary>
    /// <exception cref="ArgumentException">A tensor or option is invalid.</exception>
    public static ReferenceResult FlashKvCacheNaive(TensorView query, TensorView keyCache, TensorView valueCache, KvCacheOptions cache, FlashOptions? options, ElementType precision)
    {
        if (!Enum.IsDefined(precision))
            throw new ArgumentOutOfRangeException(nameof(precision), precision, "Unknown element type.");
        return FlashKvCacheCore(query, keyCache, valueCache, cache, options, Arith.Naive(precision));
    }

    /// <summary>The most key-axis splits a KV-cache call may ask for.</summary>
    private const int MaxKvSplits = 128;

    private static ReferenceResult FlashKvCacheCore(in TensorView query, in TensorView keyCache, in TensorView valueCache, KvCacheOptions cache, FlashOptions? options, Arith a)
    {
        ArgumentNullException.ThrowIfNull(cache);
        options ??= new FlashOptions();
        const string qLayout = "[B, Hq, Nq, Dqk]";
        bool paged = !cache.BlockTable.IsEmpty;
        string kLayout = paged ? "[NumBlocks, Hkv, PageSize, Dqk]" : "[B, Hkv, Capacity, Dqk]";
        string vLayout = paged ? "[NumBlocks, Hkv, PageSize, Dv]" : "[B, Hkv, Capacity, Dv]";
        var qs = Check.Rank(query, 4, nameof(query), qLayout);
        Check.Positive(query, nameof(query), qLayout);
        var ks = Check.Rank(keyCache, 4, nameof(keyCache), kLayout);
        var vs = Check.Rank(valueCache, 4, nameof(valueCache), vLayout);
        Check.Positive(keyCache, nameof(keyCache), kLayout);
        Check.Positive(valueCache, nameof(valueCache), vLayout);
        int batch = qs[0], hq = qs[1], nq = qs[2], d = qs[3];
        int rows = ks[0], hkv = ks[1], slots = ks[2], dv = vs[3];
        if (ks[3] != d) Check.Fail(nameof(keyCache), $"keyCache has head dim {ks[3]}; query has {d} ({kLayout}).");
        if (hq % hkv != 0) Check.Fail(nameof(keyCache), $"keyCache has {hkv} heads, which does not divide the query's {hq} heads (GQA/MQA need Hq % Hkv == 0).");
        if (!paged && rows != batch) Check.Fail(nameof(keyCache), $"keyCache has batch {rows}; query has batch {batch} ({kLayout}).");
        if (vs[0] != rows || vs[1] != hkv || vs[2] != slots)
            Check.Fail(nameof(valueCache), $"valueCache has shape {Check.Text(vs)}; expected [{rows}, {hkv}, {slots}, Dv] to match keyCache {vLayout}.");
        Check.HeadDims(d, nameof(query), dv, nameof(valueCache));
        var type = query.ElementType;
        Check.Type(keyCache, type, nameof(keyCache));
        Check.Type(valueCache, type, nameof(valueCache));

        var cached = cache.CacheSeqLens.ToArray();
        if (cached.Length != batch)
            Check.Fail("cache.CacheSeqLens", $"cache.CacheSeqLens has {cached.Length} entries; expected one per batch element ({batch}).");
        for (int b = 0; b < batch; b++)
            if (cached[b] < 0) Check.Fail("cache.CacheSeqLens", $"cache.CacheSeqLens[{b}] is {cached[b]}; expected a non-negative token count.");

        int nnew = 0;
        if ((cache.NewKey is null) != (cache.NewValue is null))
            Check.Fail(cache.NewKey is null ? "cache.NewKey" : "cache.NewValue", "cache.NewKey and cache.NewValue come together: give both or neither.");
        if (cache.NewKey is { } newKey && cache.NewValue is { } newValue)
        {
            var nks = Check.Rank(newKey, 4, "cache.NewKey", "[B, Hkv, Nnew, Dqk]");
            Check.Positive(newKey, "cache.NewKey", "[B, Hkv, Nnew, Dqk]");
            nnew = nks[2];
            Check.Shape(newKey, [batch, hkv, nnew, d], "cache.NewKey", "[B, Hkv, Nnew, Dqk]");
            Check.Shape(newValue, [batch, hkv, nnew, dv], "cache.NewValue", "[B, Hkv, Nnew, Dv]");
            Check.Type(newKey, type, "cache.NewKey");
            Check.Type(newValue, type, "cache.NewValue");
        }

        // Paging: element b's position p lives in block table[b * perSequence + p / pageSize], slot p % pageSize.
        int[] table = cache.BlockTable.ToArray();
        int pageSize = slots, perSequence = 1;
        if (paged)
        {
            if (cache.PageSize != slots)
                Check.Fail("cache.PageSize", $"cache.PageSize is {cache.PageSize}, but the caches hold {slots} tokens per block ({kLayout}).");
            if (table.Length % batch != 0)
                Check.Fail("cache.BlockTable", $"cache.BlockTable has {table.Length} entries; expected [B, BlocksPerSequence] = {batch} x n with n >= 1.");
            perSequence = table.Length / batch;
        }
        int capacity = pageSize * perSequence;
        for (int b = 0; b < batch; b++)
        {
            long needed = (long)cached[b] + nnew;
            if (needed <= capacity) continue;
            if (nnew == 0) Check.Fail("cache.CacheSeqLens", $"cache.CacheSeqLens[{b}] is {cached[b]}, but the cache holds {capacity} tokens per batch element.");
            if (paged) Check.Fail("cache.BlockTable", $"cache.BlockTable gives each batch element {perSequence} blocks of {pageSize} tokens ({capacity}); element {b} needs {needed} after appending {nnew} to {cached[b]}.");
            Check.Fail(nameof(keyCache), $"keyCache holds {capacity} tokens per batch element; element {b} needs {needed} after appending {nnew} to {cached[b]}.");
        }
        if (paged) CheckBlockTable(table, batch, perSequence, pageSize, rows, cached, nnew);

        int half = 0;
        if (cache.RotaryCos is not null || cache.RotarySin is not null)
        {
            if (cache.RotaryCos is not { } cos) { Check.Fail("cache.RotaryCos", "cache.RotarySin needs cache.RotaryCos."); return null!; }
            if (cache.RotarySin is not { } sin) { Check.Fail("cache.RotarySin", "cache.RotaryCos needs cache.RotarySin."); return null!; }
            var cs = Check.Rank(cos, 2, "cache.RotaryCos", "float32 [MaxPositions, RotaryDim / 2]");
            Check.Positive(cos, "cache.RotaryCos", "float32 [MaxPositions, RotaryDim / 2]");
            Check.Type(cos, ElementType.Float32, "cache.RotaryCos");
            Check.Shape(sin, cs, "cache.RotarySin", "float32, the shape of cache.RotaryCos");
            Check.Type(sin, ElementType.Float32, "cache.RotarySin");
            half = cs[1];
            if (2 * half > d) Check.Fail("cache.RotaryCos", $"cache.RotaryCos has {half} columns, so RotaryDim = {2 * half} exceeds the head dim {d}.");
            for (int b = 0; b < batch; b++)
            {
                int keys = cached[b] + nnew;
                if (keys - 1 >= cs[0]) Check.Fail("cache.RotaryCos", $"cache.RotaryCos covers {cs[0]} positions, but batch element {b} needs position {keys - 1}.");
                if (keys - nq < 0) Check.Fail(nameof(query), $"query has {nq} rows but batch element {b} has only {keys} keys, so rotary would place query 0 at position {keys - nq}.");
            }
        }
        if (options.Bias is not null)
            Check.Fail("options.Bias", "A dense bias [B, Hq, Nq, Nk] does not fit per-element cache lengths; use ALiBi or sinks, or call Flash.");
        if (options.LowRankBias is not null)
            Check.Fail("options.LowRankBias", "A low-rank bias does not fit per-element cache lengths; call Flash.");
        double scale = CheckFlashRowOptions(options, batch, hq, d);
        if (cache.Splits is int splits && (splits < 1 || splits > MaxKvSplits))
            Check.Fail("cache.Splits", $"cache.Splits is {splits}; expected null (automatic) or 1..{MaxKvSplits}.");

        var q = Read(query, a);
        var kc = Read(keyCache, a);
        var vc = Read(valueCache, a);
        var kn = cache.NewKey is { } nkView ? Read(nkView, a) : null;
        var vn = cache.NewValue is { } nvView ? Read(nvView, a) : null;
        var cosines = cache.RotaryCos is { } cv ? ReadHost(cv) : null;
        var sines = cache.RotarySin is { } sv ? ReadHost(sv) : null;
        var slopes = ReadSlopes(options, batch, hq, a);
        var sinks = options.Sinks is { } sk ? Read(sk, a) : null;

        var output = new double[(long)batch * hq * nq * dv];
        var lse = new double[(long)batch * hq * nq];
        for (int b = 0; b < batch; b++)
        {
            int length = cached[b] + nnew;
            var keys = new double[(long)hkv * length * d];
            var values = new double[(long)hkv * length * dv];
            for (int h = 0; h < hkv; h++)
                for (int p = 0; p < length; p++)
                {
                    var keyRow = keys.AsSpan((int)(((long)h * length + p) * d), d);
                    var valueRow = values.AsSpan((int)(((long)h * length + p) * dv), dv);
                    if (p < cached[b])
                    {
                        int block = paged ? table[b * perSequence + p / pageSize] : b;
                        int slot = paged ? p % pageSize : p;
                        kc.AsSpan((int)((((long)block * hkv + h) * slots + slot) * d), d).CopyTo(keyRow);
                        vc.AsSpan((int)((((long)block * hkv + h) * slots + slot) * dv), dv).CopyTo(valueRow);
                        continue;
                    }
                    int t = p - cached[b];
                    kn.AsSpan((int)((((long)b * hkv + h) * nnew + t) * d), d).CopyTo(keyRow);
                    vn.AsSpan((int)((((long)b * hkv + h) * nnew + t) * dv), dv).CopyTo(valueRow);
                    if (half > 0) Rotate(keyRow, p, cosines!, sines!, half, cache.RotaryInterleaved, a);
                    // The append stores into the cache, so the attention sees the new tokens in the cache's type.
                    foreach (ref double x in keyRow) x = RoundToType(type, x);
                    foreach (ref double x in valueRow) x = RoundToType(type, x);
                }
            var queries = q.AsSpan((int)((long)b * hq * nq * d), hq * nq * d).ToArray();
            if (half > 0)
                for (int h = 0; h < hq; h++)
                    for (int i = 0; i < nq; i++)
                    {
                        var row = queries.AsSpan((h * nq + i) * d, d);
                        Rotate(row, length - nq + i, cosines!, sines!, half, cache.RotaryInterleaved, a);
                        foreach (ref double x in row) x = a.Store(x);
                    }
            var call = new FlashCall(options, 1, hq, hkv, nq, length, d, dv, scale)
            {
                Slopes = slopes?.AsSpan(b * hq, hq).ToArray(),
                Sinks = sinks,
            };
            var element = FlashRows(call, queries, keys, values, a);
            element.Output.CopyTo(output, (long)b * hq * nq * dv);
            element.LogSumExp!.CopyTo(lse, (long)b * hq * nq);
        }
        return new ReferenceResult(output, [batch, hq, nq, dv], lse, [batch, hq, nq]);
    }

    /// <summary>
    /// Every block an element uses must exist, and a block the append writes must belong to that element alone (two
    /// elements writing it, or one writing what another reads, has no single answer).
    /// </summary>
    private static void CheckBlockTable(int[] table, int batch, int perSequence, int pageSize, int blocks, int[] cached, int nnew)
    {
        var owner = new Dictionary<int, (int Element, bool Written)>();
        for (int b = 0; b < batch; b++)
        {
            int length = cached[b] + nnew;
            for (int entry = 0; entry * pageSize < length; entry++)
            {
                int block = table[b * perSequence + entry];
                if (block < 0 || block >= blocks)
                    Check.Fail("cache.BlockTable", $"cache.BlockTable[{b}, {entry}] is {block}, outside the caches' {blocks} blocks.");
                // The append writes positions cached[b] .. length - 1; this entry covers entry * pageSize .. (entry + 1) * pageSize - 1.
                bool written = nnew > 0 && (entry + 1) * pageSize > cached[b];
                if (owner.TryGetValue(block, out var previous))
                {
                    if (written || previous.Written)
                        Check.Fail("cache.BlockTable", $"cache.BlockTable uses block {block} for batch elements {previous.Element} and {b} (or twice in one), and the append writes into it.");
                }
                else owner[block] = (b, written);
            }
        }
    }
}
