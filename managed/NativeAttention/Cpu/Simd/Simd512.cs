// ISimd over Vector512<float> (AVX-512).
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NativeAttention.Cpu;

/// <summary>The 512-bit width: 16 floats per vector, 32 registers.</summary>
internal unsafe struct Simd512 : ISimd<Vector512<float>>
{
    public static int Count => Vector512<float>.Count;
    public static int Registers => 32;
    public static Vector512<float> Zero => Vector512<float>.Zero;
    public static Vector512<float> NegativeInfinity => Vector512.Create(float.NegativeInfinity);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Load(float* source) => Vector512.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> LoadBFloat16(ushort* source) =>
        Vector512.ShiftLeft(Vector512.WidenLower(Vector256.Load(source).ToVector512Unsafe()), 16).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> LoadHalf(ushort* source) =>
        HalfToSingle(Vector512.WidenLower(Vector256.Load((short*)source).ToVector512Unsafe()));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* destination, Vector512<float> value) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Broadcast(float value) => Vector512.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> MultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Subtract(Vector512<float> a, Vector512<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Multiply(Vector512<float> a, Vector512<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Divide(Vector512<float> a, Vector512<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Max(Vector512<float> a, Vector512<float> b) => Vector512.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Min(Vector512<float> a, Vector512<float> b) => Vector512.Min(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp2NonPositive(Vector512<float> x)
    {
        // x = n + f with |f| <= 1/2; 2^f by polynomial, 2^n by vscalefps. Results below 2^-126 (the smallest normal
        // float, Exp2Polynomial.Floor) are not computed but set to 0 by a mask: on Intel cores a vscalefps whose result
        // is tiny (denormal, or rounding to 0) takes a microcode assist of about 150 cycles (50-60 ns against 4 ns here,
        // bench/results/cpu.md), so every vector with one masked (-inf) score paid it. x is clamped to the floor, so
        // every computed result is at least 2^-126: for x in [-126, -125.5], n = -126 and 2^f >= 1. vmaxps returns its
        // second operand when either is NaN, so a NaN x stays NaN (and is not tiny).
        var floor = Vector512.Create(Exp2Polynomial.Floor);
        var tiny = Vector512.LessThan(x, floor);
        if (Avx512F.IsSupported)
        {
            x = Avx512F.Max(floor, x);
            var n = Vector512.Round(x);
            return Vector512.ConditionalSelect(tiny, Vector512<float>.Zero, Avx512F.Scale(Exp2Polynomial.Evaluate<Simd512, Vector512<float>>(x - n), n));
        }
        // Vector512 is accelerated without AVX-512F on no current target; the exponent-field form keeps such a target correct.
        x = Vector512.Max(x, floor);
        var m = Vector512.Round(x);
        var bits = Vector512.ShiftLeft(Vector512.ConvertToInt32(m) + Vector512.Create(127), 23);
        return Vector512.ConditionalSelect(tiny, Vector512<float>.Zero, Exp2Polynomial.Evaluate<Simd512, Vector512<float>>(x - m) * bits.AsSingle());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> KeepInRange(Vector512<float> score, Vector512<float> index, Vector512<float> start, Vector512<float> end) =>
        Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(index, start) & Vector512.LessThan(index, end), score, NegativeInfinity);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> NegativeInfinityToZero(Vector512<float> value) =>
        Vector512.ConditionalSelect(Vector512.Equals(value, NegativeInfinity), Vector512<float>.Zero, value);

    // Halving first: the JIT's Vector512.Sum reduces each 128-bit lane separately (about 20 instructions, not 7).
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector512<float> value) => Simd256.Sum(value.GetLower() + value.GetUpper());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Sum4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d)
    {
        if (!Avx512F.IsSupported) return Vector128.Create(Sum(a), Sum(b), Sum(c), Sum(d));
        // Per 128-bit lane: (a0+a2, b0+b2, a1+a3, b1+b3), then 64-bit interleaves give (a, b, c, d) partial sums.
        var ab = Avx512F.UnpackLow(a, b) + Avx512F.UnpackHigh(a, b);
        var cd = Avx512F.UnpackLow(c, d) + Avx512F.UnpackHigh(c, d);
        var abcd = Avx512F.UnpackLow(ab.AsDouble(), cd.AsDouble()).AsSingle() + Avx512F.UnpackHigh(ab.AsDouble(), cd.AsDouble()).AsSingle();
        var half = abcd.GetLower() + abcd.GetUpper();
        return half.GetLower() + half.GetUpper();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MaxAcross(Vector512<float> value) => Simd256.MaxAcross(Simd256.Max(value.GetLower(), value.GetUpper()));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Max4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d)
    {
        if (!Avx512F.IsSupported) return Vector128.Create(MaxAcross(a), MaxAcross(b), MaxAcross(c), MaxAcross(d));
        var ab = Vector512.Max(Avx512F.UnpackLow(a, b), Avx512F.UnpackHigh(a, b));
        var cd = Vector512.Max(Avx512F.UnpackLow(c, d), Avx512F.UnpackHigh(c, d));
        var abcd = Vector512.Max(Avx512F.UnpackLow(ab.AsDouble(), cd.AsDouble()).AsSingle(), Avx512F.UnpackHigh(ab.AsDouble(), cd.AsDouble()).AsSingle());
        var half = Vector256.Max(abcd.GetLower(), abcd.GetUpper());
        return Vector128.Max(half.GetLower(), half.GetUpper());
    }

    /// <summary>
    /// Binary16 bits (sign-extended to 32) to floats, exactly, with integer arithmetic and one subtraction of normal
    /// floats: no float operation ever sees a denormal. (A multiply by 2^112 of the bits read as a float, the textbook
    /// rebias, takes a microcode assist of about 150 cycles on Intel cores for every vector holding a subnormal half,
    /// whose bits are a denormal float: binary16 kernels ran 1.4-2.8x slower on inputs of magnitude 0.001,
    /// bench/results/cpu.md.)
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> HalfToSingle(Vector512<int> h)
    {
        // h is sign-extended, so after the shift bit 31 holds the sign, and the exponent and mantissa sit where a
        // float's go (bits 27..13).
        var bits = Vector512.ShiftLeft(h, 13).AsUInt32();
        var magnitude = bits & Vector512.Create(HalfBits.Magnitude);
        var exponent = magnitude & Vector512.Create(HalfBits.Exponent);
        // Normal halves: the exponent rebiased by 112; exponent 31 (infinity, NaN) needs the all-ones float exponent.
        var value = magnitude + Vector512.Create(HalfBits.Rebias);
        value = Vector512.ConditionalSelect(Vector512.Equals(exponent, Vector512.Create(HalfBits.Exponent)), value | Vector512.Create(HalfBits.FloatExponent), value);
        // Zero and subnormal halves (exponent 0, mantissa m): m 2^-24 = (2^-14 + m 2^-24) - 2^-14, an exact difference of normal floats.
        var small = ((magnitude + Vector512.Create(HalfBits.SmallBias)).AsSingle() - Vector512.Create(HalfBits.SmallOffset)).AsUInt32();
        value = Vector512.ConditionalSelect(Vector512.Equals(exponent, Vector512<uint>.Zero), small, value);
        return (value | (bits & Vector512.Create(HalfBits.Sign))).AsSingle();
    }
}
