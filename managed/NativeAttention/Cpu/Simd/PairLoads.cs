// 512-bit loads of 32 row elements split into their even and odd elements, for tiles that sum in that order.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NativeAttention.Cpu;

/// <summary>
/// Elements <c>0, 2, ..., 30</c> and <c>1, 3, ..., 31</c> of a row chunk, as float32 vectors, in any
/// <see cref="IRowFormat"/>. A 16-bit row read this way needs no widening shuffle: one 512-bit load holds 16 pairs,
/// and each 32-bit lane gives its low half (the even element) and its high half (the odd one) by shifts and masks
/// (bfloat16: one instruction each; binary16 read scaled down: two). Float32 rows pay two two-source permutes instead,
/// so that a kernel summing in this order gives every format the same products in the same order.
/// </summary>
internal static unsafe class PairLoads
{
    /// <summary>Whether this machine runs the paired loads (512-bit vectors with AVX-512 F and BW).</summary>
    public static bool Supported => Vector512.IsHardwareAccelerated && Avx512F.IsSupported && Avx512BW.IsSupported;

    /// <summary>Elements 0, 2, ..., 30 of the 32 starting at <paramref name="row"/>, stored as <typeparamref name="TFormat"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Even<TFormat>(byte* row) where TFormat : struct, IRowFormat
    {
        if (TFormat.Type == ElementType.Float32) return Avx512F.PermuteVar16x32x2(Vector512.Load((float*)row), EvenIndices, Vector512.Load((float*)row + 16));
        var pairs = Vector512.Load((int*)row);
        if (TFormat.Type == ElementType.BFloat16) return Vector512.ShiftLeft(pairs, 16).AsSingle();
        // FiniteHalf.LoadScaledDown's bits: the sign-extended half shifted left by 13, bits 30..28 cleared; the low half
        // by a multiply-add of the 16-bit pair with (2^13, 0).
        if (typeof(TFormat) == typeof(ScaledFloat16Rows))
            return (Avx512BW.MultiplyAddAdjacent(pairs.AsInt16(), Vector512.Create(1 << 13).AsInt16()) & Vector512.Create(unchecked((int)0x8FFFE000))).AsSingle();
        // Binary16, exact (infinity and NaN kept): the half sign-extended, then the usual widening.
        return Simd512.HalfToSingle(Vector512.ShiftRightArithmetic(Vector512.ShiftLeft(pairs, 16), 16));
    }

    /// <summary>Elements 1, 3, ..., 31 of the 32 starting at <paramref name="row"/>, stored as <typeparamref name="TFormat"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Odd<TFormat>(byte* row) where TFormat : struct, IRowFormat
    {
        if (TFormat.Type == ElementType.Float32) return Avx512F.PermuteVar16x32x2(Vector512.Load((float*)row), OddIndices, Vector512.Load((float*)row + 16));
        var pairs = Vector512.Load((int*)row);
        if (TFormat.Type == ElementType.BFloat16) return (pairs & Vector512.Create(unchecked((int)0xFFFF0000))).AsSingle();
        // The high half by an arithmetic shift of the lane: bits 12..0 then hold the low half's top bits, which the mask
        // clears with bits 30..28.
        if (typeof(TFormat) == typeof(ScaledFloat16Rows))
            return (Avx512F.ShiftRightArithmetic(pairs, 3) & Vector512.Create(unchecked((int)0x8FFFE000))).AsSingle();
        return Simd512.HalfToSingle(Vector512.ShiftRightArithmetic(pairs, 16));
    }

    /// <summary>
    /// <paramref name="count"/> floats (a multiple of 32) rearranged chunk by chunk into the order of <see cref="Even"/> and <see cref="Odd"/>:
    /// each 32 become their 16 even elements, then their 16 odd ones.
    /// </summary>
    public static void Deinterleave(float* destination, float* source, int count)
    {
        for (int c = 0; c < count; c += 32)
        {
            Even<Float32Rows>((byte*)(source + c)).Store(destination + c);
            Odd<Float32Rows>((byte*)(source + c)).Store(destination + c + 16);
        }
    }

    private static Vector512<int> EvenIndices
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    }

    private static Vector512<int> OddIndices
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Vector512.Create(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    }
}
