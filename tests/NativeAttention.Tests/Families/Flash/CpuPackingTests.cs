// The CPU kernels' row packing widens 16-bit rows through the same vector loads as the kernels, and rounds binary16
// outputs with its own integer arithmetic: check every bit pattern, ties, every tail length and strided rows against
// the BCL's conversions.
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

    /// <summary>
    /// Float32 values whose binary16 rounding is hard: every binary16 value, the midpoints between neighbours (ties: to
    /// even) and the floats just either side of them, the overflow boundary (65504, 65519.996, 65520), float32
    /// subnormals, infinities, NaNs with payloads, then pseudo-random bit patterns.
    /// </summary>
    private static float[] NarrowingInputs()
    {
        var values = new List<float>();
        for (int h = 0; h < 0x7C00; h++)
        {
            float low = (float)BitConverter.UInt16BitsToHalf((ushort)h), high = (float)BitConverter.UInt16BitsToHalf((ushort)(h + 1));
            float middle = (float)(((double)low + high) / 2); // exact: binary16 neighbours' midpoint fits float32
            foreach (float v in (ReadOnlySpan<float>)[low, middle, MathF.BitDecrement(middle), MathF.BitIncrement(middle)])
            {
                values.Add(v);
                values.Add(-v);
            }
        }
        values.AddRange([65504f, 65519.996f, 65520f, 65536f, 1e10f, float.MaxValue, float.PositiveInfinity, float.NegativeInfinity,
            float.Epsilon, -float.Epsilon, BitConverter.UInt32BitsToSingle(0x007FFFFF), 5.9604645e-8f, 2.9802322e-8f, 2.9802326e-8f,
            float.NaN, BitConverter.UInt32BitsToSingle(0x7F800001), BitConverter.UInt32BitsToSingle(0xFFC12345), BitConverter.UInt32BitsToSingle(0x7FBFFFFF)]);
        var random = new Random(12345);
        for (int i = 0; i < 1 << 18; i++) values.Add(BitConverter.UInt32BitsToSingle((uint)random.NextInt64(0, 1L << 32)));
        return values.ToArray();
    }

    [Fact]
    public void WriteRow_RoundsToBinary16AsTheRuntimeDoes()
    {
        float[] inputs = NarrowingInputs();
        var output = new ushort[inputs.Length * 3];
        fixed (float* source = inputs)
        fixed (ushort* destination = output)
        {
            // Unit stride over everything (the widest vectors), every length up to 70 (each width's tail), strided, and
            // with a factor that is not 1 (each value times it rounded in float32 first, as the kernels' rows are).
            CpuPacking.WriteRow((byte*)destination, 1, source, 1f, inputs.Length, ElementType.Float16);
            CheckNarrowed(source, 1f, destination, 1, inputs.Length);
            for (int count = 1; count <= 70; count++)
            {
                int start = count * 7919 % (inputs.Length - 80);
                CpuPacking.WriteRow((byte*)destination, 1, source + start, 1f, count, ElementType.Float16);
                CheckNarrowed(source + start, 1f, destination, 1, count);
            }
            CpuPacking.WriteRow((byte*)destination, 3, source, 1f, inputs.Length, ElementType.Float16);
            CheckNarrowed(source, 1f, destination, 3, inputs.Length);
            CpuPacking.WriteRow((byte*)destination, 1, source, 0.3f, inputs.Length, ElementType.Float16);
            CheckNarrowed(source, 0.3f, destination, 1, inputs.Length);
        }
    }

    private static void CheckNarrowed(float* source, float factor, ushort* actual, int stride, int count)
    {
        for (int i = 0; i < count; i++)
        {
            float value = source[i] * factor;
            ushort expected = BitConverter.HalfToUInt16Bits((Half)value), got = actual[(long)i * stride];
            Assert.True(expected == got,
                $"0x{BitConverter.SingleToUInt32Bits(source[i]):X8} x {factor} (element {i} of {count}, stride {stride}): 0x{got:X4}, expected 0x{expected:X4}");
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
