// Host side of the block-sparse kernels shared by OpenCL and CUDA: the block table, the arguments, variant choice, launch.
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

internal static class GpuBlockSparse
{
    /// <summary>The scratch slot the block table travels in (decode's tables use slot 0).</summary>
    private const int TableSlot = 3;

    /// <summary>Scratch slots of the split partials (output, LSE), as decode's.</summary>
    private const int PartialSlot = 1, PartialLseSlot = 2;

    /// <summary>The most key splits per row.</summary>
    public const int MaxSplits = 16;

    /// <summary>Fewest key blocks a split takes: below that, merging costs more than the parallelism gains.</summary>
    private const int MinBlocksPerSplit = 4;

    /// <summary>
    /// Runs a validated call whose tensors the context already checked (location and owner, by name): flattens the mask
    /// (<see cref="BlockSparseTable"/>), uploads it when it changed since the last call, picks the variant (tensor cores
    /// when the host allows them for these buffers and the layout suits them) and launches one work-group per
    /// (batch x query head, query block, row tile, key split), all on grid x. When that leaves the device short of
    /// work (decoding: few query rows per head) and rows list many blocks, each row's blocks are split, the splits write
    /// float32 partial states and <see cref="GpuMerge"/> combines them through their LSEs.
    /// </summary>
    /// <exception cref="NotSupportedException">More than <c>2^31 - 1</c> work-groups, a block table of more entries, or a predicate the kernels do not know.</exception>
    public static void Run(IGpuKernelHost host, BlockSparseProblem problem, in TensorView query, in TensorView key, in TensorView value,
        in TensorView output, in TensorView? logSumExp)
    {
        var table = BlockSparseTable.Build(problem);
        var p = Params(problem, query, key, value, output, logSumExp, table);
        Span<DeviceBuffer?> buffers = [GpuFlash.Buffer(query), GpuFlash.Buffer(key), GpuFlash.Buffer(value), GpuFlash.Buffer(output), GpuFlash.Buffer(logSumExp), null, null, null];
        var variant = Choose(problem, p, host.TensorCoresFit(buffers[..4]));
        int queryRows = Math.Min(problem.QueryBlockSize, problem.QueryLength);
        p.RowTiles = (queryRows + variant.BlockM - 1) / variant.BlockM;
        long baseGroups = (long)problem.Batch * problem.QueryHeads * problem.QueryBlocks * p.RowTiles;
        p.Splits = Splits(baseGroups, table.LongestRow, host.ComputeUnits);
        long groups = baseGroups * p.Splits;
        if (groups > int.MaxValue)
            throw new NotSupportedException($"Block-sparse attention needs {groups} work-groups (B x Hq x query blocks x row tiles of {variant.BlockM} x key splits); a launch holds at most {int.MaxValue}.");
        var launch = KernelLaunch<BlockSparseVariant>.For(variant, host.Api);   // cached: no name string or closure per call
        var scratch = host.Scratch;
        lock (scratch.Gate)
        {
            buffers[5] = scratch.Upload(TableSlot, table.Meta.AsSpan(0, table.Length), ReadOnlySpan<int>.Empty);
            long rows = (long)problem.Batch * problem.QueryHeads * problem.QueryLength;
            if (p.Splits > 1)
            {
                buffers[6] = scratch.Take(PartialSlot, checked(p.Splits * rows * problem.ValueDim));
                buffers[7] = scratch.Take(PartialLseSlot, p.Splits * rows);
            }
            host.Launch(launch.Name, launch.Source, BlockSparseVariant.EntryPoint, buffers,
                MemoryMarshal.AsBytes(new ReadOnlySpan<BlockSparseParams>(in p)), (int)groups, 1, variant.Threads, variant.DynamicSharedBytes);
            if (p.Splits > 1)
            {
                // Views over the scratch buffers, kept per thread while buffer and shape stay the same.
                var views = t_partialViews ??= new PartialViews();
                var partials = views.Partials(buffers[6]!, p.Splits, problem.Batch, problem.QueryHeads, problem.QueryLength, problem.ValueDim);
                var partialLse = views.PartialLse(buffers[7]!, p.Splits, problem.Batch, problem.QueryHeads, problem.QueryLength);
                var merge = MergeProblem.CreateForCall(partials, partialLse, output, logSumExp);
                try
                {
                    GpuMerge.Run(host, merge, partials, partialLse, output, logSumExp);
                }
                finally
                {
                    merge.ReleaseCall();
                }
            }
        }
    }

    /// <summary>
    /// Key splits per row: enough work-groups for two per compute unit, each split at least
    /// <see cref="MinBlocksPerSplit"/> of the longest row's blocks, at most <see cref="MaxSplits"/>. Depends only on the
    /// sizes, the mask's longest row and the device.
    /// </summary>
    /// <summary>This thread's views of the split path's partials (see <see cref="PartialViews"/>).</summary>
    [ThreadStatic] private static PartialViews? t_partialViews;

    /// <summary>
    /// The contiguous views of the partial outputs <c>[S, B, Hq, Nq, Dv]</c> and log-sum-exps <c>[S, B, Hq, Nq]</c> over
    /// their scratch buffers, kept while buffer and shape stay the same: a steady call then makes no new view (no shape
    /// and stride arrays).
    /// </summary>
    private sealed class PartialViews
    {
        private TensorView _outputView, _lseView;

        public TensorView Partials(DeviceBuffer buffer, int splits, int batch, int heads, int rows, int dv) =>
            View(buffer, ref _outputView, [splits, batch, heads, rows, dv]);

        public TensorView PartialLse(DeviceBuffer buffer, int splits, int batch, int heads, int rows) =>
            View(buffer, ref _lseView, [splits, batch, heads, rows]);

        /// <summary>The cached view when it has this buffer and shape, else a new contiguous one kept in its place.</summary>
        private static TensorView View(DeviceBuffer buffer, ref TensorView cached, ReadOnlySpan<int> wanted)
        {
            if (!cached.IsDefault && ReferenceEquals(cached.Storage, buffer) && cached.Shape.SequenceEqual(wanted)) return cached;
            cached = buffer.View(wanted);
            return cached;
        }
    }

    internal static int Splits(long baseGroups, int longestRow, int computeUnits)
    {
        long wanted = (2L * Math.Max(computeUnits, 1) + baseGroups - 1) / Math.Max(baseGroups, 1);
        return (int)Math.Clamp(Math.Min(wanted, longestRow / MinBlocksPerSplit), 1, MaxSplits);
    }

    /// <summary>The kernel arguments of a validated call (<see cref="BlockSparseParams.RowTiles"/> is left to the launch).</summary>
    public static BlockSparseParams Params(BlockSparseProblem problem, in TensorView q, in TensorView k, in TensorView v, in TensorView o, in TensorView? lse,
        in BlockSparseTable table)
    {
        var predicate = problem.Options.Predicate;
        return new BlockSparseParams
        {
            Qkvo = QkvoParams.From(q, k, v, o, lse, problem.Batch, problem.QueryHeads, problem.KeyValueHeads,
                problem.QueryLength, problem.KeyLength, problem.HeadDim, problem.ValueDim),
            MaskStrideB = table.StrideB, MaskStrideH = table.StrideH, MaskHeadDiv = table.HeadDiv,
            QdocOffset = table.QueryDocuments, KdocOffset = table.KeyDocuments,
            Bq = problem.QueryBlockSize, Bk = problem.KeyBlockSize, QueryBlocks = problem.QueryBlocks,
            Predicate = predicate.Kind switch
            {
                ElementPredicateKind.None => 0,
                ElementPredicateKind.Causal => 1,
                ElementPredicateKind.Window => 2,
                ElementPredicateKind.Document => 3,
                ElementPredicateKind.PrefixLM => 4,
                var kind => throw new NotSupportedException($"The GPU block-sparse kernels have no {kind} predicate yet."),
            },
            WindowLeft = predicate.WindowLeft, WindowRight = predicate.WindowRight, WindowCausal = predicate.WindowCausal ? 1 : 0,
            PrefixOffset = table.Prefixes, PrefixStride = predicate.PrefixLengths.Length == 1 ? 0 : 1,
            HasLse = lse is null ? 0 : 1,
            ScaleLog2 = (float)(problem.Scale * MathConstants.Log2EDouble),
            SoftcapLog2 = (float)(problem.Options.Softcap * MathConstants.Log2EDouble),
        };
    }

    /// <summary>Picks the variant: tensor cores when allowed and the call suits them (f16/bf16, Dqk == Dv in {64, 128}, aligned rows), else the portable kernel.</summary>
    public static BlockSparseVariant Choose(BlockSparseProblem problem, in BlockSparseParams p, bool tensorCoresAvailable)
    {
        int queryRows = Math.Min(problem.QueryBlockSize, problem.QueryLength);
        bool tensorCores = tensorCoresAvailable && problem.ElementType != ElementType.Float32 && problem.HeadDim == problem.ValueDim &&
            FlashVariant.TensorCoreHeadDims.Contains(problem.HeadDim) && GpuFlash.TensorCoreLayout(p.Qkvo);
        return tensorCores
            ? BlockSparseVariant.Mma(problem.ElementType, problem.HeadDim, queryRows, problem.KeyBlockSize)
            : BlockSparseVariant.Portable(problem.ElementType, problem.HeadDim, problem.ValueDim, queryRows);
    }
}
