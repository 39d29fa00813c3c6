// KV-cache decoding in float64: the append and rotary embedding done on copies, then the flash reference per element.
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
        var x = TensorChecks.Rank(input, 4, nameof(input), "[B, H, N, D]");
        var c = TensorChecks.Rank(cos, 2, nameof(cos), "float32 [MaxPositions, RotaryDim / 2]");
        TensorChecks.Type(cos, ElementType.Float32, nameof(cos));
        TensorChecks.Shape(sin, c, nameof(sin), "float32, the shape of cos");
        TensorChecks.Type(sin, ElementType.Float32, nameof(sin));
        int batch = x[0], heads = x[1], n = x[2], d = x[3], half = c[1];
        if (2 * half > d) TensorChecks.Throw($"cos has {half} columns, so RotaryDim = {2 * half} exceeds the head dim {d}.", nameof(cos));
        if (startPositions.Length != batch)
            TensorChecks.Throw($"startPositions has {startPositions.Length} entries; expected {batch}.", nameof(startPositions));
        for (int b = 0; b < batch; b++)
            if (n > 0 && (startPositions[b] < 0 || (long)startPositions[b] + n > c[0]))
                TensorChecks.Throw($"batch element {b} needs positions {startPositions[b]}..{(long)startPositions[b] + n - 1}; the tables cover 0..{c[0] - 1}.", nameof(startPositions));
        var data = input.ToDoubleArray();
        var cosines = cos.ToDoubleArray();
        var sines = sin.ToDoubleArray();
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < heads; h++)
                for (int t = 0; t < n; t++)
                    Rotate(data.AsSpan((int)((((long)b * heads + h) * n + t) * d), d), startPositions[b] + t, cosines, sines, half, interleaved, Arith.Exact);
        return data;
    }

    /// <summary>Rotates the first <c>2 x half</c> entries of <paramref name="row"/> at <paramref name="position"/>.</summary>
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
    /// caller's caches: for each batch element b it gathers the first <c>CacheSeqLens[b]</c> cached keys and values
    /// (through the block table when paged), appends copies of the new keys (rotated at positions
    /// <c>CacheSeqLens[b]..</c> and rounded to the cache's element type, as the kernel stores them) and new values
    /// (rounded likewise), rotates the queries at positions <c>L_b - Nq + i</c>, and runs <see cref="Flash"/> on them.
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

    private static ReferenceResult FlashKvCacheCore(in TensorView query, in TensorView keyCache, in TensorView valueCache, KvCacheOptions cache, FlashOptions? options, Arith a)
    {
        var p = KvCacheProblem.CreateForInputs(query, keyCache, valueCache, cache, options);
        int batch = p.Batch, hq = p.QueryHeads, hkv = p.KeyValueHeads, nq = p.QueryLength, nnew = p.NewLength, d = p.HeadDim, dv = p.ValueDim;
        int slots = keyCache.Shape[2];
        var q = Read(query, a);
        var kc = Read(keyCache, a);
        var vc = Read(valueCache, a);
        var kn = cache.NewKey is { } nk ? Read(nk, a) : null;
        var vn = cache.NewValue is { } nv ? Read(nv, a) : null;
        var cos = cache.RotaryCos?.ToDoubleArray();
        var sin = cache.RotarySin?.ToDoubleArray();
        int half = p.RotaryDim / 2;
        var type = p.ElementType;

        var output = new double[(long)batch * hq * nq * dv];
        var lse = new double[(long)batch * hq * nq];
        Array.Fill(lse, double.NegativeInfinity);
        for (int b = 0; b < batch; b++)
        {
            int length = p.KeyLength(b), cached = p.CacheLength(b);
            if (length == 0) continue;
            var keys = new double[(long)hkv * length * d];
            var values = new double[(long)hkv * length * dv];
            for (int h = 0; h < hkv; h++)
                for (int j = 0; j < length; j++)
                {
                    var keyRow = keys.AsSpan((int)(((long)h * length + j) * d), d);
                    var valueRow = values.AsSpan((int)(((long)h * length + j) * dv), dv);
                    if (j < cached)
                    {
                        var (block, slot) = p.Locate(b, j);
                        kc.AsSpan((int)((((long)block * hkv + h) * slots + slot) * d), d).CopyTo(keyRow);
                        vc.AsSpan((int)((((long)block * hkv + h) * slots + slot) * dv), dv).CopyTo(valueRow);
                        continue;
                    }
                    int t = j - cached;
                    kn.AsSpan((int)((((long)b * hkv + h) * nnew + t) * d), d).CopyTo(keyRow);
                    vn.AsSpan((int)((((long)b * hkv + h) * nnew + t) * dv), dv).CopyTo(valueRow);
                    if (half > 0) Rotate(keyRow, j, cos!, sin!, half, cache.RotaryInterleaved, a);
                    // The append stores into the cache, so the attention sees the new tokens in the cache's type.
                    foreach (ref double x in keyRow) x = type.RoundTo(x);
                    foreach (ref double x in valueRow) x = type.RoundTo(x);
                }
            var queries = q.AsSpan((int)((long)b * hq * nq * d), hq * nq * d).ToArray();
            if (half > 0)
                for (int h = 0; h < hq; h++)
                    for (int i = 0; i < nq; i++)
                    {
                        var row = queries.AsSpan((h * nq + i) * d, d);
                        Rotate(row, p.QueryPosition(b, i), cos!, sin!, half, cache.RotaryInterleaved, a);
                        foreach (ref double x in row) x = a.Store(x);
                    }
            var element = FlashCore(p.ElementProblem(b), queries, keys, values, a);
            element.Output.CopyTo(output, (long)b * hq * nq * dv);
            element.LogSumExp!.CopyTo(lse, (long)b * hq * nq);
        }
        return new ReferenceResult(output, [batch, hq, nq, dv], lse, [batch, hq, nq]);
    }
}
