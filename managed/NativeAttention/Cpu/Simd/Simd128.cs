// ISimd over Vector128<float> (SSE, NEON).
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace NativeAttention.Cpu;

/// <summary>The 128-bit width: 4 floats per vector, 32 registers with AVX-512VL or on Arm64, else 16.</summary>
internal unsafe struct Simd128 : ISimd<Vector128<float>>
{
    public static int Count => Vector128<float>.Count;
    public static int Registers => Avx512F.VL.IsSupported || AdvSimd.Arm64.IsSupported ? 32 : 16;
    public static Vector128<float> Zero => Vector128<float>.Zero;
    public static Vector128<float> NegativeInfinity => Vector128.Create(float.NegativeInfinity);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Load(float* source) => Vector128.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> LoadBFloat16(ushort* source) =>
        Vector128.ShiftLeft(Vector128.WidenLower(Vector128.CreateScalarUnsafe(*(ulong*)source).AsUInt16()), 16).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> LoadHalf(ushort* source) =>
        HalfToSingle(Vector128.WidenLower(Vector128.CreateScalarUnsafe(*(ulong*)source).AsInt16()));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* destination, Vector128<float> value) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Broadcast(float value) => Vector128.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> MultiplyAdd(Vector128<float> a, Vector128<float> b, Vector128<float> c) =>
        Fma.IsSupported || AdvSimd.IsSupported ? Vector128.FusedMultiplyAdd(a, b, c) : a * b + c;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Subtract(Vector128<float> a, Vector128<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Multiply(Vector128<float> a, Vector128<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Divide(Vector128<float> a, Vector128<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Max(Vector128<float> a, Vector128<float> b) => Vector128.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Min(Vector128<float> a, Vector128<float> b) => Vector128.Min(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Exp2NonPositive(Vector128<float> x)
    {
        // As Simd512 (results below 2^-126 set to 0 by a mask, never computed: a denormal product takes a microcode
        // assist on Intel cores), with 2^n built in the exponent field: n >= -126 gives a normal 2^n, and 2^f >= 1 at n = -126.
        var floor = Vector128.Create(Exp2Polynomial.Floor);
        var tiny = Vector128.LessThan(x, floor);
        x = Vector128.Max(x, floor);
        var n = Vector128.Round(x);
        var p = Exp2Polynomial.Evaluate<Simd128, Vector128<float>>(x - n);
        var bits = Vector128.ShiftLeft(Vector128.ConvertToInt32(n) + Vector128.Create(127), 23);
        return Vector128.ConditionalSelect(tiny, Vector128<float>.Zero, p * bits.AsSingle());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> KeepInRange(Vector128<float> score, Vector128<float> index, Vector128<float> start, Vector128<float> end) =>
        Vector128.ConditionalSelect(Vector128.GreaterThanOrEqual(index, start) & Vector128.LessThan(index, end), score, NegativeInfinity);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> NegativeInfinityToZero(Vector128<float> value) =>
        Vector128.ConditionalSelect(Vector128.Equals(value, NegativeInfinity), Vector128<float>.Zero, value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector128<float> value)
    {
        var pairs = value + Vector128.Shuffle(value, Vector128.Create(2, 3, 0, 1));
        return (pairs + Vector128.Shuffle(pairs, Vector128.Create(1, 0, 3, 2))).ToScalar();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Sum4(Vector128<float> a, Vector128<float> b, Vector128<float> c, Vector128<float> d)
    {
        if (!Sse2.IsSupported) return Vector128.Create(Sum(a), Sum(b), Sum(c), Sum(d));
        var ab = Sse.UnpackLow(a, b) + Sse.UnpackHigh(a, b);
        var cd = Sse.UnpackLow(c, d) + Sse.UnpackHigh(c, d);
        return Sse2.UnpackLow(ab.AsDouble(), cd.AsDouble()).AsSingle() + Sse2.UnpackHigh(ab.AsDouble(), cd.AsDouble()).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MaxAcross(Vector128<float> value)
    {
        var pairs = Vector128.Max(value, Vector128.Shuffle(value, Vector128.Create(2, 3, 0, 1)));
        return Vector128.Max(pairs, Vector128.Shuffle(pairs, Vector128.Create(1, 0, 3, 2))).ToScalar();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Max4(Vector128<float> a, Vector128<float> b, Vector128<float> c, Vector128<float> d)
    {
        if (!Sse2.IsSupported) return Vector128.Create(MaxAcross(a), MaxAcross(b), MaxAcross(c), MaxAcross(d));
        var ab = Vector128.Max(Sse.UnpackLow(a, b), Sse.UnpackHigh(a, b));
        var cd = Vector128.Max(Sse.UnpackLow(c, d), Sse.UnpackHigh(c, d));
        return Vector128.Max(Sse2.UnpackLow(ab.AsDouble(), cd.AsDouble()).AsSingle(), Sse2.UnpackHigh(ab.AsDouble(), cd.AsDouble()).AsSingle());
    }

    /// <summary>The 128-bit form of <see cref="Simd512"/>'s binary16 widening (no float operation on a denormal).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> HalfToSingle(Vector128<int> h)
    {
        var bits = Vector128.ShiftLeft(h, 13).AsUInt32();
        var magnitude = bits & Vector128.Create(HalfBits.Magnitude);
        var exponent = magnitude & Vector128.Create(HalfBits.Exponent);
        var value = magnitude + Vector128.Create(HalfBits.Rebias);
        value = Vector128.ConditionalSelect(Vector128.Equals(exponent, Vector128.Create(HalfBits.Exponent)), value | Vector128.Create(HalfBits.FloatExponent), value);
        var small = ((magnitude + Vector128.Create(HalfBits.SmallBias)).AsSingle() - Vector128.Create(HalfBits.SmallOffset)).AsUInt32();
        value = Vector128.ConditionalSelect(Vector128.Equals(exponent, Vector128<uint>.Zero), small, value);
        return (value | (bits & Vector128.Create(HalfBits.Sign))).AsSingle();
    }
}
