// The polynomial behind every width's Exp2NonPositive, so that all of them round alike.
using System.Runtime.CompilerServices;

namespace NativeAttention.Cpu;

/// <summary>Coefficients of 2^f on [-0.5, 0.5]: a least-squares fit on Chebyshev nodes, relative error 2e-9 in exact arithmetic.</summary>
internal static class Exp2Polynomial
{
    public const float C1 = 0.6931472056004429f;
    public const float C2 = 0.24022646608766848f;
    public const float C3 = 0.05550328997626462f;
    public const float C4 = 0.00961851952997639f;
    public const float C5 = 0.0013399860328277954f;
    public const float C6 = 0.000153375778123297f;

    /// <summary>
    /// Below this every result is 0 (results are never denormal: a tiny result costs a microcode assist on Intel cores);
    /// clamping here also keeps -inf out of the range reduction. 2^-126 is the smallest normal float.
    /// </summary>
    public const float Floor = -126f;

    /// <summary>2^f for |f| &lt;= 1/2 (the fractional part after range reduction), by Horner's rule in fused multiply-adds.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Evaluate<TSimd, T>(T f) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        T p = TSimd.MultiplyAdd(TSimd.Broadcast(C6), f, TSimd.Broadcast(C5));
        p = TSimd.MultiplyAdd(p, f, TSimd.Broadcast(C4));
        p = TSimd.MultiplyAdd(p, f, TSimd.Broadcast(C3));
        p = TSimd.MultiplyAdd(p, f, TSimd.Broadcast(C2));
        p = TSimd.MultiplyAdd(p, f, TSimd.Broadcast(C1));
        return TSimd.MultiplyAdd(p, f, TSimd.Broadcast(1f));
    }
}
