// Binary16 widening without the infinity/NaN fix-up, for rows checked beforehand to hold only finite values.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NativeAttention.Cpu;

/// <summary>
/// Rows of binary16 elements checked to hold no infinity or NaN, read as their values times 2^-112
/// (<see cref="FiniteHalf.LoadScaledDown{TSimd, T}"/>): the kernel scales the other factor of each product by 2^112.
/// </summary>
internal struct ScaledFloat16Rows : IRowFormat
{
    public static ElementType Type => ElementType.Float16;
}

/// <summary>
/// Exact binary16 widening for finite values, and the check that lets a kernel use it. .NET 10 exposes no
/// <c>vcvtph2ps</c> (F16C): <see cref="ISimd{T}.LoadHalf"/> widens by sign extension, a shift, masks, an integer rebias
/// of the exponent, a fix-up mapping exponent 31 to infinity/NaN and one for zero and subnormal halves (about a dozen
/// instructions; Simd512.HalfToSingle). For a key/value block that holds no exponent-31 value (checked with two 16-bit
/// instructions per 32 elements) a kernel can skip all of that but the shift and the mask, and scale the other factor of
/// every product by 2^112 instead: three instructions per vector, with bit-identical results. Subnormal halves read so
/// are denormal floats, which cost every FMA that reads them a microcode assist on Intel cores: decode counts them
/// (<see cref="CountSubnormals"/>) and leaves these reads where they are frequent.
/// </summary>
internal static unsafe class FiniteHalf
{
    /// <summary>
    /// Widens <c>TSimd.Count</c> finite binary16 values to their values times 2^-112, exactly: the half's exponent and
    /// mantissa where a float's go, and its sign (normals become float32 normals, subnormals float32 subnormals; a value
    /// with exponent 31 comes out finite and wrong, so callers check with <see cref="AllFinite"/>).
    /// A product of such a value with <c>x * 2^112</c> equals the product of the value with x exactly, so with the
    /// other factor scaled (exactly, when it stays finite) a dot product or FMA gives the same bits as with
    /// <see cref="ISimd{T}.LoadHalf"/>, in three instructions per vector and none on the multiply pipes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T LoadScaledDown<TSimd, T>(ushort* source) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        if (typeof(T) == typeof(Vector512<float>))
        {
            var h = Vector512.WidenLower(Vector256.Load((short*)source).ToVector512Unsafe());
            return Unsafe.BitCast<Vector512<float>, T>((Vector512.ShiftLeft(h, 13).AsUInt32() & Vector512.Create(0x8FFFE000u)).AsSingle());
        }
        if (typeof(T) == typeof(Vector256<float>))
        {
            var h = Vector256.WidenLower(Vector128.Load((short*)source).ToVector256Unsafe());
            return Unsafe.BitCast<Vector256<float>, T>((Vector256.ShiftLeft(h, 13).AsUInt32() & Vector256.Create(0x8FFFE000u)).AsSingle());
        }
        if (typeof(T) == typeof(Vector128<float>))
        {
            var h = Vector128.WidenLower(Vector128.CreateScalarUnsafe(*(ulong*)source).AsInt16());
            return Unsafe.BitCast<Vector128<float>, T>((Vector128.ShiftLeft(h, 13).AsUInt32() & Vector128.Create(0x8FFFE000u)).AsSingle());
        }
        if (typeof(T) == typeof(float))
            return Unsafe.BitCast<float, T>(BitConverter.UInt32BitsToSingle((uint)((short)*source << 13) & 0x8FFFE000u));
        throw new NotSupportedException(typeof(T).Name);
    }

    /// <summary>
    /// The running maximum of <see cref="AllFinite"/> with 32 more binary16 values at <paramref name="values"/> folded in:
    /// for kernels that check rows as they read them (one shift and one maximum per 32 values).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<ushort> Fold(Vector512<ushort> top, ushort* values) => Vector512.Max(top, Vector512.ShiftLeft(Vector512.Load(values), 1));

    /// <summary>True when a running maximum of <see cref="Fold"/> saw no exponent-31 value (0 when nothing was folded).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Finite(Vector512<ushort> top) => !Vector512.GreaterThanOrEqualAny(top, Vector512.Create((ushort)0xF800));

    /// <summary>
    /// True when none of <paramref name="length"/> binary16 values of each of <paramref name="count"/> rows has exponent
    /// 31 (infinity or NaN). Each value is doubled (dropping the sign) and the unsigned maximum kept: exponent 31 is
    /// exactly a doubled value of 0xF800 or more.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool AllFinite(byte** rows, int count, int length)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            var top = Vector512<ushort>.Zero;
            for (int r = 0; r < count; r++)
            {
                ushort* row = (ushort*)rows[r];
                int i = 0;
                for (; i + 32 <= length; i += 32) top = Fold(top, row + i);
                for (; i < length; i++) top = Vector512.Max(top, Vector512.CreateScalar((ushort)(row[i] << 1)));
            }
            return Finite(top);
        }
        if (Vector256.IsHardwareAccelerated)
        {
            var top = Vector256<ushort>.Zero;
            for (int r = 0; r < count; r++)
            {
                ushort* row = (ushort*)rows[r];
                int i = 0;
                for (; i + 16 <= length; i += 16) top = Vector256.Max(top, Vector256.ShiftLeft(Vector256.Load(row + i), 1));
                for (; i < length; i++) top = Vector256.Max(top, Vector256.CreateScalar((ushort)(row[i] << 1)));
            }
            return !Vector256.GreaterThanOrEqualAny(top, Vector256.Create((ushort)0xF800));
        }
        int scalarTop = 0;
        for (int r = 0; r < count; r++)
        {
            ushort* row = (ushort*)rows[r];
            for (int i = 0; i < length; i++) scalarTop = Math.Max(scalarTop, (row[i] << 1) & 0xFFFF);
        }
        return scalarTop < 0xF800;
    }

    /// <summary>
    /// How many of the first <paramref name="length"/> binary16 values of each of <paramref name="count"/> rows are
    /// subnormal (exponent 0, mantissa not 0). Read scaled down (<see cref="LoadScaledDown{TSimd, T}"/>), a subnormal
    /// half is a denormal float, and on Intel cores every FMA or multiply with a denormal operand takes a microcode
    /// assist of about 150 cycles: decode counts them in a sample of each block to leave the scaled reads when they
    /// are frequent (<c>CpuDecode</c>).
    /// </summary>
    public static int CountSubnormals(byte** rows, int count, int length)
    {
        // Doubled, a subnormal's bits are 2..0x7FE: one less is below 0x7FF, where zero's (0xFFFF) is not. Lane counts
        // stay far below 2^16 (one per 32 values of a row).
        int total = 0, vectorLength = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            vectorLength = length & ~31;
            var counts = Vector512<ushort>.Zero;
            for (int r = 0; r < count; r++)
                for (ushort* row = (ushort*)rows[r], end = row + vectorLength; row < end; row += 32)
                    counts -= Vector512.LessThan(Vector512.ShiftLeft(Vector512.Load(row), 1) - Vector512<ushort>.One, Vector512.Create((ushort)0x7FF));
            total = Vector512.Sum(counts);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            vectorLength = length & ~15;
            var counts = Vector256<ushort>.Zero;
            for (int r = 0; r < count; r++)
                for (ushort* row = (ushort*)rows[r], end = row + vectorLength; row < end; row += 16)
                    counts -= Vector256.LessThan(Vector256.ShiftLeft(Vector256.Load(row), 1) - Vector256<ushort>.One, Vector256.Create((ushort)0x7FF));
            total = Vector256.Sum(counts);
        }
        for (int r = 0; r < count; r++)
        {
            ushort* row = (ushort*)rows[r];
            for (int i = vectorLength; i < length; i++) total += (row[i] & 0x7C00) == 0 && (row[i] & 0x3FF) != 0 ? 1 : 0;
        }
        return total;
    }
}
