// Small helpers the reference tests share: float32 tensors from literals, seeded random tensors (both through
// TestTensors, the tests' one tensor helper), closeness assertions.
using Xunit;

namespace NativeAttention.Tests.References;

internal static class Tensors
{
    /// <summary>A contiguous float32 tensor holding <paramref name="values"/>.</summary>
    public static TensorView Of(double[] values, params int[] shape) => TestTensors.Of(ElementType.Float32, shape, values);

    /// <summary>A contiguous float32 tensor of zeros.</summary>
    public static TensorView Zeros(params int[] shape) => TestTensors.Zeros(ElementType.Float32, shape);

    /// <summary>Uniform values in [-range, range] from a fixed seed, so every run sees the same tensor.</summary>
    public static TensorView Random(int seed, double range, params int[] shape) => TestTensors.Uniform(ElementType.Float32, seed, range, shape);

    /// <summary>Values <c>[B, H, N, N]</c> whose key j row is the one-hot vector e_j: the output row is the attention row.</summary>
    public static TensorView OneHotValues(int batch, int heads, int tokens)
    {
        var data = new float[batch * heads * tokens * tokens];
        for (int bh = 0; bh < batch * heads; bh++)
        for (int j = 0; j < tokens; j++)
            data[(bh * tokens + j) * tokens + j] = 1;
        return TensorView.FromMemory<float>(data, batch, heads, tokens, tokens);
    }

    /// <summary>Asserts element-wise closeness, reporting the worst element.</summary>
    public static void AssertClose(ReadOnlySpan<double> expected, ReadOnlySpan<double> actual, double tolerance)
    {
        var error = Reference.Compare(actual, expected);
        Assert.True(error.MaxAbsoluteError <= tolerance, $"tolerance {tolerance:G3} exceeded: {error}");
    }

    /// <summary>The keys with non-zero weight in row <paramref name="row"/> of an output computed with one-hot values.</summary>
    public static int[] VisibleKeys(ReferenceResult result, int row, int keys)
    {
        var visible = new List<int>();
        for (int j = 0; j < keys; j++)
            if (result.Output[row * keys + j] > 0) visible.Add(j);
        return visible.ToArray();
    }
}
