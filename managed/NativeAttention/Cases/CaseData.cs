// Host tensors for cases: zeroed or filled from a seeded generator in canonical row-major order (whatever the memory
// layout), so the same seed gives the same values on every machine and in every layout; plus the small numeric
// helpers the case types share.
namespace NativeAttention;

/// <summary>Allocation and filling of case tensors on the host.</summary>
internal static class CaseData
{
    /// <summary>
    /// A host tensor of logical shape <paramref name="shape"/>, filled in canonical row-major order with values uniform in
    /// <c>[-scale, scale]</c> drawn from <paramref name="random"/> (zeros when it is null). With
    /// <see cref="TensorLayout.SequenceFirst"/> a rank-4 or higher tensor is stored with axes 1 and 2 swapped and viewed
    /// back through a permutation, so it reaches kernels strided.
    /// </summary>
    public static TensorView Random(ElementType type, int[] shape, Random? random, double scale, TensorLayout layout = TensorLayout.HeadsFirst)
    {
        long count = Count(shape);
        bool swapped = layout == TensorLayout.SequenceFirst && shape.Length >= 4;
        int[] stored = (int[])shape.Clone();
        if (swapped) (stored[1], stored[2]) = (stored[2], stored[1]);
        var view = Zeros(type, stored);
        if (swapped)
        {
            int[] order = [.. Enumerable.Range(0, shape.Length)];
            (order[1], order[2]) = (2, 1);
            view = view.Permute(order);
        }
        if (random is not null)
        {
            var values = new double[count];
            for (long i = 0; i < count; i++) values[i] = (random.NextDouble() * 2 - 1) * scale;
            view.CopyFrom(values);
        }
        return view;
    }

    /// <summary>A host tensor with values uniform in <c>[low, high]</c>, row-major.</summary>
    public static TensorView Uniform(ElementType type, int[] shape, Random random, double low, double high)
    {
        var view = Zeros(type, shape);
        var values = new double[view.ElementCount];
        for (long i = 0; i < values.Length; i++) values[i] = low + random.NextDouble() * (high - low);
        view.CopyFrom(values);
        return view;
    }

    /// <summary>A zeroed, contiguous host tensor.</summary>
    public static TensorView Zeros(ElementType type, params int[] shape) => Gpu.TensorCopy.AllocateHost(type, shape);

    /// <summary>The largest magnitude in <paramref name="view"/> (0 when empty).</summary>
    public static double MaxAbs(TensorView view) => MaxAbs(view.ToDoubleArray());

    /// <summary>The largest finite magnitude in <paramref name="values"/> (0 when none).</summary>
    public static double MaxAbs(double[] values)
    {
        double m = 0;
        foreach (double v in values)
            if (double.IsFinite(v)) m = Math.Max(m, Math.Abs(v));
        return m;
    }

    /// <summary>
    /// The yardstick for families without a same-precision naive reference yet: the exact result stored in
    /// <paramref name="type"/> (output and final state rounded; LSE kept), i.e. the error any implementation that
    /// writes <paramref name="type"/> must make at least.
    /// </summary>
    public static ReferenceResult Rounded(ReferenceResult exact, ElementType type) => exact with
    {
        Output = [.. exact.Output.Select(v => type.RoundTo(v))],
        FinalState = exact.FinalState is { } s ? [.. s.Select(v => (double)(float)v)] : null,
    };

    /// <summary>
    /// <paramref name="output"/> (of <paramref name="shape"/>) as a result of its own with an all-zero LSE per row, so that
    /// <see cref="CaseVerifier.CompareToReference"/> applies its output rule to families without a log-sum-exp.
    /// </summary>
    public static ReferenceResult WithoutLse(double[] output, int[] shape)
    {
        int rows = output.Length / Math.Max(1, shape[^1]);
        return new ReferenceResult(output, shape, new double[rows], shape[..^1]);
    }

    /// <summary>The product of <paramref name="shape"/>.</summary>
    public static long Count(ReadOnlySpan<int> shape)
    {
        long count = 1;
        foreach (int s in shape) count *= s;
        return count;
    }

    /// <summary>A permutation of <c>0 .. n - 1</c> drawn from <paramref name="random"/> (Fisher-Yates).</summary>
    public static int[] Permutation(int n, Random random)
    {
        int[] p = [.. Enumerable.Range(0, n)];
        for (int i = n - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (p[i], p[j]) = (p[j], p[i]);
        }
        return p;
    }
}
