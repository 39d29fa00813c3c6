// The hook through which score modifiers (softcap, ALiBi, dense additive bias) enter the CPU flash kernel.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NativeAttention.Cpu;

/// <summary>
/// Changes a tile of scores after <c>S = Q K^T</c> and before masking. Scores arrive transposed
/// (<c>scores[key][column]</c>, a fixed number of columns per key) and in log2 units, i.e. already multiplied
/// by <c>scale * log2(e)</c>; a modifier that adds natural-log terms multiplies them by <c>log2(e)</c>. Implementations
/// are structs, so the identity modifier costs nothing once the JIT specialises the kernel.
/// </summary>
internal unsafe interface IScoreModifier
{
    /// <summary>True when the modifier does nothing and the kernel may skip every call to it.</summary>
    static abstract bool IsIdentity { get; }

    /// <summary>
    /// Records that column <paramref name="column"/> of the current item holds query <paramref name="queryIndex"/> of
    /// query head <paramref name="queryHead"/> in batch <paramref name="batch"/>; padding columns pass -1 for both.
    /// </summary>
    void SetColumn(int column, int batch, int queryHead, int queryIndex);

    /// <summary>
    /// Modifies the scores of one column group, <c>width</c> columns starting at item column
    /// <paramref name="firstColumn"/>, for keys <c>keyStart ..</c>: <paramref name="keyCount"/> rows, of which the first
    /// <paramref name="realKeys"/> are real keys and the rest padding (masked later).
    /// </summary>
    void Apply<TSimd, T>(float* scores, int width, int firstColumn, int keyStart, int keyCount, int realKeys)
        where TSimd : struct, ISimd<T> where T : unmanaged;
}

/// <summary>Plain scaled dot-product scores.</summary>
internal struct NoScoreModifier : IScoreModifier
{
    public static bool IsIdentity => true;

    public readonly void SetColumn(int column, int batch, int queryHead, int queryIndex) { }

    public readonly unsafe void Apply<TSimd, T>(float* scores, int width, int firstColumn, int keyStart, int keyCount, int realKeys)
        where TSimd : struct, ISimd<T> where T : unmanaged { }
}

/// <summary>
/// The per-call, read-only half of <see cref="OptionScoreModifier"/>: softcap constants, ALiBi slopes and where the
/// dense bias lives. Broadcast axes of the bias get stride 0.
/// </summary>
internal sealed unsafe class ScoreOptionPlan
{
    private const double Log2E = 1.4426950408889634;

    /// <summary>Softcap is on: <c>s2 = SoftcapOut tanh(SoftcapIn s2)</c> is <c>c tanh(s / c)</c> in log2 units.</summary>
    public readonly bool Softcap;
    public readonly float SoftcapIn, SoftcapOut;
    /// <summary>ALiBi slopes times log2(e), <c>[Hq]</c> or <c>[B, Hq]</c> row-major; null without ALiBi.</summary>
    public readonly float[]? SlopesLog2;
    public readonly bool SlopesPerBatch;
    public readonly int QueryHeads, QueryLength, KeyLength;
    /// <summary>The dense bias' first element (null without a bias), its element type and strides in elements.</summary>
    public readonly byte* Bias;
    public readonly ElementType BiasType;
    public readonly long BiasBatchStride, BiasHeadStride, BiasQueryStride, BiasKeyStride;

    public ScoreOptionPlan(FlashProblem problem, byte* bias)
    {
        var o = problem.Options;
        QueryHeads = problem.QueryHeads;
        QueryLength = problem.QueryLength;
        KeyLength = problem.KeyLength;
        if (o.Softcap > 0)
        {
            Softcap = true;
            SoftcapIn = (float)(1 / (Log2E * o.Softcap));
            SoftcapOut = (float)(o.Softcap * Log2E);
        }
        if (o.AlibiSlopes is { } slopes)
        {
            SlopesLog2 = Array.ConvertAll(slopes.ToDoubleArray(), s => (float)(s * Log2E));
            SlopesPerBatch = slopes.Rank == 2;
        }
        if (o.Bias is { } b && bias != null)
        {
            BiasType = b.ElementType;
            Bias = bias + b.Offset * BiasType.SizeOf();
            BiasBatchStride = b.Shape[0] == 1 ? 0 : b.Strides[0];
            BiasHeadStride = b.Shape[1] == 1 ? 0 : b.Strides[1];
            BiasQueryStride = b.Strides[2];
            BiasKeyStride = b.Strides[3];
        }
    }
}

/// <summary>
/// Softcap, ALiBi and the dense additive bias, in the reference's order, on score tiles in log2 units. Per-column
/// values (slope, absolute query position, bias row) live in the worker's scratch, filled by <see cref="SetColumn"/>.
/// </summary>
internal readonly unsafe struct OptionScoreModifier : IScoreModifier
{
    private const float Log2E = 1.44269504088896341f;
    private readonly ScoreOptionPlan _plan;
    private readonly float* _slope, _position;
    private readonly byte** _biasRow;

    /// <param name="plan">The call's options.</param>
    /// <param name="slope">Per-column scratch for the ALiBi slope in log2 units.</param>
    /// <param name="position">Per-column scratch for the query's absolute position <c>i + Nk - Nq</c>.</param>
    /// <param name="biasRow">Per-column scratch for the address of the query's bias row.</param>
    public OptionScoreModifier(ScoreOptionPlan plan, float* slope, float* position, byte** biasRow)
    {
        _plan = plan;
        _slope = slope;
        _position = position;
        _biasRow = biasRow;
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
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Apply<TSimd, T>(float* scores, int width, int firstColumn, int keyStart, int keyCount, int realKeys)
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
            if (typeof(T) == typeof(Vector512<float>) && Avx2.IsSupported && p.BiasType == ElementType.Float32 && p.BiasKeyStride == 1
                && AddFloat32BiasByGather(scores, width, firstColumn, keyStart, realKeys))
                return;
            AddBias(scores, width, firstColumn, keyStart, realKeys);
        }
    }

    /// <summary>Adds the dense bias column by column: any element type and key stride.</summary>
    private void AddBias(float* scores, int width, int firstColumn, int keyStart, int realKeys)
    {
        var p = _plan;
        long stride = p.BiasKeyStride;
        for (int c = 0; c < width; c++)
        {
            byte* row = _biasRow[firstColumn + c];
            if (row == null) continue;
            float* s = scores + c;
            switch (p.BiasType)
            {
                case ElementType.Float32:
                    float* f = (float*)row + keyStart * stride;
                    for (int j = 0; j < realKeys; j++, s += width) *s += Log2E * f[j * stride];
                    break;
                case ElementType.BFloat16:
                    ushort* bf = (ushort*)row + keyStart * stride;
                    for (int j = 0; j < realKeys; j++, s += width) *s += Log2E * BitConverter.UInt32BitsToSingle((uint)bf[j * stride] << 16);
                    break;
                default:
                    Half* h = (Half*)row + keyStart * stride;
                    for (int j = 0; j < realKeys; j++, s += width) *s += Log2E * (float)h[j * stride];
                    break;
            }
        }
    }

    /// <summary>
    /// Adds a float32 bias with unit key stride 16 columns at a time: one gather per key reads the 16 columns' bias
    /// rows, so the transposed tile is updated with whole vectors. Returns false, having changed nothing, when the
    /// rows' distances do not fit 32-bit gather indices.
    /// </summary>
    private bool AddFloat32BiasByGather(float* scores, int width, int firstColumn, int keyStart, int realKeys)
    {
        const int lanes = 16;
        int* offsets = stackalloc int[lanes];
        for (int v = 0; v < width; v += lanes)
        {
            float* first = (float*)_biasRow[firstColumn + v];
            if (first == null) continue;
            for (int c = 0; c < lanes; c++)
            {
                float* row = (float*)_biasRow[firstColumn + v + c];
                long distance = row == null ? 0 : row - first;
                if (distance != (int)distance) return false;
            }
        }
        var log2E = Vector512.Create(Log2E);
        for (int v = 0; v < width; v += lanes)
        {
            float* first = (float*)_biasRow[firstColumn + v];
            // Padding columns come last: a vector whose first column is padding is all padding. Padding lanes re-read the first row.
            if (first == null) continue;
            for (int c = 0; c < lanes; c++)
            {
                float* row = (float*)_biasRow[firstColumn + v + c];
                offsets[c] = row == null ? 0 : (int)(row - first);
            }
            // .NET exposes no 512-bit gather: two 256-bit ones fill a vector.
            var low = Vector256.Load(offsets);
            var high = Vector256.Load(offsets + lanes / 2);
            float* bias = first + keyStart, s = scores + v;
            for (int j = 0; j < realKeys; j++, s += width)
            {
                var gathered = Vector512.Create(Avx2.GatherVector256(bias + j, low, 4), Avx2.GatherVector256(bias + j, high, 4));
                Vector512.FusedMultiplyAdd(gathered, log2E, Vector512.Load(s)).Store(s);
            }
        }
        return true;
    }
}
