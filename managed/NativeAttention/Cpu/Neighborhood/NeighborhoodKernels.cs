// The micro-kernels CPU neighborhood attention adds to the flash ones: scores of query vectors against their own key
// boxes, a per-axis box mask on a score tile, and the relative-position bias.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NativeAttention.Cpu;

/// <summary>Masking of transposed score tiles (<c>scores[key][column]</c>) by a per-axis window box per column.</summary>
internal static unsafe class NeighborhoodKernels
{
    private const int KeyBlock = CpuFlashTiles.KeyBlock;

    /// <summary>
    /// The score tile of a four-vector column group in which each vector v of query columns has keys of its own:
    /// <c>scores[j][v w + l] = sum_d keys_v[offsets[j] + d] * queryT[d][v w + l]</c> for <paramref name="keyCount"/> keys (a
    /// multiple of <see cref="CpuFlashTiles.KeyBlock"/>). The four vectors' keys lie at the same offsets from their own
    /// bases <paramref name="keys0"/> .. <paramref name="keys3"/> (key boxes of one shape), so keys are read where they
    /// are, in any strided layout. The register block is that of <see cref="CpuFlashKernels.Scores{TSimd, T, TGroup}"/>
    /// (4 keys x 4 vectors), with one broadcast per multiply-add instead of one per four; the broadcasts are loads
    /// folded into the multiply-adds, which measured as fast on Zen 5.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ScoresSkewed<TSimd, T>(float* queryT, float* keys0, float* keys1, float* keys2, float* keys3, long* offsets, int headDim, int keyCount, float* scores)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int w = TSimd.Count;
        int width = 4 * w;
        bool fourKeys = TSimd.Registers >= 32; // 16 accumulators + 4 operands; with 16 registers, two keys at a time
        for (int j = 0; j < keyCount; j += fourKeys ? KeyBlock : KeyBlock / 2)
        {
            long o0 = offsets[j], o1 = offsets[j + 1], o2 = fourKeys ? offsets[j + 2] : 0, o3 = fourKeys ? offsets[j + 3] : 0;
            float* k0 = keys0, k1 = keys1, k2 = keys2, k3 = keys3;
            T a00 = TSimd.Zero, a01 = TSimd.Zero, a02 = TSimd.Zero, a03 = TSimd.Zero;
            T a10 = TSimd.Zero, a11 = TSimd.Zero, a12 = TSimd.Zero, a13 = TSimd.Zero;
            T a20 = TSimd.Zero, a21 = TSimd.Zero, a22 = TSimd.Zero, a23 = TSimd.Zero;
            T a30 = TSimd.Zero, a31 = TSimd.Zero, a32 = TSimd.Zero, a33 = TSimd.Zero;
            float* q = queryT;
            for (int d = 0; d < headDim; d++, q += width, k0++, k1++, k2++, k3++)
            {
                T q0 = TSimd.Load(q), q1 = TSimd.Load(q + w), q2 = TSimd.Load(q + 2 * w), q3 = TSimd.Load(q + 3 * w);
                a00 = TSimd.MultiplyAdd(q0, TSimd.Broadcast(k0[o0]), a00);
                a01 = TSimd.MultiplyAdd(q1, TSimd.Broadcast(k1[o0]), a01);
                a02 = TSimd.MultiplyAdd(q2, TSimd.Broadcast(k2[o0]), a02);
                a03 = TSimd.MultiplyAdd(q3, TSimd.Broadcast(k3[o0]), a03);
                a10 = TSimd.MultiplyAdd(q0, TSimd.Broadcast(k0[o1]), a10);
                a11 = TSimd.MultiplyAdd(q1, TSimd.Broadcast(k1[o1]), a11);
                a12 = TSimd.MultiplyAdd(q2, TSimd.Broadcast(k2[o1]), a12);
                a13 = TSimd.MultiplyAdd(q3, TSimd.Broadcast(k3[o1]), a13);
                if (!fourKeys) continue;
                a20 = TSimd.MultiplyAdd(q0, TSimd.Broadcast(k0[o2]), a20);
                a21 = TSimd.MultiplyAdd(q1, TSimd.Broadcast(k1[o2]), a21);
                a22 = TSimd.MultiplyAdd(q2, TSimd.Broadcast(k2[o2]), a22);
                a23 = TSimd.MultiplyAdd(q3, TSimd.Broadcast(k3[o2]), a23);
                a30 = TSimd.MultiplyAdd(q0, TSimd.Broadcast(k0[o3]), a30);
                a31 = TSimd.MultiplyAdd(q1, TSimd.Broadcast(k1[o3]), a31);
                a32 = TSimd.MultiplyAdd(q2, TSimd.Broadcast(k2[o3]), a32);
                a33 = TSimd.MultiplyAdd(q3, TSimd.Broadcast(k3[o3]), a33);
            }
            float* s0 = scores + (long)j * width, s1 = s0 + width, s2 = s1 + width, s3 = s2 + width;
            TSimd.Store(s0, a00); TSimd.Store(s0 + w, a01); TSimd.Store(s0 + 2 * w, a02); TSimd.Store(s0 + 3 * w, a03);
            TSimd.Store(s1, a10); TSimd.Store(s1 + w, a11); TSimd.Store(s1 + 2 * w, a12); TSimd.Store(s1 + 3 * w, a13);
            if (!fourKeys) continue;
            TSimd.Store(s2, a20); TSimd.Store(s2 + w, a21); TSimd.Store(s2 + 2 * w, a22); TSimd.Store(s2 + 3 * w, a23);
            TSimd.Store(s3, a30); TSimd.Store(s3 + w, a31); TSimd.Store(s3 + 2 * w, a32); TSimd.Store(s3 + 3 * w, a33);
        }
    }

    /// <summary>
    /// <see cref="ScoresSkewed{TSimd, T}"/> (512-bit vectors, four keys a block, the same multiply-adds in the same
    /// order) with the box mask and the softmax's max pass in its epilogue: each score is kept where the vector's mask
    /// table (<see cref="BuildMaskTable"/>) holds all ones, else set to -inf, stored so, and merged into the vector's
    /// running max, which is written to <paramref name="tileMax"/> (four vectors) for <see cref="SoftmaxAfterMax"/>.
    /// Bit-identical to the box mask and flash softmax for inputs without NaN (see <c>MaskStoreMax</c>).
    /// Vectors 0 and 1 see keys only in <c>[low01, end01)</c>, vectors 2 and 3 only in <c>[low23, end23)</c> (multiples
    /// of <see cref="CpuFlashTiles.KeyBlock"/>; their mask tables hold only zeros outside, see <see cref="MaskTableRows"/>;
    /// <c>[0, keyCount)</c> for both: the whole tile): the four-vector block runs over the keys both pairs see, a
    /// two-vector block over the keys one pair sees, and a pair's keys outside its range are neither computed nor stored
    /// (its mask would have made them -inf; <see cref="SoftmaxAfterMax"/>, given the same ranges, stores their
    /// probabilities 0 without reading them). Each computed score is the same multiply-adds in the same order, so the
    /// stored scores in each pair's range and the column max equal those of the four-vector block over all keys (bit for bit).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ScoresSkewedMasked(float* queryT, float* keys0, float* keys1, float* keys2, float* keys3, long* offsets, int headDim, int keyCount, float* scores,
        uint* mask0, uint* mask1, uint* mask2, uint* mask3, float* tileMax, int low01, int end01, int low23, int end23)
    {
        const int w = 16;
        var negative = Vector512.Create(float.NegativeInfinity);
        for (int v = 0; v < 4; v++) Vector512.Store(negative, tileMax + v * w);
        // The keys both pairs see (may be empty: then from == to and each pair runs on its own).
        int from = Math.Max(low01, low23), to = Math.Max(from, Math.Min(end01, end23));
        ScoresSkewedMaskedBlocks(queryT, keys0, keys1, keys2, keys3, offsets, headDim, from, to, scores, mask0, mask1, mask2, mask3, tileMax);
        ScoresPairOutside(queryT, keys0, keys1, offsets, headDim, scores, mask0, mask1, tileMax, low01, end01, from, to);
        ScoresPairOutside(queryT + 2 * w, keys2, keys3, offsets, headDim, scores + 2 * w, mask2, mask3, tileMax + 2 * w, low23, end23, from, to);
    }

    /// <summary>
    /// One pair of vectors (its query columns, keys, score columns, masks and max at the given pointers) of
    /// <see cref="ScoresSkewedMasked"/>:
    /// the two-vector block over its keys <c>[low, end)</c> outside the four-vector block's <c>[from, to)</c>. The keys
    /// outside <c>[low, end)</c> are left unwritten: <see cref="SoftmaxAfterMax"/>, given the same range, never reads
    /// them and stores their probabilities as 0.
    /// </summary>
    private static void ScoresPairOutside(float* queryT, float* keysA, float* keysB, long* offsets, int headDim, float* scores, uint* maskA, uint* maskB,
        float* tileMax, int low, int end, int from, int to)
    {
        if (low < end)
        {
            ScoresPairBlocks(queryT, keysA, keysB, offsets, headDim, low, Math.Max(low, Math.Min(from, end)), scores, maskA, maskB, tileMax);
            ScoresPairBlocks(queryT, keysA, keysB, offsets, headDim, Math.Min(end, Math.Max(to, low)), end, scores, maskA, maskB, tileMax);
        }
    }

    /// <summary>
    /// The masked score block of two vectors (4 keys x 2 vectors, the four-vector block's multiply-adds for those
    /// vectors in the same order) over keys <c>[from, to)</c>; the column max is read from and written back to
    /// <paramref name="tileMax"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ScoresPairBlocks(float* queryT, float* keysA, float* keysB, long* offsets, int headDim, int from, int to, float* scores, uint* maskA, uint* maskB,
        float* tileMax)
    {
        const int w = 16, width = 64;
        if (from >= to) return;
        var negative = Vector512.Create(float.NegativeInfinity);
        Vector512<float> mA = Vector512.Load(tileMax), mB = Vector512.Load(tileMax + w);
        for (int j = from; j < to; j += KeyBlock)
        {
            long o0 = offsets[j], o1 = offsets[j + 1], o2 = offsets[j + 2], o3 = offsets[j + 3];
            float* kA = keysA, kB = keysB;
            Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default;
            Vector512<float> a20 = default, a21 = default, a30 = default, a31 = default;
            float* q = queryT;
            for (int d = 0; d < headDim; d++, q += width, kA++, kB++)
            {
                var q0 = Vector512.Load(q);
                var q1 = Vector512.Load(q + w);
                a00 = Simd512.MultiplyAdd(q0, Vector512.Create(kA[o0]), a00);
                a01 = Simd512.MultiplyAdd(q1, Vector512.Create(kB[o0]), a01);
                a10 = Simd512.MultiplyAdd(q0, Vector512.Create(kA[o1]), a10);
                a11 = Simd512.MultiplyAdd(q1, Vector512.Create(kB[o1]), a11);
                a20 = Simd512.MultiplyAdd(q0, Vector512.Create(kA[o2]), a20);
                a21 = Simd512.MultiplyAdd(q1, Vector512.Create(kB[o2]), a21);
                a30 = Simd512.MultiplyAdd(q0, Vector512.Create(kA[o3]), a30);
                a31 = Simd512.MultiplyAdd(q1, Vector512.Create(kB[o3]), a31);
            }
            float* s = scores + (long)j * width;
            int t = j * w;
            mA = MaskStoreMax(s, a00, maskA + t, mA, negative); mB = MaskStoreMax(s + w, a01, maskB + t, mB, negative);
            mA = MaskStoreMax(s + width, a10, maskA + t + w, mA, negative); mB = MaskStoreMax(s + width + w, a11, maskB + t + w, mB, negative);
            mA = MaskStoreMax(s + 2 * width, a20, maskA + t + 2 * w, mA, negative); mB = MaskStoreMax(s + 2 * width + w, a21, maskB + t + 2 * w, mB, negative);
            mA = MaskStoreMax(s + 3 * width, a30, maskA + t + 3 * w, mA, negative); mB = MaskStoreMax(s + 3 * width + w, a31, maskB + t + 3 * w, mB, negative);
        }
        Vector512.Store(mA, tileMax); Vector512.Store(mB, tileMax + w);
    }

    /// <summary>
    /// The four-vector masked score block of <see cref="ScoresSkewedMasked"/>
    /// over keys <c>[from, to)</c>; the column max is read from and written back to <paramref name="tileMax"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ScoresSkewedMaskedBlocks(float* queryT, float* keys0, float* keys1, float* keys2, float* keys3, long* offsets, int headDim, int from, int to,
        float* scores, uint* mask0, uint* mask1, uint* mask2, uint* mask3, float* tileMax)
    {
        const int w = 16, width = 64;
        if (from >= to) return;
        var negative = Vector512.Create(float.NegativeInfinity);
        Vector512<float> m0 = Vector512.Load(tileMax), m1 = Vector512.Load(tileMax + w), m2 = Vector512.Load(tileMax + 2 * w), m3 = Vector512.Load(tileMax + 3 * w);
        for (int j = from; j < to; j += KeyBlock)
        {
            long o0 = offsets[j], o1 = offsets[j + 1], o2 = offsets[j + 2], o3 = offsets[j + 3];
            float* k0 = keys0, k1 = keys1, k2 = keys2, k3 = keys3;
            Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
            Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
            Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
            Vector512<float> a30 = default, a31 = default, a32 = default, a33 = default;
            float* q = queryT;
            for (int d = 0; d < headDim; d++, q += width, k0++, k1++, k2++, k3++)
            {
                var q0 = Vector512.Load(q);
                var q1 = Vector512.Load(q + w);
                var q2 = Vector512.Load(q + 2 * w);
                var q3 = Vector512.Load(q + 3 * w);
                a00 = Simd512.MultiplyAdd(q0, Vector512.Create(k0[o0]), a00);
                a01 = Simd512.MultiplyAdd(q1, Vector512.Create(k1[o0]), a01);
                a02 = Simd512.MultiplyAdd(q2, Vector512.Create(k2[o0]), a02);
                a03 = Simd512.MultiplyAdd(q3, Vector512.Create(k3[o0]), a03);
                a10 = Simd512.MultiplyAdd(q0, Vector512.Create(k0[o1]), a10);
                a11 = Simd512.MultiplyAdd(q1, Vector512.Create(k1[o1]), a11);
                a12 = Simd512.MultiplyAdd(q2, Vector512.Create(k2[o1]), a12);
                a13 = Simd512.MultiplyAdd(q3, Vector512.Create(k3[o1]), a13);
                a20 = Simd512.MultiplyAdd(q0, Vector512.Create(k0[o2]), a20);
                a21 = Simd512.MultiplyAdd(q1, Vector512.Create(k1[o2]), a21);
                a22 = Simd512.MultiplyAdd(q2, Vector512.Create(k2[o2]), a22);
                a23 = Simd512.MultiplyAdd(q3, Vector512.Create(k3[o2]), a23);
                a30 = Simd512.MultiplyAdd(q0, Vector512.Create(k0[o3]), a30);
                a31 = Simd512.MultiplyAdd(q1, Vector512.Create(k1[o3]), a31);
                a32 = Simd512.MultiplyAdd(q2, Vector512.Create(k2[o3]), a32);
                a33 = Simd512.MultiplyAdd(q3, Vector512.Create(k3[o3]), a33);
            }
            float* s = scores + (long)j * width;
            int t = j * w;
            m0 = MaskStoreMax(s, a00, mask0 + t, m0, negative); m1 = MaskStoreMax(s + w, a01, mask1 + t, m1, negative);
            m2 = MaskStoreMax(s + 2 * w, a02, mask2 + t, m2, negative); m3 = MaskStoreMax(s + 3 * w, a03, mask3 + t, m3, negative);
            m0 = MaskStoreMax(s + width, a10, mask0 + t + w, m0, negative); m1 = MaskStoreMax(s + width + w, a11, mask1 + t + w, m1, negative);
            m2 = MaskStoreMax(s + width + 2 * w, a12, mask2 + t + w, m2, negative); m3 = MaskStoreMax(s + width + 3 * w, a13, mask3 + t + w, m3, negative);
            m0 = MaskStoreMax(s + 2 * width, a20, mask0 + t + 2 * w, m0, negative); m1 = MaskStoreMax(s + 2 * width + w, a21, mask1 + t + 2 * w, m1, negative);
            m2 = MaskStoreMax(s + 2 * width + 2 * w, a22, mask2 + t + 2 * w, m2, negative); m3 = MaskStoreMax(s + 2 * width + 3 * w, a23, mask3 + t + 2 * w, m3, negative);
            m0 = MaskStoreMax(s + 3 * width, a30, mask0 + t + 3 * w, m0, negative); m1 = MaskStoreMax(s + 3 * width + w, a31, mask1 + t + 3 * w, m1, negative);
            m2 = MaskStoreMax(s + 3 * width + 2 * w, a32, mask2 + t + 3 * w, m2, negative); m3 = MaskStoreMax(s + 3 * width + 3 * w, a33, mask3 + t + 3 * w, m3, negative);
        }
        Vector512.Store(m0, tileMax); Vector512.Store(m1, tileMax + w); Vector512.Store(m2, tileMax + 2 * w); Vector512.Store(m3, tileMax + 3 * w);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> MaskStoreMax(float* s, Vector512<float> score, uint* mask, Vector512<float> max, Vector512<float> negative)
    {
        var x = Vector512.ConditionalSelect(Vector512.Load(mask).AsSingle(), score, negative);
        Vector512.Store(x, s);
        // vmaxps (x > max ? x : max), not the NaN-propagating Vector512.Max (vrangeps and two vfixupimmps, three ops on
        // the FMA pipes for every score vector): equal for every non-NaN score (a max of -0 or +0 gives the same
        // probabilities and LSE); a NaN score is left out of the max, its own probability is NaN either way, and so
        // are its column's sum, output and LSE.
        return Avx512F.Max(x, max);
    }

    /// <summary>
    /// The rest of the flash online softmax (<see cref="CpuFlashKernels.Softmax{TSimd, T, TGroup}"/>, the same
    /// operations) of a four-vector tile of masked scores whose column max <see cref="ScoresSkewedMasked"/> wrote to
    /// <paramref name="tileMax"/>.
    /// Vectors 0 and 1 see keys only in <c>[low01, end01)</c>, vectors 2 and 3 only in <c>[low23, end23)</c> (the ranges
    /// <see cref="ScoresSkewedMasked"/> was given, outside which it left the tile unwritten; <c>[0, keyCount)</c>: the whole tile): a
    /// pair's probabilities outside its range are stored 0 without an exp2, as exp2 of -inf gives, and left out of its
    /// sums (adding +0 changes no sum).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void SoftmaxAfterMax(float* scores, int keyCount, float* tileMax, float* max, float* sum, float* alpha, int low01, int end01, int low23, int end23)
    {
        const int w = 16, width = 64;
        Vector512<float> m0 = Vector512.Load(tileMax), m1 = Vector512.Load(tileMax + w), m2 = Vector512.Load(tileMax + 2 * w), m3 = Vector512.Load(tileMax + 3 * w);
        var r0 = Rescale(max, ref m0, sum, alpha);
        var r1 = Rescale(max + w, ref m1, sum + w, alpha + w);
        var r2 = Rescale(max + 2 * w, ref m2, sum + 2 * w, alpha + 2 * w);
        var r3 = Rescale(max + 3 * w, ref m3, sum + 3 * w, alpha + 3 * w);
        Vector512<float> l0 = Vector512<float>.Zero, l1 = l0, l2 = l0, l3 = l0;
        float* s = scores;
        for (int j = 0; j < keyCount; j++, s += width)
        {
            if (j >= low01 && j < end01)
            {
                var p0 = Simd512.Exp2NonPositive(Vector512.Load(s) - m0);
                var p1 = Simd512.Exp2NonPositive(Vector512.Load(s + w) - m1);
                Vector512.Store(p0, s); Vector512.Store(p1, s + w);
                l0 += p0; l1 += p1;
            }
            else
            {
                Vector512.Store(Vector512<float>.Zero, s); Vector512.Store(Vector512<float>.Zero, s + w);
            }
            if (j >= low23 && j < end23)
            {
                var p2 = Simd512.Exp2NonPositive(Vector512.Load(s + 2 * w) - m2);
                var p3 = Simd512.Exp2NonPositive(Vector512.Load(s + 3 * w) - m3);
                Vector512.Store(p2, s + 2 * w); Vector512.Store(p3, s + 3 * w);
                l2 += p2; l3 += p3;
            }
            else
            {
                Vector512.Store(Vector512<float>.Zero, s + 2 * w); Vector512.Store(Vector512<float>.Zero, s + 3 * w);
            }
        }
        Vector512.Store(Simd512.MultiplyAdd(Vector512.Load(sum), r0, l0), sum);
        Vector512.Store(Simd512.MultiplyAdd(Vector512.Load(sum + w), r1, l1), sum + w);
        Vector512.Store(Simd512.MultiplyAdd(Vector512.Load(sum + 2 * w), r2, l2), sum + 2 * w);
        Vector512.Store(Simd512.MultiplyAdd(Vector512.Load(sum + 3 * w), r3, l3), sum + 3 * w);
    }

    /// <summary>
    /// <c>output[c] = alpha[c] * output[c] + sum_j probabilities[j][c] * values[offsets[j] ..]</c> for the first
    /// <paramref name="columns"/> columns (rounded up to the register block) of one vector of a four-vector group:
    /// <paramref name="probabilities"/> and <paramref name="alpha"/> point at the vector's first column,
    /// <paramref name="output"/> is <c>[columns][outputStride]</c> with <paramref name="outputStride"/> a multiple of the
    /// vector width, and every value row is readable for <paramref name="outputStride"/> floats.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void AccumulateSkewed<TSimd, T>(float* probabilities, float* values, long* offsets, int keyCount, int outputStride, float* alpha, float* output, int columns)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int w = TSimd.Count;
        int width = 4 * w;
        int vectors = outputStride / w;
        int rowStep = TSimd.Registers >= 32 ? CpuFlashTiles.RowBlock : CpuFlashTiles.RowBlock / 2;
        if (w < rowStep)
        {
            // Vectors narrower than the register block (scalar code): its rows would reach the next vector's columns,
            // which read other values, so each row is done on its own.
            for (int row = 0; row < columns; row++)
            {
                float* o = output + (long)row * outputStride;
                float r = alpha[row];
                for (int e = 0; e < outputStride; e++) o[e] *= r;
                for (int j = 0; j < keyCount; j++)
                {
                    float pj = probabilities[(long)j * width + row];
                    float* v = values + offsets[j];
                    for (int e = 0; e < outputStride; e++) o[e] += pj * v[e];
                }
            }
            return;
        }
        if (vectors <= 2 && TSimd.Registers >= 32 && w >= 8)
        {
            // Narrow value rows (one or two vectors): eight rows at a time, so 16 (or 8) multiply-add chains are in
            // flight and each value vector loaded serves eight rows (the four-row block measured latency-bound at Dv = 32).
            for (int row = 0; row < columns; row += 8)
            {
                if (vectors == 2) AccumulateEightRows<TSimd, T, Two>(probabilities + row, width, values, offsets, keyCount, outputStride, alpha + row, output + (long)row * outputStride);
                else AccumulateEightRows<TSimd, T, One>(probabilities + row, width, values, offsets, keyCount, outputStride, alpha + row, output + (long)row * outputStride);
            }
            return;
        }
        CpuFlashKernels.AccumulateRows<TSimd, T, GatheredRows>(probabilities, width, values, new GatheredRows(offsets), keyCount, outputStride, alpha, output, columns);
    }

    /// <summary>
    /// The output rows per register block of <see cref="AccumulateSkewed"/> for rows of <paramref name="outputStride"/>
    /// floats (a divisor of the vector width): every block's rows are updated together over the same keys.
    /// </summary>
    public static int AccumulateRowBlock<TSimd, T>(int outputStride) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int w = TSimd.Count;
        int rowStep = TSimd.Registers >= 32 ? CpuFlashTiles.RowBlock : CpuFlashTiles.RowBlock / 2;
        if (w < rowStep) return 1;
        return outputStride / w <= 2 && TSimd.Registers >= 32 && w >= 8 ? 8 : rowStep;
    }

    /// <summary>
    /// <see cref="AccumulateSkewed"/> where the rows of register block r (of <see cref="AccumulateRowBlock"/> rows) see
    /// only the tile keys whose key-box indices lie in <c>[first[r], end[r])</c>, the tile's first key having index
    /// <paramref name="keyBase"/>: each block runs only over those keys (its rows' probabilities elsewhere are exact
    /// zeros, so the result is that of <see cref="AccumulateSkewed"/> whenever V is finite), and a block with none only
    /// rescales its rows by alpha.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void AccumulateSkewedInRanges<TSimd, T>(float* probabilities, float* values, long* offsets, int keyCount, int outputStride, float* alpha, float* output, int columns,
        int* first, int* end, int keyBase)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int width = 4 * TSimd.Count;
        int rows = AccumulateRowBlock<TSimd, T>(outputStride);
        for (int row = 0, block = 0; row < columns; row += rows, block++)
        {
            int low = Math.Clamp(first[block] - keyBase, 0, keyCount), high = Math.Clamp(end[block] - keyBase, low, keyCount);
            AccumulateSkewed<TSimd, T>(probabilities + (long)low * width + row, values, offsets + low, high - low, outputStride, alpha + row,
                output + (long)row * outputStride, Math.Min(rows, columns - row));
        }
    }

    /// <summary>The P V register block of <see cref="AccumulateSkewed"/> for narrow values: 8 output rows x <typeparamref name="TVectors"/> (1 or 2) vectors.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void AccumulateEightRows<TSimd, T, TVectors>(float* p, int width, float* values, long* offsets, int keyCount, int outputStride, float* alpha, float* output)
        where TSimd : struct, ISimd<T> where T : unmanaged where TVectors : struct, IConstant
    {
        int w = TSimd.Count;
        bool two = TVectors.Value == 2;
        float* o0 = output, o1 = o0 + outputStride, o2 = o1 + outputStride, o3 = o2 + outputStride;
        float* o4 = o3 + outputStride, o5 = o4 + outputStride, o6 = o5 + outputStride, o7 = o6 + outputStride;
        T a00 = TSimd.Multiply(TSimd.Load(o0), TSimd.Broadcast(alpha[0])), a01 = two ? TSimd.Multiply(TSimd.Load(o0 + w), TSimd.Broadcast(alpha[0])) : default;
        T a10 = TSimd.Multiply(TSimd.Load(o1), TSimd.Broadcast(alpha[1])), a11 = two ? TSimd.Multiply(TSimd.Load(o1 + w), TSimd.Broadcast(alpha[1])) : default;
        T a20 = TSimd.Multiply(TSimd.Load(o2), TSimd.Broadcast(alpha[2])), a21 = two ? TSimd.Multiply(TSimd.Load(o2 + w), TSimd.Broadcast(alpha[2])) : default;
        T a30 = TSimd.Multiply(TSimd.Load(o3), TSimd.Broadcast(alpha[3])), a31 = two ? TSimd.Multiply(TSimd.Load(o3 + w), TSimd.Broadcast(alpha[3])) : default;
        T a40 = TSimd.Multiply(TSimd.Load(o4), TSimd.Broadcast(alpha[4])), a41 = two ? TSimd.Multiply(TSimd.Load(o4 + w), TSimd.Broadcast(alpha[4])) : default;
        T a50 = TSimd.Multiply(TSimd.Load(o5), TSimd.Broadcast(alpha[5])), a51 = two ? TSimd.Multiply(TSimd.Load(o5 + w), TSimd.Broadcast(alpha[5])) : default;
        T a60 = TSimd.Multiply(TSimd.Load(o6), TSimd.Broadcast(alpha[6])), a61 = two ? TSimd.Multiply(TSimd.Load(o6 + w), TSimd.Broadcast(alpha[6])) : default;
        T a70 = TSimd.Multiply(TSimd.Load(o7), TSimd.Broadcast(alpha[7])), a71 = two ? TSimd.Multiply(TSimd.Load(o7 + w), TSimd.Broadcast(alpha[7])) : default;
        for (int j = 0; j < keyCount; j++, p += width)
        {
            float* v = values + offsets[j];
            T v0 = TSimd.Load(v), v1 = two ? TSimd.Load(v + w) : default;
            T b = TSimd.Broadcast(p[0]);
            a00 = TSimd.MultiplyAdd(v0, b, a00);
            if (two) a01 = TSimd.MultiplyAdd(v1, b, a01);
            b = TSimd.Broadcast(p[1]);
            a10 = TSimd.MultiplyAdd(v0, b, a10);
            if (two) a11 = TSimd.MultiplyAdd(v1, b, a11);
            b = TSimd.Broadcast(p[2]);
            a20 = TSimd.MultiplyAdd(v0, b, a20);
            if (two) a21 = TSimd.MultiplyAdd(v1, b, a21);
            b = TSimd.Broadcast(p[3]);
            a30 = TSimd.MultiplyAdd(v0, b, a30);
            if (two) a31 = TSimd.MultiplyAdd(v1, b, a31);
            b = TSimd.Broadcast(p[4]);
            a40 = TSimd.MultiplyAdd(v0, b, a40);
            if (two) a41 = TSimd.MultiplyAdd(v1, b, a41);
            b = TSimd.Broadcast(p[5]);
            a50 = TSimd.MultiplyAdd(v0, b, a50);
            if (two) a51 = TSimd.MultiplyAdd(v1, b, a51);
            b = TSimd.Broadcast(p[6]);
            a60 = TSimd.MultiplyAdd(v0, b, a60);
            if (two) a61 = TSimd.MultiplyAdd(v1, b, a61);
            b = TSimd.Broadcast(p[7]);
            a70 = TSimd.MultiplyAdd(v0, b, a70);
            if (two) a71 = TSimd.MultiplyAdd(v1, b, a71);
        }
        TSimd.Store(o0, a00); TSimd.Store(o1, a10); TSimd.Store(o2, a20); TSimd.Store(o3, a30);
        TSimd.Store(o4, a40); TSimd.Store(o5, a50); TSimd.Store(o6, a60); TSimd.Store(o7, a70);
        if (!two) return;
        TSimd.Store(o0 + w, a01); TSimd.Store(o1 + w, a11); TSimd.Store(o2 + w, a21); TSimd.Store(o3 + w, a31);
        TSimd.Store(o4 + w, a41); TSimd.Store(o5 + w, a51); TSimd.Store(o6 + w, a61); TSimd.Store(o7 + w, a71);
    }

    /// <summary>
    /// Writes one vector of query columns transposed and scaled: <c>destination[d * width + l] = rows[l][d] * scale</c> for
    /// the <typeparamref name="TSimd"/> width's lanes l and <paramref name="headDim"/> d, from float32 rows (null: a
    /// padding column, written as zeros). With 512-bit vectors, 16 x 16 blocks go through registers (unpacks and
    /// 128-bit lane shuffles); one scattered store per element measured as several percent of a 1-D call.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void TransposeQueries<TSimd, T>(float** rows, float* zeros, int headDim, float scale, float* destination, int width)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int w = TSimd.Count;
        int d = 0;
        if (typeof(T) == typeof(Vector512<float>) && Avx512F.IsSupported)
        {
            var f = Vector512.Create(scale);
            for (; d + 16 <= headDim; d += 16)
            {
                Vector512<float> Row(int l) => rows[l] == null ? Vector512<float>.Zero : Vector512.Load(rows[l] + d) * f;
                Vector512<float> r0 = Row(0), r1 = Row(1), r2 = Row(2), r3 = Row(3), r4 = Row(4), r5 = Row(5), r6 = Row(6), r7 = Row(7);
                Vector512<float> r8 = Row(8), r9 = Row(9), r10 = Row(10), r11 = Row(11), r12 = Row(12), r13 = Row(13), r14 = Row(14), r15 = Row(15);
                // Pairs of rows interleaved, then pairs of pairs: u(4i + j) holds element 4k + j of rows 4i .. 4i + 3 in 128-bit lane k.
                Vector512<double> t0 = Avx512F.UnpackLow(r0, r1).AsDouble(), t1 = Avx512F.UnpackHigh(r0, r1).AsDouble();
                Vector512<double> t2 = Avx512F.UnpackLow(r2, r3).AsDouble(), t3 = Avx512F.UnpackHigh(r2, r3).AsDouble();
                Vector512<double> t4 = Avx512F.UnpackLow(r4, r5).AsDouble(), t5 = Avx512F.UnpackHigh(r4, r5).AsDouble();
                Vector512<double> t6 = Avx512F.UnpackLow(r6, r7).AsDouble(), t7 = Avx512F.UnpackHigh(r6, r7).AsDouble();
                Vector512<double> t8 = Avx512F.UnpackLow(r8, r9).AsDouble(), t9 = Avx512F.UnpackHigh(r8, r9).AsDouble();
                Vector512<double> t10 = Avx512F.UnpackLow(r10, r11).AsDouble(), t11 = Avx512F.UnpackHigh(r10, r11).AsDouble();
                Vector512<double> t12 = Avx512F.UnpackLow(r12, r13).AsDouble(), t13 = Avx512F.UnpackHigh(r12, r13).AsDouble();
                Vector512<double> t14 = Avx512F.UnpackLow(r14, r15).AsDouble(), t15 = Avx512F.UnpackHigh(r14, r15).AsDouble();
                Vector512<float> u0 = Avx512F.UnpackLow(t0, t2).AsSingle(), u1 = Avx512F.UnpackHigh(t0, t2).AsSingle();
                Vector512<float> u2 = Avx512F.UnpackLow(t1, t3).AsSingle(), u3 = Avx512F.UnpackHigh(t1, t3).AsSingle();
                Vector512<float> u4 = Avx512F.UnpackLow(t4, t6).AsSingle(), u5 = Avx512F.UnpackHigh(t4, t6).AsSingle();
                Vector512<float> u6 = Avx512F.UnpackLow(t5, t7).AsSingle(), u7 = Avx512F.UnpackHigh(t5, t7).AsSingle();
                Vector512<float> u8 = Avx512F.UnpackLow(t8, t10).AsSingle(), u9 = Avx512F.UnpackHigh(t8, t10).AsSingle();
                Vector512<float> u10 = Avx512F.UnpackLow(t9, t11).AsSingle(), u11 = Avx512F.UnpackHigh(t9, t11).AsSingle();
                Vector512<float> u12 = Avx512F.UnpackLow(t12, t14).AsSingle(), u13 = Avx512F.UnpackHigh(t12, t14).AsSingle();
                Vector512<float> u14 = Avx512F.UnpackLow(t13, t15).AsSingle(), u15 = Avx512F.UnpackHigh(t13, t15).AsSingle();
                // Lanes regrouped twice (0x88: lanes 0 and 2 of each source, 0xDD: lanes 1 and 3): element j of all 16 rows.
                Vector512<float> v0 = Avx512F.Shuffle4x128(u0, u4, 0x88), v1 = Avx512F.Shuffle4x128(u1, u5, 0x88);
                Vector512<float> v2 = Avx512F.Shuffle4x128(u2, u6, 0x88), v3 = Avx512F.Shuffle4x128(u3, u7, 0x88);
                Vector512<float> v4 = Avx512F.Shuffle4x128(u0, u4, 0xDD), v5 = Avx512F.Shuffle4x128(u1, u5, 0xDD);
                Vector512<float> v6 = Avx512F.Shuffle4x128(u2, u6, 0xDD), v7 = Avx512F.Shuffle4x128(u3, u7, 0xDD);
                Vector512<float> v8 = Avx512F.Shuffle4x128(u8, u12, 0x88), v9 = Avx512F.Shuffle4x128(u9, u13, 0x88);
                Vector512<float> v10 = Avx512F.Shuffle4x128(u10, u14, 0x88), v11 = Avx512F.Shuffle4x128(u11, u15, 0x88);
                Vector512<float> v12 = Avx512F.Shuffle4x128(u8, u12, 0xDD), v13 = Avx512F.Shuffle4x128(u9, u13, 0xDD);
                Vector512<float> v14 = Avx512F.Shuffle4x128(u10, u14, 0xDD), v15 = Avx512F.Shuffle4x128(u11, u15, 0xDD);
                float* o = destination + (long)d * width;
                Avx512F.Shuffle4x128(v0, v8, 0x88).Store(o);
                Avx512F.Shuffle4x128(v1, v9, 0x88).Store(o + width);
                Avx512F.Shuffle4x128(v2, v10, 0x88).Store(o + 2 * width);
                Avx512F.Shuffle4x128(v3, v11, 0x88).Store(o + 3 * width);
                Avx512F.Shuffle4x128(v4, v12, 0x88).Store(o + 4 * width);
                Avx512F.Shuffle4x128(v5, v13, 0x88).Store(o + 5 * width);
                Avx512F.Shuffle4x128(v6, v14, 0x88).Store(o + 6 * width);
                Avx512F.Shuffle4x128(v7, v15, 0x88).Store(o + 7 * width);
                Avx512F.Shuffle4x128(v0, v8, 0xDD).Store(o + 8 * width);
                Avx512F.Shuffle4x128(v1, v9, 0xDD).Store(o + 9 * width);
                Avx512F.Shuffle4x128(v2, v10, 0xDD).Store(o + 10 * width);
                Avx512F.Shuffle4x128(v3, v11, 0xDD).Store(o + 11 * width);
                Avx512F.Shuffle4x128(v4, v12, 0xDD).Store(o + 12 * width);
                Avx512F.Shuffle4x128(v5, v13, 0xDD).Store(o + 13 * width);
                Avx512F.Shuffle4x128(v6, v14, 0xDD).Store(o + 14 * width);
                Avx512F.Shuffle4x128(v7, v15, 0xDD).Store(o + 15 * width);
            }
        }
        for (int l = 0; l < w; l++)
        {
            float* row = rows[l] == null ? zeros : rows[l];
            for (int e = d; e < headDim; e++) destination[(long)e * width + l] = row[e] * scale;
        }
    }

    /// <summary>
    /// Sets <c>scores[j][c]</c> to -inf unless, on each of the three axes a, <c>start_a[c] &lt;= coordinate_a[j] &lt; end_a[c]</c>.
    /// Coordinates and bounds are small integers stored as floats (exact). <paramref name="coordinates"/> holds three
    /// arrays <paramref name="coordinateStride"/> floats apart; <paramref name="start"/> and <paramref name="end"/> hold
    /// three arrays of the group's width, <paramref name="boundStride"/> floats apart. Axes with
    /// <paramref name="firstAxis"/> &gt; a are skipped (every key shares their coordinate).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MaskBox<TSimd, T>(float* scores, int width, int keyCount, float* coordinates, long coordinateStride, float* start, float* end, long boundStride, int firstAxis)
        where TSimd : struct, ISimd<T> where T : unmanaged =>
        MaskBoxColumns<TSimd, T>(scores, width, 0, width, keyCount, coordinates, coordinateStride, start, end, boundStride, firstAxis);

    /// <summary><see cref="MaskBox{TSimd, T}(float*, int, int, float*, long, float*, float*, long, int)"/> on the tile's columns <c>[from, to)</c> only (whole vectors).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MaskBoxColumns<TSimd, T>(float* scores, int width, int from, int to, int keyCount, float* coordinates, long coordinateStride, float* start, float* end, long boundStride, int firstAxis)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int w = TSimd.Count;
        float* c0 = coordinates, c1 = c0 + coordinateStride, c2 = c1 + coordinateStride;
        for (int v = from; v < to; v += w)
        {
            T low0 = TSimd.Load(start + v), high0 = TSimd.Load(end + v);
            T low1 = TSimd.Load(start + boundStride + v), high1 = TSimd.Load(end + boundStride + v);
            T low2 = TSimd.Load(start + 2 * boundStride + v), high2 = TSimd.Load(end + 2 * boundStride + v);
            float* s = scores + v;
            for (int j = 0; j < keyCount; j++, s += width)
            {
                T x = TSimd.KeepInRange(TSimd.Load(s), TSimd.Broadcast(c2[j]), low2, high2);
                if (firstAxis <= 1) x = TSimd.KeepInRange(x, TSimd.Broadcast(c1[j]), low1, high1);
                if (firstAxis == 0) x = TSimd.KeepInRange(x, TSimd.Broadcast(c0[j]), low0, high0);
                TSimd.Store(s, x);
            }
        }
    }

    /// <summary>
    /// The visibility table of one vector of 16 columns against a key tile, as <see cref="MaskBox{TSimd, T}(float*, int, int, float*, long, float*, float*, long, int)"/>
    /// decides it: <c>table[j 16 + l]</c> is all ones where, on each axis a &gt;= <paramref name="firstAxis"/>,
    /// <c>start_a[l] &lt;= coordinate_a[j] &lt; end_a[l]</c>, else 0 (the same compares, so the same pairs).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void BuildMaskTable(uint* table, int keyCount, float* coordinates, long coordinateStride, float* start, float* end, long boundStride, int firstAxis)
    {
        float* c0 = coordinates, c1 = c0 + coordinateStride, c2 = c1 + coordinateStride;
        Vector512<float> low0 = Vector512.Load(start), high0 = Vector512.Load(end);
        Vector512<float> low1 = Vector512.Load(start + boundStride), high1 = Vector512.Load(end + boundStride);
        Vector512<float> low2 = Vector512.Load(start + 2 * boundStride), high2 = Vector512.Load(end + 2 * boundStride);
        for (int j = 0; j < keyCount; j++)
        {
            var u2 = Vector512.Create(c2[j]);
            var visible = Vector512.GreaterThanOrEqual(u2, low2) & Vector512.LessThan(u2, high2);
            if (firstAxis <= 1)
            {
                var u1 = Vector512.Create(c1[j]);
                visible &= Vector512.GreaterThanOrEqual(u1, low1) & Vector512.LessThan(u1, high1);
            }
            if (firstAxis == 0)
            {
                var u0 = Vector512.Create(c0[j]);
                visible &= Vector512.GreaterThanOrEqual(u0, low0) & Vector512.LessThan(u0, high0);
            }
            Vector512.Store(visible.AsUInt32(), table + j * 16);
        }
    }

    /// <summary>
    /// The keys <c>[low, end)</c> of a mask table (<see cref="BuildMaskTable"/>, <paramref name="keyCount"/> keys of 16
    /// lanes) outside which every entry is 0, widened to whole blocks of <see cref="CpuFlashTiles.KeyBlock"/> keys;
    /// (0, 0) when every entry is 0.
    /// </summary>
    public static (int Low, int End) MaskTableRows(uint* table, int keyCount)
    {
        int low = 0, end = keyCount;
        while (low < end && Vector512.Load(table + (long)low * 16) == Vector512<uint>.Zero) low++;
        while (end > low && Vector512.Load(table + (long)(end - 1) * 16) == Vector512<uint>.Zero) end--;
        if (low == end) return (0, 0);
        return (low / KeyBlock * KeyBlock, Math.Min(keyCount, (end + KeyBlock - 1) / KeyBlock * KeyBlock));
    }

    /// <summary>
    /// The flash online softmax (<see cref="CpuFlashKernels.Softmax{TSimd, T, TGroup}"/>, the same operations in the
    /// same order) of a four-vector score tile (512-bit vectors, 64 columns) whose mask is read from per-vector tables
    /// (<see cref="BuildMaskTable"/>, 16 lanes a key): a score is kept where its table entry is all ones, else taken as
    /// -inf, by a bitwise select in both passes, which gives exactly what the box mask would have stored (NaN included).
    /// The masked scores are never stored; the probabilities are.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void SoftmaxMaskTables(float* scores, int keyCount, uint* mask0, uint* mask1, uint* mask2, uint* mask3, float* max, float* sum, float* alpha)
    {
        const int w = 16, width = 64;
        var negative = Vector512.Create(float.NegativeInfinity);
        Vector512<float> m0 = negative, m1 = negative, m2 = negative, m3 = negative;
        float* s = scores;
        for (int j = 0, o = 0; j < keyCount; j++, s += width, o += w)
        {
            m0 = Simd512.Max(m0, Vector512.ConditionalSelect(Vector512.Load(mask0 + o).AsSingle(), Vector512.Load(s), negative));
            m1 = Simd512.Max(m1, Vector512.ConditionalSelect(Vector512.Load(mask1 + o).AsSingle(), Vector512.Load(s + w), negative));
            m2 = Simd512.Max(m2, Vector512.ConditionalSelect(Vector512.Load(mask2 + o).AsSingle(), Vector512.Load(s + 2 * w), negative));
            m3 = Simd512.Max(m3, Vector512.ConditionalSelect(Vector512.Load(mask3 + o).AsSingle(), Vector512.Load(s + 3 * w), negative));
        }
        var r0 = Rescale(max, ref m0, sum, alpha);
        var r1 = Rescale(max + w, ref m1, sum + w, alpha + w);
        var r2 = Rescale(max + 2 * w, ref m2, sum + 2 * w, alpha + 2 * w);
        var r3 = Rescale(max + 3 * w, ref m3, sum + 3 * w, alpha + 3 * w);
        Vector512<float> l0 = Vector512<float>.Zero, l1 = l0, l2 = l0, l3 = l0;
        s = scores;
        for (int j = 0, o = 0; j < keyCount; j++, s += width, o += w)
        {
            var p0 = Simd512.Exp2NonPositive(Vector512.ConditionalSelect(Vector512.Load(mask0 + o).AsSingle(), Vector512.Load(s), negative) - m0);
            var p1 = Simd512.Exp2NonPositive(Vector512.ConditionalSelect(Vector512.Load(mask1 + o).AsSingle(), Vector512.Load(s + w), negative) - m1);
            var p2 = Simd512.Exp2NonPositive(Vector512.ConditionalSelect(Vector512.Load(mask2 + o).AsSingle(), Vector512.Load(s + 2 * w), negative) - m2);
            var p3 = Simd512.Exp2NonPositive(Vector512.ConditionalSelect(Vector512.Load(mask3 + o).AsSingle(), Vector512.Load(s + 3 * w), negative) - m3);
            Vector512.Store(p0, s); Vector512.Store(p1, s + w); Vector512.Store(p2, s + 2 * w); Vector512.Store(p3, s + 3 * w);
            l0 += p0; l1 += p1; l2 += p2; l3 += p3;
        }
        Vector512.Store(Simd512.MultiplyAdd(Vector512.Load(sum), r0, l0), sum);
        Vector512.Store(Simd512.MultiplyAdd(Vector512.Load(sum + w), r1, l1), sum + w);
        Vector512.Store(Simd512.MultiplyAdd(Vector512.Load(sum + 2 * w), r2, l2), sum + 2 * w);
        Vector512.Store(Simd512.MultiplyAdd(Vector512.Load(sum + 3 * w), r3, l3), sum + 3 * w);
    }

    /// <summary>The flash softmax's merge of a tile's column max into the running max (the same operations).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Rescale(float* max, ref Vector512<float> tileMax, float* sum, float* alpha)
    {
        var old = Vector512.Load(max);
        var updated = Simd512.Max(tileMax, old);
        Vector512.Store(updated, max);
        tileMax = Simd512.NegativeInfinityToZero(updated);
        var factor = Simd512.Exp2NonPositive(old - tileMax);
        Vector512.Store(factor, alpha);
        return factor;
    }

    /// <summary>
    /// Adds the relative-position bias to a transposed score tile: for key j (union-box coordinates
    /// <c>u_a = coordinates[a][j]</c>) and column c (of <paramref name="columns"/>), the per-axis entry is
    /// <c>u_a + term[a][c]</c>, clamped to <c>[0, extent_a)</c> (only invisible pairs, which the mask sets to -inf, are
    /// ever clamped), and the value is <c>bias[head[c] + (i0 E1 + i1) E2 + i2]</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void AddRelativePositionBias(float* scores, int width, int keyCount, float* coordinates, long coordinateStride, int* term, long termStride,
        int* head, int columns, float* bias, int[] extent)
    {
        int e0 = extent[0], e1 = extent[1], e2 = extent[2];
        int* t0 = term, t1 = term + termStride, t2 = term + 2 * termStride;
        float* c0 = coordinates, c1 = c0 + coordinateStride, c2 = c1 + coordinateStride;
        for (int j = 0; j < keyCount; j++)
        {
            int u0 = (int)c0[j], u1 = (int)c1[j], u2 = (int)c2[j];
            float* row = scores + (long)j * width;
            for (int c = 0; c < columns; c++)
            {
                int i0 = Math.Clamp(u0 + t0[c], 0, e0 - 1), i1 = Math.Clamp(u1 + t1[c], 0, e1 - 1), i2 = Math.Clamp(u2 + t2[c], 0, e2 - 1);
                row[c] += bias[head[c] + (i0 * e1 + i1) * e2 + i2];
            }
        }
    }

    /// <summary>
    /// The P V block of a 4 x 4 query box (512-bit vectors, lane <c>4 i0 + i1</c>) for 8 output rows (lanes
    /// <c>first .. first + 7</c>: two box rows i0 x the four columns i1) and <typeparamref name="TVectors"/> (1 or 2)
    /// vectors of values, over key-box rows <c>[rowFirst, rowEnd)</c> of the tile (<paramref name="rowKeys"/> keys a row),
    /// where query column i1 sees key columns <c>[start + i1 step, start + i1 step + windowColumns)</c>
    /// (<paramref name="step"/> 0 or 1): each key column of the rows' union is loaded once and updates only the rows
    /// whose window holds it, so at 7 x 7 a block does 28 of the 40 row x column updates of a key-box row. Probabilities
    /// are at tile row <c>r rowKeys + c</c> of <paramref name="p"/> (the tile at lane <c>first</c>), values at
    /// <c>values + valueOffsets[r rowKeys + c]</c>. The rows' probabilities outside their windows are exact zeros, so
    /// the result is that of the full block whenever V is finite.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    public static void AccumulateWindows<TVectors>(float* p, float* values, long* valueOffsets, int rowKeys, int start, int step, int windowColumns,
        int rowFirst, int rowEnd, int firstA, int endA, int firstB, int endB, int outputStride, float* alpha, float* output)
        where TVectors : struct, IConstant
    {
        const int w = 16, width = 64;
        bool two = TVectors.Value == 2;
        float* o0 = output, o1 = o0 + outputStride, o2 = o1 + outputStride, o3 = o2 + outputStride;
        float* o4 = o3 + outputStride, o5 = o4 + outputStride, o6 = o5 + outputStride, o7 = o6 + outputStride;
        Vector512<float> a00 = Vector512.Load(o0) * alpha[0], a01 = two ? Vector512.Load(o0 + w) * alpha[0] : default;
        Vector512<float> a10 = Vector512.Load(o1) * alpha[1], a11 = two ? Vector512.Load(o1 + w) * alpha[1] : default;
        Vector512<float> a20 = Vector512.Load(o2) * alpha[2], a21 = two ? Vector512.Load(o2 + w) * alpha[2] : default;
        Vector512<float> a30 = Vector512.Load(o3) * alpha[3], a31 = two ? Vector512.Load(o3 + w) * alpha[3] : default;
        Vector512<float> a40 = Vector512.Load(o4) * alpha[4], a41 = two ? Vector512.Load(o4 + w) * alpha[4] : default;
        Vector512<float> a50 = Vector512.Load(o5) * alpha[5], a51 = two ? Vector512.Load(o5 + w) * alpha[5] : default;
        Vector512<float> a60 = Vector512.Load(o6) * alpha[6], a61 = two ? Vector512.Load(o6 + w) * alpha[6] : default;
        Vector512<float> a70 = Vector512.Load(o7) * alpha[7], a71 = two ? Vector512.Load(o7 + w) * alpha[7] : default;
        if (step == 0 || windowColumns >= 3)
        {
            // The same updates as the loop below, in the same order per accumulator, without its per-column bounds:
            // with step 1 key columns start + 0..2 ramp up (query columns 0..k see them), start + 3 .. start +
            // windowColumns - 1 are seen by all four, the next three ramp down (query columns k - windowColumns + 1
            // .. 3); with step 0 every column of the window is seen by all four. A key row only one of the two query
            // rows sees (its rows [firstA, endA) and [firstB, endB)) updates only that row's accumulators: the other's
            // probabilities there are exact zeros, and an accumulator is never -0 (it starts at +0 or a sum), so
            // adding their +-0 products changes nothing.
            int fullFirst = 3 * step, fullEnd = windowColumns;
            for (int r = rowFirst; r < rowEnd; r++)
            {
                long* offsets = valueOffsets + r * rowKeys + start;
                float* pr = p + (long)(r * rowKeys + start) * width;
                bool seenA = r >= firstA && r < endA, seenB = r >= firstB && r < endB;
                if (seenA && seenB)
                {
                    if (step != 0)
                    {
                        { // key column start: query column 0
                            float* v = values + offsets[0], pj = pr + 0 * width;
                            Vector512<float> v0 = Vector512.Load(v), v1 = two ? Vector512.Load(v + w) : default;
                            a00 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[0]), a00);
                            a40 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[4]), a40);
                            if (two) a01 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[0]), a01);
                            if (two) a41 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[4]), a41);
                        }
                        { // start + 1: query columns 0 and 1
                            float* v = values + offsets[1], pj = pr + 1 * width;
                            Vector512<float> v0 = Vector512.Load(v), v1 = two ? Vector512.Load(v + w) : default;
                            a00 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[0]), a00);
                            a40 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[4]), a40);
                            if (two) a01 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[0]), a01);
                            if (two) a41 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[4]), a41);
                            a10 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[1]), a10);
                            a50 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[5]), a50);
                            if (two) a11 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[1]), a11);
                            if (two) a51 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[5]), a51);
                        }
                        { // start + 2: query columns 0 .. 2
                            float* v = values + offsets[2], pj = pr + 2 * width;
                            Vector512<float> v0 = Vector512.Load(v), v1 = two ? Vector512.Load(v + w) : default;
                            a00 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[0]), a00);
                            a40 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[4]), a40);
                            if (two) a01 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[0]), a01);
                            if (two) a41 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[4]), a41);
                            a10 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[1]), a10);
                            a50 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[5]), a50);
                            if (two) a11 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[1]), a11);
                            if (two) a51 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[5]), a51);
                            a20 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[2]), a20);
                            a60 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[6]), a60);
                            if (two) a21 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[2]), a21);
                            if (two) a61 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[6]), a61);
                        }
                    }
                    for (int c = fullFirst; c < fullEnd; c++)
                    {
                        float* v = values + offsets[c], pj = pr + (long)c * width;
                        Vector512<float> v0 = Vector512.Load(v), v1 = two ? Vector512.Load(v + w) : default;
                        a00 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[0]), a00);
                        a10 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[1]), a10);
                        a20 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[2]), a20);
                        a30 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[3]), a30);
                        a40 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[4]), a40);
                        a50 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[5]), a50);
                        a60 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[6]), a60);
                        a70 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[7]), a70);
                        if (!two) continue;
                        a01 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[0]), a01);
                        a11 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[1]), a11);
                        a21 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[2]), a21);
                        a31 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[3]), a31);
                        a41 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[4]), a41);
                        a51 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[5]), a51);
                        a61 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[6]), a61);
                        a71 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[7]), a71);
                    }
                    if (step != 0)
                    {
                        { // start + windowColumns: query columns 1 .. 3
                            float* v = values + offsets[windowColumns], pj = pr + (long)windowColumns * width;
                            Vector512<float> v0 = Vector512.Load(v), v1 = two ? Vector512.Load(v + w) : default;
                            a10 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[1]), a10);
                            a50 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[5]), a50);
                            if (two) a11 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[1]), a11);
                            if (two) a51 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[5]), a51);
                            a20 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[2]), a20);
                            a60 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[6]), a60);
                            if (two) a21 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[2]), a21);
                            if (two) a61 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[6]), a61);
                            a30 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[3]), a30);
                            a70 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[7]), a70);
                            if (two) a31 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[3]), a31);
                            if (two) a71 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[7]), a71);
                        }
                        { // start + windowColumns + 1: query columns 2 and 3
                            float* v = values + offsets[windowColumns + 1], pj = pr + (long)(windowColumns + 1) * width;
                            Vector512<float> v0 = Vector512.Load(v), v1 = two ? Vector512.Load(v + w) : default;
                            a20 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[2]), a20);
                            a60 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[6]), a60);
                            if (two) a21 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[2]), a21);
                            if (two) a61 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[6]), a61);
                            a30 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[3]), a30);
                            a70 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[7]), a70);
                            if (two) a31 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[3]), a31);
                            if (two) a71 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[7]), a71);
                        }
                        { // start + windowColumns + 2: query column 3
                            float* v = values + offsets[windowColumns + 2], pj = pr + (long)(windowColumns + 2) * width;
                            Vector512<float> v0 = Vector512.Load(v), v1 = two ? Vector512.Load(v + w) : default;
                            a30 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[3]), a30);
                            a70 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[7]), a70);
                            if (two) a31 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[3]), a31);
                            if (two) a71 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[7]), a71);
                        }
                    }
                }
                else if (seenA)
                {
                    if (step != 0)
                    {
                        { // key column start: query column 0
                            float* v = values + offsets[0], pj = pr + 0 * width;
                            Vector512<float> v0 = Vector512.Load(v), v1 = two ? Vector512.Load(v + w) : default;
                            a00 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[0]), a00);
                            if (two) a01 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[0]), a01);
                        }
                        { // start + 1: query columns 0 and 1
                            float* v = values + offsets[1], pj = pr + 1 * width;
                            Vector512<float> v0 = Vector512.Load(v), v1 = two ? Vector512.Load(v + w) : default;
                            a00 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[0]), a00);
                            if (two) a01 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[0]), a01);
                            a10 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[1]), a10);
                            if (two) a11 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[1]), a11);
                        }
                        { // start + 2: query columns 0 .. 2
                            float* v = values + offsets[2], pj = pr + 2 * width;
                            Vector512<float> v0 = Vector512.Load(v), v1 = two ? Vector512.Load(v + w) : default;
                            a00 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[0]), a00);
                            if (two) a01 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[0]), a01);
                            a10 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[1]), a10);
                            if (two) a11 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[1]), a11);
                            a20 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[2]), a20);
                            if (two) a21 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[2]), a21);
                        }
                    }
                    for (int c = fullFirst; c < fullEnd; c++)
                    {
                        float* v = values + offsets[c], pj = pr + (long)c * width;
                        Vector512<float> v0 = Vector512.Load(v), v1 = two ? Vector512.Load(v + w) : default;
                        a00 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[0]), a00);
                        a10 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[1]), a10);
                        a20 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[2]), a20);
                        a30 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[3]), a30);
                        if (!two) continue;
                        a01 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[0]), a01);
                        a11 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[1]), a11);
                        a21 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[2]), a21);
                        a31 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[3]), a31);
                    }
                    if (step != 0)
                    {
                        { // start + windowColumns: query columns 1 .. 3
                            float* v = values + offsets[windowColumns], pj = pr + (long)windowColumns * width;
                            Vector512<float> v0 = Vector512.Load(v), v1 = two ? Vector512.Load(v + w) : default;
                            a10 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[1]), a10);
                            if (two) a11 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[1]), a11);
                            a20 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[2]), a20);
                            if (two) a21 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[2]), a21);
                            a30 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[3]), a30);
                            if (two) a31 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[3]), a31);
                        }
                        { // start + windowColumns + 1: query columns 2 and 3
                            float* v = values + offsets[windowColumns + 1], pj = pr + (long)(windowColumns + 1) * width;
                            Vector512<float> v0 = Vector512.Load(v), v1 = two ? Vector512.Load(v + w) : default;
                            a20 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[2]), a20);
                            if (two) a21 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[2]), a21);
                            a30 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[3]), a30);
                            if (two) a31 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[3]), a31);
                        }
                        { // start + windowColumns + 2: query column 3
                            float* v = values + offsets[windowColumns + 2], pj = pr + (long)(windowColumns + 2) * width;
                            Vector512<float> v0 = Vector512.Load(v), v1 = two ? Vector512.Load(v + w) : default;
                            a30 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[3]), a30);
                            if (two) a31 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[3]), a31);
                        }
                    }
                }
                else if (seenB)
                {
                    if (step != 0)
                    {
                        { // key column start: query column 0
                            float* v = values + offsets[0], pj = pr + 0 * width;
                            Vector512<float> v0 = Vector512.Load(v), v1 = two ? Vector512.Load(v + w) : default;
                            a40 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[4]), a40);
                            if (two) a41 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[4]), a41);
                        }
                        { // start + 1: query columns 0 and 1
                            float* v = values + offsets[1], pj = pr + 1 * width;
                            Vector512<float> v0 = Vector512.Load(v), v1 = two ? Vector512.Load(v + w) : default;
                            a40 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[4]), a40);
                            if (two) a41 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[4]), a41);
                            a50 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[5]), a50);
                            if (two) a51 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[5]), a51);
                        }
                        { // start + 2: query columns 0 .. 2
                            float* v = values + offsets[2], pj = pr + 2 * width;
                            Vector512<float> v0 = Vector512.Load(v), v1 = two ? Vector512.Load(v + w) : default;
                            a40 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[4]), a40);
                            if (two) a41 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[4]), a41);
                            a50 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[5]), a50);
                            if (two) a51 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[5]), a51);
                            a60 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[6]), a60);
                            if (two) a61 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[6]), a61);
                        }
                    }
                    for (int c = fullFirst; c < fullEnd; c++)
                    {
                        float* v = values + offsets[c], pj = pr + (long)c * width;
                        Vector512<float> v0 = Vector512.Load(v), v1 = two ? Vector512.Load(v + w) : default;
                        a40 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[4]), a40);
                        a50 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[5]), a50);
                        a60 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[6]), a60);
                        a70 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[7]), a70);
                        if (!two) continue;
                        a41 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[4]), a41);
                        a51 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[5]), a51);
                        a61 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[6]), a61);
                        a71 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[7]), a71);
                    }
                    if (step != 0)
                    {
                        { // start + windowColumns: query columns 1 .. 3
                            float* v = values + offsets[windowColumns], pj = pr + (long)windowColumns * width;
                            Vector512<float> v0 = Vector512.Load(v), v1 = two ? Vector512.Load(v + w) : default;
                            a50 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[5]), a50);
                            if (two) a51 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[5]), a51);
                            a60 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[6]), a60);
                            if (two) a61 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[6]), a61);
                            a70 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[7]), a70);
                            if (two) a71 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[7]), a71);
                        }
                        { // start + windowColumns + 1: query columns 2 and 3
                            float* v = values + offsets[windowColumns + 1], pj = pr + (long)(windowColumns + 1) * width;
                            Vector512<float> v0 = Vector512.Load(v), v1 = two ? Vector512.Load(v + w) : default;
                            a60 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[6]), a60);
                            if (two) a61 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[6]), a61);
                            a70 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[7]), a70);
                            if (two) a71 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[7]), a71);
                        }
                        { // start + windowColumns + 2: query column 3
                            float* v = values + offsets[windowColumns + 2], pj = pr + (long)(windowColumns + 2) * width;
                            Vector512<float> v0 = Vector512.Load(v), v1 = two ? Vector512.Load(v + w) : default;
                            a70 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[7]), a70);
                            if (two) a71 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[7]), a71);
                        }
                    }
                }
            }
        }
        else
        {
            int end = start + 3 * step + windowColumns;
            for (int r = rowFirst; r < rowEnd; r++)
            {
                for (int c = start; c < end; c++)
                {
                    int t = r * rowKeys + c;
                    float* v = values + valueOffsets[t], pj = p + (long)t * width;
                    Vector512<float> v0 = Vector512.Load(v), v1 = two ? Vector512.Load(v + w) : default;
                    // Query columns i1 in [low, high] see key column c.
                    int low = step * Math.Max(0, c - start - windowColumns + 1), high = step == 0 ? 3 : Math.Min(3, c - start);
                    if (low == 0 && high == 3)
                    {
                        a00 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[0]), a00);
                        a10 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[1]), a10);
                        a20 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[2]), a20);
                        a30 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[3]), a30);
                        a40 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[4]), a40);
                        a50 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[5]), a50);
                        a60 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[6]), a60);
                        a70 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[7]), a70);
                        if (!two) continue;
                        a01 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[0]), a01);
                        a11 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[1]), a11);
                        a21 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[2]), a21);
                        a31 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[3]), a31);
                        a41 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[4]), a41);
                        a51 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[5]), a51);
                        a61 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[6]), a61);
                        a71 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[7]), a71);
                        continue;
                    }
                    if (low <= 0 && 0 <= high)
                    {
                        a00 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[0]), a00);
                        a40 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[4]), a40);
                        if (two) a01 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[0]), a01);
                        if (two) a41 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[4]), a41);
                    }
                    if (low <= 1 && 1 <= high)
                    {
                        a10 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[1]), a10);
                        a50 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[5]), a50);
                        if (two) a11 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[1]), a11);
                        if (two) a51 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[5]), a51);
                    }
                    if (low <= 2 && 2 <= high)
                    {
                        a20 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[2]), a20);
                        a60 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[6]), a60);
                        if (two) a21 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[2]), a21);
                        if (two) a61 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[6]), a61);
                    }
                    if (low <= 3 && 3 <= high)
                    {
                        a30 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[3]), a30);
                        a70 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(pj[7]), a70);
                        if (two) a31 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[3]), a31);
                        if (two) a71 = Avx512F.FusedMultiplyAdd(v1, Vector512.Create(pj[7]), a71);
                    }
                }
            }
        }
        a00.Store(o0); a10.Store(o1); a20.Store(o2); a30.Store(o3);
        a40.Store(o4); a50.Store(o5); a60.Store(o6); a70.Store(o7);
        if (!two) return;
        a01.Store(o0 + w); a11.Store(o1 + w); a21.Store(o2 + w); a31.Store(o3 + w);
        a41.Store(o4 + w); a51.Store(o5 + w); a61.Store(o6 + w); a71.Store(o7 + w);
    }
}
