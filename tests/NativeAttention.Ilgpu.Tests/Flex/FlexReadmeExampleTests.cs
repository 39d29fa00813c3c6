// The README's Flex example, compiled and run as written (document mask + ALiBi score modification), against the reference.
using Xunit;

namespace NativeAttention.Ilgpu.Tests.Flex;

/// <summary>The README example's structs, verbatim.</summary>
internal readonly struct Documents(int[] ids) : IMaskMod
{
    public bool Visible(int b, int h, int q, int k) => ids[q] == ids[k] && k <= q;
}

/// <summary>The README example's ALiBi, verbatim.</summary>
internal readonly struct Alibi(float[] slopes) : IScoreMod
{
    public float Score(float s, int b, int h, int q, int k) => s - slopes[h] * Math.Abs(q - k);
}

public sealed class FlexReadmeExampleTests
{
    [Fact]
    public void ReadmeExampleMatchesReference()
    {
        const int H = 4, N = 200, D = 32;
        var random = new Random(14);
        var ids = Enumerable.Range(0, N).Select(i => i / 37 + (i > 150 ? 1 : 0)).ToArray();
        float[] slopes = [0.5f, 0.25f, 0.125f, 0.0625f];
        TensorView q = FlexTests.Uniform(ElementType.Float32, random, 1, 1, H, N, D), k = FlexTests.Uniform(ElementType.Float32, random, 1, 1, H, N, D);
        TensorView v = FlexTests.Uniform(ElementType.Float32, random, 1, 1, H, N, D), o = FlexTests.Uniform(ElementType.Float32, random, 1, 1, H, N, D);
        using var context = AttentionContext.Create(Backend.Cpu, new ContextOptions { Threads = 2 });

        var blocks = context.CreateBlockMask(new Documents(ids), batch: 1, heads: 1, N, N);   // empty blocks skipped, full ones unmasked
        context.Flex(q, k, v, o, new Alibi(slopes), new Documents(ids), new FlexOptions { BlockMask = blocks });

        var (expected, _) = FlexReference.Run(q, k, v, 1 / Math.Sqrt(D), null, new Alibi(slopes), new Documents(ids));
        var actual = o.ToDoubleArray();
        for (int i = 0; i < expected.Length; i++) Assert.True(Math.Abs(expected[i] - actual[i]) < 2e-4, $"element {i}: {actual[i]} vs {expected[i]}");
    }
}
