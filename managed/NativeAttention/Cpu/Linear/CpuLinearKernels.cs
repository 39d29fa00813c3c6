// The register-blocked inner loops of CPU chunked linear attention: one small GEMM micro-kernel (4 rows x up to four
// vectors of columns) used for every product of a chunk, and the decay-mask step on the intra-chunk scores.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NativeAttention.Cpu;

/// <summary>
/// Micro-kernels over packed float32 tiles. Every matrix is row-major with its own row stride; row counts are padded
/// to multiples of <see cref="RowBlock"/> and column counts to whole vectors by the caller (padding holds zeros).
/// </summary>
internal static unsafe class CpuLinearKernels
{
    /// <summary>Rows per register block.</summary>
    public const int RowBlock = 4;

    /// <summary>
    /// <c>C[i][j] = rowScale[i] * sum_k A[i][k] B[k][j] + beta_i C[i][j]</c> for <c>i &lt; rows</c> (a multiple of
    /// <see cref="RowBlock"/>) and <c>j &lt; vectors * W</c>, where <c>beta_i</c> is <c>rowBeta[i]</c> when given, else
    /// <paramref name="beta"/> (0 overwrites C: it is never read), and a null <paramref name="rowScale"/> means 1.
    /// <para><paramref name="triangular"/> (the causal intra-chunk products): row block i stops at depth
    /// <c>min(depth, i + 4)</c> and, when <paramref name="triangularColumns"/>, at the column vectors covering
    /// <c>i + 4</c>; entries past the diagonal that this computes must be zero in A or be masked by the caller.</para>
    /// <para><paramref name="prefetch"/> (null: none): <paramref name="prefetchLines"/> of its lines before each row block.</para>
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Gemm<TSimd, T>(float* a, long lda, float* b, long ldb, int depth, float* c, long ldc, int rows, int vectors,
        float* rowScale, float* rowBeta, float beta, bool triangular, bool triangularColumns, ChunkPrefetch* prefetch = null, int prefetchLines = 0)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int w = TSimd.Count;
        int group = TSimd.Registers >= 32 ? 4 : 2;
        for (int i = 0; i < rows; i += RowBlock)
        {
            if (prefetch is not null) prefetch->Step(prefetchLines);
            int rowDepth = triangular ? Math.Min(depth, i + RowBlock) : depth;
            int rowVectors = triangularColumns ? Math.Min(vectors, (i + RowBlock + w - 1) / w) : vectors;
            for (int v = 0; v < rowVectors; v += group)
            {
                int n = Math.Min(group, rowVectors - v);
                float* ai = a + i * lda, bv = b + v * w, cv = c + i * ldc + v * w;
                float* scale = rowScale is null ? null : rowScale + i, rb = rowBeta is null ? null : rowBeta + i;
                switch (n)
                {
                    case 4: Block<TSimd, T, Four>(ai, lda, bv, ldb, rowDepth, cv, ldc, scale, rb, beta); break;
                    case 3: Block<TSimd, T, Three>(ai, lda, bv, ldb, rowDepth, cv, ldc, scale, rb, beta); break;
                    case 2: Block<TSimd, T, Two>(ai, lda, bv, ldb, rowDepth, cv, ldc, scale, rb, beta); break;
                    default: Block<TSimd, T, One>(ai, lda, bv, ldb, rowDepth, cv, ldc, scale, rb, beta); break;
                }
            }
        }
    }

    /// <summary>One register block: 4 rows of A against <c>TN</c> vectors of B's columns, over <paramref name="depth"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block<TSimd, T, TN>(float* a, long lda, float* b, long ldb, int depth, float* c, long ldc, float* rowScale, float* rowBeta, float beta)
        where TSimd : struct, ISimd<T> where T : unmanaged where TN : struct, IConstant
    {
        T c00 = TSimd.Zero, c01 = TSimd.Zero, c02 = TSimd.Zero, c03 = TSimd.Zero;
        T c10 = TSimd.Zero, c11 = TSimd.Zero, c12 = TSimd.Zero, c13 = TSimd.Zero;
        T c20 = TSimd.Zero, c21 = TSimd.Zero, c22 = TSimd.Zero, c23 = TSimd.Zero;
        T c30 = TSimd.Zero, c31 = TSimd.Zero, c32 = TSimd.Zero, c33 = TSimd.Zero;
        Accumulate<TSimd, T, TN>(a, lda, b, ldb, depth, ref c00, ref c01, ref c02, ref c03, ref c10, ref c11, ref c12, ref c13,
            ref c20, ref c21, ref c22, ref c23, ref c30, ref c31, ref c32, ref c33);
        StoreRow<TSimd, T, TN>(c, 0, rowScale, rowBeta, beta, c00, c01, c02, c03);
        StoreRow<TSimd, T, TN>(c + ldc, 1, rowScale, rowBeta, beta, c10, c11, c12, c13);
        StoreRow<TSimd, T, TN>(c + 2 * ldc, 2, rowScale, rowBeta, beta, c20, c21, c22, c23);
        StoreRow<TSimd, T, TN>(c + 3 * ldc, 3, rowScale, rowBeta, beta, c30, c31, c32, c33);
    }

    /// <summary>
    /// The micro-kernel's inner loop, shared by <see cref="Block{TSimd, T, TN}"/> and
    /// <see cref="OutputBlock{TSimd, T, TN}"/>: <c>c_rj += sum_k A[r][k] B[k][j]</c> for the 4 rows of A and
    /// <c>TN</c> vectors of B's columns. Inlined, so the accumulators stay the caller's registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Accumulate<TSimd, T, TN>(float* a, long lda, float* b, long ldb, int depth,
        ref T c00, ref T c01, ref T c02, ref T c03, ref T c10, ref T c11, ref T c12, ref T c13,
        ref T c20, ref T c21, ref T c22, ref T c23, ref T c30, ref T c31, ref T c32, ref T c33)
        where TSimd : struct, ISimd<T> where T : unmanaged where TN : struct, IConstant
    {
        int w = TSimd.Count;
        int n = TN.Value;
        float* a0 = a, a1 = a + lda, a2 = a1 + lda, a3 = a2 + lda;
        float* bk = b;
        for (int k = 0; k < depth; k++, bk += ldb)
        {
            T b0 = TSimd.Load(bk), b1 = default, b2 = default, b3 = default;
            if (n > 1) b1 = TSimd.Load(bk + w);
            if (n > 2) b2 = TSimd.Load(bk + 2 * w);
            if (n > 3) b3 = TSimd.Load(bk + 3 * w);
            T x = TSimd.Broadcast(a0[k]);
            c00 = TSimd.MultiplyAdd(b0, x, c00);
            if (n > 1) c01 = TSimd.MultiplyAdd(b1, x, c01);
            if (n > 2) c02 = TSimd.MultiplyAdd(b2, x, c02);
            if (n > 3) c03 = TSimd.MultiplyAdd(b3, x, c03);
            x = TSimd.Broadcast(a1[k]);
            c10 = TSimd.MultiplyAdd(b0, x, c10);
            if (n > 1) c11 = TSimd.MultiplyAdd(b1, x, c11);
            if (n > 2) c12 = TSimd.MultiplyAdd(b2, x, c12);
            if (n > 3) c13 = TSimd.MultiplyAdd(b3, x, c13);
            x = TSimd.Broadcast(a2[k]);
            c20 = TSimd.MultiplyAdd(b0, x, c20);
            if (n > 1) c21 = TSimd.MultiplyAdd(b1, x, c21);
            if (n > 2) c22 = TSimd.MultiplyAdd(b2, x, c22);
            if (n > 3) c23 = TSimd.MultiplyAdd(b3, x, c23);
            x = TSimd.Broadcast(a3[k]);
            c30 = TSimd.MultiplyAdd(b0, x, c30);
            if (n > 1) c31 = TSimd.MultiplyAdd(b1, x, c31);
            if (n > 2) c32 = TSimd.MultiplyAdd(b2, x, c32);
            if (n > 3) c33 = TSimd.MultiplyAdd(b3, x, c33);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow<TSimd, T, TN>(float* c, int row, float* rowScale, float* rowBeta, float beta, T x0, T x1, T x2, T x3)
        where TSimd : struct, ISimd<T> where T : unmanaged where TN : struct, IConstant
    {
        int w = TSimd.Count;
        int n = TN.Value;
        if (rowScale is not null)
        {
            T s = TSimd.Broadcast(rowScale[row]);
            x0 = TSimd.Multiply(x0, s);
            if (n > 1) x1 = TSimd.Multiply(x1, s);
            if (n > 2) x2 = TSimd.Multiply(x2, s);
            if (n > 3) x3 = TSimd.Multiply(x3, s);
        }
        float f = rowBeta is null ? beta : rowBeta[row];
        if (f != 0)
        {
            T g = TSimd.Broadcast(f);
            x0 = TSimd.MultiplyAdd(TSimd.Load(c), g, x0);
            if (n > 1) x1 = TSimd.MultiplyAdd(TSimd.Load(c + w), g, x1);
            if (n > 2) x2 = TSimd.MultiplyAdd(TSimd.Load(c + 2 * w), g, x2);
            if (n > 3) x3 = TSimd.MultiplyAdd(TSimd.Load(c + 3 * w), g, x3);
        }
        TSimd.Store(c, x0);
        if (n > 1) TSimd.Store(c + w, x1);
        if (n > 2) TSimd.Store(c + 2 * w, x2);
        if (n > 3) TSimd.Store(c + 3 * w, x3);
    }

    /// <summary>
    /// The fused output of a chunk: <c>C[i][j] = rowScale[i] sum_k A1[i][k] B1[k][j] + sum_k A2[i][k] B2[k][j]</c> for
    /// <c>i &lt; rows</c> (a multiple of <see cref="RowBlock"/>) and <c>j &lt; vectors * W</c>; C is only written. The
    /// second product is causal: row block i stops at depth <c>min(depth2, i + 4)</c> (A2 is zero past the diagonal).
    /// <paramref name="prefetch"/> (null: none): <paramref name="prefetchLines"/> of its lines before each row block.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void GemmOutput<TSimd, T>(float* a1, long lda1, float* b1, long ldb1, int depth1, float* rowScale,
        float* a2, long lda2, float* b2, long ldb2, int depth2, float* c, long ldc, int rows, int vectors, ChunkPrefetch* prefetch = null, int prefetchLines = 0)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int w = TSimd.Count;
        int group = TSimd.Registers >= 32 ? 4 : 2;
        for (int i = 0; i < rows; i += RowBlock)
        {
            if (prefetch is not null) prefetch->Step(prefetchLines);
            int rowDepth = Math.Min(depth2, i + RowBlock);
            for (int v = 0; v < vectors; v += group)
            {
                int n = Math.Min(group, vectors - v);
                float* x1 = a1 + i * lda1, y1 = b1 + v * w, x2 = a2 + i * lda2, y2 = b2 + v * w, cv = c + i * ldc + v * w;
                switch (n)
                {
                    case 4: OutputBlock<TSimd, T, Four>(x1, lda1, y1, ldb1, depth1, rowScale + i, x2, lda2, y2, ldb2, rowDepth, cv, ldc); break;
                    case 3: OutputBlock<TSimd, T, Three>(x1, lda1, y1, ldb1, depth1, rowScale + i, x2, lda2, y2, ldb2, rowDepth, cv, ldc); break;
                    case 2: OutputBlock<TSimd, T, Two>(x1, lda1, y1, ldb1, depth1, rowScale + i, x2, lda2, y2, ldb2, rowDepth, cv, ldc); break;
                    default: OutputBlock<TSimd, T, One>(x1, lda1, y1, ldb1, depth1, rowScale + i, x2, lda2, y2, ldb2, rowDepth, cv, ldc); break;
                }
            }
        }
    }

    /// <summary>One register block of <see cref="GemmOutput{TSimd, T}"/>: both products into the same accumulators.</summary>
    // Too large for the JIT to inline into GemmOutput; optimised at once rather than tiered (no Tier0 rounds in timed code).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void OutputBlock<TSimd, T, TN>(float* a, long lda, float* b, long ldb, int depth, float* rowScale,
        float* a2, long lda2, float* b2, long ldb2, int depth2, float* c, long ldc)
        where TSimd : struct, ISimd<T> where T : unmanaged where TN : struct, IConstant
    {
        int n = TN.Value;
        T c00 = TSimd.Zero, c01 = TSimd.Zero, c02 = TSimd.Zero, c03 = TSimd.Zero;
        T c10 = TSimd.Zero, c11 = TSimd.Zero, c12 = TSimd.Zero, c13 = TSimd.Zero;
        T c20 = TSimd.Zero, c21 = TSimd.Zero, c22 = TSimd.Zero, c23 = TSimd.Zero;
        T c30 = TSimd.Zero, c31 = TSimd.Zero, c32 = TSimd.Zero, c33 = TSimd.Zero;
        Accumulate<TSimd, T, TN>(a, lda, b, ldb, depth, ref c00, ref c01, ref c02, ref c03, ref c10, ref c11, ref c12, ref c13,
            ref c20, ref c21, ref c22, ref c23, ref c30, ref c31, ref c32, ref c33);
        T s = TSimd.Broadcast(rowScale[0]);
        c00 = TSimd.Multiply(c00, s); if (n > 1) c01 = TSimd.Multiply(c01, s); if (n > 2) c02 = TSimd.Multiply(c02, s); if (n > 3) c03 = TSimd.Multiply(c03, s);
        s = TSimd.Broadcast(rowScale[1]);
        c10 = TSimd.Multiply(c10, s); if (n > 1) c11 = TSimd.Multiply(c11, s); if (n > 2) c12 = TSimd.Multiply(c12, s); if (n > 3) c13 = TSimd.Multiply(c13, s);
        s = TSimd.Broadcast(rowScale[2]);
        c20 = TSimd.Multiply(c20, s); if (n > 1) c21 = TSimd.Multiply(c21, s); if (n > 2) c22 = TSimd.Multiply(c22, s); if (n > 3) c23 = TSimd.Multiply(c23, s);
        s = TSimd.Broadcast(rowScale[3]);
        c30 = TSimd.Multiply(c30, s); if (n > 1) c31 = TSimd.Multiply(c31, s); if (n > 2) c32 = TSimd.Multiply(c32, s); if (n > 3) c33 = TSimd.Multiply(c33, s);
        Accumulate<TSimd, T, TN>(a2, lda2, b2, ldb2, depth2, ref c00, ref c01, ref c02, ref c03, ref c10, ref c11, ref c12, ref c13,
            ref c20, ref c21, ref c22, ref c23, ref c30, ref c31, ref c32, ref c33);
        StoreRow<TSimd, T, TN>(c, 0, null, null, 0f, c00, c01, c02, c03);
        StoreRow<TSimd, T, TN>(c + ldc, 1, null, null, 0f, c10, c11, c12, c13);
        StoreRow<TSimd, T, TN>(c + 2 * ldc, 2, null, null, 0f, c20, c21, c22, c23);
        StoreRow<TSimd, T, TN>(c + 3 * ldc, 3, null, null, 0f, c30, c31, c32, c33);
    }

    /// <summary>
    /// Zeroes the entries past the diagonal (<c>s &gt; t</c>) that a causal <see cref="Gemm{TSimd, T}"/> with triangular
    /// columns computed, for rows <c>t &lt; rows</c>; <paramref name="index"/> holds the column indices as floats.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void CausalMask<TSimd, T>(float* scores, long stride, int rows, float* index)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int w = TSimd.Count;
        T zero = TSimd.Zero;
        for (int t = 0; t < rows; t++)
        {
            int vectors = (t + RowBlock - t % RowBlock + w - 1) / w;
            T end = TSimd.Broadcast(t + 1);
            float* row = scores + t * stride;
            for (int v = t / w; v < vectors; v++)
                TSimd.Store(row + v * w, TSimd.NegativeInfinityToZero(TSimd.KeepInRange(TSimd.Load(row + v * w), TSimd.Load(index + v * w), zero, end)));
        }
    }

    /// <summary>
    /// Four token rows of <paramref name="features"/> floats transposed into columns t..t+3 of <c>kd[f][.]</c> (row
    /// stride <paramref name="stride"/>), each column scaled by <c>columnScale[t + j]</c> (null: 1), and unscaled into
    /// <paramref name="plain"/> when given: 4 x 4 tiles through SSE unpacks, the remainder scalar.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void TransposeFour(float* r0, float* r1, float* r2, float* r3, int features, float* kd, float* plain, long stride, int t, float* columnScale)
    {
        int f = 0;
        if (Sse.IsSupported)
        {
            var scale = columnScale is null ? Vector128.Create(1f) : Vector128.Load(columnScale + t);
            for (; f + 4 <= features; f += 4)
            {
                Vector128<float> x0 = Vector128.Load(r0 + f), x1 = Vector128.Load(r1 + f), x2 = Vector128.Load(r2 + f), x3 = Vector128.Load(r3 + f);
                Vector128<float> lo01 = Sse.UnpackLow(x0, x1), lo23 = Sse.UnpackLow(x2, x3), hi01 = Sse.UnpackHigh(x0, x1), hi23 = Sse.UnpackHigh(x2, x3);
                Vector128<float> c0 = Sse.MoveLowToHigh(lo01, lo23), c1 = Sse.MoveHighToLow(lo23, lo01);
                Vector128<float> c2 = Sse.MoveLowToHigh(hi01, hi23), c3 = Sse.MoveHighToLow(hi23, hi01);
                float* d = kd + f * stride + t;
                (c0 * scale).Store(d); (c1 * scale).Store(d + stride); (c2 * scale).Store(d + 2 * stride); (c3 * scale).Store(d + 3 * stride);
                if (plain is not null)
                {
                    float* e = plain + f * stride + t;
                    c0.Store(e); c1.Store(e + stride); c2.Store(e + 2 * stride); c3.Store(e + 3 * stride);
                }
            }
        }
        float s0 = 1, s1 = 1, s2 = 1, s3 = 1;
        if (columnScale is not null) { s0 = columnScale[t]; s1 = columnScale[t + 1]; s2 = columnScale[t + 2]; s3 = columnScale[t + 3]; }
        for (; f < features; f++)
        {
            float* d = kd + f * stride + t;
            d[0] = r0[f] * s0; d[1] = r1[f] * s1; d[2] = r2[f] * s2; d[3] = r3[f] * s3;
            if (plain is not null)
            {
                float* e = plain + f * stride + t;
                e[0] = r0[f]; e[1] = r1[f]; e[2] = r2[f]; e[3] = r3[f];
            }
        }
    }

    /// <summary>
    /// One recurrent step over a state of <paramref name="rows"/> rows and <paramref name="columns"/> unit-stride columns,
    /// in one streaming pass: <c>T[f][e] = gate[f] S[f][e] + k[f] v[e]</c> and <c>output[e] = sum_f q[f] T[f][e]</c>.
    /// The outputs (and v) stay in registers over all rows, a block of up to eight vectors of columns at a time; T may
    /// be S (in place).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DecodeRows<TSimd, T>(float* source, long sourceStride, float* target, long targetStride, int rows, int columns,
        float* gate, float* k, float* q, float* v, float* output)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int w = TSimd.Count;
        int group = TSimd.Registers >= 32 ? 8 : 4;
        int vectors = columns / w;
        for (int j = 0; j < vectors; j += group)
        {
            int n = Math.Min(group, vectors - j);
            long e = (long)j * w;
            switch (n)
            {
                case 8: DecodeBlock<TSimd, T, Eight>(source + e, sourceStride, target + e, targetStride, rows, gate, k, q, v + e, output + e); break;
                case 7: DecodeBlock<TSimd, T, Seven>(source + e, sourceStride, target + e, targetStride, rows, gate, k, q, v + e, output + e); break;
                case 6: DecodeBlock<TSimd, T, Six>(source + e, sourceStride, target + e, targetStride, rows, gate, k, q, v + e, output + e); break;
                case 5: DecodeBlock<TSimd, T, Five>(source + e, sourceStride, target + e, targetStride, rows, gate, k, q, v + e, output + e); break;
                case 4: DecodeBlock<TSimd, T, Four>(source + e, sourceStride, target + e, targetStride, rows, gate, k, q, v + e, output + e); break;
                case 3: DecodeBlock<TSimd, T, Three>(source + e, sourceStride, target + e, targetStride, rows, gate, k, q, v + e, output + e); break;
                case 2: DecodeBlock<TSimd, T, Two>(source + e, sourceStride, target + e, targetStride, rows, gate, k, q, v + e, output + e); break;
                default: DecodeBlock<TSimd, T, One>(source + e, sourceStride, target + e, targetStride, rows, gate, k, q, v + e, output + e); break;
            }
        }
        for (int e = vectors * w; e < columns; e++)
        {
            float sum = 0, ve = v[e];
            for (int f = 0; f < rows; f++)
            {
                float x = k[f] * ve + gate[f] * source[f * sourceStride + e];
                target[f * targetStride + e] = x;
                sum += q[f] * x;
            }
            output[e] = sum;
        }
    }

    // Column-block widths past Four (Cpu/Flash/Constants.cs), for the decode blocks here and in Cpu/DeltaRule.
    internal struct Five : IConstant { public static int Value => 5; }
    internal struct Six : IConstant { public static int Value => 6; }
    internal struct Seven : IConstant { public static int Value => 7; }
    internal struct Eight : IConstant { public static int Value => 8; }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DecodeBlock<TSimd, T, TN>(float* s, long sourceStride, float* t, long targetStride, int rows,
        float* gate, float* k, float* q, float* v, float* output)
        where TSimd : struct, ISimd<T> where T : unmanaged where TN : struct, IConstant
    {
        int w = TSimd.Count;
        int n = TN.Value;
        T v0 = TSimd.Load(v), v1 = default, v2 = default, v3 = default, v4 = default, v5 = default, v6 = default, v7 = default;
        if (n > 1) v1 = TSimd.Load(v + w);
        if (n > 2) v2 = TSimd.Load(v + 2 * w);
        if (n > 3) v3 = TSimd.Load(v + 3 * w);
        if (n > 4) v4 = TSimd.Load(v + 4 * w);
        if (n > 5) v5 = TSimd.Load(v + 5 * w);
        if (n > 6) v6 = TSimd.Load(v + 6 * w);
        if (n > 7) v7 = TSimd.Load(v + 7 * w);
        T o0 = TSimd.Zero, o1 = TSimd.Zero, o2 = TSimd.Zero, o3 = TSimd.Zero, o4 = TSimd.Zero, o5 = TSimd.Zero, o6 = TSimd.Zero, o7 = TSimd.Zero;
        for (int f = 0; f < rows; f++, s += sourceStride, t += targetStride)
        {
            T g = TSimd.Broadcast(gate[f]), kf = TSimd.Broadcast(k[f]), qf = TSimd.Broadcast(q[f]);
            T x = TSimd.MultiplyAdd(kf, v0, TSimd.Multiply(g, TSimd.Load(s)));
            TSimd.Store(t, x);
            o0 = TSimd.MultiplyAdd(qf, x, o0);
            if (n > 1) { x = TSimd.MultiplyAdd(kf, v1, TSimd.Multiply(g, TSimd.Load(s + w))); TSimd.Store(t + w, x); o1 = TSimd.MultiplyAdd(qf, x, o1); }
            if (n > 2) { x = TSimd.MultiplyAdd(kf, v2, TSimd.Multiply(g, TSimd.Load(s + 2 * w))); TSimd.Store(t + 2 * w, x); o2 = TSimd.MultiplyAdd(qf, x, o2); }
            if (n > 3) { x = TSimd.MultiplyAdd(kf, v3, TSimd.Multiply(g, TSimd.Load(s + 3 * w))); TSimd.Store(t + 3 * w, x); o3 = TSimd.MultiplyAdd(qf, x, o3); }
            if (n > 4) { x = TSimd.MultiplyAdd(kf, v4, TSimd.Multiply(g, TSimd.Load(s + 4 * w))); TSimd.Store(t + 4 * w, x); o4 = TSimd.MultiplyAdd(qf, x, o4); }
            if (n > 5) { x = TSimd.MultiplyAdd(kf, v5, TSimd.Multiply(g, TSimd.Load(s + 5 * w))); TSimd.Store(t + 5 * w, x); o5 = TSimd.MultiplyAdd(qf, x, o5); }
            if (n > 6) { x = TSimd.MultiplyAdd(kf, v6, TSimd.Multiply(g, TSimd.Load(s + 6 * w))); TSimd.Store(t + 6 * w, x); o6 = TSimd.MultiplyAdd(qf, x, o6); }
            if (n > 7) { x = TSimd.MultiplyAdd(kf, v7, TSimd.Multiply(g, TSimd.Load(s + 7 * w))); TSimd.Store(t + 7 * w, x); o7 = TSimd.MultiplyAdd(qf, x, o7); }
        }
        StoreVectors<TSimd, T, TN>(output, o0, o1, o2, o3, o4, o5, o6, o7);
    }

    /// <summary>The first <c>TN</c> (up to eight) of the vectors to consecutive vectors from <paramref name="target"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void StoreVectors<TSimd, T, TN>(float* target, T x0, T x1, T x2, T x3, T x4, T x5, T x6, T x7)
        where TSimd : struct, ISimd<T> where T : unmanaged where TN : struct, IConstant
    {
        int w = TSimd.Count;
        int n = TN.Value;
        TSimd.Store(target, x0);
        if (n > 1) TSimd.Store(target + w, x1);
        if (n > 2) TSimd.Store(target + 2 * w, x2);
        if (n > 3) TSimd.Store(target + 3 * w, x3);
        if (n > 4) TSimd.Store(target + 4 * w, x4);
        if (n > 5) TSimd.Store(target + 5 * w, x5);
        if (n > 6) TSimd.Store(target + 6 * w, x6);
        if (n > 7) TSimd.Store(target + 7 * w, x7);
    }

    /// <summary>
    /// Turns raw intra-chunk scores <c>A[t][s] = q_t . k_s</c> into <c>scale 2^(b_t - b_s) A[t][s]</c> for
    /// <c>s &lt;= t</c> and 0 above the diagonal, for rows <c>t &lt; rows</c> over the column vectors the causal
    /// product computed. <paramref name="log2Gate"/> holds the chunk's cumulative log2 gates (zeros without decay) and
    /// <paramref name="index"/> the column indices as floats; differences never exceed 0 where kept, so nothing overflows.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DecayMask<TSimd, T>(float* scores, long stride, int rows, float* log2Gate, float* index, float scale)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int w = TSimd.Count;
        T zero = TSimd.Zero, s = TSimd.Broadcast(scale);
        for (int t = 0; t < rows; t++)
        {
            int vectors = (t + RowBlock - t % RowBlock + w - 1) / w;
            T bt = TSimd.Broadcast(log2Gate[t]), end = TSimd.Broadcast(t + 1);
            float* row = scores + t * stride;
            for (int v = 0; v < vectors; v++)
            {
                T exponent = TSimd.KeepInRange(TSimd.Min(TSimd.Subtract(bt, TSimd.Load(log2Gate + v * w)), zero), TSimd.Load(index + v * w), zero, end);
                TSimd.Store(row + v * w, TSimd.Multiply(TSimd.Multiply(TSimd.Load(row + v * w), TSimd.Exp2NonPositive(exponent)), s));
            }
        }
    }

    /// <summary>
    /// Per-key gates: <c>A[t][s] = scale sum_f q_t[f] k_s[f] 2^(B_t[f] - B_s[f])</c> for <c>s &lt;= t</c>, 0 above the
    /// diagonal up to the row block's last column; every factor is at most 1. Rows of Q, K and B are
    /// <paramref name="featureStride"/> floats apart, <paramref name="features"/> a whole number of vectors.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void PerKeyScores<TSimd, T>(float* q, float* k, float* log2Gates, long featureStride, int features, int rows, float* scores, long stride, float scale)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int w = TSimd.Count;
        for (int t = 0; t < rows; t++)
        {
            float* qt = q + t * featureStride, bt = log2Gates + t * featureStride, row = scores + t * stride;
            int end = t + RowBlock - t % RowBlock;
            for (int s = 0; s <= t; s++)
            {
                float* ks = k + s * featureStride, bs = log2Gates + s * featureStride;
                T acc = TSimd.Zero;
                for (int f = 0; f < features; f += w)
                {
                    T decay = TSimd.Exp2NonPositive(TSimd.Min(TSimd.Subtract(TSimd.Load(bt + f), TSimd.Load(bs + f)), TSimd.Zero));
                    acc = TSimd.MultiplyAdd(TSimd.Multiply(TSimd.Load(qt + f), TSimd.Load(ks + f)), decay, acc);
                }
                row[s] = scale * TSimd.Sum(acc);
            }
            for (int s = t + 1; s < Math.Max(end, (end + w - 1) / w * w); s++) row[s] = 0;
        }
    }
}
