// float32 -> binary16 rounding (to nearest, ties to even) in integer vector arithmetic, for the kernels' binary16 outputs.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NativeAttention.Cpu;

/// <summary>
/// Rounds float32 values to binary16 as <c>(Half)value</c> does (to nearest, ties to even; overflow to infinity; NaN
/// stays NaN with its sign and the top bits of its payload, made quiet), without calling into the runtime: .NET 10
/// exposes no <c>vcvtps2ph</c>, and the runtime's scalar conversion, called 4096 times per decode step from the
/// split merge on the calling thread, measured 20-150 ns per value there (1.5-4x the attention itself on binary16
/// GQA steps at Nk = 4096, bench/results/cpu.md, wip-dec10), against a few ns elsewhere: not understood, avoided.
/// </summary>
/// <remarks>
/// With <c>a = |x|</c> as bits: normal results (<c>2^-14 &lt;= a &lt; 65520</c>) rebias the exponent and round the 13 dropped
/// bits by adding <c>0xFFF</c> plus the lowest kept bit; subnormal results add 0.5f, whose float32 spacing (2^-24) is
/// the binary16 subnormal step, so the float add rounds exactly and leaves the subnormal's bits above 0.5f's;
/// <c>65520 &lt;= a</c> (the tie above the largest finite value rounds up) becomes infinity.
/// </remarks>
internal static unsafe class HalfNarrowing
{
    private const uint AbsMask = 0x7FFF_FFFFu, Infinity = 0x7F80_0000u, MinNormal = 0x3880_0000u, Overflow = 0x477F_F000u;
    private const uint Rebias = 0xC800_0FFFu; // -(112 << 23) (exponent bias 127 -> 15) plus the rounding 0xFFF
    private const uint Half = 0x3F00_0000u;   // 0.5f

    /// <summary>The binary16 bits of <paramref name="value"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Narrow(float value)
    {
        uint x = BitConverter.SingleToUInt32Bits(value), a = x & AbsMask, sign = (x >> 16) & 0x8000u;
        uint bits = a > Infinity ? 0x7E00u | ((a >> 13) & 0x3FFu)
            : a >= Overflow ? 0x7C00u
            : a < MinNormal ? BitConverter.SingleToUInt32Bits(BitConverter.UInt32BitsToSingle(a) + 0.5f) - Half
            : (a + Rebias + ((a >> 13) & 1u)) >> 13;
        return (ushort)(sign | bits);
    }

    /// <summary>
    /// Writes the binary16 bits of <c>source[i] * factor</c> for <paramref name="count"/> contiguous values: 16 at a time
    /// with 256-bit vectors (a row is written once per call, so wider ones would gain little), the rest one at a time
    /// (the same bits either way).
    /// </summary>
    public static void NarrowScaled(ushort* destination, float* source, float factor, int count)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (var f = Vector256.Create(factor); i + 16 <= count; i += 16)
                Vector256.Narrow(Narrow(Vector256.Load(source + i) * f), Narrow(Vector256.Load(source + i + 8) * f)).Store(destination + i);
        for (; i < count; i++) destination[i] = Narrow(source[i] * factor);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> Narrow(Vector256<float> value)
    {
        var x = value.AsUInt32();
        var a = x & Vector256.Create(AbsMask);
        var sign = Vector256.ShiftRightLogical(x, 16) & Vector256.Create(0x8000u);
        var normal = Vector256.ShiftRightLogical(a + Vector256.Create(Rebias) + (Vector256.ShiftRightLogical(a, 13) & Vector256<uint>.One), 13);
        var subnormal = (a.AsSingle() + Vector256.Create(0.5f)).AsUInt32() - Vector256.Create(Half);
        var nan = Vector256.Create(0x7E00u) | (Vector256.ShiftRightLogical(a, 13) & Vector256.Create(0x3FFu));
        var bits = Vector256.ConditionalSelect(Vector256.LessThan(a, Vector256.Create(MinNormal)), subnormal, normal);
        bits = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(a, Vector256.Create(Overflow)), Vector256.Create(0x7C00u), bits);
        bits = Vector256.ConditionalSelect(Vector256.GreaterThan(a, Vector256.Create(Infinity)), nan, bits);
        return sign | bits;
    }
}
