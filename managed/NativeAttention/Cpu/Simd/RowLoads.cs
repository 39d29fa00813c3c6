// Vector loads of rows in any storage format, widened to float32 in registers.
using System.Runtime.CompilerServices;

namespace NativeAttention.Cpu;

/// <summary>Loads of rows in any <see cref="IRowFormat"/> as float vectors of any <see cref="ISimd{T}"/> width.</summary>
internal static unsafe class RowLoads
{
    /// <summary>Elements <c>index .. index + Count - 1</c> of a contiguous row stored as <typeparamref name="TFormat"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Load<TSimd, T, TFormat>(byte* row, int index) where TSimd : struct, ISimd<T> where T : unmanaged where TFormat : struct, IRowFormat
    {
        if (TFormat.Type == ElementType.Float32) return TSimd.Load((float*)row + index);
        if (typeof(TFormat) == typeof(ScaledFloat16Rows)) return FiniteHalf.LoadScaledDown<TSimd, T>((ushort*)row + index);
        if (TFormat.Type == ElementType.BFloat16) return TSimd.LoadBFloat16((ushort*)row + index);
        return TSimd.LoadHalf((ushort*)row + index);
    }

    /// <summary>The address of element <paramref name="index"/> of a row stored as <typeparamref name="TFormat"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* Element<TFormat>(byte* row, int index) where TFormat : struct, IRowFormat => row + Bytes<TFormat>(index);

    /// <summary>The bytes of <paramref name="count"/> elements of a row stored as <typeparamref name="TFormat"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static nint Bytes<TFormat>(int count) where TFormat : struct, IRowFormat =>
        (nint)count * (TFormat.Type == ElementType.Float32 ? sizeof(float) : sizeof(ushort));
}
