// bfloat16 conversions: exact widening, round-to-nearest-even narrowing, NaN preserved.
using Xunit;

namespace NativeAttention.Tests;

public class BFloat16Tests
{
    [Theory]
    [InlineData(1.0f, 1.0f)]
    [InlineData(-2.5f, -2.5f)]
    [InlineData(1.00390625f, 1.0f)]       // exactly halfway between 1 and 1 + 2^-7: ties to even (1)
    [InlineData(1.01171875f, 1.015625f)]  // halfway between 1 + 2^-7 and 1 + 2^-6: ties to even (1 + 2^-6)
    [InlineData(1.005f, 1.0078125f)]      // above halfway rounds up
    [InlineData(float.PositiveInfinity, float.PositiveInfinity)]
    [InlineData(3.4e38f, float.PositiveInfinity)] // overflows on rounding
    public void Narrowing_RoundsToNearestEven(float input, float expected) =>
        Assert.Equal(expected, (float)(BFloat16)input);

    [Fact]
    public void Narrowing_KeepsNaN() => Assert.True(float.IsNaN((float)(BFloat16)float.NaN));

    [Fact]
    public void Widening_IsExactForEveryPattern()
    {
        for (int raw = 0; raw <= ushort.MaxValue; raw++)
        {
            var b = BFloat16.FromRawValue((ushort)raw);
            float f = (float)b;
            if (float.IsNaN(f)) continue;
            Assert.Equal(raw, ((BFloat16)f).RawValue);
        }
    }
}
