// ISimd over Vector256<float> (AVX2, or AVX-512VL registers).
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NativeAttention.Cpu;

/// <summary>The 256-bit width: 8 floats per vector, 32 registers with AVX-512VL, else 16.</summary>
internal unsafe struct Simd256 : ISimd<Vector256<float>>
{
    public static int Count => Vector256<float>.Count;
    public static int Registers => Avx512F.VL.IsSupported ? 32 : 16;
    public static Vector256<float> Zero => Vector256<float>.Zero;
    public static Vector256<float> NegativeInfinity => Vector256.Create(float.NegativeInfinity);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Load(float* source) => Vector256.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> LoadBFloat16(ushort* source) =>
        Vector256.ShiftLeft(Vector256.WidenLower(Vector128.Load(source).ToVector256Unsafe()), 16).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> LoadHalf(ushort* source) =>
        HalfToSingle(Vector256.WidenLower(Vector128.Load((short*)source).ToVector256Unsafe()));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* destination, Vector256<float> value) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Broadcast(float value) => Vector256.Create(value);
    // Fused where FMA exists, else a * b + c, as ISimd asks. Written as `Fma.IsSupported ? fused : unfused`, the same
    // code made the JIT hoist fewer constants out of the decode kernel's loops (ScoreQuad, binary16).
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> MultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) =>
        Vector256.MultiplyAddEstimate(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Subtract(Vector256<float> a, Vector256<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Multiply(Vector256<float> a, Vector256<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Divide(Vector256<float> a, Vector256<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Max(Vector256<float> a, Vector256<float> b) => Vector256.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Min(Vector256<float> a, Vector256<float> b) => Vector256.Min(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp2NonPositive(Vector256<float> x)
    {
        // As Simd512 (results below 2^-126 set to 0 by a mask, never computed: a denormal product takes a microcode
        // assist on Intel cores), with 2^n built in the exponent field: n >= -126 gives a normal 2^n, and 2^f >= 1 at n = -126.
        var floor = Vector256.Create(Exp2Polynomial.Floor);
        var tiny = Vector256.LessThan(x, floor);
        x = Vector256.Max(x, floor);
        var n = Vector256.Round(x);
        var p = Exp2Polynomial.Evaluate<Simd256, Vector256<float>>(x - n);
        var bits = Vector256.ShiftLeft(Vector256.ConvertToInt32(n) + Vector256.Create(127), 23);
        return Vector256.ConditionalSelect(tiny, Vector256<float>.Zero, p * bits.AsSingle());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> KeepInRange(Vector256<float> score, Vector256<float> index, Vector256<float> start, Vector256<float> end) =>
        Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(index, start) & Vector256.LessThan(index, end), score, NegativeInfinity);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> NegativeInfinityToZero(Vector256<float> value) =>
        Vector256.ConditionalSelect(Vector256.Equals(value, NegativeInfinity), Vector256<float>.Zero, value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector256<float> value) => Simd128.Sum(value.GetLower() + value.GetUpper());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Sum4(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d)
    {
        if (!Avx.IsSupported) return Vector128.Create(Sum(a), Sum(b), Sum(c), Sum(d));
        var ab = Avx.UnpackLow(a, b) + Avx.UnpackHigh(a, b);
        var cd = Avx.UnpackLow(c, d) + Avx.UnpackHigh(c, d);
        var abcd = Avx.UnpackLow(ab.AsDouble(), cd.AsDouble()).AsSingle() + Avx.UnpackHigh(ab.AsDouble(), cd.AsDouble()).AsSingle();
        return abcd.GetLower() + abcd.GetUpper();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MaxAcross(Vector256<float> value) => Simd128.MaxAcross(Simd128.Max(value.GetLower(), value.GetUpper()));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Max4(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d)
    {
        if (!Avx.IsSupported) return Vector128.Create(MaxAcross(a), MaxAcross(b), MaxAcross(c), MaxAcross(d));
        var ab = Vector256.Max(Avx.UnpackLow(a, b), Avx.UnpackHigh(a, b));
        var cd = Vector256.Max(Avx.UnpackLow(c, d), Avx.UnpackHigh(c, d));
        var abcd = Vector256.Max(Avx.UnpackLow(ab.AsDouble(), cd.AsDouble()).AsSingle(), Avx.UnpackHigh(ab.AsDouble(), cd.AsDouble()).AsSingle());
        return Vector128.Max(abcd.GetLower(), abcd.GetUpper());
    }

    /// <summary>The 256-bit form of <see cref="Simd512"/>'s binary16 widening (no float operation on a denormal).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> HalfToSingle(Vector256<int> h)
    {
        var bits = Vector256.ShiftLeft(h, 13).AsUInt32();
        var magnitude = bits & Vector256.Create(HalfBits.Magnitude);
        var exponent = magnitude & Vector256.Create(HalfBits.Exponent);
        var value = magnitude + Vector256.Create(HalfBits.Rebias);
        value = Vector256.ConditionalSelect(Vector256.Equals(exponent, Vector256.Create(HalfBits.Exponent)), value | Vector256.Create(HalfBits.FloatExponent), value);
        var small = ((magnitude + Vector256.Create(HalfBits.SmallBias)).AsSingle() - Vector256.Create(HalfBits.SmallOffset)).AsUInt32();
        value = Vector256.ConditionalSelect(Vector256.Equals(exponent, Vector256<uint>.Zero), small, value);
        return (value | (bits & Vector256.Create(HalfBits.Sign))).AsSingle();
    }
}
