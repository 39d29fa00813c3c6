// Widening 16-bit rows to float32 on the CPU: what makes binary16 decode compute-bound where .NET exposes no F16C
// conversion (vcvtph2ps). Each option feeds a dot product with a float32 row, as the decode kernels' loops do; times are
// per element (OperationsPerInvoke), the rows fit L1/L2, one thread.
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using BenchmarkDotNet.Attributes;
using NativeAttention.Cpu;

namespace NativeAttention.Benchmarks;

/// <summary>
/// A dot product of a float32 row with a row of <see cref="Elements"/> values stored as float32 (the baseline), binary16
/// (the exact widening of <see cref="ISimd{T}.LoadHalf"/>, and the decode kernels' scaled-down widening of
/// <see cref="FiniteHalf.LoadScaledDown{TSimd, T}"/> for blocks checked finite), bfloat16, binary16 through a
/// 65536-entry table with AVX2 gathers (.NET 10 exposes no 512-bit gather), and binary16 through the runtime's scalar
/// <c>(float)Half</c>. Vector code runs at the widest width the machine accelerates, as the kernels do.
/// </summary>
[MemoryDiagnoser]
public unsafe class HalfWideningBenchmark
{
    /// <summary>Elements per row: 32 KB of binary16.</summary>
    public const int Elements = 1 << 14;

    private float* _query, _floats, _table;
    private ushort* _halves, _brains;

    [GlobalSetup]
    public void Setup()
    {
        _query = (float*)NativeMemory.AlignedAlloc(Elements * sizeof(float), 64);
        _floats = (float*)NativeMemory.AlignedAlloc(Elements * sizeof(float), 64);
        _halves = (ushort*)NativeMemory.AlignedAlloc(Elements * sizeof(ushort), 64);
        _brains = (ushort*)NativeMemory.AlignedAlloc(Elements * sizeof(ushort), 64);
        _table = (float*)NativeMemory.AlignedAlloc(65536 * sizeof(float), 64);
        var random = new Random(5);
        for (int i = 0; i < Elements; i++)
        {
            _query[i] = (float)(random.NextDouble() * 2 - 1);
            var value = (Half)(random.NextDouble() * 2 - 1);
            _halves[i] = BitConverter.HalfToUInt16Bits(value);
            _floats[i] = (float)value;
            _brains[i] = (ushort)(BitConverter.SingleToUInt32Bits(_floats[i]) >> 16);
        }
        for (int bits = 0; bits < 65536; bits++) _table[bits] = (float)BitConverter.UInt16BitsToHalf((ushort)bits);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        NativeMemory.AlignedFree(_query);
        NativeMemory.AlignedFree(_floats);
        NativeMemory.AlignedFree(_halves);
        NativeMemory.AlignedFree(_brains);
        NativeMemory.AlignedFree(_table);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Elements)]
    public float Float32() => Widest<Float32Rows>((byte*)_floats);

    [Benchmark(OperationsPerInvoke = Elements)]
    public float BFloat16() => Widest<BFloat16Rows>((byte*)_brains);

    [Benchmark(OperationsPerInvoke = Elements)]
    public float Float16ScaledDown() => Widest<ScaledFloat16Rows>((byte*)_halves);

    [Benchmark(OperationsPerInvoke = Elements)]
    public float Float16Exact() => Widest<Float16Rows>((byte*)_halves);

    [Benchmark(OperationsPerInvoke = Elements)]
    public float Float16TableGather()
    {
        if (!Avx2.IsSupported) return float.NaN;
        Vector256<float> a = Vector256<float>.Zero, b = Vector256<float>.Zero;
        for (int i = 0; i < Elements; i += 16)
        {
            var low = Vector256.WidenLower(Vector128.Load(_halves + i).ToVector256Unsafe()).AsInt32();
            var high = Vector256.WidenLower(Vector128.Load(_halves + i + 8).ToVector256Unsafe()).AsInt32();
            a = Vector256.FusedMultiplyAdd(Vector256.Load(_query + i), Avx2.GatherVector256(_table, low, sizeof(float)), a);
            b = Vector256.FusedMultiplyAdd(Vector256.Load(_query + i + 8), Avx2.GatherVector256(_table, high, sizeof(float)), b);
        }
        return Vector256.Sum(a + b);
    }

    [Benchmark(OperationsPerInvoke = Elements)]
    public float Float16ScalarConversion()
    {
        float sum = 0;
        for (int i = 0; i < Elements; i++) sum = MathF.FusedMultiplyAdd(_query[i], (float)BitConverter.UInt16BitsToHalf(_halves[i]), sum);
        return sum;
    }

    private float Widest<TFormat>(byte* row) where TFormat : struct, IRowFormat =>
        Vector512.IsHardwareAccelerated ? Dot<Simd512, Vector512<float>, TFormat>(row)
        : Vector256.IsHardwareAccelerated ? Dot<Simd256, Vector256<float>, TFormat>(row)
        : Dot<Simd128, Vector128<float>, TFormat>(row);

    /// <summary>Two accumulators, two vectors a step, loads through <see cref="RowLoads"/> as the kernels read rows.</summary>
    private float Dot<TSimd, T, TFormat>(byte* row) where TSimd : struct, ISimd<T> where T : unmanaged where TFormat : struct, IRowFormat
    {
        T a = TSimd.Zero, b = TSimd.Zero;
        int w = TSimd.Count;
        for (int i = 0; i < Elements; i += 2 * w)
        {
            a = TSimd.MultiplyAdd(TSimd.Load(_query + i), RowLoads.Load<TSimd, T, TFormat>(row, i), a);
            b = TSimd.MultiplyAdd(TSimd.Load(_query + i + w), RowLoads.Load<TSimd, T, TFormat>(row, i + w), b);
        }
        return TSimd.Sum(TSimd.Add(a, b));
    }
}
