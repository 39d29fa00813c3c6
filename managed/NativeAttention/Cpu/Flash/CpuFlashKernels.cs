// The register-blocked inner loops of CPU flash attention: S^T = K Q^T, online softmax on S^T, O += P V.
using System.Runtime.CompilerServices;

namespace NativeAttention.Cpu;

/// <summary>
/// Micro-kernels over one column group of <c>TGroup</c> vectors of query columns (1 or 4; the group's
/// width is <c>TGroup.Value * TSimd.Count</c>) against a key tile. Scores are kept transposed, one row per key, so
/// the softmax runs down columns with vertical operations only. Four-vector groups are the fast shape; one-vector
/// groups keep decode-like calls (a few query columns per item) from computing mostly padding.
/// </summary>
internal static unsafe class CpuFlashKernels
{
    private const int KeyBlock = CpuFlashTiles.KeyBlock;
    private const int RowBlock = CpuFlashTiles.RowBlock;

    /// <summary>
    /// <c>scores[j][c] = sum_d keys[j][d] * queryT[d][c]</c> for <paramref name="keyCount"/> keys (a multiple of
    /// <see cref="CpuFlashTiles.KeyBlock"/>). <paramref name="queryT"/> is <c>[headDim][group width]</c>, <paramref name="keys"/>
    /// has rows <paramref name="keyStride"/> floats apart, <paramref name="scores"/> is <c>[keys][group width]</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Scores<TSimd, T, TGroup>(float* queryT, float* keys, long keyStride, int headDim, int keyCount, float* scores)
        where TSimd : struct, ISimd<T> where T : unmanaged where TGroup : struct, IConstant
    {
        int w = TSimd.Count;
        bool wide = TGroup.Value == 4;
        bool fourKeys = TSimd.Registers >= 32; // 16 accumulators + 4 operands; with 16 registers, two keys at a time
        int width = TGroup.Value * w;
        for (int j = 0; j < keyCount; j += fourKeys ? KeyBlock : KeyBlock / 2)
        {
            float* k0 = keys + j * keyStride;
            float* k1 = k0 + keyStride;
            float* k2 = k1 + keyStride;
            float* k3 = k2 + keyStride;
            T a00 = TSimd.Zero, a01 = TSimd.Zero, a02 = TSimd.Zero, a03 = TSimd.Zero;
            T a10 = TSimd.Zero, a11 = TSimd.Zero, a12 = TSimd.Zero, a13 = TSimd.Zero;
            T a20 = TSimd.Zero, a21 = TSimd.Zero, a22 = TSimd.Zero, a23 = TSimd.Zero;
            T a30 = TSimd.Zero, a31 = TSimd.Zero, a32 = TSimd.Zero, a33 = TSimd.Zero;
            float* q = queryT;
            for (int d = 0; d < headDim; d++, q += width)
            {
                T q0 = TSimd.Load(q), q1 = default, q2 = default, q3 = default;
                if (wide) { q1 = TSimd.Load(q + w); q2 = TSimd.Load(q + 2 * w); q3 = TSimd.Load(q + 3 * w); }
                T b = TSimd.Broadcast(k0[d]);
                a00 = TSimd.MultiplyAdd(q0, b, a00);
                if (wide) { a01 = TSimd.MultiplyAdd(q1, b, a01); a02 = TSimd.MultiplyAdd(q2, b, a02); a03 = TSimd.MultiplyAdd(q3, b, a03); }
                b = TSimd.Broadcast(k1[d]);
                a10 = TSimd.MultiplyAdd(q0, b, a10);
                if (wide) { a11 = TSimd.MultiplyAdd(q1, b, a11); a12 = TSimd.MultiplyAdd(q2, b, a12); a13 = TSimd.MultiplyAdd(q3, b, a13); }
                if (!fourKeys) continue;
                b = TSimd.Broadcast(k2[d]);
                a20 = TSimd.MultiplyAdd(q0, b, a20);
                if (wide) { a21 = TSimd.MultiplyAdd(q1, b, a21); a22 = TSimd.MultiplyAdd(q2, b, a22); a23 = TSimd.MultiplyAdd(q3, b, a23); }
                b = TSimd.Broadcast(k3[d]);
                a30 = TSimd.MultiplyAdd(q0, b, a30);
                if (wide) { a31 = TSimd.MultiplyAdd(q1, b, a31); a32 = TSimd.MultiplyAdd(q2, b, a32); a33 = TSimd.MultiplyAdd(q3, b, a33); }
            }
            float* s0 = scores + (long)j * width, s1 = s0 + width, s2 = s1 + width, s3 = s2 + width;
            TSimd.Store(s0, a00); TSimd.Store(s1, a10);
            if (wide)
            {
                TSimd.Store(s0 + w, a01); TSimd.Store(s0 + 2 * w, a02); TSimd.Store(s0 + 3 * w, a03);
                TSimd.Store(s1 + w, a11); TSimd.Store(s1 + 2 * w, a12); TSimd.Store(s1 + 3 * w, a13);
            }
            if (!fourKeys) continue;
            TSimd.Store(s2, a20); TSimd.Store(s3, a30);
            if (wide)
            {
                TSimd.Store(s2 + w, a21); TSimd.Store(s2 + 2 * w, a22); TSimd.Store(s2 + 3 * w, a23);
                TSimd.Store(s3 + w, a31); TSimd.Store(s3 + 2 * w, a32); TSimd.Store(s3 + 3 * w, a33);
            }
        }
    }

    /// <summary>
    /// <see cref="Scores"/> for <typeparamref name="TVectors"/> adjacent vectors of a wider column group (1 to 4), so
    /// that a tile whose columns see different key ranges (a causal diagonal block) computes only the vectors that see
    /// each run of keys. <paramref name="queryT"/> and <paramref name="scores"/> point at the first of those vectors and
    /// have rows <paramref name="width"/> floats apart; score entries of the group's other vectors are left as they were.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ScoresSlice<TSimd, T, TVectors>(float* queryT, int width, float* keys, long keyStride, int headDim, int keyCount, float* scores)
        where TSimd : struct, ISimd<T> where T : unmanaged where TVectors : struct, IConstant
    {
        int w = TSimd.Count;
        int n = TVectors.Value;
        bool fourKeys = TSimd.Registers >= 32;
        for (int j = 0; j < keyCount; j += fourKeys ? KeyBlock : KeyBlock / 2)
        {
            float* k0 = keys + j * keyStride;
            float* k1 = k0 + keyStride;
            float* k2 = k1 + keyStride;
            float* k3 = k2 + keyStride;
            T a00 = TSimd.Zero, a01 = TSimd.Zero, a02 = TSimd.Zero, a03 = TSimd.Zero;
            T a10 = TSimd.Zero, a11 = TSimd.Zero, a12 = TSimd.Zero, a13 = TSimd.Zero;
            T a20 = TSimd.Zero, a21 = TSimd.Zero, a22 = TSimd.Zero, a23 = TSimd.Zero;
            T a30 = TSimd.Zero, a31 = TSimd.Zero, a32 = TSimd.Zero, a33 = TSimd.Zero;
            float* q = queryT;
            for (int d = 0; d < headDim; d++, q += width)
            {
                T q0 = TSimd.Load(q), q1 = default, q2 = default, q3 = default;
                if (n > 1) q1 = TSimd.Load(q + w);
                if (n > 2) q2 = TSimd.Load(q + 2 * w);
                if (n > 3) q3 = TSimd.Load(q + 3 * w);
                T b = TSimd.Broadcast(k0[d]);
                a00 = TSimd.MultiplyAdd(q0, b, a00);
                if (n > 1) a01 = TSimd.MultiplyAdd(q1, b, a01);
                if (n > 2) a02 = TSimd.MultiplyAdd(q2, b, a02);
                if (n > 3) a03 = TSimd.MultiplyAdd(q3, b, a03);
                b = TSimd.Broadcast(k1[d]);
                a10 = TSimd.MultiplyAdd(q0, b, a10);
                if (n > 1) a11 = TSimd.MultiplyAdd(q1, b, a11);
                if (n > 2) a12 = TSimd.MultiplyAdd(q2, b, a12);
                if (n > 3) a13 = TSimd.MultiplyAdd(q3, b, a13);
                if (!fourKeys) continue;
                b = TSimd.Broadcast(k2[d]);
                a20 = TSimd.MultiplyAdd(q0, b, a20);
                if (n > 1) a21 = TSimd.MultiplyAdd(q1, b, a21);
                if (n > 2) a22 = TSimd.MultiplyAdd(q2, b, a22);
                if (n > 3) a23 = TSimd.MultiplyAdd(q3, b, a23);
                b = TSimd.Broadcast(k3[d]);
                a30 = TSimd.MultiplyAdd(q0, b, a30);
                if (n > 1) a31 = TSimd.MultiplyAdd(q1, b, a31);
                if (n > 2) a32 = TSimd.MultiplyAdd(q2, b, a32);
                if (n > 3) a33 = TSimd.MultiplyAdd(q3, b, a33);
            }
            float* s0 = scores + (long)j * width, s1 = s0 + width, s2 = s1 + width, s3 = s2 + width;
            TSimd.Store(s0, a00); TSimd.Store(s1, a10);
            if (n > 1) { TSimd.Store(s0 + w, a01); TSimd.Store(s1 + w, a11); }
            if (n > 2) { TSimd.Store(s0 + 2 * w, a02); TSimd.Store(s1 + 2 * w, a12); }
            if (n > 3) { TSimd.Store(s0 + 3 * w, a03); TSimd.Store(s1 + 3 * w, a13); }
            if (!fourKeys) continue;
            TSimd.Store(s2, a20); TSimd.Store(s3, a30);
            if (n > 1) { TSimd.Store(s2 + w, a21); TSimd.Store(s3 + w, a31); }
            if (n > 2) { TSimd.Store(s2 + 2 * w, a22); TSimd.Store(s3 + 2 * w, a32); }
            if (n > 3) { TSimd.Store(s2 + 3 * w, a23); TSimd.Store(s3 + 3 * w, a33); }
        }
    }

    /// <summary>
    /// The same scores as <see cref="Scores"/> for a one-vector group holding only <paramref name="columns"/> real
    /// columns (decoding), as dot products with the head dimension in the lanes: no work on padding columns, which
    /// get 0. <paramref name="queries"/> holds the columns' scaled query rows, <paramref name="queryStride"/> floats apart.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ScoresByDot<TSimd, T>(float* queries, long queryStride, int columns, float* keys, long keyStride, int headDim, int keyCount, float* scores)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int w = TSimd.Count;
        int vectorEnd = headDim - headDim % w;
        for (int j = 0; j < keyCount; j += KeyBlock / 2, scores += 2 * w)
        {
            float* k0 = keys + j * keyStride, k1 = k0 + keyStride;
            for (int c = 0; c < w; c++)
            {
                if (c >= columns)
                {
                    scores[c] = 0;
                    scores[w + c] = 0;
                    continue;
                }
                float* q = queries + c * queryStride;
                T a0 = TSimd.Zero, a1 = TSimd.Zero;
                int d = 0;
                for (; d < vectorEnd; d += w)
                {
                    T qv = TSimd.Load(q + d);
                    a0 = TSimd.MultiplyAdd(qv, TSimd.Load(k0 + d), a0);
                    a1 = TSimd.MultiplyAdd(qv, TSimd.Load(k1 + d), a1);
                }
                float s0 = TSimd.Sum(a0), s1 = TSimd.Sum(a1);
                for (; d < headDim; d++)
                {
                    s0 += q[d] * k0[d];
                    s1 += q[d] * k1[d];
                }
                scores[c] = s0;
                scores[w + c] = s1;
            }
        }
    }

    /// <summary><c>target[n] += source[n]</c> for <paramref name="count"/> floats, a multiple of the vector width.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void AddTile<TSimd, T>(float* target, float* source, long count) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        for (long n = 0; n < count; n += TSimd.Count) TSimd.Store(target + n, TSimd.Add(TSimd.Load(target + n), TSimd.Load(source + n)));
    }

    /// <summary>
    /// Turns scores <c>s</c> (log2 units) into log2 sigmoid weights <c>log2 sigmoid(s + bias)</c> in place, for
    /// <paramref name="count"/> floats (a multiple of the vector width). The online softmax then runs on them
    /// unchanged: its running max and sum become a stable representation of the row's total sigmoid weight.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Log2SigmoidTile<TSimd, T>(float* scores, long count, float biasLog2) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        T bias = TSimd.Broadcast(biasLog2);
        for (long n = 0; n < count; n += TSimd.Count)
            TSimd.Store(scores + n, CpuSimdMath.Log2Sigmoid<TSimd, T>(TSimd.Add(TSimd.Load(scores + n), bias)));
    }

    /// <summary>
    /// Sets <c>scores[j][c]</c> to -inf unless <c>start[c] &lt;= j &lt; end[c]</c>; the bounds are tile-relative
    /// and stored as floats (they are small integers, so the comparison is exact). Compiled fully optimised at once:
    /// windowed calls mask two of every five tiles, and an unoptimised first tier cost them several percent.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Mask<TSimd, T, TGroup>(float* scores, int keyCount, float* start, float* end)
        where TSimd : struct, ISimd<T> where T : unmanaged where TGroup : struct, IConstant
    {
        int w = TSimd.Count;
        int width = TGroup.Value * w;
        for (int v = 0; v < width; v += w)
        {
            T low = TSimd.Load(start + v), high = TSimd.Load(end + v);
            float* s = scores + v;
            for (int j = 0; j < keyCount; j++, s += width)
                TSimd.Store(s, TSimd.KeepInRange(TSimd.Load(s), TSimd.Broadcast(j), low, high));
        }
    }

    /// <summary>
    /// One online-softmax step for the group's columns over a tile of scores in log2 units: raises the running
    /// max, turns scores into probabilities <c>2^(s - max)</c> in place, and rescales the running sum. Writes the
    /// factor <paramref name="alpha"/> by which each column's output accumulator must be rescaled.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Softmax<TSimd, T, TGroup>(float* scores, int keyCount, float* max, float* sum, float* alpha)
        where TSimd : struct, ISimd<T> where T : unmanaged where TGroup : struct, IConstant
    {
        int w = TSimd.Count;
        bool wide = TGroup.Value == 4;
        int width = TGroup.Value * w;
        T m0 = TSimd.NegativeInfinity, m1 = m0, m2 = m0, m3 = m0;
        float* s = scores;
        for (int j = 0; j < keyCount; j++, s += width)
        {
            m0 = TSimd.Max(m0, TSimd.Load(s));
            if (wide)
            {
                m1 = TSimd.Max(m1, TSimd.Load(s + w));
                m2 = TSimd.Max(m2, TSimd.Load(s + 2 * w));
                m3 = TSimd.Max(m3, TSimd.Load(s + 3 * w));
            }
        }
        T r0 = Rescale<TSimd, T>(max, ref m0, sum, alpha), r1 = default, r2 = default, r3 = default;
        if (wide)
        {
            r1 = Rescale<TSimd, T>(max + w, ref m1, sum + w, alpha + w);
            r2 = Rescale<TSimd, T>(max + 2 * w, ref m2, sum + 2 * w, alpha + 2 * w);
            r3 = Rescale<TSimd, T>(max + 3 * w, ref m3, sum + 3 * w, alpha + 3 * w);
        }
        T l0 = TSimd.Zero, l1 = TSimd.Zero, l2 = TSimd.Zero, l3 = TSimd.Zero;
        s = scores;
        for (int j = 0; j < keyCount; j++, s += width)
        {
            T p0 = TSimd.Exp2NonPositive(TSimd.Subtract(TSimd.Load(s), m0));
            TSimd.Store(s, p0);
            l0 = TSimd.Add(l0, p0);
            if (wide)
            {
                T p1 = TSimd.Exp2NonPositive(TSimd.Subtract(TSimd.Load(s + w), m1));
                T p2 = TSimd.Exp2NonPositive(TSimd.Subtract(TSimd.Load(s + 2 * w), m2));
                T p3 = TSimd.Exp2NonPositive(TSimd.Subtract(TSimd.Load(s + 3 * w), m3));
                TSimd.Store(s + w, p1); TSimd.Store(s + 2 * w, p2); TSimd.Store(s + 3 * w, p3);
                l1 = TSimd.Add(l1, p1); l2 = TSimd.Add(l2, p2); l3 = TSimd.Add(l3, p3);
            }
        }
        TSimd.Store(sum, TSimd.MultiplyAdd(TSimd.Load(sum), r0, l0));
        if (wide)
        {
            TSimd.Store(sum + w, TSimd.MultiplyAdd(TSimd.Load(sum + w), r1, l1));
            TSimd.Store(sum + 2 * w, TSimd.MultiplyAdd(TSimd.Load(sum + 2 * w), r2, l2));
            TSimd.Store(sum + 3 * w, TSimd.MultiplyAdd(TSimd.Load(sum + 3 * w), r3, l3));
        }
    }

    /// <summary>
    /// Merges a tile's column max <paramref name="tileMax"/> into the running max and returns (and stores in
    /// <paramref name="alpha"/>) the factor <c>2^(old - new)</c>. On return <paramref name="tileMax"/> holds the max to
    /// subtract from the tile's scores: the new max, or 0 for a column that has seen no key yet, which keeps its
    /// probabilities at exactly 0 instead of computing <c>-inf - -inf</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static T Rescale<TSimd, T>(float* max, ref T tileMax, float* sum, float* alpha)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        T old = TSimd.Load(max);
        T updated = TSimd.Max(tileMax, old);
        TSimd.Store(max, updated);
        tileMax = TSimd.NegativeInfinityToZero(updated);
        T factor = TSimd.Exp2NonPositive(TSimd.Subtract(old, tileMax));
        TSimd.Store(alpha, factor);
        return factor;
    }

    /// <summary>
    /// <c>output[c] = alpha[c] * output[c] + sum_j probabilities[j][c] * values[j]</c> for every column c of the
    /// group. <paramref name="output"/> is <c>[group width][outputStride]</c>, with <paramref name="outputStride"/> a
    /// multiple of the vector width; <paramref name="values"/> has rows <paramref name="valueStride"/> floats apart,
    /// each readable for <paramref name="outputStride"/> floats. Only the first <paramref name="columns"/> rows (rounded
    /// up to the register block; the group's padding rows after them are never read back) are updated.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Accumulate<TSimd, T, TGroup>(float* probabilities, float* values, long valueStride, int keyCount, int outputStride, float* alpha, float* output, int columns)
        where TSimd : struct, ISimd<T> where T : unmanaged where TGroup : struct, IConstant
    =>
        AccumulateRows<TSimd, T, StridedRows>(probabilities, TGroup.Value * TSimd.Count, values, new StridedRows(valueStride), keyCount, outputStride, alpha, output, columns);

    /// <summary>
    /// The register-block loop of <see cref="Accumulate"/>, over value rows found through <typeparamref name="TRows"/>
    /// (evenly strided for flash, gathered by offsets for neighborhood key boxes): the first <paramref name="columns"/>
    /// rows of <paramref name="output"/> (rounded up to the register block), <paramref name="width"/> probability
    /// columns per key. Needs vectors at least as wide as the register block.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void AccumulateRows<TSimd, T, TRows>(float* probabilities, int width, float* values, TRows rows, int keyCount, int outputStride, float* alpha, float* output, int columns)
        where TSimd : struct, ISimd<T> where T : unmanaged where TRows : struct, IValueRows
    {
        int w = TSimd.Count;
        int vectors = outputStride / w;
        for (int row = 0; row < columns; row += TSimd.Registers >= 32 ? RowBlock : RowBlock / 2)
        {
            float* p = probabilities + row, a = alpha + row, o = output + (long)row * outputStride;
            int v = 0;
            for (; v + 4 <= vectors; v += 4)
                AccumulateBlock<TSimd, T, Four, TRows>(p, width, values + v * w, rows, keyCount, outputStride, a, o + v * w);
            switch (vectors - v)
            {
                case 3: AccumulateBlock<TSimd, T, Three, TRows>(p, width, values + v * w, rows, keyCount, outputStride, a, o + v * w); break;
                case 2: AccumulateBlock<TSimd, T, Two, TRows>(p, width, values + v * w, rows, keyCount, outputStride, a, o + v * w); break;
                case 1: AccumulateBlock<TSimd, T, One, TRows>(p, width, values + v * w, rows, keyCount, outputStride, a, o + v * w); break;
            }
        }
    }

    /// <summary>
    /// <see cref="Accumulate"/> where column c's probabilities are 0 outside tile keys <c>[start[c], end[c])</c> (the
    /// masked tile's bounds, as floats): each register block of output rows runs only over the keys its rows see,
    /// which on a causal diagonal tile is about half of them. Skipped probabilities are exact zeros, so the result is
    /// that of <see cref="Accumulate"/> whenever V is finite.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void AccumulateInRanges<TSimd, T, TGroup>(float* probabilities, float* values, long valueStride, int keyCount, int outputStride, float* alpha, float* output, int columns,
        float* start, float* end)
        where TSimd : struct, ISimd<T> where T : unmanaged where TGroup : struct, IConstant
    {
        int w = TSimd.Count;
        int width = TGroup.Value * w;
        int vectors = outputStride / w;
        int rows = TSimd.Registers >= 32 ? RowBlock : RowBlock / 2;
        for (int row = 0; row < columns; row += rows)
        {
            float low = start[row], high = end[row];
            for (int r = 1; r < rows; r++)
            {
                low = MathF.Min(low, start[row + r]);
                high = MathF.Max(high, end[row + r]);
            }
            int first = Math.Clamp((int)low, 0, keyCount), count = Math.Clamp((int)high, first, keyCount) - first;
            float* p = probabilities + (long)first * width + row, a = alpha + row, o = output + (long)row * outputStride;
            float* v0 = values + first * valueStride;
            int v = 0;
            for (; v + 4 <= vectors; v += 4)
                AccumulateBlock<TSimd, T, Four, StridedRows>(p, width, v0 + v * w, new StridedRows(valueStride), count, outputStride, a, o + v * w);
            switch (vectors - v)
            {
                case 3: AccumulateBlock<TSimd, T, Three, StridedRows>(p, width, v0 + v * w, new StridedRows(valueStride), count, outputStride, a, o + v * w); break;
                case 2: AccumulateBlock<TSimd, T, Two, StridedRows>(p, width, v0 + v * w, new StridedRows(valueStride), count, outputStride, a, o + v * w); break;
                case 1: AccumulateBlock<TSimd, T, One, StridedRows>(p, width, v0 + v * w, new StridedRows(valueStride), count, outputStride, a, o + v * w); break;
            }
        }
    }

    /// <summary>The P V register block: <see cref="CpuFlashTiles.RowBlock"/> output rows x <typeparamref name="TVectors"/> vectors, value row j at <c>rows.Row(values, j)</c>.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void AccumulateBlock<TSimd, T, TVectors, TRows>(float* p, int width, float* values, TRows rows, int keyCount, int outputStride, float* alpha, float* output)
        where TSimd : struct, ISimd<T> where T : unmanaged where TVectors : struct, IConstant where TRows : struct, IValueRows
    {
        int w = TSimd.Count;
        int n = TVectors.Value;
        bool fourRows = TSimd.Registers >= 32; // as in Scores: with 16 registers, two rows at a time
        float* o0 = output, o1 = o0 + outputStride, o2 = o1 + outputStride, o3 = o2 + outputStride;
        T r = TSimd.Broadcast(alpha[0]);
        T a00 = TSimd.Multiply(TSimd.Load(o0), r), a01 = default, a02 = default, a03 = default;
        if (n > 1) a01 = TSimd.Multiply(TSimd.Load(o0 + w), r);
        if (n > 2) a02 = TSimd.Multiply(TSimd.Load(o0 + 2 * w), r);
        if (n > 3) a03 = TSimd.Multiply(TSimd.Load(o0 + 3 * w), r);
        r = TSimd.Broadcast(alpha[1]);
        T a10 = TSimd.Multiply(TSimd.Load(o1), r), a11 = default, a12 = default, a13 = default;
        if (n > 1) a11 = TSimd.Multiply(TSimd.Load(o1 + w), r);
        if (n > 2) a12 = TSimd.Multiply(TSimd.Load(o1 + 2 * w), r);
        if (n > 3) a13 = TSimd.Multiply(TSimd.Load(o1 + 3 * w), r);
        T a20 = default, a21 = default, a22 = default, a23 = default;
        T a30 = default, a31 = default, a32 = default, a33 = default;
        if (fourRows)
        {
            r = TSimd.Broadcast(alpha[2]);
            a20 = TSimd.Multiply(TSimd.Load(o2), r);
            if (n > 1) a21 = TSimd.Multiply(TSimd.Load(o2 + w), r);
            if (n > 2) a22 = TSimd.Multiply(TSimd.Load(o2 + 2 * w), r);
            if (n > 3) a23 = TSimd.Multiply(TSimd.Load(o2 + 3 * w), r);
            r = TSimd.Broadcast(alpha[3]);
            a30 = TSimd.Multiply(TSimd.Load(o3), r);
            if (n > 1) a31 = TSimd.Multiply(TSimd.Load(o3 + w), r);
            if (n > 2) a32 = TSimd.Multiply(TSimd.Load(o3 + 2 * w), r);
            if (n > 3) a33 = TSimd.Multiply(TSimd.Load(o3 + 3 * w), r);
        }

        for (int j = 0; j < keyCount; j++, p += width)
        {
            float* v = rows.Row(values, j);
            T v0 = TSimd.Load(v), v1 = default, v2 = default, v3 = default;
            if (n > 1) v1 = TSimd.Load(v + w);
            if (n > 2) v2 = TSimd.Load(v + 2 * w);
            if (n > 3) v3 = TSimd.Load(v + 3 * w);
            T b = TSimd.Broadcast(p[0]);
            a00 = TSimd.MultiplyAdd(v0, b, a00);
            if (n > 1) a01 = TSimd.MultiplyAdd(v1, b, a01);
            if (n > 2) a02 = TSimd.MultiplyAdd(v2, b, a02);
            if (n > 3) a03 = TSimd.MultiplyAdd(v3, b, a03);
            b = TSimd.Broadcast(p[1]);
            a10 = TSimd.MultiplyAdd(v0, b, a10);
            if (n > 1) a11 = TSimd.MultiplyAdd(v1, b, a11);
            if (n > 2) a12 = TSimd.MultiplyAdd(v2, b, a12);
            if (n > 3) a13 = TSimd.MultiplyAdd(v3, b, a13);
            if (!fourRows) continue;
            b = TSimd.Broadcast(p[2]);
            a20 = TSimd.MultiplyAdd(v0, b, a20);
            if (n > 1) a21 = TSimd.MultiplyAdd(v1, b, a21);
            if (n > 2) a22 = TSimd.MultiplyAdd(v2, b, a22);
            if (n > 3) a23 = TSimd.MultiplyAdd(v3, b, a23);
            b = TSimd.Broadcast(p[3]);
            a30 = TSimd.MultiplyAdd(v0, b, a30);
            if (n > 1) a31 = TSimd.MultiplyAdd(v1, b, a31);
            if (n > 2) a32 = TSimd.MultiplyAdd(v2, b, a32);
            if (n > 3) a33 = TSimd.MultiplyAdd(v3, b, a33);
        }

        TSimd.Store(o0, a00); TSimd.Store(o1, a10);
        if (n > 1) { TSimd.Store(o0 + w, a01); TSimd.Store(o1 + w, a11); }
        if (n > 2) { TSimd.Store(o0 + 2 * w, a02); TSimd.Store(o1 + 2 * w, a12); }
        if (n > 3) { TSimd.Store(o0 + 3 * w, a03); TSimd.Store(o1 + 3 * w, a13); }
        if (!fourRows) return;
        TSimd.Store(o2, a20); TSimd.Store(o3, a30);
        if (n > 1) { TSimd.Store(o2 + w, a21); TSimd.Store(o3 + w, a31); }
        if (n > 2) { TSimd.Store(o2 + 2 * w, a22); TSimd.Store(o3 + 2 * w, a32); }
        if (n > 3) { TSimd.Store(o2 + 3 * w, a23); TSimd.Store(o3 + 3 * w, a33); }
    }
}

/// <summary>Where the P V kernels find value row j: a struct, so the JIT specialises the kernel for each kind.</summary>
internal unsafe interface IValueRows
{
    /// <summary>The address of value row <paramref name="j"/> relative to <paramref name="values"/>.</summary>
    float* Row(float* values, int j);
}

/// <summary>Value rows <c>stride</c> floats apart.</summary>
internal readonly unsafe struct StridedRows(long stride) : IValueRows
{
    public float* Row(float* values, int j) => values + j * stride;
}

/// <summary>Value rows at their own offsets (neighborhood key boxes).</summary>
internal readonly unsafe struct GatheredRows(long* offsets) : IValueRows
{
    public float* Row(float* values, int j) => values + offsets[j];
}
