// Element types a tensor may store; arithmetic is always float32 (kernels) or float64 (references).
namespace NativeAttention;

/// <summary>The storage type of a tensor's elements. Kernels accumulate in float32 whatever the storage type.</summary>
public enum ElementType
{
    /// <summary>IEEE 754 binary32 (<see cref="float"/>).</summary>
    Float32,
    /// <summary>IEEE 754 binary16 (<see cref="System.Half"/>).</summary>
    Float16,
    /// <summary>bfloat16 (<see cref="NativeAttention.BFloat16"/>): float32's exponent with a 7-bit mantissa.</summary>
    BFloat16,
}

/// <summary>Facts about <see cref="ElementType"/> values.</summary>
public static class ElementTypes
{
    /// <summary>The size of one element in bytes.</summary>
    public static int SizeOf(this ElementType type) => type switch
    {
        ElementType.Float32 => 4,
        ElementType.Float16 => 2,
        ElementType.BFloat16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown element type."),
    };

    /// <summary>Unit roundoff (half the distance from 1 to the next representable value).</summary>
    public static double UnitRoundoff(this ElementType type) => type switch
    {
        ElementType.Float32 => Math.Pow(2, -24),
        ElementType.Float16 => Math.Pow(2, -11),
        ElementType.BFloat16 => Math.Pow(2, -8),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown element type."),
    };

    /// <summary>The element type that stores values of <typeparamref name="T"/>.</summary>
    /// <exception cref="ArgumentException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static ElementType Of<T>() where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return ElementType.Float32;
        if (typeof(T) == typeof(Half)) return ElementType.Float16;
        if (typeof(T) == typeof(BFloat16)) return ElementType.BFloat16;
        throw new ArgumentException($"Element type {typeof(T).Name} is not supported; expected float, Half or BFloat16.", nameof(T));
    }

    /// <summary>Rounds <paramref name="value"/> to the nearest value <paramref name="type"/> can store.</summary>
    public static double RoundTo(this ElementType type, double value) => type switch
    {
        ElementType.Float32 => (float)value,
        ElementType.Float16 => (double)(Half)(float)value,
        ElementType.BFloat16 => (float)(BFloat16)(float)value,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown element type."),
    };
}
