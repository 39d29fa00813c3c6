// Moving tensor rows between strided float/Half/BFloat16 storage and contiguous float32 scratch.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NativeAttention.Cpu;

/// <summary>
/// Row conversions for the CPU kernels. Contiguous rows (unit stride) take vector paths; any other stride takes
/// a scalar path, so every layout a <see cref="TensorView"/> can describe works. The row methods are compiled fully
/// optimised at once: they are called per key row, and the vector code of an unoptimised tier costs more than the
/// attention itself in short runs.
/// </summary>
internal static unsafe class CpuPacking
{
    /// <summary>
    /// The float32 rows <c>[first, first + rows)</c> of a key or value tile starting at <paramref name="head"/> (rows
    /// <paramref name="rowStride"/> elements apart, features <paramref name="featureStride"/> apart): read in place when
    /// <paramref name="direct"/> (float32 with unit feature stride) and the tile has no padding rows
    /// (<paramref name="padded"/> == <paramref name="rows"/>); otherwise converted into <paramref name="scratch"/>
    /// (<paramref name="scratchStride"/> floats per row) with the padding rows up to <paramref name="padded"/> zeroed.
    /// Returns the tile and, in <paramref name="stride"/>, its row stride in floats.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float* TileRows(byte* head, long rowStride, long featureStride, ElementType type, bool direct, int first, int rows, int padded,
        int count, float* scratch, int scratchStride, out long stride)
    {
        int size = type.SizeOf();
        if (direct && padded == rows)
        {
            stride = rowStride;
            return (float*)(head + size * first * rowStride);
        }
        for (int j = 0; j < rows; j++)
            ReadRow(scratch + (long)j * scratchStride, head + size * (first + j) * rowStride, featureStride, count, type);
        new Span<float>(scratch + (long)rows * scratchStride, (padded - rows) * scratchStride).Clear();
        stride = scratchStride;
        return scratch;
    }

    /// <summary>Reads <paramref name="count"/> elements spaced <paramref name="stride"/> apart into contiguous floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ReadRow(float* destination, byte* source, long stride, int count, ElementType type)
    {
        switch (type)
        {
            case ElementType.Float32:
                if (stride == 1) Buffer.MemoryCopy(source, destination, count * 4L, count * 4L);
                else for (int i = 0; i < count; i++) destination[i] = ((float*)source)[i * stride];
                break;
            case ElementType.BFloat16:
                if (stride == 1) Widen<BFloat16Rows>(source, destination, count);
                else for (int i = 0; i < count; i++) destination[i] = BitConverter.UInt32BitsToSingle((uint)((ushort*)source)[i * stride] << 16);
                break;
            default:
                if (stride == 1) Widen<Float16Rows>(source, destination, count);
                else for (int i = 0; i < count; i++) destination[i] = (float)((Half*)source)[i * stride];
                break;
        }
    }

    /// <summary>Writes <c>source[i] * factor</c> to <paramref name="count"/> strided elements, rounding to the element type.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void WriteRow(byte* destination, long stride, float* source, float factor, int count, ElementType type)
    {
        int i = 0;
        switch (type)
        {
            case ElementType.Float32:
                float* d32 = (float*)destination;
                if (stride == 1 && Vector128.IsHardwareAccelerated)
                    for (var f = Vector128.Create(factor); i + 4 <= count; i += 4) (Vector128.Load(source + i) * f).Store(d32 + i);
                for (; i < count; i++) d32[i * stride] = source[i] * factor;
                break;
            case ElementType.BFloat16:
                for (; i < count; i++) ((BFloat16*)destination)[i * stride] = (BFloat16)(source[i] * factor);
                break;
            default:
                // Binary16 through the kernels' own rounding (HalfNarrowing), not the runtime's (Half) conversion.
                if (stride == 1) HalfNarrowing.NarrowScaled((ushort*)destination, source, factor, count);
                else for (; i < count; i++) ((ushort*)destination)[i * stride] = HalfNarrowing.Narrow(source[i] * factor);
                break;
        }
    }

    /// <summary>
    /// Widens a contiguous 16-bit row to float32 with the kernels' own exact loads (<see cref="ISimd{T}.LoadHalf"/>,
    /// <see cref="ISimd{T}.LoadBFloat16"/>): the widest accelerated vectors first, then narrower ones, then one at a time.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Widen<TFormat>(byte* source, float* destination, int count) where TFormat : struct, IRowFormat
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated) i = Widen<Simd512, Vector512<float>, TFormat>(source, destination, i, count);
        if (Vector256.IsHardwareAccelerated) i = Widen<Simd256, Vector256<float>, TFormat>(source, destination, i, count);
        if (Vector128.IsHardwareAccelerated) i = Widen<Simd128, Vector128<float>, TFormat>(source, destination, i, count);
        Widen<SimdScalar, float, TFormat>(source, destination, i, count);
    }

    /// <summary>Widens elements <paramref name="i"/>.. of the row a whole vector at a time; returns where it stopped.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Widen<TSimd, T, TFormat>(byte* source, float* destination, int i, int count)
        where TSimd : struct, ISimd<T> where T : unmanaged where TFormat : struct, IRowFormat
    {
        for (; i + TSimd.Count <= count; i += TSimd.Count) TSimd.Store(destination + i, RowLoads.Load<TSimd, T, TFormat>(source, i));
        return i;
    }
}
