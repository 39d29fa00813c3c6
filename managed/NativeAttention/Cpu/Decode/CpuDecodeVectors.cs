// The vector operations of the CPU decode kernel, one struct per width, so the kernel is written once.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NativeAttention.Cpu;

/// <summary>
/// What the decode kernel does with a vector <typeparamref name="T"/> of floats. Unlike the flash kernel's
/// <see cref="ISimd{T}"/> it needs a horizontal sum: decoding forms each score as one dot product.
/// </summary>
internal unsafe interface IDecodeVector<T> where T : unmanaged
{
    /// <summary>Floats per vector.</summary>
    static abstract int Count { get; }
    static abstract T Zero { get; }
    static abstract T Load(float* source);
    static abstract void Store(float* destination, T value);
    static abstract T Broadcast(float value);
    /// <summary><c>a * b + c</c>, fused where the hardware can.</summary>
    static abstract T MultiplyAdd(T a, T b, T c);
    static abstract T Multiply(T a, T b);
    static abstract T Add(T a, T b);
    /// <summary>The sum of the lanes.</summary>
    static abstract float Sum(T value);
    /// <summary>
    /// The lane sums of four vectors, <c>(Sum(a), Sum(b), Sum(c), Sum(d))</c>, reduced together (a transposing add
    /// tree: about three instructions per sum instead of seven).
    /// </summary>
    static abstract Vector128<float> Sum4(T a, T b, T c, T d);
    /// <summary>The lane-wise maximum (NaN propagates, as with <see cref="MathF.Max(float, float)"/>).</summary>
    static abstract T Max(T a, T b);
    /// <summary>The largest lane.</summary>
    static abstract float MaxAcross(T value);
    /// <summary>The largest lanes of four vectors, <c>(MaxAcross(a), ..., MaxAcross(d))</c>, by the tree of <see cref="Sum4"/>.</summary>
    static abstract Vector128<float> Max4(T a, T b, T c, T d);
    /// <summary>2^x for x &lt;= 0, exactly 0 at -inf (the flash kernel's polynomial).</summary>
    static abstract T Exp2NonPositive(T x);
    /// <summary><c>log2 sigmoid(x ln 2)</c> for x in log2 units (the flash kernel's <see cref="CpuSimdMath.Log2Sigmoid{TSimd, T}"/>).</summary>
    static abstract T Log2Sigmoid(T x);
    /// <summary>Widens one vector's worth of bfloat16 values (exact: a 16-bit shift).</summary>
    static abstract T LoadBFloat16(ushort* source);
    /// <summary>Widens one vector's worth of binary16 values exactly, subnormals, infinities and NaN included.</summary>
    static abstract T LoadHalf(ushort* source);
}

/// <summary>The storage type of the K/V rows a decode pass reads, as a type so the JIT specialises the loads.</summary>
internal interface IRowFormat
{
    static abstract ElementType Type { get; }
}

internal struct Float32Rows : IRowFormat { public static ElementType Type => ElementType.Float32; }
internal struct Float16Rows : IRowFormat { public static ElementType Type => ElementType.Float16; }
internal struct BFloat16Rows : IRowFormat { public static ElementType Type => ElementType.BFloat16; }

/// <summary>Loads of rows in any <see cref="IRowFormat"/> as float vectors.</summary>
internal static unsafe class DecodeLoads
{
    /// <summary>Elements <c>index .. index + W - 1</c> of a contiguous row stored as <typeparamref name="TFormat"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Load<TVec, T, TFormat>(byte* row, int index) where TVec : struct, IDecodeVector<T> where T : unmanaged where TFormat : struct, IRowFormat
    {
        if (TFormat.Type == ElementType.Float32) return TVec.Load((float*)row + index);
        if (TFormat.Type == ElementType.BFloat16) return TVec.LoadBFloat16((ushort*)row + index);
        return TVec.LoadHalf((ushort*)row + index);
    }

    /// <summary>The address of element <paramref name="index"/> of a row stored as <typeparamref name="TFormat"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* Element<TFormat>(byte* row, int index) where TFormat : struct, IRowFormat =>
        row + (nint)index * (TFormat.Type == ElementType.Float32 ? sizeof(float) : sizeof(ushort));

    /// <summary>Binary16 bits (sign-extended to 32) to floats: rebias by a multiply by 2^112, which also normalises subnormals.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> HalfToSingle(Vector512<int> h)
    {
        // h is sign-extended, so after the shift bits 31..28 all hold the sign: keep bit 31, clear 30..28, and the
        // exponent and mantissa sit where a float's go. The multiply keeps the sign.
        var bits = Vector512.ShiftLeft(h, 13).AsUInt32() & Vector512.Create(0x8FFFE000u);
        var value = bits.AsSingle() * Vector512.Create(5.192296858534828e33f); // 2^112
        // Exponent 31 (infinity, NaN) needs the all-ones float exponent.
        var special = Vector512.Equals(bits & Vector512.Create(0x0F800000u), Vector512.Create(0x0F800000u)) & Vector512.Create(0x7F800000u);
        return (value.AsUInt32() | special).AsSingle();
    }

    /// <inheritdoc cref="HalfToSingle(Vector512{int})"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> HalfToSingle(Vector256<int> h)
    {
        // h is sign-extended, so after the shift bits 31..28 all hold the sign: keep bit 31, clear 30..28, and the
        // exponent and mantissa sit where a float's go. The multiply keeps the sign.
        var bits = Vector256.ShiftLeft(h, 13).AsUInt32() & Vector256.Create(0x8FFFE000u);
        var value = bits.AsSingle() * Vector256.Create(5.192296858534828e33f); // 2^112
        // Exponent 31 (infinity, NaN) needs the all-ones float exponent.
        var special = Vector256.Equals(bits & Vector256.Create(0x0F800000u), Vector256.Create(0x0F800000u)) & Vector256.Create(0x7F800000u);
        return (value.AsUInt32() | special).AsSingle();
    }

    /// <inheritdoc cref="HalfToSingle(Vector512{int})"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> HalfToSingle(Vector128<int> h)
    {
        // h is sign-extended, so after the shift bits 31..28 all hold the sign: keep bit 31, clear 30..28, and the
        // exponent and mantissa sit where a float's go. The multiply keeps the sign.
        var bits = Vector128.ShiftLeft(h, 13).AsUInt32() & Vector128.Create(0x8FFFE000u);
        var value = bits.AsSingle() * Vector128.Create(5.192296858534828e33f); // 2^112
        // Exponent 31 (infinity, NaN) needs the all-ones float exponent.
        var special = Vector128.Equals(bits & Vector128.Create(0x0F800000u), Vector128.Create(0x0F800000u)) & Vector128.Create(0x7F800000u);
        return (value.AsUInt32() | special).AsSingle();
    }
}

internal unsafe struct Decode512 : IDecodeVector<Vector512<float>>
{
    public static int Count => Vector512<float>.Count;
    public static Vector512<float> Zero => Vector512<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Load(float* source) => Vector512.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* destination, Vector512<float> value) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Broadcast(float value) => Vector512.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> MultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Multiply(Vector512<float> a, Vector512<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
    // Halving first: the JIT's Vector512.Sum reduces each 128-bit lane separately (about 20 instructions, not 7).
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector512<float> value) => Decode256.Sum(value.GetLower() + value.GetUpper());
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Max(Vector512<float> a, Vector512<float> b) => Vector512.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MaxAcross(Vector512<float> value) => Decode256.MaxAcross(Decode256.Max(value.GetLower(), value.GetUpper()));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Sum4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d)
    {
        if (!Avx512F.IsSupported) return Vector128.Create(Sum(a), Sum(b), Sum(c), Sum(d));
        // Per 128-bit lane: (a0+a2, b0+b2, a1+a3, b1+b3), then 64-bit interleaves give (a, b, c, d) partial sums.
        var ab = Avx512F.UnpackLow(a, b) + Avx512F.UnpackHigh(a, b);
        var cd = Avx512F.UnpackLow(c, d) + Avx512F.UnpackHigh(c, d);
        var abcd = Avx512F.UnpackLow(ab.AsDouble(), cd.AsDouble()).AsSingle() + Avx512F.UnpackHigh(ab.AsDouble(), cd.AsDouble()).AsSingle();
        var half = abcd.GetLower() + abcd.GetUpper();
        return half.GetLower() + half.GetUpper();
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Max4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d)
    {
        if (!Avx512F.IsSupported) return Vector128.Create(MaxAcross(a), MaxAcross(b), MaxAcross(c), MaxAcross(d));
        var ab = Vector512.Max(Avx512F.UnpackLow(a, b), Avx512F.UnpackHigh(a, b));
        var cd = Vector512.Max(Avx512F.UnpackLow(c, d), Avx512F.UnpackHigh(c, d));
        var abcd = Vector512.Max(Avx512F.UnpackLow(ab.AsDouble(), cd.AsDouble()).AsSingle(), Avx512F.UnpackHigh(ab.AsDouble(), cd.AsDouble()).AsSingle());
        var half = Vector256.Max(abcd.GetLower(), abcd.GetUpper());
        return Vector128.Max(half.GetLower(), half.GetUpper());
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Exp2NonPositive(Vector512<float> x) => Simd512.Exp2NonPositive(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Log2Sigmoid(Vector512<float> x) => CpuSimdMath.Log2Sigmoid<Simd512, Vector512<float>>(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> LoadBFloat16(ushort* source) =>
        Vector512.ShiftLeft(Vector512.WidenLower(Vector256.Load(source).ToVector512Unsafe()), 16).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> LoadHalf(ushort* source) =>
        DecodeLoads.HalfToSingle(Vector512.WidenLower(Vector256.Load((short*)source).ToVector512Unsafe()));
}

internal unsafe struct Decode256 : IDecodeVector<Vector256<float>>
{
    public static int Count => Vector256<float>.Count;
    public static Vector256<float> Zero => Vector256<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Load(float* source) => Vector256.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* destination, Vector256<float> value) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Broadcast(float value) => Vector256.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> MultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Multiply(Vector256<float> a, Vector256<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector256<float> value) => Decode128.Sum(value.GetLower() + value.GetUpper());
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Max(Vector256<float> a, Vector256<float> b) => Vector256.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MaxAcross(Vector256<float> value) => Decode128.MaxAcross(Decode128.Max(value.GetLower(), value.GetUpper()));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Sum4(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d)
    {
        if (!Avx.IsSupported) return Vector128.Create(Sum(a), Sum(b), Sum(c), Sum(d));
        var ab = Avx.UnpackLow(a, b) + Avx.UnpackHigh(a, b);
        var cd = Avx.UnpackLow(c, d) + Avx.UnpackHigh(c, d);
        var abcd = Avx.UnpackLow(ab.AsDouble(), cd.AsDouble()).AsSingle() + Avx.UnpackHigh(ab.AsDouble(), cd.AsDouble()).AsSingle();
        return abcd.GetLower() + abcd.GetUpper();
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Max4(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d)
    {
        if (!Avx.IsSupported) return Vector128.Create(MaxAcross(a), MaxAcross(b), MaxAcross(c), MaxAcross(d));
        var ab = Vector256.Max(Avx.UnpackLow(a, b), Avx.UnpackHigh(a, b));
        var cd = Vector256.Max(Avx.UnpackLow(c, d), Avx.UnpackHigh(c, d));
        var abcd = Vector256.Max(Avx.UnpackLow(ab.AsDouble(), cd.AsDouble()).AsSingle(), Avx.UnpackHigh(ab.AsDouble(), cd.AsDouble()).AsSingle());
        return Vector128.Max(abcd.GetLower(), abcd.GetUpper());
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Exp2NonPositive(Vector256<float> x) => Simd256.Exp2NonPositive(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Log2Sigmoid(Vector256<float> x) => CpuSimdMath.Log2Sigmoid<Simd256, Vector256<float>>(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> LoadBFloat16(ushort* source) =>
        Vector256.ShiftLeft(Vector256.WidenLower(Vector128.Load(source).ToVector256Unsafe()), 16).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> LoadHalf(ushort* source) =>
        DecodeLoads.HalfToSingle(Vector256.WidenLower(Vector128.Load((short*)source).ToVector256Unsafe()));
}

internal unsafe struct Decode128 : IDecodeVector<Vector128<float>>
{
    public static int Count => Vector128<float>.Count;
    public static Vector128<float> Zero => Vector128<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Load(float* source) => Vector128.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* destination, Vector128<float> value) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Broadcast(float value) => Vector128.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> MultiplyAdd(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Multiply(Vector128<float> a, Vector128<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector128<float> value)
    {
        var pairs = value + Vector128.Shuffle(value, Vector128.Create(2, 3, 0, 1));
        return (pairs + Vector128.Shuffle(pairs, Vector128.Create(1, 0, 3, 2))).ToScalar();
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Max(Vector128<float> a, Vector128<float> b) => Vector128.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MaxAcross(Vector128<float> value)
    {
        var pairs = Vector128.Max(value, Vector128.Shuffle(value, Vector128.Create(2, 3, 0, 1)));
        return Vector128.Max(pairs, Vector128.Shuffle(pairs, Vector128.Create(1, 0, 3, 2))).ToScalar();
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Sum4(Vector128<float> a, Vector128<float> b, Vector128<float> c, Vector128<float> d)
    {
        if (!Sse2.IsSupported) return Vector128.Create(Sum(a), Sum(b), Sum(c), Sum(d));
        var ab = Sse.UnpackLow(a, b) + Sse.UnpackHigh(a, b);
        var cd = Sse.UnpackLow(c, d) + Sse.UnpackHigh(c, d);
        return Sse2.UnpackLow(ab.AsDouble(), cd.AsDouble()).AsSingle() + Sse2.UnpackHigh(ab.AsDouble(), cd.AsDouble()).AsSingle();
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Max4(Vector128<float> a, Vector128<float> b, Vector128<float> c, Vector128<float> d)
    {
        if (!Sse2.IsSupported) return Vector128.Create(MaxAcross(a), MaxAcross(b), MaxAcross(c), MaxAcross(d));
        var ab = Vector128.Max(Sse.UnpackLow(a, b), Sse.UnpackHigh(a, b));
        var cd = Vector128.Max(Sse.UnpackLow(c, d), Sse.UnpackHigh(c, d));
        return Vector128.Max(Sse2.UnpackLow(ab.AsDouble(), cd.AsDouble()).AsSingle(), Sse2.UnpackHigh(ab.AsDouble(), cd.AsDouble()).AsSingle());
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Exp2NonPositive(Vector128<float> x) => Simd128.Exp2NonPositive(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Log2Sigmoid(Vector128<float> x) => CpuSimdMath.Log2Sigmoid<Simd128, Vector128<float>>(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> LoadBFloat16(ushort* source) =>
        Vector128.ShiftLeft(Vector128.WidenLower(Vector128.CreateScalarUnsafe(*(ulong*)source).AsUInt16()), 16).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> LoadHalf(ushort* source) =>
        DecodeLoads.HalfToSingle(Vector128.WidenLower(Vector128.CreateScalarUnsafe(*(ulong*)source).AsInt16()));
}

/// <summary>A "vector" of one float, for hardware the JIT does not vectorise.</summary>
internal unsafe struct DecodeScalar : IDecodeVector<float>
{
    public static int Count => 1;
    public static float Zero => 0f;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Load(float* source) => *source;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* destination, float value) => *destination = value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Broadcast(float value) => value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MultiplyAdd(float a, float b, float c) => MathF.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Multiply(float a, float b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Add(float a, float b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(float value) => value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Max(float a, float b) => MathF.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MaxAcross(float value) => value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Max4(float a, float b, float c, float d) => Vector128.Create(a, b, c, d);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Sum4(float a, float b, float c, float d) => Vector128.Create(a, b, c, d);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Exp2NonPositive(float x) => SimdScalar.Exp2NonPositive(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Log2Sigmoid(float x) => CpuSimdMath.Log2Sigmoid<SimdScalar, float>(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float LoadBFloat16(ushort* source) => BitConverter.UInt32BitsToSingle((uint)*source << 16);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float LoadHalf(ushort* source) => (float)*(Half*)source;
}
