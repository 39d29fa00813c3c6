// The CPU kernels widen 16-bit rows in registers (ISimd.LoadHalf, LoadBFloat16) and reduce four vectors at once
// (Sum4, Max4): check every width's loads on every bit pattern against the BCL's conversions, and the reductions.
using System.Runtime.Intrinsics;
using NativeAttention.Cpu;
using Xunit;

namespace NativeAttention.Tests;

[Trait("Backend", "Cpu")]
public unsafe class DecodeVectorTests
{
    [Fact]
    public void WideningLoads_AreBitExactForEveryPattern()
    {
        var patterns = new ushort[65536];
        for (int i = 0; i < patterns.Length; i++) patterns[i] = (ushort)i;
        fixed (ushort* source = patterns)
        {
            if (Vector512.IsHardwareAccelerated) Check<Simd512, Vector512<float>>(source);
            if (Vector256.IsHardwareAccelerated) Check<Simd256, Vector256<float>>(source);
            if (Vector128.IsHardwareAccelerated) Check<Simd128, Vector128<float>>(source);
            Check<SimdScalar, float>(source);
        }
    }

    private static void Check<TSimd, T>(ushort* source) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int w = TSimd.Count;
        var buffer = stackalloc float[w];
        for (int i = 0; i < 65536; i += w)
        {
            TSimd.Store(buffer, TSimd.LoadHalf(source + i));
            for (int l = 0; l < w; l++)
            {
                float reference = (float)BitConverter.UInt16BitsToHalf(source[i + l]);
                uint expected = BitConverter.SingleToUInt32Bits(reference);
                // NaN stays NaN (the BCL also sets the quiet bit, which attention math never looks at).
                if (float.IsNaN(reference)) { Assert.True(float.IsNaN(buffer[l]), $"{typeof(TSimd).Name} half 0x{source[i + l]:X4} is NaN"); continue; }
                Assert.True(expected == BitConverter.SingleToUInt32Bits(buffer[l]), $"{typeof(TSimd).Name} half 0x{source[i + l]:X4}: 0x{BitConverter.SingleToUInt32Bits(buffer[l]):X8}, expected 0x{expected:X8}");
            }
            TSimd.Store(buffer, TSimd.LoadBFloat16(source + i));
            for (int l = 0; l < w; l++)
                Assert.Equal((uint)source[i + l] << 16, BitConverter.SingleToUInt32Bits(buffer[l]));
        }
    }

    [Fact]
    public void Sum4AndMax4_EqualFourLaneReductions()
    {
        if (Vector512.IsHardwareAccelerated) CheckSum4<Simd512, Vector512<float>>();
        if (Vector256.IsHardwareAccelerated) CheckSum4<Simd256, Vector256<float>>();
        if (Vector128.IsHardwareAccelerated) CheckSum4<Simd128, Vector128<float>>();
        CheckSum4<SimdScalar, float>();
    }

    private static void CheckSum4<TSimd, T>() where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int w = TSimd.Count;
        // Small integers: every summation order gives the same exact sum.
        var values = stackalloc float[4 * w];
        for (int i = 0; i < 4 * w; i++) values[i] = (i * 7 % 23) - 11 + 100 * (i / w);
        var sums = TSimd.Sum4(TSimd.Load(values), TSimd.Load(values + w), TSimd.Load(values + 2 * w), TSimd.Load(values + 3 * w));
        var maxima = TSimd.Max4(TSimd.Load(values), TSimd.Load(values + w), TSimd.Load(values + 2 * w), TSimd.Load(values + 3 * w));
        for (int v = 0; v < 4; v++)
        {
            float expected = 0, top = float.NegativeInfinity;
            for (int l = 0; l < w; l++)
            {
                expected += values[v * w + l];
                top = MathF.Max(top, values[v * w + l]);
            }
            Assert.True(expected == sums.GetElement(v), $"{typeof(TSimd).Name} vector {v}: {sums.GetElement(v)}, expected {expected}");
            Assert.Equal(expected, TSimd.Sum(TSimd.Load(values + v * w)));
            Assert.True(top == maxima.GetElement(v), $"{typeof(TSimd).Name} vector {v}: max {maxima.GetElement(v)}, expected {top}");
            Assert.Equal(top, TSimd.MaxAcross(TSimd.Load(values + v * w)));
        }
        // A NaN lane makes its vector's maximum NaN, as MathF.Max does.
        values[2 * w + w / 2] = float.NaN;
        maxima = TSimd.Max4(TSimd.Load(values), TSimd.Load(values + w), TSimd.Load(values + 2 * w), TSimd.Load(values + 3 * w));
        Assert.True(float.IsNaN(maxima.GetElement(2)) && !float.IsNaN(maxima.GetElement(1)), $"{typeof(TSimd).Name}: NaN lost");
    }
}
