// Vector tanh and log2-sigmoid for the score options of the CPU kernels (flash and decode), written once over ISimd.
using System.Runtime.CompilerServices;

namespace NativeAttention.Cpu;

/// <summary>
/// Transcendental functions the score options need, built from <see cref="ISimd{T}"/> operations so that every
/// vector width (and the scalar path) shares one definition.
/// </summary>
internal static class CpuSimdMath
{
    // tanh(x) ~ x P(x^2) / Q(x^2) on [-TanhClamp, TanhClamp], beyond which float32 tanh is +-1: the rational
    // approximation of Eigen's fast float tanh, a few ulp from the exact value and free of cancellation near 0.
    private const float TanhClamp = 7.90531110763549805f;
    private const float A1 = 4.89352455891786e-03f, A3 = 6.37261928875436e-04f, A5 = 1.48572235717979e-05f;
    private const float A7 = 5.12229709037114e-08f, A9 = -8.60467152213735e-11f, A11 = 2.00018790482477e-13f;
    private const float A13 = -2.76076847742355e-16f;
    private const float B0 = 4.89352518554385e-03f, B2 = 2.26843463243900e-03f, B4 = 1.18534705686654e-04f, B6 = 1.19825839466702e-06f;

    /// <summary>tanh(x) for finite or infinite x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Tanh<TSimd, T>(T x) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        x = TSimd.Max(TSimd.Min(x, TSimd.Broadcast(TanhClamp)), TSimd.Broadcast(-TanhClamp));
        T z = TSimd.Multiply(x, x);
        T p = TSimd.MultiplyAdd(TSimd.Broadcast(A13), z, TSimd.Broadcast(A11));
        p = TSimd.MultiplyAdd(p, z, TSimd.Broadcast(A9));
        p = TSimd.MultiplyAdd(p, z, TSimd.Broadcast(A7));
        p = TSimd.MultiplyAdd(p, z, TSimd.Broadcast(A5));
        p = TSimd.MultiplyAdd(p, z, TSimd.Broadcast(A3));
        p = TSimd.MultiplyAdd(p, z, TSimd.Broadcast(A1));
        T q = TSimd.MultiplyAdd(TSimd.Broadcast(B6), z, TSimd.Broadcast(B4));
        q = TSimd.MultiplyAdd(q, z, TSimd.Broadcast(B2));
        q = TSimd.MultiplyAdd(q, z, TSimd.Broadcast(B0));
        return TSimd.Divide(TSimd.Multiply(x, p), q);
    }

    /// <summary>
    /// <c>log2 sigmoid(y ln 2)</c> for y in log2 units: <c>min(y, 0) - log2(1 + 2^-|y|)</c>, which neither overflows
    /// nor cancels, and gives -inf for y = -inf. <c>log2(1 + t)</c> for t in [0, 1] is <c>2 log2(e) atanh(u)</c> with
    /// <c>u = t / (2 + t)</c> in [0, 1/3], whose odd series to u^15 is within 2e-9 relative.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Log2Sigmoid<TSimd, T>(T y) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        T negativeMagnitude = TSimd.Min(y, TSimd.Subtract(TSimd.Zero, y));
        T t = TSimd.Exp2NonPositive(negativeMagnitude);
        T u = TSimd.Divide(t, TSimd.Add(t, TSimd.Broadcast(2f)));
        T z = TSimd.Multiply(u, u);
        T p = TSimd.MultiplyAdd(TSimd.Broadcast(1f / 15), z, TSimd.Broadcast(1f / 13));
        p = TSimd.MultiplyAdd(p, z, TSimd.Broadcast(1f / 11));
        p = TSimd.MultiplyAdd(p, z, TSimd.Broadcast(1f / 9));
        p = TSimd.MultiplyAdd(p, z, TSimd.Broadcast(1f / 7));
        p = TSimd.MultiplyAdd(p, z, TSimd.Broadcast(1f / 5));
        p = TSimd.MultiplyAdd(p, z, TSimd.Broadcast(1f / 3));
        p = TSimd.MultiplyAdd(p, z, TSimd.Broadcast(1f));
        T log2OnePlusT = TSimd.Multiply(TSimd.Multiply(u, p), TSimd.Broadcast(2 * MathConstants.Log2E));
        return TSimd.Subtract(TSimd.Min(y, TSimd.Zero), log2OnePlusT);
    }
}
