// The tensor-core flex kernel for CUDA (sm_80+, fp16 or bf16 storage, fp32 accumulation): Q K^T and P V with inline
// mma.sync.aligned.m16n8k16 (ILGPU's CudaAsm), in the fragment layouts of kernels/common/mma_sm80.h and
// mma_attention.h. With g = lane / 4 and t = lane % 4 (PTX ISA, "Matrix Fragments for mma.m16n8k16"):
// - A (16 x 16, row-major): a0 = A[g][2t, 2t+1], a1 = A[g+8][2t, 2t+1], a2 = A[g][2t+8, 2t+9], a3 = A[g+8][2t+8, 2t+9];
// - B (16 x 8, "col": B[k][n]): b0 = B[2t, 2t+1][g], b1 = B[2t+8, 2t+9][g];
// - C (16 x 8, fp32): c0, c1 = C[g][2t, 2t+1], c2, c3 = C[g+8][2t, 2t+1];
// each 32-bit register holds two 16-bit values, the lower index in the low half. The score fragments of two n8 key
// tiles, packed to 16 bits, are exactly the A fragments of P V (na_mma_pack_p), so P never leaves registers.
//
// One warp per work-group and query tile of 16 rows (the scalar kernel's tiling: same arguments, same grid, same block
// table): Q, K (16 keys) and V (transposed, 16 keys) tiles in shared memory as pairs of 16-bit values, read straight into
// fragments with 32-bit loads (padded strides, no bank conflicts); the score modification and the mask modification
// are applied to each fp32 score element with its (query, key) coordinates; an online softmax per row, its maximum
// reduced over the row's 4 lanes with shuffles; the output accumulates in registers (a struct of fragments per 16
// columns, so ILGPU keeps it in registers without loop unrolling).
using ILGPU;
using ILGPU.Runtime.Cuda;

namespace NativeAttention.Ilgpu.Flex.Gpu;

/// <summary>The 16-bit input type of mma.sync: the instruction and the fp32-pair conversion.</summary>
internal interface IFlexMmaType
{
    /// <summary>c += a (16 x 16, row-major) * b (16 x 8, col-major), fp32 accumulators (na_mma_16816).</summary>
    void Mma(ref float c0, ref float c1, ref float c2, ref float c3, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1);

    /// <summary>Two floats rounded to nearest even, <paramref name="lo"/> in the low half (na_pack2).</summary>
    uint Pack(float lo, float hi);
}

/// <summary>fp16 inputs.</summary>
internal readonly struct MmaF16 : IFlexMmaType
{
    // CudaAsm takes the instruction as a string literal at its call site.
    public void Mma(ref float c0, ref float c1, ref float c2, ref float c3, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1)
    {
        Ref<float> r0 = c0, r1 = c1, r2 = c2, r3 = c3;
        Input<uint> i0 = a0, i1 = a1, i2 = a2, i3 = a3, i4 = b0, i5 = b1;
        CudaAsm.EmitRef("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};",
            ref r0, ref r1, ref r2, ref r3, ref i0, ref i1, ref i2, ref i3, ref i4, ref i5);
        (c0, c1, c2, c3) = (r0.Value, r1.Value, r2.Value, r3.Value);
    }

    public uint Pack(float lo, float hi)
    {
        var result = new Output<uint>();
        Input<float> h = hi, l = lo;
        CudaAsm.EmitRef("cvt.rn.f16x2.f32 %0, %1, %2;", ref result, ref h, ref l);
        return result.Value;
    }
}

/// <summary>bf16 inputs.</summary>
internal readonly struct MmaBf16 : IFlexMmaType
{
    // CudaAsm takes the instruction as a string literal at its call site.
    public void Mma(ref float c0, ref float c1, ref float c2, ref float c3, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1)
    {
        Ref<float> r0 = c0, r1 = c1, r2 = c2, r3 = c3;
        Input<uint> i0 = a0, i1 = a1, i2 = a2, i3 = a3, i4 = b0, i5 = b1;
        CudaAsm.EmitRef("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};",
            ref r0, ref r1, ref r2, ref r3, ref i0, ref i1, ref i2, ref i3, ref i4, ref i5);
        (c0, c1, c2, c3) = (r0.Value, r1.Value, r2.Value, r3.Value);
    }

    public uint Pack(float lo, float hi)
    {
        var result = new Output<uint>();
        Input<float> h = hi, l = lo;
        CudaAsm.EmitRef("cvt.rn.bf16x2.f32 %0, %1, %2;", ref result, ref h, ref l);
        return result.Value;
    }
}

/// <summary>
/// A warp's output accumulator for some columns of its 16 rows, as fragments held in fields (values, so ILGPU keeps
/// them in registers): <see cref="MmaAcc16"/> for 16 columns, <see cref="MmaAccPair{TLo, THi}"/> for more.
/// </summary>
internal interface IFlexMmaAcc<TSelf> where TSelf : struct, IFlexMmaAcc<TSelf>
{
    /// <summary>Columns held.</summary>
    int Columns { get; }

    /// <summary>Row g scaled by <paramref name="lo"/>, row g + 8 by <paramref name="hi"/>.</summary>
    TSelf Scale(float lo, float hi);

    /// <summary>Plus P V for columns from <paramref name="col0"/>: P's A fragment, V^T in shared memory as key pairs (<paramref name="stride"/> words per column).</summary>
    TSelf AddPv<TMma>(uint p0, uint p1, uint p2, uint p3, ArrayView<uint> vt, int stride, int col0, int g, int t) where TMma : struct, IFlexMmaType;

    /// <summary>Writes the held columns below <paramref name="dv"/> of rows g (when <paramref name="lo"/>) and g + 8 (when <paramref name="hi"/>), times the inverses.</summary>
    void Store<TCodec>(ArrayView<ushort> o, long rowLo, long rowHi, bool lo, bool hi, long strideD, int col0, int dv, int t, float invLo, float invHi)
        where TCodec : struct, IFlexElement<ushort>;
}

/// <summary>16 columns: two n8 fragments (columns col0 + 2t, +1 and col0 + 8 + 2t, +1 of rows g and g + 8).</summary>
internal struct MmaAcc16 : IFlexMmaAcc<MmaAcc16>
{
    public float A0, A1, A2, A3, B0, B1, B2, B3;

    public readonly int Columns => 16;

    public readonly MmaAcc16 Scale(float lo, float hi) =>
        new() { A0 = A0 * lo, A1 = A1 * lo, A2 = A2 * hi, A3 = A3 * hi, B0 = B0 * lo, B1 = B1 * lo, B2 = B2 * hi, B3 = B3 * hi };

    public readonly MmaAcc16 AddPv<TMma>(uint p0, uint p1, uint p2, uint p3, ArrayView<uint> vt, int stride, int col0, int g, int t) where TMma : struct, IFlexMmaType
    {
        // B[k][n] = V[key k][column n] = V^T[column][key]: b0 = keys 2t, 2t+1 (pair t), b1 = keys 2t+8, 2t+9 (pair t + 4).
        int rowA = (col0 + g) * stride, rowB = (col0 + 8 + g) * stride;
        float a0 = A0, a1 = A1, a2 = A2, a3 = A3, b0 = B0, b1 = B1, b2 = B2, b3 = B3;
        default(TMma).Mma(ref a0, ref a1, ref a2, ref a3, p0, p1, p2, p3, vt[rowA + t], vt[rowA + t + 4]);
        default(TMma).Mma(ref b0, ref b1, ref b2, ref b3, p0, p1, p2, p3, vt[rowB + t], vt[rowB + t + 4]);
        return new() { A0 = a0, A1 = a1, A2 = a2, A3 = a3, B0 = b0, B1 = b1, B2 = b2, B3 = b3 };
    }

    public readonly void Store<TCodec>(ArrayView<ushort> o, long rowLo, long rowHi, bool lo, bool hi, long strideD, int col0, int dv, int t, float invLo, float invHi)
        where TCodec : struct, IFlexElement<ushort>
    {
        int c = col0 + 2 * t;
        Put<TCodec>(o, lo, rowLo, strideD, c, dv, A0 * invLo);
        Put<TCodec>(o, lo, rowLo, strideD, c + 1, dv, A1 * invLo);
        Put<TCodec>(o, hi, rowHi, strideD, c, dv, A2 * invHi);
        Put<TCodec>(o, hi, rowHi, strideD, c + 1, dv, A3 * invHi);
        Put<TCodec>(o, lo, rowLo, strideD, c + 8, dv, B0 * invLo);
        Put<TCodec>(o, lo, rowLo, strideD, c + 9, dv, B1 * invLo);
        Put<TCodec>(o, hi, rowHi, strideD, c + 8, dv, B2 * invHi);
        Put<TCodec>(o, hi, rowHi, strideD, c + 9, dv, B3 * invHi);
    }

    private static void Put<TCodec>(ArrayView<ushort> o, bool row, long rowBase, long strideD, int column, int dv, float value) where TCodec : struct, IFlexElement<ushort>
    {
        if (row && column < dv) o[rowBase + column * strideD] = default(TCodec).Store(value);
    }
}

/// <summary>The columns of <typeparamref name="TLo"/>, then those of <typeparamref name="THi"/>.</summary>
internal struct MmaAccPair<TLo, THi> : IFlexMmaAcc<MmaAccPair<TLo, THi>>
    where TLo : struct, IFlexMmaAcc<TLo> where THi : struct, IFlexMmaAcc<THi>
{
    public TLo Lo;
    public THi Hi;

    public readonly int Columns => default(TLo).Columns + default(THi).Columns;

    public readonly MmaAccPair<TLo, THi> Scale(float lo, float hi) => new() { Lo = Lo.Scale(lo, hi), Hi = Hi.Scale(lo, hi) };

    public readonly MmaAccPair<TLo, THi> AddPv<TMma>(uint p0, uint p1, uint p2, uint p3, ArrayView<uint> vt, int stride, int col0, int g, int t)
        where TMma : struct, IFlexMmaType =>
        new()
        {
            Lo = Lo.AddPv<TMma>(p0, p1, p2, p3, vt, stride, col0, g, t),
            Hi = Hi.AddPv<TMma>(p0, p1, p2, p3, vt, stride, col0 + default(TLo).Columns, g, t),
        };

    public readonly void Store<TCodec>(ArrayView<ushort> o, long rowLo, long rowHi, bool lo, bool hi, long strideD, int col0, int dv, int t, float invLo, float invHi)
        where TCodec : struct, IFlexElement<ushort>
    {
        Lo.Store<TCodec>(o, rowLo, rowHi, lo, hi, strideD, col0, dv, t, invLo, invHi);
        Hi.Store<TCodec>(o, rowLo, rowHi, lo, hi, strideD, col0 + default(TLo).Columns, dv, t, invLo, invHi);
    }
}

/// <summary>Head dims up to 64: four 16-column accumulators.</summary>
internal struct MmaAcc64 : IFlexMmaAcc<MmaAcc64>
{
    public MmaAccPair<MmaAccPair<MmaAcc16, MmaAcc16>, MmaAccPair<MmaAcc16, MmaAcc16>> Inner;

    public readonly int Columns => 64;
    public readonly MmaAcc64 Scale(float lo, float hi) => new() { Inner = Inner.Scale(lo, hi) };
    public readonly MmaAcc64 AddPv<TMma>(uint p0, uint p1, uint p2, uint p3, ArrayView<uint> vt, int stride, int col0, int g, int t) where TMma : struct, IFlexMmaType =>
        new() { Inner = Inner.AddPv<TMma>(p0, p1, p2, p3, vt, stride, col0, g, t) };
    public readonly void Store<TCodec>(ArrayView<ushort> o, long rowLo, long rowHi, bool lo, bool hi, long strideD, int col0, int dv, int t, float invLo, float invHi)
        where TCodec : struct, IFlexElement<ushort> => Inner.Store<TCodec>(o, rowLo, rowHi, lo, hi, strideD, col0, dv, t, invLo, invHi);
}

/// <summary>Head dims up to 128: eight 16-column accumulators.</summary>
internal struct MmaAcc128 : IFlexMmaAcc<MmaAcc128>
{
    public MmaAccPair<MmaAcc64, MmaAcc64> Inner;

    public readonly int Columns => 128;
    public readonly MmaAcc128 Scale(float lo, float hi) => new() { Inner = Inner.Scale(lo, hi) };
    public readonly MmaAcc128 AddPv<TMma>(uint p0, uint p1, uint p2, uint p3, ArrayView<uint> vt, int stride, int col0, int g, int t) where TMma : struct, IFlexMmaType =>
        new() { Inner = Inner.AddPv<TMma>(p0, p1, p2, p3, vt, stride, col0, g, t) };
    public readonly void Store<TCodec>(ArrayView<ushort> o, long rowLo, long rowHi, bool lo, bool hi, long strideD, int col0, int dv, int t, float invLo, float invHi)
        where TCodec : struct, IFlexElement<ushort> => Inner.Store<TCodec>(o, rowLo, rowHi, lo, hi, strideD, col0, dv, t, invLo, invHi);
}

/// <summary>The inline PTX of the tensor-core kernel.</summary>
internal static class FlexMma
{
    /// <summary>Work-items per group: one warp.</summary>
    public const int Threads = 32;

    /// <summary>Query rows per group (one m16 tile) and keys per tile (one k16 step of P V, two n8 tiles of Q K^T).</summary>
    public const int Rows = 16, Keys = 16;

    /// <summary>Words per row of the Q and K tiles: head-dim pairs plus 4 (row r starts at bank 4r: conflict-free fragment loads).</summary>
    public static int QkStride(int columns) => columns / 2 + 4;

    /// <summary>Words per column of the V^T tile: 8 key pairs plus 4.</summary>
    public const int VtStride = Keys / 2 + 4;

    /// <summary>The maximum over the 4 lanes of a row (na_quad_max).</summary>
    public static float QuadMax(float x)
    {
        x = IntrinsicMath.Max(x, Warp.ShuffleXor(x, 1));
        return IntrinsicMath.Max(x, Warp.ShuffleXor(x, 2));
    }

    /// <summary>The sum over the 4 lanes of a row (na_quad_sum).</summary>
    public static float QuadSum(float x)
    {
        x += Warp.ShuffleXor(x, 1);
        return x + Warp.ShuffleXor(x, 2);
    }
}

internal static class FlexMmaKernels
{
    /// <summary>
    /// The tensor-core flex forward kernel: <see cref="FlexKernels.Forward{TScore, TMask, TTile, TElement, TCodec}"/>'s
    /// arguments and grid with 16-row tiles (16-key tiles without a block mask), one warp per group.
    /// </summary>
    public static void Forward<TScore, TMask, TCodec, TMma, TAcc>(FlexForwardArgs<TScore, TMask, ushort> a)
        where TScore : struct, IScoreMod where TMask : struct, IMaskMod where TCodec : struct, IFlexElement<ushort>
        where TMma : struct, IFlexMmaType where TAcc : struct, IFlexMmaAcc<TAcc>
    {
        var qs = SharedMemory.Allocate<uint>(FlexMma.Rows * (default(TAcc).Columns / 2 + 4));
        var ks = SharedMemory.Allocate<uint>(FlexMma.Keys * (default(TAcc).Columns / 2 + 4));
        var vt = SharedMemory.Allocate<uint>(default(TAcc).Columns * FlexMma.VtStride);
        int stride = default(TAcc).Columns / 2 + 4, pairs = default(TAcc).Columns / 2;

        int lane = Group.IdxX, g = lane >> 2, t = lane & 3;
        int tilesPerHead = a.QueryBlocks * a.TilesPerBlock;
        int group = Grid.IdxX;
        int bh = group / tilesPerHead;
        int tile = group - bh * tilesPerHead;
        int b = bh / a.HeadsQ, h = bh - b * a.HeadsQ, hk = h / a.Group;
        int maskRow = tile / a.TilesPerBlock;
        int q0 = maskRow * a.QueryBlockSize + (tile - maskRow * a.TilesPerBlock) * FlexMma.Rows;
        int qEnd = IntrinsicMath.Min(IntrinsicMath.Min(q0 + FlexMma.Rows, (maskRow + 1) * a.QueryBlockSize), a.Nq);
        int rows = qEnd - q0;
        if (rows <= 0) return;   // uniform across the group
        FlexViewChecks.Begin();

        long qBase = a.QOffset + b * a.QStrideB + h * a.QStrideH;
        for (int i = lane; i < FlexMma.Rows * pairs; i += FlexMma.Threads)
        {
            int r = i / pairs, p = i - r * pairs, d = 2 * p;
            long at = qBase + (q0 + r) * a.QStrideN + d * a.QStrideD;
            uint lo = r < rows && d < a.Dqk ? a.Q[at] : (ushort)0, hi = r < rows && d + 1 < a.Dqk ? a.Q[at + a.QStrideD] : (ushort)0;
            qs[r * stride + p] = lo | (hi << 16);
        }

        int first = 0, partialStart = 0, end = a.KeyBlocks;
        int blockSize = a.KeyBlockSize;
        if (a.HasBlockMask != 0)
        {
            int r = b * a.MaskStrideB + (h / a.MaskHeadDiv) * a.MaskStrideH + maskRow;
            first = a.Meta[2 * r];
            partialStart = a.Meta[2 * r + 1];
            end = a.Meta[2 * r + 2];
        }

        var acc = default(TAcc);
        float mLo = float.NegativeInfinity, mHi = float.NegativeInfinity, lLo = 0.0f, lHi = 0.0f;
        long kBase = a.KOffset + b * a.KStrideB + hk * a.KStrideH;
        long vBase = a.VOffset + b * a.VStrideB + hk * a.VStrideH;
        int qLo = q0 + g, qHi = q0 + g + 8;
        int kSteps = (a.Dqk + 15) / 16;
        for (int entry = first; entry < end; entry++)
        {
            int kb = a.HasBlockMask != 0 ? a.Meta[entry] : entry;
            bool full = entry < partialStart;
            int k0 = kb * blockSize;
            int kEnd = IntrinsicMath.Min(k0 + blockSize, a.Nk);
            for (int kt = k0; kt < kEnd; kt += FlexMma.Keys)
            {
                int cols = IntrinsicMath.Min(FlexMma.Keys, kEnd - kt);
                Group.Barrier();   // the previous tile's fragments are read
                for (int i = lane; i < FlexMma.Keys * pairs; i += FlexMma.Threads)
                {
                    int j = i / pairs, p = i - j * pairs, d = 2 * p;
                    long at = kBase + (kt + j) * a.KStrideN + d * a.KStrideD;
                    uint lo = j < cols && d < a.Dqk ? a.K[at] : (ushort)0, hi = j < cols && d + 1 < a.Dqk ? a.K[at + a.KStrideD] : (ushort)0;
                    ks[j * stride + p] = lo | (hi << 16);
                }
                for (int i = lane; i < default(TAcc).Columns * (FlexMma.Keys / 2); i += FlexMma.Threads)
                {
                    int c = i / (FlexMma.Keys / 2), p = i - c * (FlexMma.Keys / 2), j = 2 * p;
                    long at = vBase + (kt + j) * a.VStrideN + c * a.VStrideD;
                    uint lo = j < cols && c < a.Dv ? a.V[at] : (ushort)0, hi = j + 1 < cols && c < a.Dv ? a.V[at + a.VStrideN] : (ushort)0;
                    vt[c * FlexMma.VtStride + p] = lo | (hi << 16);
                }
                Group.Barrier();

                // S = Q K^T: keys 0-7 in s0-s3, keys 8-15 in s4-s7.
                float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
                for (int kk = 0; kk < kSteps; kk++)
                {
                    int c = kk * 8 + t;
                    uint a0 = qs[g * stride + c], a1 = qs[(g + 8) * stride + c], a2 = qs[g * stride + c + 4], a3 = qs[(g + 8) * stride + c + 4];
                    default(TMma).Mma(ref s0, ref s1, ref s2, ref s3, a0, a1, a2, a3, ks[g * stride + c], ks[g * stride + c + 4]);
                    default(TMma).Mma(ref s4, ref s5, ref s6, ref s7, a0, a1, a2, a3, ks[(g + 8) * stride + c], ks[(g + 8) * stride + c + 4]);
                }

                // The modifications on each fp32 score with its coordinates: row g (s0, s1, s4, s5), g + 8 (s2, s3, s6, s7).
                int j0 = 2 * t;
                s0 = Modified(a, s0, g, j0, rows, cols, full, b, h, qLo, kt);
                s1 = Modified(a, s1, g, j0 + 1, rows, cols, full, b, h, qLo, kt);
                s2 = Modified(a, s2, g + 8, j0, rows, cols, full, b, h, qHi, kt);
                s3 = Modified(a, s3, g + 8, j0 + 1, rows, cols, full, b, h, qHi, kt);
                s4 = Modified(a, s4, g, j0 + 8, rows, cols, full, b, h, qLo, kt);
                s5 = Modified(a, s5, g, j0 + 9, rows, cols, full, b, h, qLo, kt);
                s6 = Modified(a, s6, g + 8, j0 + 8, rows, cols, full, b, h, qHi, kt);
                s7 = Modified(a, s7, g + 8, j0 + 9, rows, cols, full, b, h, qHi, kt);
                Warp.Barrier();   // reconverge after the modifications before the shuffles and mma.sync

                // Online softmax (na_mma_softmax, natural-log units): a row that has seen only -inf uses 0 as its maximum.
                float mNewLo = IntrinsicMath.Max(mLo, FlexMma.QuadMax(IntrinsicMath.Max(IntrinsicMath.Max(s0, s1), IntrinsicMath.Max(s4, s5))));
                float mNewHi = IntrinsicMath.Max(mHi, FlexMma.QuadMax(IntrinsicMath.Max(IntrinsicMath.Max(s2, s3), IntrinsicMath.Max(s6, s7))));
                float useLo = mNewLo == float.NegativeInfinity ? 0.0f : mNewLo, useHi = mNewHi == float.NegativeInfinity ? 0.0f : mNewHi;
                float alphaLo = MathF.Exp(mLo - useLo), alphaHi = MathF.Exp(mHi - useHi);
                mLo = mNewLo;
                mHi = mNewHi;
                s0 = MathF.Exp(s0 - useLo);
                s1 = MathF.Exp(s1 - useLo);
                s4 = MathF.Exp(s4 - useLo);
                s5 = MathF.Exp(s5 - useLo);
                s2 = MathF.Exp(s2 - useHi);
                s3 = MathF.Exp(s3 - useHi);
                s6 = MathF.Exp(s6 - useHi);
                s7 = MathF.Exp(s7 - useHi);
                lLo = lLo * alphaLo + s0 + s1 + s4 + s5;
                lHi = lHi * alphaHi + s2 + s3 + s6 + s7;

                // P's A fragment (na_mma_pack_p), then O = O * alpha + P V.
                uint p0 = default(TMma).Pack(s0, s1), p1 = default(TMma).Pack(s2, s3), p2 = default(TMma).Pack(s4, s5), p3 = default(TMma).Pack(s6, s7);
                acc = acc.Scale(alphaLo, alphaHi).AddPv<TMma>(p0, p1, p2, p3, vt, FlexMma.VtStride, 0, g, t);
            }
        }

        lLo = FlexMma.QuadSum(lLo);
        lHi = FlexMma.QuadSum(lHi);
        bool hasLo = g < rows, hasHi = g + 8 < rows;
        long oLo = a.OOffset + b * a.OStrideB + h * a.OStrideH + qLo * a.OStrideN, oHi = oLo + 8 * a.OStrideN;
        acc.Store<TCodec>(a.O, oLo, oHi, hasLo, hasHi, a.OStrideD, 0, a.Dv, t, lLo > 0.0f ? 1.0f / lLo : 0.0f, lHi > 0.0f ? 1.0f / lHi : 0.0f);
        if (a.HasLse != 0 && t == 0)
        {
            long lse = a.LseOffset + b * a.LseStrideB + h * a.LseStrideH;
            if (hasLo) a.Lse[lse + qLo * a.LseStrideN] = lLo > 0.0f ? mLo + MathF.Log(lLo) : float.NegativeInfinity;
            if (hasHi) a.Lse[lse + qHi * a.LseStrideN] = lHi > 0.0f ? mHi + MathF.Log(lHi) : float.NegativeInfinity;
        }
        FlexViewChecks.End(a.Errors);
    }

    /// <summary>The score of row <paramref name="r"/>, key <paramref name="j"/> of the tile: -inf outside the tile or hidden by the mask, else scaled and modified.</summary>
    private static float Modified<TScore, TMask>(in FlexForwardArgs<TScore, TMask, ushort> a, float dot, int r, int j, int rows, int cols, bool full,
        int b, int h, int q, int kt) where TScore : struct, IScoreMod where TMask : struct, IMaskMod
    {
        if (r >= rows || j >= cols) return float.NegativeInfinity;
        int k = kt + j;
        if (!full && !a.MaskMod.Visible(b, h, q, k)) return float.NegativeInfinity;
        return a.ScoreMod.Score(dot * a.Scale, b, h, q, k);
    }
}
