// The decode kernel's own 512-bit loads (CpuDecode.Read: the widening with the load folded in) and its 4 x 4 score
// reduction (CpuDecode.Sum4x4) must give exactly the bits of the shared ones (FiniteHalf.LoadScaledDown,
// Simd512.LoadBFloat16, Simd512.Sum4): every 16-bit pattern, and sums of values whose rounding depends on the order.
using System.Runtime.Intrinsics;
using NativeAttention.Cpu;
using Xunit;

namespace NativeAttention.Tests;

[Trait("Backend", "Cpu")]
public unsafe class DecodeLoadsTests
{
    private const int KeyBlock = 16;

    [Fact]
    public void Read_GivesTheBitsOfTheSharedWidening()
    {
        if (!Vector512.IsHardwareAccelerated) return;
        var patterns = new ushort[65536 + 32];
        for (int i = 0; i < patterns.Length; i++) patterns[i] = (ushort)i;
        fixed (ushort* source = patterns)
        {
            // Every pattern at every element offset within a vector (index is in elements).
            for (int i = 0; i < 65536; i += 16)
            {
                int index = (i / 16) % 16;
                ushort* at = source + i;
                Same(FiniteHalf.LoadScaledDown<Simd512, Vector512<float>>(at + index),
                    CpuDecode.Read<Simd512, Vector512<float>, ScaledFloat16Rows>((byte*)at, index), "scaled binary16", i + index);
                Same(Simd512.LoadBFloat16(at + index), CpuDecode.Read<Simd512, Vector512<float>, BFloat16Rows>((byte*)at, index), "bfloat16", i + index);
                Same(Simd512.LoadHalf(at + index), CpuDecode.Read<Simd512, Vector512<float>, Float16Rows>((byte*)at, index), "binary16", i + index);
            }
        }
    }

    [Fact]
    public void Sum4x4_GivesTheBitsOfFourSum4()
    {
        if (!Vector512.IsHardwareAccelerated) return;
        var random = new Random(17);
        var a = new Vector512<float>[16];
        float* actual = stackalloc float[4 * KeyBlock], expected = stackalloc float[4 * KeyBlock];
        for (int trial = 0; trial < 2000; trial++)
        {
            for (int v = 0; v < 16; v++)
            {
                var lanes = new float[16];
                for (int l = 0; l < 16; l++)
                {
                    // Magnitudes over many binades, so that any other order of the additions rounds differently.
                    lanes[l] = (float)((random.NextDouble() - 0.5) * Math.Pow(2, random.Next(-30, 30)));
                    if (trial % 97 == 0 && random.Next(16) == 0) lanes[l] = random.Next(3) switch { 0 => float.PositiveInfinity, 1 => -0f, _ => 1e-42f };
                }
                a[v] = Vector512.Create(lanes);
            }
            new Span<float>(actual, 4 * KeyBlock).Fill(float.NaN);
            new Span<float>(expected, 4 * KeyBlock).Fill(float.NaN);
            for (int r = 0; r < 4; r++) Simd512.Sum4(a[4 * r], a[4 * r + 1], a[4 * r + 2], a[4 * r + 3]).Store(expected + r * KeyBlock);
            CpuDecode.Sum4x4(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], actual);
            for (int i = 0; i < 4 * KeyBlock; i++)
                Assert.True(BitConverter.SingleToUInt32Bits(expected[i]) == BitConverter.SingleToUInt32Bits(actual[i]),
                    $"trial {trial}, row {i / KeyBlock}, key {i % KeyBlock}: {actual[i]} is not {expected[i]}");
        }
    }

    private static void Same(Vector512<float> expected, Vector512<float> actual, string what, int at)
    {
        for (int l = 0; l < 16; l++)
            Assert.True(BitConverter.SingleToUInt32Bits(expected[l]) == BitConverter.SingleToUInt32Bits(actual[l]),
                $"{what} element {at + l}: 0x{BitConverter.SingleToUInt32Bits(actual[l]):X8}, expected 0x{BitConverter.SingleToUInt32Bits(expected[l]):X8}");
    }
}
