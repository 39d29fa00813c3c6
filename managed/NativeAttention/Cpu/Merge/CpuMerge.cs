// MergeStates on the CPU: combines split-KV partial results through their log-sum-exps, 64 rows per work item, on the
// CPU workers with a plan kept per thread, so a steady stream of merges allocates nothing.
namespace NativeAttention.Cpu;

internal static unsafe class CpuMerge
{
    private const long RowsPerItem = 64;

    /// <summary>Partials up to this many merge their weights on the stack; more take a heap buffer per work loop.</summary>
    private const int StackSplits = 256;

    /// <summary>Value dims up to this many accumulate on the stack.</summary>
    private const int StackValueDim = 1024;

    public static void Run(MergeProblem problem, in TensorView partialOutputs, in TensorView partialLogSumExp, in TensorView output, in TensorView? logSumExp, int threads)
    {
        using var poPin = partialOutputs.Storage!.Pin();
        using var plPin = partialLogSumExp.Storage!.Pin();
        using var oPin = output.Storage!.Pin();
        using var lsePin = logSumExp is { } l ? l.Storage!.Pin() : default;
        var plan = Plan.Rent();
        try
        {
            plan.Reset(problem, partialOutputs, partialLogSumExp, output, logSumExp,
                (byte*)poPin.Pointer, (float*)plPin.Pointer, (byte*)oPin.Pointer, (float*)lsePin.Pointer);
            CpuWorkers.Run(plan, threads, (int)Math.Min(plan.Items, int.MaxValue), Work);
        }
        finally
        {
            plan.Return();
        }
    }

    /// <summary>One worker's loop: takes items (runs of <see cref="RowsPerItem"/> rows) until none are left.</summary>
    private static void Work(Plan p)
    {
        int splits = p.Splits, dv = p.ValueDim, rowRank = p.RowShape.Length;
        Span<int> index = stackalloc int[rowRank];
        Span<float> weights = splits <= StackSplits ? stackalloc float[splits] : new float[splits];
        Span<float> accumulator = dv <= StackValueDim ? stackalloc float[dv] : new float[dv];
        var po = p.PartialOutputs;
        var pl = p.PartialLogSumExp;
        var o = p.Output;
        bool hasLse = p.HasLse;
        var lv = p.LogSumExp;
        for (long item = Interlocked.Increment(ref p.NextItem) - 1; item < p.Items; item = Interlocked.Increment(ref p.NextItem) - 1)
        {
            long end = Math.Min(p.Rows, (item + 1) * RowsPerItem);
            for (long row = item * RowsPerItem; row < end; row++)
            {
                Decompose(row, p.RowShape, index);
                long poRow = po.Offset, plRow = pl.Offset, oRow = o.Offset, lseRow = hasLse ? lv.Offset : 0;
                for (int a = 0; a < rowRank; a++)
                {
                    poRow += index[a] * po.Strides[a + 1];
                    plRow += index[a] * pl.Strides[a + 1];
                    oRow += index[a] * o.Strides[a];
                    if (hasLse) lseRow += index[a] * lv.Strides[a];
                }

                for (int s = 0; s < splits; s++) weights[s] = p.Pl[plRow + s * pl.Strides[0]];
                float total = LogSumExpMerge.ToWeights(weights);
                accumulator.Clear();
                for (int s = 0; s < splits; s++)
                {
                    float weight = weights[s];
                    if (weight == 0) continue;
                    long at = poRow + s * po.Strides[0];
                    long step = po.Strides[rowRank + 1];
                    for (int d = 0; d < dv; d++)
                        accumulator[d] += weight * (float)TensorView.ReadElement(p.Po, po.ElementType, at + d * step);
                }
                long outStep = o.Strides[rowRank];
                for (int d = 0; d < dv; d++) TensorView.WriteElement(p.O, o.ElementType, oRow + d * outStep, accumulator[d]);
                if (hasLse) p.Lse[lseRow] = total;
            }
        }
    }

    private static void Decompose(long row, int[] shape, Span<int> index)
    {
        for (int a = shape.Length - 1; a >= 0; a--)
        {
            index[a] = (int)(row % shape[a]);
            row /= shape[a];
        }
    }

    /// <summary>
    /// One call's views, pointers and sizes, read by every worker (plus the item counter). One idle plan per thread
    /// (<see cref="ThreadIdle{T}"/>) is refilled by <see cref="Reset"/> for each call; <see cref="Return"/> drops the
    /// caller's tensors before keeping it.
    /// </summary>
    private sealed class Plan
    {
        public TensorView PartialOutputs, PartialLogSumExp, Output, LogSumExp;
        public bool HasLse;
        public byte* Po, O;
        public float* Pl, Lse;
        public int Splits, ValueDim;
        public long Rows, Items;
        public int[] RowShape = [];
        public long NextItem;

        public static Plan Rent() => ThreadIdle<Plan>.Rent();

        public void Reset(MergeProblem problem, in TensorView partialOutputs, in TensorView partialLogSumExp, in TensorView output, in TensorView? logSumExp,
            byte* po, float* pl, byte* o, float* lse)
        {
            (PartialOutputs, PartialLogSumExp, Output) = (partialOutputs, partialLogSumExp, output);
            (HasLse, LogSumExp) = logSumExp is { } l ? (true, l) : (false, default);
            Po = po;
            Pl = pl;
            O = o;
            Lse = lse;
            (Splits, ValueDim, Rows, RowShape) = (problem.Splits, problem.ValueDim, problem.Rows, problem.RowShape);
            Items = (Rows + RowsPerItem - 1) / RowsPerItem;
            NextItem = 0;
        }

        /// <summary>Drops the finished call's tensors and pointers and keeps the plan for this thread's next call.</summary>
        public void Return()
        {
            (PartialOutputs, PartialLogSumExp, Output, LogSumExp) = (default, default, default, default);
            Po = O = null;
            Pl = Lse = null;
            RowShape = [];
            ThreadIdle<Plan>.Return(this);
        }
    }
}
