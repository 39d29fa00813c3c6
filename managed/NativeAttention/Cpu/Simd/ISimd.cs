// One vector width as a struct of static operations, so each CPU kernel is written once and the JIT specialises it for
// Vector512, Vector256, Vector128 and plain float (the scalar path).
using System.Runtime.Intrinsics;

namespace NativeAttention.Cpu;

/// <summary>
/// The operations the CPU kernels (flash and KV-cache decode) need on a vector <typeparamref name="T"/> of floats.
/// Implementations (<see cref="Simd512"/>, <see cref="Simd256"/>, <see cref="Simd128"/>, <see cref="SimdScalar"/>) are
/// structs, so every call is resolved and inlined when the JIT specialises a generic kernel.
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
    /// <summary>Widens <see cref="Count"/> bfloat16 values (exact: a 16-bit shift).</summary>
    static abstract T LoadBFloat16(ushort* source);
    /// <summary>Widens <see cref="Count"/> binary16 values exactly, subnormals, infinities and NaN included.</summary>
    static abstract T LoadHalf(ushort* source);
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
    static abstract T Divide(T a, T b);
    /// <summary>The lane-wise maximum (NaN propagates, as with <see cref="MathF.Max(float, float)"/>).</summary>
    static abstract T Max(T a, T b);
    /// <summary>The lane-wise minimum (NaN propagates, as with <see cref="MathF.Min(float, float)"/>).</summary>
    static abstract T Min(T a, T b);
    /// <summary>2^x for x &lt;= 0, including -inf (gives exactly 0); results below 2^-126 flush to 0.</summary>
    static abstract T Exp2NonPositive(T x);
    /// <summary>Keeps <paramref name="score"/> where <c>start &lt;= index &lt; end</c>, else -inf.</summary>
    static abstract T KeepInRange(T score, T index, T start, T end);
    /// <summary>Replaces -inf by 0, so that <c>-inf - m</c> never becomes <c>-inf - -inf</c>.</summary>
    static abstract T NegativeInfinityToZero(T value);
    /// <summary>The sum of the lanes.</summary>
    static abstract float Sum(T value);
    /// <summary>
    /// The lane sums of four vectors, <c>(Sum(a), Sum(b), Sum(c), Sum(d))</c>, reduced together (a transposing add
    /// tree: about three instructions per sum instead of seven).
    /// </summary>
    static abstract Vector128<float> Sum4(T a, T b, T c, T d);
    /// <summary>The largest lane (NaN propagates).</summary>
    static abstract float MaxAcross(T value);
    /// <summary>The largest lanes of four vectors, <c>(MaxAcross(a), ..., MaxAcross(d))</c>, by the tree of <see cref="Sum4"/>.</summary>
    static abstract Vector128<float> Max4(T a, T b, T c, T d);
}
