// Softcap, ALiBi and the dense additive bias applied to the CPU flash kernel's score tiles.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NativeAttention.Cpu;

/// <summary>
/// Softcap, ALiBi and the dense additive bias, in the reference's order, on score tiles in log2 units. Per-column
/// values (slope, absolute query position, bias row) live in the worker's scratch, filled by <see cref="SetColumn"/>.
/// </summary>
/// <remarks>
/// The dense bias is read in strips: the first time a column group needs keys its strip does not hold, the group's
/// bias rows are copied for up to <see cref="ScoreOptionPlan.BiasStripKeys"/> keys (never past the keys the group
/// can see), converted to float32 and transposed into <c>strip[key][column]</c>, the score tile's own layout; each
/// tile then adds a contiguous block times log2(e) with one fused multiply-add per vector. The copy reads every bias row in one long run, so
/// the hardware prefetchers follow it; reading the rows where the tile needs them (a few cache lines of many rows
/// 4 Nk bytes apart, per tile) left most of those reads waiting on memory.
/// </remarks>
internal readonly unsafe struct OptionScoreModifier : IScoreModifier
{
    private readonly ScoreOptionPlan _plan;
    private readonly float* _slope, _position, _biasStrip;
    private readonly byte** _biasRow;
    private readonly int* _stripStart, _stripEnd;

    /// <param name="plan">The call's options.</param>
    /// <param name="slope">Per-column scratch for the ALiBi slope in log2 units.</param>
    /// <param name="position">Per-column scratch for the query's absolute position <c>i + Nk - Nq</c>.</param>
    /// <param name="biasRow">Per-column scratch for the address of the query's bias row.</param>
    /// <param name="biasStrip">Scratch for the bias strips, <c>columns x plan.BiasStripKeys</c> floats.</param>
    /// <param name="stripStart">Per-column scratch: at a group's first column, the first key its strip holds.</param>
    /// <param name="stripEnd">Per-column scratch: at a group's first column, the key after the last one its strip holds.</param>
    public OptionScoreModifier(ScoreOptionPlan plan, float* slope, float* position, byte** biasRow, float* biasStrip, int* stripStart, int* stripEnd)
    {
        _plan = plan;
        _slope = slope;
        _position = position;
        _biasRow = biasRow;
        _biasStrip = biasStrip;
        _stripStart = stripStart;
        _stripEnd = stripEnd;
    }

    public static bool IsIdentity => false;

    public void SetColumn(int column, int batch, int queryHead, int queryIndex)
    {
        var p = _plan;
        bool real = queryIndex >= 0;
        _slope[column] = real && p.SlopesLog2 is { } slopes ? slopes[p.SlopesPerBatch ? batch * p.QueryHeads + queryHead : queryHead] : 0;
        _position[column] = real ? (float)((long)queryIndex + p.KeyLength - p.QueryLength) : 0;
        _biasRow[column] = real && p.Bias != null
            ? p.Bias + p.BiasType.SizeOf() * (batch * p.BiasBatchStride + queryHead * p.BiasHeadStride + queryIndex * p.BiasQueryStride)
            : null;
        // A new item: whatever strip the column's group held belongs to other rows.
        if (p.Bias != null) _stripStart[column] = _stripEnd[column] = 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Apply<TSimd, T>(float* scores, int width, int firstColumn, int keyStart, int keyCount, int realKeys, int keyEnd)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        var p = _plan;
        int w = TSimd.Count;
        if (p.Softcap)
        {
            T inScale = TSimd.Broadcast(p.SoftcapIn), outScale = TSimd.Broadcast(p.SoftcapOut);
            long total = (long)keyCount * width;
            for (long n = 0; n < total; n += w)
                TSimd.Store(scores + n, TSimd.Multiply(outScale, CpuSimdMath.Tanh<TSimd, T>(TSimd.Multiply(TSimd.Load(scores + n), inScale))));
        }
        if (p.SlopesLog2 is not null)
        {
            for (int v = 0; v < width; v += w)
            {
                T slope = TSimd.Load(_slope + firstColumn + v), position = TSimd.Load(_position + firstColumn + v);
                float* s = scores + v;
                for (int j = 0; j < keyCount; j++, s += width)
                {
                    T distance = TSimd.Subtract(position, TSimd.Broadcast(keyStart + j));
                    distance = TSimd.Max(distance, TSimd.Subtract(TSimd.Zero, distance));
                    TSimd.Store(s, TSimd.Subtract(TSimd.Load(s), TSimd.Multiply(slope, distance)));
                }
            }
        }
        if (p.Bias != null)
        {
            float* strip = _biasStrip + (long)firstColumn * p.BiasStripKeys;
            int stripStart = _stripStart[firstColumn];
            if (keyStart < stripStart || keyStart + realKeys > _stripEnd[firstColumn])
            {
                // Up to a strip of keys from here, as far as the group can see, and at least this tile's real keys.
                int end = keyStart + Math.Min(p.BiasStripKeys, Math.Max(Math.Min(keyEnd, p.KeyLength) - keyStart, realKeys));
                FillStrip(strip, width, firstColumn, keyStart, end - keyStart);
                _stripStart[firstColumn] = stripStart = keyStart;
                _stripEnd[firstColumn] = end;
            }
            // Padding keys are masked later and keep their scores.
            float* b = strip + (long)(keyStart - stripStart) * width;
            long total = (long)realKeys * width;
            T log2E = TSimd.Broadcast(MathConstants.Log2E);
            for (long n = 0; n < total; n += w)
                TSimd.Store(scores + n, TSimd.MultiplyAdd(TSimd.Load(b + n), log2E, TSimd.Load(scores + n)));
        }
    }

    /// <summary>
    /// Writes <c>strip[j * width + c] = bias[column firstColumn + c][key keyStart + j]</c> (as float32) for
    /// <paramref name="keys"/> keys and the group's <paramref name="width"/> columns (zeros for padding columns).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void FillStrip(float* strip, int width, int firstColumn, int keyStart, int keys)
    {
        var p = _plan;
        int c = 0;
        if (Avx512F.IsSupported && p.BiasKeyStride == 1)
        {
            // 16 x 16 blocks widened to float32 and transposed in registers: each row is read in one run of whole cache lines.
            int fullKeys = keys & ~15;
            for (; c + 16 <= width; c += 16)
            {
                byte** rows = _biasRow + firstColumn + c;
                bool all = true;
                for (int i = 0; i < 16; i++) all &= rows[i] != null;
                // Padding columns come last: from a block holding any, the general copy does the rest.
                if (!all) break;
                switch (p.BiasType)
                {
                    case ElementType.Float32: TransposeRows16<Float32Rows>(rows, keyStart, fullKeys, strip + c, width); break;
                    case ElementType.BFloat16: TransposeRows16<BFloat16Rows>(rows, keyStart, fullKeys, strip + c, width); break;
                    default: TransposeRows16<Float16Rows>(rows, keyStart, fullKeys, strip + c, width); break;
                }
                if (fullKeys < keys) FillColumns(strip, width, firstColumn, c, 16, keyStart, fullKeys, keys);
            }
        }
        if (c < width) FillColumns(strip, width, firstColumn, c, width - c, keyStart, 0, keys);
    }

    /// <summary>The general strip copy: columns <c>c0 .. c0 + count</c>, strip keys <c>j0 .. keys</c>, any element type and strides.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void FillColumns(float* strip, int width, int firstColumn, int c0, int count, int keyStart, int j0, int keys)
    {
        var p = _plan;
        long stride = p.BiasKeyStride;
        // Walk the bias the way it is laid out: along rows when keys are closer together than rows (the usual layout),
        // else key by key (a transposed bias), so reads stay in few cache lines either way.
        bool byRow = Math.Abs(stride) <= Math.Abs(p.BiasQueryStride);
        if (byRow)
        {
            for (int c = c0; c < c0 + count; c++)
            {
                byte* row = _biasRow[firstColumn + c];
                float* s = strip + (long)j0 * width + c;
                if (row == null)
                {
                    for (int j = j0; j < keys; j++, s += width) *s = 0;
                    continue;
                }
                long at = (long)(keyStart + j0) * stride;
                switch (p.BiasType)
                {
                    case ElementType.Float32:
                        for (int j = j0; j < keys; j++, s += width, at += stride) *s = ((float*)row)[at];
                        break;
                    case ElementType.BFloat16:
                        for (int j = j0; j < keys; j++, s += width, at += stride) *s = BitConverter.UInt32BitsToSingle((uint)((ushort*)row)[at] << 16);
                        break;
                    default:
                        for (int j = j0; j < keys; j++, s += width, at += stride) *s = (float)((Half*)row)[at];
                        break;
                }
            }
            return;
        }
        for (int j = j0; j < keys; j++)
        {
            long at = (long)(keyStart + j) * stride;
            float* s = strip + (long)j * width;
            for (int c = c0; c < c0 + count; c++)
            {
                byte* row = _biasRow[firstColumn + c];
                s[c] = row == null ? 0
                    : p.BiasType switch
                    {
                        ElementType.Float32 => ((float*)row)[at],
                        ElementType.BFloat16 => BitConverter.UInt32BitsToSingle((uint)((ushort*)row)[at] << 16),
                        _ => (float)((Half*)row)[at],
                    };
            }
        }
    }

    /// <summary>16 consecutive bias elements of one row from <paramref name="index"/>, as float32 (exactly).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Load<TFormat>(byte* row, int index) where TFormat : struct, IRowFormat =>
        RowLoads.Load<Simd512, Vector512<float>, TFormat>(row, index);

    /// <summary>
    /// For <paramref name="keys"/> (a multiple of 16) keys from <paramref name="keyStart"/> of 16 bias rows with unit
    /// key stride: loads 16 keys of each row as float32, transposes the 16 x 16 block in registers and stores key j's 16 columns at
    /// <c>destination + j * width</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TransposeRows16<TFormat>(byte** rows, int keyStart, int keys, float* destination, int width) where TFormat : struct, IRowFormat
    {
        long step = width;
        for (int j = 0; j < keys; j += 16, destination += 16 * step)
        {
            int key = keyStart + j;
            var r0 = Load<TFormat>(rows[0], key); var r1 = Load<TFormat>(rows[1], key);
            var r2 = Load<TFormat>(rows[2], key); var r3 = Load<TFormat>(rows[3], key);
            var r4 = Load<TFormat>(rows[4], key); var r5 = Load<TFormat>(rows[5], key);
            var r6 = Load<TFormat>(rows[6], key); var r7 = Load<TFormat>(rows[7], key);
            var r8 = Load<TFormat>(rows[8], key); var r9 = Load<TFormat>(rows[9], key);
            var rA = Load<TFormat>(rows[10], key); var rB = Load<TFormat>(rows[11], key);
            var rC = Load<TFormat>(rows[12], key); var rD = Load<TFormat>(rows[13], key);
            var rE = Load<TFormat>(rows[14], key); var rF = Load<TFormat>(rows[15], key);

            // Pairs of rows interleaved, then quads (within each 128-bit lane), then lanes across 8 and 16 rows.
            var t0 = Avx512F.UnpackLow(r0, r1); var t1 = Avx512F.UnpackHigh(r0, r1);
            var t2 = Avx512F.UnpackLow(r2, r3); var t3 = Avx512F.UnpackHigh(r2, r3);
            var t4 = Avx512F.UnpackLow(r4, r5); var t5 = Avx512F.UnpackHigh(r4, r5);
            var t6 = Avx512F.UnpackLow(r6, r7); var t7 = Avx512F.UnpackHigh(r6, r7);
            var t8 = Avx512F.UnpackLow(r8, r9); var t9 = Avx512F.UnpackHigh(r8, r9);
            var tA = Avx512F.UnpackLow(rA, rB); var tB = Avx512F.UnpackHigh(rA, rB);
            var tC = Avx512F.UnpackLow(rC, rD); var tD = Avx512F.UnpackHigh(rC, rD);
            var tE = Avx512F.UnpackLow(rE, rF); var tF = Avx512F.UnpackHigh(rE, rF);

            r0 = Avx512F.Shuffle(t0, t2, 0x44); r1 = Avx512F.Shuffle(t0, t2, 0xEE);
            r2 = Avx512F.Shuffle(t1, t3, 0x44); r3 = Avx512F.Shuffle(t1, t3, 0xEE);
            r4 = Avx512F.Shuffle(t4, t6, 0x44); r5 = Avx512F.Shuffle(t4, t6, 0xEE);
            r6 = Avx512F.Shuffle(t5, t7, 0x44); r7 = Avx512F.Shuffle(t5, t7, 0xEE);
            r8 = Avx512F.Shuffle(t8, tA, 0x44); r9 = Avx512F.Shuffle(t8, tA, 0xEE);
            rA = Avx512F.Shuffle(t9, tB, 0x44); rB = Avx512F.Shuffle(t9, tB, 0xEE);
            rC = Avx512F.Shuffle(tC, tE, 0x44); rD = Avx512F.Shuffle(tC, tE, 0xEE);
            rE = Avx512F.Shuffle(tD, tF, 0x44); rF = Avx512F.Shuffle(tD, tF, 0xEE);

            t0 = Avx512F.Shuffle4x128(r0, r4, 0x88); t1 = Avx512F.Shuffle4x128(r1, r5, 0x88);
            t2 = Avx512F.Shuffle4x128(r2, r6, 0x88); t3 = Avx512F.Shuffle4x128(r3, r7, 0x88);
            t4 = Avx512F.Shuffle4x128(r0, r4, 0xDD); t5 = Avx512F.Shuffle4x128(r1, r5, 0xDD);
            t6 = Avx512F.Shuffle4x128(r2, r6, 0xDD); t7 = Avx512F.Shuffle4x128(r3, r7, 0xDD);
            t8 = Avx512F.Shuffle4x128(r8, rC, 0x88); t9 = Avx512F.Shuffle4x128(r9, rD, 0x88);
            tA = Avx512F.Shuffle4x128(rA, rE, 0x88); tB = Avx512F.Shuffle4x128(rB, rF, 0x88);
            tC = Avx512F.Shuffle4x128(r8, rC, 0xDD); tD = Avx512F.Shuffle4x128(r9, rD, 0xDD);
            tE = Avx512F.Shuffle4x128(rA, rE, 0xDD); tF = Avx512F.Shuffle4x128(rB, rF, 0xDD);

            Avx512F.Shuffle4x128(t0, t8, 0x88).Store(destination);
            Avx512F.Shuffle4x128(t1, t9, 0x88).Store(destination + step);
            Avx512F.Shuffle4x128(t2, tA, 0x88).Store(destination + 2 * step);
            Avx512F.Shuffle4x128(t3, tB, 0x88).Store(destination + 3 * step);
            Avx512F.Shuffle4x128(t4, tC, 0x88).Store(destination + 4 * step);
            Avx512F.Shuffle4x128(t5, tD, 0x88).Store(destination + 5 * step);
            Avx512F.Shuffle4x128(t6, tE, 0x88).Store(destination + 6 * step);
            Avx512F.Shuffle4x128(t7, tF, 0x88).Store(destination + 7 * step);
            Avx512F.Shuffle4x128(t0, t8, 0xDD).Store(destination + 8 * step);
            Avx512F.Shuffle4x128(t1, t9, 0xDD).Store(destination + 9 * step);
            Avx512F.Shuffle4x128(t2, tA, 0xDD).Store(destination + 10 * step);
            Avx512F.Shuffle4x128(t3, tB, 0xDD).Store(destination + 11 * step);
            Avx512F.Shuffle4x128(t4, tC, 0xDD).Store(destination + 12 * step);
            Avx512F.Shuffle4x128(t5, tD, 0xDD).Store(destination + 13 * step);
            Avx512F.Shuffle4x128(t6, tE, 0xDD).Store(destination + 14 * step);
            Avx512F.Shuffle4x128(t7, tF, 0xDD).Store(destination + 15 * step);
        }
    }
}
