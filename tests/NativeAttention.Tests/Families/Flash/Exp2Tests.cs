// The CPU kernels' 2^x for x <= 0 (softmax weights, rescale factors, linear decays), at every vector width: close to
// Math.Pow, exactly 0 below 2^-126 and never denormal (a denormal or underflowing result costs a microcode assist of
// about 150 cycles on Intel cores), NaN kept, and the same bits at every width.
using System.Runtime.Intrinsics;
using NativeAttention.Cpu;
using Xunit;

namespace NativeAttention.Tests;

[Trait("Backend", "Cpu")]
public class Exp2Tests
{
    private static float[] Inputs()
    {
        var inputs = new List<float> { 0f, -0f, -1e-30f, -0.5f, -1f, -125f, -125.25f, -125.5f, -125.75f, -126f, -126.0001f, -126.25f, -126.5f,
            -127f, -140f, -149f, -150f, -151f, -200f, -1e30f, float.MinValue, float.NegativeInfinity };
        var random = new Random(7);
        for (int i = 0; i < 4000; i++) inputs.Add(-(float)(random.NextDouble() * 140));
        for (int i = 0; i < 1000; i++) inputs.Add(-126.6f + (float)random.NextDouble() * 1.2f);
        while (inputs.Count % 16 != 0) inputs.Add(-3f);
        return inputs.ToArray();
    }

    [Fact]
    public void EveryWidth_IsNearPow_ZeroBelowTheSmallestNormal_AndNeverDenormal()
    {
        var inputs = Inputs();
        foreach (var (name, outputs) in Widths(inputs))
            for (int i = 0; i < inputs.Length; i++)
            {
                float x = inputs[i], y = outputs[i];
                if (x < -126f)
                {
                    Assert.True(y == 0f && !float.IsNegative(y), $"{name}: 2^{x} gave {y}, expected +0 (below 2^-126)");
                    continue;
                }
                double expected = Math.Pow(2, x);
                Assert.True(float.IsNormal(y), $"{name}: 2^{x} gave {y}, not a normal float");
                Assert.True(Math.Abs(y - expected) <= 4e-7 * expected, $"{name}: 2^{x} gave {y}, expected {expected}");
            }
    }

    [Fact]
    public void EveryWidth_GivesTheSameBits()
    {
        var inputs = Inputs();
        var widths = Widths(inputs).Where(w => w.Name != "scalar").ToArray();
        for (int w = 1; w < widths.Length; w++)
            for (int i = 0; i < inputs.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(widths[0].Outputs[i]) == BitConverter.SingleToInt32Bits(widths[w].Outputs[i]),
                    $"2^{inputs[i]}: {widths[0].Name} gave {widths[0].Outputs[i]}, {widths[w].Name} {widths[w].Outputs[i]}");
    }

    [Fact]
    public void EveryWidth_KeepsNaN()
    {
        var inputs = new float[16];
        Array.Fill(inputs, -2f);
        inputs[3] = float.NaN;
        inputs[12] = -float.NaN;
        foreach (var (name, outputs) in Widths(inputs))
        {
            Assert.True(float.IsNaN(outputs[3]) && float.IsNaN(outputs[12]), $"{name}: 2^NaN gave {outputs[3]}, {outputs[12]}");
            Assert.Equal(0.25f, outputs[0]);
        }
    }

    private static IEnumerable<(string Name, float[] Outputs)> Widths(float[] inputs)
    {
        var scalar = new float[inputs.Length];
        for (int i = 0; i < inputs.Length; i++) scalar[i] = SimdScalar.Exp2NonPositive(inputs[i]);
        if (Vector512.IsHardwareAccelerated)
        {
            var o = new float[inputs.Length];
            for (int i = 0; i < inputs.Length; i += 16) Simd512.Exp2NonPositive(Vector512.Create(inputs, i)).CopyTo(o, i);
            yield return ("Simd512", o);
        }
        if (Vector256.IsHardwareAccelerated)
        {
            var o = new float[inputs.Length];
            for (int i = 0; i < inputs.Length; i += 8) Simd256.Exp2NonPositive(Vector256.Create(inputs, i)).CopyTo(o, i);
            yield return ("Simd256", o);
        }
        if (Vector128.IsHardwareAccelerated)
        {
            var o = new float[inputs.Length];
            for (int i = 0; i < inputs.Length; i += 4) Simd128.Exp2NonPositive(Vector128.Create(inputs, i)).CopyTo(o, i);
            yield return ("Simd128", o);
        }
        // The scalar fallback (float.Exp2) is not the polynomial: it joins the range checks, not the bit comparison.
        yield return ("scalar", scalar);
    }
}
