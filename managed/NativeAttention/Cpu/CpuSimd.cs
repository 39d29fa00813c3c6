// One vector width as a struct of static operations, so the flash driver is written once and the JIT
// specialises it for Vector512, Vector256, Vector128 and plain float (the scalar path).
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace NativeAttention.Cpu;

/// <summary>
/// The operations the CPU flash kernel needs on a vector <typeparamref name="T"/> of floats. Implementations are
/// structs, so every call is resolved and inlined when the JIT specialises the generic kernel.
/// </summary>
internal unsafe interface ISimd<T> where T : unmanaged
{
    /// <summary>Floats per vector.</summary>
    static abstract int Count { get; }
    /// <summary>Vector registers the JIT can allocate: 32 with EVEX encoding (AVX-512) or on Arm64, else 16.</summary>
    static abstract int Registers { get; }
    static abstract T Zero { get; }
    static abstract T NegativeInfinity { get; }
    static abstract T Load(float* source);
    static abstract void Store(float* destination, T value);
    static abstract T Broadcast(float value);
    /// <summary>
    /// <c>a * b + c</c>, fused where the hardware has FMA; elsewhere unfused, because the BCL's fused fallback is a
    /// correctly rounded software emulation about a hundred times slower.
    /// </summary>
    static abstract T MultiplyAdd(T a, T b, T c);
    static abstract T Add(T a, T b);
    static abstract T Subtract(T a, T b);
    static abstract T Multiply(T a, T b);
    static abstract T Max(T a, T b);
    static abstract T Min(T a, T b);
    static abstract T Divide(T a, T b);
    /// <summary>2^x for x &lt;= 0, including -inf (gives exactly 0); results below 2^-126 flush to 0.</summary>
    static abstract T Exp2NonPositive(T x);
    /// <summary>Keeps <paramref name="score"/> where <c>start &lt;= index &lt; end</c>, else -inf.</summary>
    static abstract T KeepInRange(T score, T index, T start, T end);
    /// <summary>Replaces -inf by 0, so that <c>-inf - m</c> never becomes <c>-inf - -inf</c>.</summary>
    static abstract T NegativeInfinityToZero(T value);
    /// <summary>The sum of the lanes.</summary>
    static abstract float Sum(T value);
}

/// <summary>Coefficients of 2^f on [-0.5, 0.5]: a least-squares fit on Chebyshev nodes, relative error 2e-9 in exact arithmetic.</summary>
internal static class Exp2Polynomial
{
    public const float C1 = 0.6931472056004429f;
    public const float C2 = 0.24022646608766848f;
    public const float C3 = 0.05550328997626462f;
    public const float C4 = 0.00961851952997639f;
    public const float C5 = 0.0013399860328277954f;
    public const float C6 = 0.000153375778123297f;

    /// <summary>Below this every result flushes to zero; clamping here keeps -inf out of the range reduction.</summary>
    public const float Floor = -127f;
}

internal unsafe struct Simd512 : ISimd<Vector512<float>>
{
    public static int Count => Vector512<float>.Count;
    public static int Registers => 32;
    public static Vector512<float> Zero => Vector512<float>.Zero;
    public static Vector512<float> NegativeInfinity => Vector512.Create(float.NegativeInfinity);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Load(float* source) => Vector512.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* destination, Vector512<float> value) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Broadcast(float value) => Vector512.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> MultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Subtract(Vector512<float> a, Vector512<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Multiply(Vector512<float> a, Vector512<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Max(Vector512<float> a, Vector512<float> b) => Vector512.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Min(Vector512<float> a, Vector512<float> b) => Vector512.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Divide(Vector512<float> a, Vector512<float> b) => a / b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp2NonPositive(Vector512<float> x)
    {
        // x = n + f with |f| <= 1/2; 2^f by polynomial, 2^n by vscalefps, which underflows to exactly 0 below -150,
        // so the clamp only has to keep -inf (which would make f = NaN) out of the range reduction.
        x = Vector512.Max(x, Vector512.Create(Exp2Polynomial.Floor - 100f));
        var n = Vector512.Round(x);
        var f = x - n;
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(Exp2Polynomial.C6), f, Vector512.Create(Exp2Polynomial.C5));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(Exp2Polynomial.C4));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(Exp2Polynomial.C3));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(Exp2Polynomial.C2));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(Exp2Polynomial.C1));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512<float>.One);
        if (Avx512F.IsSupported) return Avx512F.Scale(p, n);
        // Vector512 is accelerated without AVX-512F on no current target; the exponent-field form keeps such a target correct.
        var bits = Vector512.ShiftLeft(Vector512.ConvertToInt32(Vector512.Max(n, Vector512.Create(Exp2Polynomial.Floor))) + Vector512.Create(127), 23);
        return p * bits.AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> KeepInRange(Vector512<float> score, Vector512<float> index, Vector512<float> start, Vector512<float> end) =>
        Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(index, start) & Vector512.LessThan(index, end), score, NegativeInfinity);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> NegativeInfinityToZero(Vector512<float> value) =>
        Vector512.ConditionalSelect(Vector512.Equals(value, NegativeInfinity), Vector512<float>.Zero, value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector512<float> value) => Vector512.Sum(value);
}

internal unsafe struct Simd256 : ISimd<Vector256<float>>
{
    public static int Count => Vector256<float>.Count;
    public static int Registers => Avx512F.VL.IsSupported ? 32 : 16;
    public static Vector256<float> Zero => Vector256<float>.Zero;
    public static Vector256<float> NegativeInfinity => Vector256.Create(float.NegativeInfinity);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Load(float* source) => Vector256.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* destination, Vector256<float> value) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Broadcast(float value) => Vector256.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> MultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) =>
        Fma.IsSupported ? Vector256.FusedMultiplyAdd(a, b, c) : a * b + c;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Subtract(Vector256<float> a, Vector256<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Multiply(Vector256<float> a, Vector256<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Max(Vector256<float> a, Vector256<float> b) => Vector256.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Min(Vector256<float> a, Vector256<float> b) => Vector256.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Divide(Vector256<float> a, Vector256<float> b) => a / b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp2NonPositive(Vector256<float> x)
    {
        // As Simd512, with 2^n built in the exponent field when vscalefps is missing: n >= -127 gives 0 at -127.
        x = Vector256.Max(x, Vector256.Create(Exp2Polynomial.Floor));
        var n = Vector256.Round(x);
        var f = x - n;
        var p = MultiplyAdd(Vector256.Create(Exp2Polynomial.C6), f, Vector256.Create(Exp2Polynomial.C5));
        p = MultiplyAdd(p, f, Vector256.Create(Exp2Polynomial.C4));
        p = MultiplyAdd(p, f, Vector256.Create(Exp2Polynomial.C3));
        p = MultiplyAdd(p, f, Vector256.Create(Exp2Polynomial.C2));
        p = MultiplyAdd(p, f, Vector256.Create(Exp2Polynomial.C1));
        p = MultiplyAdd(p, f, Vector256<float>.One);
        var bits = Vector256.ShiftLeft(Vector256.ConvertToInt32(n) + Vector256.Create(127), 23);
        return p * bits.AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> KeepInRange(Vector256<float> score, Vector256<float> index, Vector256<float> start, Vector256<float> end) =>
        Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(index, start) & Vector256.LessThan(index, end), score, NegativeInfinity);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> NegativeInfinityToZero(Vector256<float> value) =>
        Vector256.ConditionalSelect(Vector256.Equals(value, NegativeInfinity), Vector256<float>.Zero, value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector256<float> value) => Vector256.Sum(value);
}

internal unsafe struct Simd128 : ISimd<Vector128<float>>
{
    public static int Count => Vector128<float>.Count;
    public static int Registers => Avx512F.VL.IsSupported || AdvSimd.Arm64.IsSupported ? 32 : 16;
    public static Vector128<float> Zero => Vector128<float>.Zero;
    public static Vector128<float> NegativeInfinity => Vector128.Create(float.NegativeInfinity);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Load(float* source) => Vector128.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* destination, Vector128<float> value) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Broadcast(float value) => Vector128.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> MultiplyAdd(Vector128<float> a, Vector128<float> b, Vector128<float> c) =>
        Fma.IsSupported || AdvSimd.IsSupported ? Vector128.FusedMultiplyAdd(a, b, c) : a * b + c;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Subtract(Vector128<float> a, Vector128<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Multiply(Vector128<float> a, Vector128<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Max(Vector128<float> a, Vector128<float> b) => Vector128.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Min(Vector128<float> a, Vector128<float> b) => Vector128.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Divide(Vector128<float> a, Vector128<float> b) => a / b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Exp2NonPositive(Vector128<float> x)
    {
        x = Vector128.Max(x, Vector128.Create(Exp2Polynomial.Floor));
        var n = Vector128.Round(x);
        var f = x - n;
        var p = MultiplyAdd(Vector128.Create(Exp2Polynomial.C6), f, Vector128.Create(Exp2Polynomial.C5));
        p = MultiplyAdd(p, f, Vector128.Create(Exp2Polynomial.C4));
        p = MultiplyAdd(p, f, Vector128.Create(Exp2Polynomial.C3));
        p = MultiplyAdd(p, f, Vector128.Create(Exp2Polynomial.C2));
        p = MultiplyAdd(p, f, Vector128.Create(Exp2Polynomial.C1));
        p = MultiplyAdd(p, f, Vector128<float>.One);
        var bits = Vector128.ShiftLeft(Vector128.ConvertToInt32(n) + Vector128.Create(127), 23);
        return p * bits.AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> KeepInRange(Vector128<float> score, Vector128<float> index, Vector128<float> start, Vector128<float> end) =>
        Vector128.ConditionalSelect(Vector128.GreaterThanOrEqual(index, start) & Vector128.LessThan(index, end), score, NegativeInfinity);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> NegativeInfinityToZero(Vector128<float> value) =>
        Vector128.ConditionalSelect(Vector128.Equals(value, NegativeInfinity), Vector128<float>.Zero, value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector128<float> value) => Vector128.Sum(value);
}

/// <summary>The scalar path: a "vector" of one float, for hardware the JIT does not vectorise.</summary>
internal unsafe struct SimdScalar : ISimd<float>
{
    public static int Count => 1;
    public static int Registers => 16;
    public static float Zero => 0f;
    public static float NegativeInfinity => float.NegativeInfinity;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Load(float* source) => *source;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* destination, float value) => *destination = value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Broadcast(float value) => value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MultiplyAdd(float a, float b, float c) =>
        Fma.IsSupported || AdvSimd.IsSupported ? MathF.FusedMultiplyAdd(a, b, c) : a * b + c;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Add(float a, float b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Subtract(float a, float b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Multiply(float a, float b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Max(float a, float b) => a > b ? a : b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Min(float a, float b) => a < b ? a : b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Divide(float a, float b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Exp2NonPositive(float x) => x <= Exp2Polynomial.Floor ? 0f : float.Exp2(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float KeepInRange(float score, float index, float start, float end) =>
        index >= start && index < end ? score : float.NegativeInfinity;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float NegativeInfinityToZero(float value) => value == float.NegativeInfinity ? 0f : value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(float value) => value;
}
