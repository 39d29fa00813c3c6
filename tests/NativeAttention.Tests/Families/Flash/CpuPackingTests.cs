// The CPU kernels' row packing widens 16-bit rows through the same vector loads as the kernels: check every bit
// pattern, every tail length and strided rows against the BCL's conversions.
using NativeAttention.Cpu;
using Xunit;

namespace NativeAttention.Tests;

[Trait("Backend", "Cpu")]
public unsafe class CpuPackingTests
{
    [Theory]
    [InlineData(ElementType.Float16)]
    [InlineData(ElementType.BFloat16)]
    public void ReadRow_WidensEveryBitPatternExactly(ElementType type)
    {
        var patterns = new ushort[65536 * 3];
        for (int i = 0; i < patterns.Length; i++) patterns[i] = (ushort)i;
        var output = new float[65536];
        fixed (ushort* source = patterns)
        fixed (float* destination = output)
        {
            // Unit stride over every pattern, then every length up to 40 (each vector width's tail), then strided.
            CpuPacking.ReadRow(destination, (byte*)source, 1, 65536, type);
            Check(type, source, 1, destination, 65536);
            for (int count = 1; count <= 40; count++)
            {
                int start = count * 977 % 60000;
                CpuPacking.ReadRow(destination, (byte*)(source + start), 1, count, type);
                Check(type, source + start, 1, destination, count);
            }
            CpuPacking.ReadRow(destination, (byte*)(source + 1), 3, 65535, type);
            Check(type, source + 1, 3, destination, 65535);
        }
    }

    private static void Check(ElementType type, ushort* source, int stride, float* actual, int count)
    {
        for (int i = 0; i < count; i++)
        {
            ushort bits = source[(long)i * stride];
            float expected = type == ElementType.Float16 ? (float)BitConverter.UInt16BitsToHalf(bits) : BitConverter.UInt32BitsToSingle((uint)bits << 16);
            if (float.IsNaN(expected))
            {
                Assert.True(float.IsNaN(actual[i]), $"{type} 0x{bits:X4} is NaN");
                continue;
            }
            Assert.True(BitConverter.SingleToUInt32Bits(expected) == BitConverter.SingleToUInt32Bits(actual[i]),
                $"{type} 0x{bits:X4} (element {i} of {count}, stride {stride}): 0x{BitConverter.SingleToUInt32Bits(actual[i]):X8}, expected 0x{BitConverter.SingleToUInt32Bits(expected):X8}");
        }
    }
}
