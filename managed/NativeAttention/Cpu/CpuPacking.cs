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
                if (stride == 1) WidenBFloat16((ushort*)source, destination, count);
                else for (int i = 0; i < count; i++) destination[i] = BitConverter.UInt32BitsToSingle((uint)((ushort*)source)[i * stride] << 16);
                break;
            default:
                if (stride == 1) WidenHalf((ushort*)source, destination, count);
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
                for (; i < count; i++) ((Half*)destination)[i * stride] = (Half)(source[i] * factor);
                break;
        }
    }

    /// <summary>bfloat16 is the top half of a float32: widening is a 16-bit shift.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WidenBFloat16(ushort* source, float* destination, int count)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i + 32 <= count; i += 32)
            {
                var raw = Vector512.Load(source + i);
                Vector512.ShiftLeft(Vector512.WidenLower(raw), 16).AsSingle().Store(destination + i);
                Vector512.ShiftLeft(Vector512.WidenUpper(raw), 16).AsSingle().Store(destination + i + 16);
            }
        }
        if (Vector128.IsHardwareAccelerated)
        {
            for (; i + 8 <= count; i += 8)
            {
                var raw = Vector128.Load(source + i);
                Vector128.ShiftLeft(Vector128.WidenLower(raw), 16).AsSingle().Store(destination + i);
                Vector128.ShiftLeft(Vector128.WidenUpper(raw), 16).AsSingle().Store(destination + i + 4);
            }
        }
        for (; i < count; i++) destination[i] = BitConverter.UInt32BitsToSingle((uint)source[i] << 16);
    }

    /// <summary>Exact binary16 to binary32 widening, 32 or 8 at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WidenHalf(ushort* source, float* destination, int count)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i + 32 <= count; i += 32)
            {
                var raw = Vector512.Load(source + i);
                WidenHalf(Vector512.WidenLower(raw)).Store(destination + i);
                WidenHalf(Vector512.WidenUpper(raw)).Store(destination + i + 16);
            }
        }
        if (Vector128.IsHardwareAccelerated)
        {
            for (; i + 8 <= count; i += 8)
            {
                var raw = Vector128.Load(source + i);
                WidenHalf(Vector128.WidenLower(raw)).Store(destination + i);
                WidenHalf(Vector128.WidenUpper(raw)).Store(destination + i + 4);
            }
        }
        for (; i < count; i++) destination[i] = (float)((Half*)source)[i];
    }

    /// <summary>
    /// Moves exponent and mantissa into float position and multiplies by 2^112 to rebias, which also turns
    /// binary16 subnormals into the right normal floats; infinities and NaNs get the all-ones exponent back.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> WidenHalf(Vector128<uint> h)
    {
        var magnitude = Vector128.ShiftLeft(h & Vector128.Create(0x7FFFu), 13);
        var sign = Vector128.ShiftLeft(h & Vector128.Create(0x8000u), 16);
        var value = magnitude.AsSingle() * Vector128.Create(MathConstants.TwoTo112);
        var special = Vector128.Equals(h & Vector128.Create(0x7C00u), Vector128.Create(0x7C00u));
        var bits = Vector128.ConditionalSelect(special, magnitude | Vector128.Create(0x7F800000u), value.AsUInt32());
        return (bits | sign).AsSingle();
    }

    /// <summary>The 512-bit form of <see cref="WidenHalf(Vector128{uint})"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> WidenHalf(Vector512<uint> h)
    {
        var magnitude = Vector512.ShiftLeft(h & Vector512.Create(0x7FFFu), 13);
        var sign = Vector512.ShiftLeft(h & Vector512.Create(0x8000u), 16);
        var value = magnitude.AsSingle() * Vector512.Create(MathConstants.TwoTo112);
        var special = Vector512.Equals(h & Vector512.Create(0x7C00u), Vector512.Create(0x7C00u));
        var bits = Vector512.ConditionalSelect(special, magnitude | Vector512.Create(0x7F800000u), value.AsUInt32());
        return (bits | sign).AsSingle();
    }
}
