// bfloat16 storage type: the BCL has none. Conversions round to nearest even and keep NaN a NaN.
using System.Runtime.CompilerServices;

namespace NativeAttention;

/// <summary>A 16-bit brain floating-point value: the top half of an IEEE binary32.</summary>
public readonly struct BFloat16 : IEquatable<BFloat16>, IComparable<BFloat16>
{
    /// <summary>The raw bit pattern.</summary>
    public ushort RawValue { get; }

    private BFloat16(ushort raw) => RawValue = raw;

    /// <summary>Reinterprets a raw bit pattern as a bfloat16.</summary>
    public static BFloat16 FromRawValue(ushort raw) => new(raw);

    /// <summary>Rounds a float to the nearest bfloat16 (ties to even); NaN stays NaN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static explicit operator BFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if ((bits & 0x7FFF_FFFFu) > 0x7F80_0000u)
            return new BFloat16((ushort)((bits >> 16) | 0x0040u)); // quiet NaN, sign kept
        uint rounding = 0x7FFFu + ((bits >> 16) & 1u);
        return new BFloat16((ushort)((bits + rounding) >> 16));
    }

    /// <summary>Widens exactly to float.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static explicit operator float(BFloat16 value) => BitConverter.UInt32BitsToSingle((uint)value.RawValue << 16);

    /// <summary>Widens exactly to double.</summary>
    public static explicit operator double(BFloat16 value) => (float)value;

    /// <summary>Rounds a double to bfloat16 (through float).</summary>
    public static explicit operator BFloat16(double value) => (BFloat16)(float)value;

    /// <inheritdoc/>
    public bool Equals(BFloat16 other) => RawValue == other.RawValue;
    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is BFloat16 other && Equals(other);
    /// <inheritdoc/>
    public override int GetHashCode() => RawValue;
    /// <inheritdoc/>
    public int CompareTo(BFloat16 other) => ((float)this).CompareTo((float)other);
    /// <inheritdoc/>
    public override string ToString() => ((float)this).ToString(System.Globalization.CultureInfo.InvariantCulture);
    /// <summary>Bitwise equality.</summary>
    public static bool operator ==(BFloat16 left, BFloat16 right) => left.Equals(right);
    /// <summary>Bitwise inequality.</summary>
    public static bool operator !=(BFloat16 left, BFloat16 right) => !left.Equals(right);
}
