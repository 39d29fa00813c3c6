// Bit constants of the binary16 to binary32 widening (Simd512.HalfToSingle and its narrower forms).
namespace NativeAttention.Cpu;

/// <summary>
/// Constants for widening binary16 values whose bits sit shifted left by 13 in a 32-bit lane (sign at bit 28 and above,
/// exponent at 27..23, mantissa at 22..13, where a binary32's exponent and mantissa go).
/// </summary>
internal static class HalfBits
{
    /// <summary>The binary32 sign bit.</summary>
    public const uint Sign = 0x80000000u;

    /// <summary>The shifted binary16 exponent and mantissa.</summary>
    public const uint Magnitude = 0x0FFFE000u;

    /// <summary>The shifted binary16 exponent (all ones: infinity or NaN).</summary>
    public const uint Exponent = 0x0F800000u;

    /// <summary>The binary32 exponent field, all ones.</summary>
    public const uint FloatExponent = 0x7F800000u;

    /// <summary>127 - 15 added to the exponent field: a normal binary16's exponent rebiased to binary32's.</summary>
    public const uint Rebias = 112u << 23;

    /// <summary>
    /// The exponent field of 2^-14 (113): a zero or subnormal binary16 with mantissa m becomes the float 2^-14 + m 2^-24,
    /// from which <see cref="SmallOffset"/> is subtracted exactly.
    /// </summary>
    public const uint SmallBias = 113u << 23;

    /// <summary>2^-14, the smallest normal binary16.</summary>
    public const float SmallOffset = 6.103515625e-05f;
}
