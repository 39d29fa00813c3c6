// Merging partial attention results through their log-sum-exps, in float64.
namespace NativeAttention;

public static partial class Reference
{
    /// <summary>
    /// Combines S partial results of the same query rows (each computed over a disjoint subset of the keys, as
    /// split-KV or ring attention produce them) into the exact result: <c>LSE = log(sum_s exp(LSE_s))</c> and
    /// <c>o = sum_s exp(LSE_s - LSE) o_s</c>. Partials with <c>LSE_s = -inf</c> contribute nothing; a row whose
    /// partials are all -inf gives zeros and -inf.
    /// </summary>
    /// <returns>Output with the shape of one partial, and the merged LSE.</returns>
    public static ReferenceResult MergeStates(TensorView partialOutputs, TensorView partialLogSumExp)
    {
        const string layout = "[S, ..., Dv] with at least 3 dimensions";
        if (partialOutputs.IsDefault) Check.Fail(nameof(partialOutputs), $"partialOutputs is default(TensorView); expected {layout}.");
        partialOutputs.Storage!.ThrowIfDisposed();
        if (partialOutputs.Rank < 3) Check.Fail(nameof(partialOutputs), $"partialOutputs has rank {partialOutputs.Rank}; expected {layout}.");
        Check.Positive(partialOutputs, nameof(partialOutputs), layout);
        var shape = partialOutputs.Shape.ToArray();
        int s = shape[0], dv = shape[^1];
        int[] rowShape = shape[1..^1];
        Check.Shape(partialLogSumExp, [s, .. rowShape], nameof(partialLogSumExp), "float32 [S, ...]: the partial outputs without Dv");
        Check.Type(partialLogSumExp, ElementType.Float32, nameof(partialLogSumExp));
        long rows = 1;
        foreach (int size in rowShape) rows *= size;

        var o = ReadHost(partialOutputs);
        var l = ReadHost(partialLogSumExp);
        var output = new double[rows * dv];
        var lse = new double[rows];
        for (long r = 0; r < rows; r++)
        {
            double m = double.NegativeInfinity;
            for (int i = 0; i < s; i++) m = Math.Max(m, l[i * rows + r]);
            if (double.IsNegativeInfinity(m)) { lse[r] = double.NegativeInfinity; continue; }
            double sum = 0;
            for (int i = 0; i < s; i++) sum += Math.Exp(l[i * rows + r] - m);
            double total = m + Math.Log(sum);
            lse[r] = total;
            for (int i = 0; i < s; i++)
            {
                double weight = Math.Exp(l[i * rows + r] - total);
                if (weight == 0) continue;
                for (int d = 0; d < dv; d++) output[r * dv + d] += weight * o[(i * rows + r) * dv + d];
            }
        }
        return new ReferenceResult(output, shape[1..], lse, rowShape);
    }
}
