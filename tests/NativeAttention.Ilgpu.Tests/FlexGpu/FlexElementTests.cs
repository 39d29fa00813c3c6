// The forward kernel's 16-bit conversions (bit manipulation, run here as plain C#) against .NET's Half and the
// library's BFloat16: every bit pattern widens exactly, and narrowing rounds to nearest even like they do.
using NativeAttention.Ilgpu.Flex.Gpu;
using Xunit;

namespace NativeAttention.Ilgpu.Tests.FlexOnGpu;

public sealed class FlexElementTests
{
    private static IEnumerable<float> Samples()
    {
        var random = new Random(3);
        for (int i = 0; i < 200_000; i++)
        {
            // Every exponent from far below fp16's subnormals to far above its range, random mantissas.
            float magnitude = MathF.Pow(2, (float)(random.NextDouble() * 60 - 30));
            yield return random.Next(2) == 0 ? magnitude : -magnitude;
        }
        foreach (uint bits in new uint[] { 0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x33000000, 0x33000001, 0x387FE000, 0x38800000,
            0x477FE000, 0x477FEFFF, 0x477FF000, 0x47800000, 0x3F801000, 0x3F803000, 0x3F802FFF })
            yield return BitConverter.UInt32BitsToSingle(bits);
        for (int i = 0; i < 2048; i++) yield return (i + 0.5f) * 5.9604644775390625e-8f;   // ties between fp16 subnormals
    }

    [Fact]
    public void Fp16_WidensEveryBitPatternExactly()
    {
        for (int bits = 0; bits < 65536; bits++)
        {
            float expected = (float)BitConverter.UInt16BitsToHalf((ushort)bits), actual = default(Fp16Element).Load((ushort)bits);
            if (float.IsNaN(expected)) Assert.True(float.IsNaN(actual), $"0x{bits:x4}");
            else Assert.Equal(BitConverter.SingleToUInt32Bits(expected), BitConverter.SingleToUInt32Bits(actual));
        }
    }

    [Fact]
    public void Fp16_NarrowsToNearestEven()
    {
        foreach (float x in Samples())
        {
            ushort expected = BitConverter.HalfToUInt16Bits((Half)x), actual = default(Fp16Element).Store(x);
            if (float.IsNaN(x)) Assert.True(Half.IsNaN(BitConverter.UInt16BitsToHalf(actual)));
            else Assert.True(expected == actual, $"{x:R} (0x{BitConverter.SingleToUInt32Bits(x):x8}): expected 0x{expected:x4}, got 0x{actual:x4}");
        }
    }

    [Fact]
    public void Bf16_WidensExactly_NarrowsToNearestEven()
    {
        for (int bits = 0; bits < 65536; bits++)
        {
            float expected = (float)BFloat16.FromRawValue((ushort)bits), actual = default(Bf16Element).Load((ushort)bits);
            if (float.IsNaN(expected)) Assert.True(float.IsNaN(actual));
            else Assert.Equal(BitConverter.SingleToUInt32Bits(expected), BitConverter.SingleToUInt32Bits(actual));
        }
        foreach (float x in Samples())
        {
            ushort expected = ((BFloat16)x).RawValue, actual = default(Bf16Element).Store(x);
            if (float.IsNaN(x)) Assert.True(float.IsNaN((float)BFloat16.FromRawValue(actual)));
            else Assert.True(expected == actual, $"{x:R}: expected 0x{expected:x4}, got 0x{actual:x4}");
        }
    }
}
