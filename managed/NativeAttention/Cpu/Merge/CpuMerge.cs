// MergeStates on the CPU: combines split-KV partial results through their log-sum-exps, one row per work item.
namespace NativeAttention.Cpu;

internal static unsafe class CpuMerge
{
    public static void Run(MergeProblem problem, in TensorView partialOutputs, in TensorView partialLogSumExp, in TensorView output, in TensorView? logSumExp, int threads)
    {
        var po = partialOutputs;
        var pl = partialLogSumExp;
        var o = output;
        TensorView? lse = logSumExp;
        using var poPin = po.Storage!.Pin();
        using var plPin = pl.Storage!.Pin();
        using var oPin = o.Storage!.Pin();
        using var lsePin = lse is { } l ? l.Storage!.Pin() : default;
        nint poAddress = (nint)poPin.Pointer, plAddress = (nint)plPin.Pointer, oAddress = (nint)oPin.Pointer, lseAddress = (nint)lsePin.Pointer;

        int splits = problem.Splits, dv = problem.ValueDim, rowRank = problem.RowShape.Length;
        long rows = problem.Rows;
        const long rowsPerItem = 64;
        long items = (rows + rowsPerItem - 1) / rowsPerItem;
        Parallel.For(0, items, new ParallelOptions { MaxDegreeOfParallelism = threads }, item =>
        {
            void* poBase = (void*)poAddress, plBase = (void*)plAddress, oBase = (void*)oAddress, lseBase = (void*)lseAddress;
            Span<int> index = stackalloc int[rowRank];
            Span<float> weights = splits <= 256 ? stackalloc float[splits] : new float[splits];
            float[] accumulator = new float[dv];
            long end = Math.Min(rows, (item + 1) * rowsPerItem);
            for (long row = item * rowsPerItem; row < end; row++)
            {
                Decompose(row, problem.RowShape, index);
                long poRow = po.Offset, plRow = pl.Offset, oRow = o.Offset, lseRow = lse?.Offset ?? 0;
                for (int a = 0; a < rowRank; a++)
                {
                    poRow += index[a] * po.Strides[a + 1];
                    plRow += index[a] * pl.Strides[a + 1];
                    oRow += index[a] * o.Strides[a];
                    if (lse is { } lv) lseRow += index[a] * lv.Strides[a];
                }

                for (int s = 0; s < splits; s++) weights[s] = ((float*)plBase)[plRow + s * pl.Strides[0]];
                float total = LogSumExpMerge.ToWeights(weights);
                Array.Clear(accumulator);
                for (int s = 0; s < splits; s++)
                {
                    float weight = weights[s];
                    if (weight == 0) continue;
                    long at = poRow + s * po.Strides[0];
                    long step = po.Strides[rowRank + 1];
                    for (int d = 0; d < dv; d++)
                        accumulator[d] += weight * (float)TensorView.ReadElement(poBase, po.ElementType, at + d * step);
                }
                long outStep = o.Strides[rowRank];
                for (int d = 0; d < dv; d++) TensorView.WriteElement(oBase, o.ElementType, oRow + d * outStep, accumulator[d]);
                if (lse is not null) ((float*)lseBase)[lseRow] = total;
            }
        });
    }

    private static void Decompose(long row, int[] shape, Span<int> index)
    {
        for (int a = shape.Length - 1; a >= 0; a--)
        {
            index[a] = (int)(row % shape[a]);
            row /= shape[a];
        }
    }
}
