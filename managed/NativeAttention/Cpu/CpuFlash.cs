// CPU flash attention forward: a fused, tiled kernel with online softmax over managed SIMD, one source for every width.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NativeAttention.Cpu;

/// <summary>
/// Effectively computes <c>O = softmax(scale * Q K^T, masked) V</c> and the log-sum-exp per query row, in float32
/// whatever the storage type, without materialising the score matrix.
/// </summary>
/// <remarks>
/// Work is cut into items (batch, key/value head, run of queries). An item holds the query rows of every query head
/// in the key/value head's group, as columns, so each K/V tile serves the whole group (float32 tiles with a contiguous
/// last axis are read in place, others packed). Columns are processed in groups of <c>4 x vector width</c> (one
/// vector for items with few columns, as in decoding): per key tile, <see cref="CpuFlashKernels.Scores"/> (or
/// <see cref="CpuFlashKernels.ScoresByDot"/> for a handful of columns) forms transposed scores, diagonal tiles are
/// masked, <see cref="CpuFlashKernels.Softmax"/> runs the online softmax down the columns and
/// <see cref="CpuFlashKernels.Accumulate"/> adds P V into the group's output rows. Key tiles no query of a group
/// can see are skipped, so causal and windowed calls cost what their visible pairs cost. Workers take items from a
/// shared counter; each item is computed start to finish by one worker in a fixed order, so results do not depend
/// on the thread count or on timing.
/// </remarks>
internal static unsafe class CpuFlash
{
    private const int KeyTile = CpuFlashTiles.KeyTile;
    private const float Ln2 = 0.693147180559945309f;

    /// <summary>
    /// Runs a validated flash problem on <paramref name="threads"/> workers with the widest vector width the JIT
    /// accelerates (512, 256 or 128 bits, else scalar). Rows that see no key get zeros and a log-sum-exp of -inf.
    /// </summary>
    /// <exception cref="NotSupportedException">Softcap, ALiBi, a bias, sinks or sigmoid scoring was requested; the
    /// CPU backend does not implement them yet. Thrown before any output is written.</exception>
    public static void Run(FlashProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp, int threads)
    {
        ThrowIfUnsupported(problem.Options);
        if (Vector512.IsHardwareAccelerated) Run<Simd512, Vector512<float>>(problem, query, key, value, output, logSumExp, threads);
        else if (Vector256.IsHardwareAccelerated) Run<Simd256, Vector256<float>>(problem, query, key, value, output, logSumExp, threads);
        else if (Vector128.IsHardwareAccelerated) Run<Simd128, Vector128<float>>(problem, query, key, value, output, logSumExp, threads);
        else Run<SimdScalar, float>(problem, query, key, value, output, logSumExp, threads);
    }

    private static void ThrowIfUnsupported(FlashOptions options)
    {
        if (options.Softcap != 0) ThrowNotSupported("Softcap");
        if (options.AlibiSlopes is not null) ThrowNotSupported("ALiBi");
        if (options.Bias is not null) ThrowNotSupported("An additive bias");
        if (options.LowRankBias is not null) ThrowNotSupported("A low-rank bias");
        if (options.Sinks is not null) ThrowNotSupported("Attention sinks");
        if (options.ScoreFunction != ScoreFunction.Softmax) ThrowNotSupported("Sigmoid scoring");
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void ThrowNotSupported(string option) =>
        throw new NotSupportedException($"{option} is not yet supported on the CPU backend.");

    private static void Run<TSimd, T>(FlashProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp, int threads)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        using var qPin = query.Storage!.Pin();
        using var kPin = key.Storage!.Pin();
        using var vPin = value.Storage!.Pin();
        using var oPin = output.Storage!.Pin();
        using var lPin = logSumExp is { } l ? l.Storage!.Pin() : default;
        var plan = new Plan(problem, TSimd.Count, query, key, value, output, logSumExp,
            (byte*)qPin.Pointer, (byte*)kPin.Pointer, (byte*)vPin.Pointer, (byte*)oPin.Pointer, (float*)lPin.Pointer);
        int workers = Math.Min(threads, plan.Items);
        if (workers <= 1) Work<TSimd, T>(plan);
        else Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, _ => Work<TSimd, T>(plan));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Work<TSimd, T>(Plan plan) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        float* scratch = CpuScratch.Get(plan.ScratchFloats);
        for (int item = Interlocked.Increment(ref plan.NextItem) - 1; item < plan.Items; item = Interlocked.Increment(ref plan.NextItem) - 1)
        {
            if (plan.GroupVectors == 1) RunItem<TSimd, T, One, NoScoreModifier>(plan, item, scratch, default);
            else RunItem<TSimd, T, Four, NoScoreModifier>(plan, item, scratch, default);
        }
    }

    /// <summary>One item: every query head of one key/value head over one run of queries, start to finish.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RunItem<TSimd, T, TGroup, TModifier>(Plan p, int item, float* scratch, TModifier modifier)
        where TSimd : struct, ISimd<T> where T : unmanaged where TGroup : struct, IConstant where TModifier : struct, IScoreModifier
    {
        // Later query tiles go first: under causal masking they see the most keys, which balances the workers.
        int heads = p.Batch * p.KeyValueHeads;
        int queryTile = p.QueryTiles - 1 - item / heads;
        int batch = item % heads / p.KeyValueHeads, kvHead = item % p.KeyValueHeads;
        int q0 = queryTile * p.QueriesPerItem;
        int queries = Math.Min(p.QueriesPerItem, p.QueryLength - q0);
        int columns = p.GroupSize * queries;
        int width = p.GroupWidth;
        int groups = (columns + width - 1) / width;
        int padded = groups * width;
        int dqk = p.HeadDim, dv = p.ValueDim, dvStride = p.ValueStride;

        var s = new ScratchLayout(scratch, p);
        for (int c = 0; c < padded; c++)
        {
            float* qColumn = s.QueryT + (long)(c / width) * dqk * width + c % width;
            if (c < columns)
            {
                int head = kvHead * p.GroupSize + c / queries, index = q0 + c % queries;
                var (start, end) = p.Problem.VisibleKeys(index);
                s.Start[c] = start;
                s.End[c] = end;
                s.QueryIndex[c] = index;
                s.QueryHead[c] = head;
                CpuPacking.ReadRow(s.Row, p.Q + p.ElementSize * (p.QueryOffset + batch * p.QueryStrides[0] + head * p.QueryStrides[1] + index * p.QueryStrides[2]),
                    p.QueryStrides[3], dqk, p.ElementType);
                float* qRow = s.QueryRows + (long)c * dqk;
                for (int d = 0; d < dqk; d++) qColumn[(long)d * width] = qRow[d] = s.Row[d] * p.Log2Scale;
            }
            else
            {
                // Padding columns see every key of every tile, so they never force the masked path; nothing reads them back.
                s.Start[c] = int.MinValue;
                s.End[c] = int.MaxValue;
                s.QueryIndex[c] = -1;
                s.QueryHead[c] = -1;
                for (int d = 0; d < dqk; d++) qColumn[(long)d * width] = 0;
            }
            s.Max[c] = float.NegativeInfinity;
            s.Sum[c] = 0;
            new Span<float>(s.Output + (long)c * dvStride, dvStride).Clear();
        }

        // Per group: the union of its columns' key ranges (tiles outside it are skipped) and their intersection
        // (tiles inside it need no mask).
        int itemLow = int.MaxValue, itemHigh = int.MinValue;
        for (int g = 0; g < groups; g++)
        {
            int low = int.MaxValue, high = int.MinValue, fullLow = int.MinValue, fullHigh = int.MaxValue;
            for (int c = g * width; c < Math.Min(columns, (g + 1) * width); c++)
            {
                fullLow = Math.Max(fullLow, s.Start[c]);
                fullHigh = Math.Min(fullHigh, s.End[c]);
                if (s.Start[c] >= s.End[c]) continue;
                low = Math.Min(low, s.Start[c]);
                high = Math.Max(high, s.End[c]);
            }
            s.GroupLow[g] = low; s.GroupHigh[g] = high; s.GroupFullLow[g] = fullLow; s.GroupFullHigh[g] = fullHigh;
            itemLow = Math.Min(itemLow, low);
            itemHigh = Math.Max(itemHigh, high);
        }

        byte* kBase = p.K + p.ElementSize * (p.KeyOffset + batch * p.KeyStrides[0] + kvHead * p.KeyStrides[1]);
        byte* vBase = p.V + p.ElementSize * (p.ValueOffset + batch * p.ValueStrides[0] + kvHead * p.ValueStrides[1]);
        for (int k0 = itemLow; k0 < itemHigh; k0 += KeyTile)
        {
            int keys = Math.Min(KeyTile, itemHigh - k0);
            int blocked = (keys + CpuFlashTiles.KeyBlock - 1) / CpuFlashTiles.KeyBlock * CpuFlashTiles.KeyBlock;
            // Whole blocks of float32 rows with a contiguous last axis are read in place; anything else is packed.
            float* tileKeys = s.Keys, tileValues = s.Values;
            long keyStride = dqk, valueStride = dvStride;
            if (p.DirectRows && blocked == keys)
            {
                tileKeys = (float*)(kBase + p.ElementSize * k0 * p.KeyStrides[2]);
                tileValues = (float*)(vBase + p.ElementSize * k0 * p.ValueStrides[2]);
                keyStride = p.KeyStrides[2];
                valueStride = p.ValueStrides[2];
            }
            else
            {
                for (int j = 0; j < keys; j++)
                {
                    CpuPacking.ReadRow(s.Keys + (long)j * dqk, kBase + p.ElementSize * (k0 + j) * p.KeyStrides[2], p.KeyStrides[3], dqk, p.ElementType);
                    CpuPacking.ReadRow(s.Values + (long)j * dvStride, vBase + p.ElementSize * (k0 + j) * p.ValueStrides[2], p.ValueStrides[3], dv, p.ElementType);
                }
                new Span<float>(s.Keys + (long)keys * dqk, (blocked - keys) * dqk).Clear();
                new Span<float>(s.Values + (long)keys * dvStride, (blocked - keys) * dvStride).Clear();
            }

            for (int g = 0; g < groups; g++)
            {
                if (k0 >= s.GroupHigh[g] || k0 + keys <= s.GroupLow[g]) continue;
                int first = g * width;
                int real = Math.Min(width, columns - first);
                if (TGroup.Value == 1 && real <= CpuFlashTiles.DotProductMaxColumns)
                    CpuFlashKernels.ScoresByDot<TSimd, T>(s.QueryRows + (long)first * dqk, real, tileKeys, keyStride, dqk, blocked, s.Scores);
                else
                    CpuFlashKernels.Scores<TSimd, T, TGroup>(s.QueryT + (long)g * dqk * width, tileKeys, keyStride, dqk, blocked, s.Scores);
                if (!TModifier.IsIdentity)
                    modifier.Apply(s.Scores, width, k0, blocked, batch, s.QueryIndex + first, s.QueryHead + first);
                if (blocked != keys || k0 < s.GroupFullLow[g] || k0 + keys > s.GroupFullHigh[g])
                {
                    for (int c = 0; c < width; c++)
                    {
                        s.TileStart[c] = Math.Clamp((long)s.Start[first + c] - k0, -1, KeyTile + 1);
                        s.TileEnd[c] = Math.Clamp((long)s.End[first + c] - k0, -1, KeyTile + 1);
                    }
                    CpuFlashKernels.Mask<TSimd, T, TGroup>(s.Scores, blocked, s.TileStart, s.TileEnd);
                }
                CpuFlashKernels.Softmax<TSimd, T, TGroup>(s.Scores, blocked, s.Max + first, s.Sum + first, s.Alpha);
                CpuFlashKernels.Accumulate<TSimd, T, TGroup>(s.Scores, tileValues, valueStride, blocked, dvStride, s.Alpha, s.Output + (long)first * dvStride, real);
            }
        }

        for (int c = 0; c < columns; c++)
        {
            int head = s.QueryHead[c], index = s.QueryIndex[c];
            float sum = s.Sum[c];
            // A row that saw no key has sum 0: zeros out, -inf log-sum-exp, never 0/0. (NaN inputs still give NaN.)
            bool empty = sum == 0;
            float factor = empty ? 0f : 1f / sum;
            CpuPacking.WriteRow(p.O + p.ElementSize * (p.OutputOffset + batch * p.OutputStrides[0] + head * p.OutputStrides[1] + index * p.OutputStrides[2]),
                p.OutputStrides[3], s.Output + (long)c * dvStride, factor, dv, p.ElementType);
            if (p.Lse != null)
                p.Lse[p.LseOffset + batch * p.LseStrides[0] + head * p.LseStrides[1] + index * p.LseStrides[2]] =
                    empty ? float.NegativeInfinity : (s.Max[c] + MathF.Log2(sum)) * Ln2;
        }
    }

    /// <summary>Sizes, pointers and strides of one call, shared read-only by the workers (plus the item counter).</summary>
    private sealed class Plan
    {
        public readonly FlashProblem Problem;
        public readonly int Batch, KeyValueHeads, GroupSize, QueryLength, HeadDim, ValueDim, ValueStride;
        public readonly int GroupVectors, GroupWidth, QueriesPerItem, QueryTiles, Items, MaxColumns;
        public readonly float Log2Scale;
        /// <summary>K and V are float32 with a contiguous last axis and Dv fills whole vectors: tiles need no packing.</summary>
        public readonly bool DirectRows;
        public readonly ElementType ElementType;
        public readonly long ElementSize;
        public readonly byte* Q, K, V, O;
        public readonly float* Lse;
        public readonly long QueryOffset, KeyOffset, ValueOffset, OutputOffset, LseOffset;
        public readonly long[] QueryStrides, KeyStrides, ValueStrides, OutputStrides, LseStrides;
        public readonly long ScratchFloats;
        public int NextItem;

        public Plan(FlashProblem problem, int vectorWidth, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp,
            byte* q, byte* k, byte* v, byte* o, float* lse)
        {
            Problem = problem;
            Batch = problem.Batch;
            KeyValueHeads = problem.KeyValueHeads;
            GroupSize = problem.GroupSize;
            QueryLength = problem.QueryLength;
            HeadDim = problem.HeadDim;
            ValueDim = problem.ValueDim;
            ValueStride = (ValueDim + vectorWidth - 1) / vectorWidth * vectorWidth;
            QueriesPerItem = Math.Min(QueryLength, Math.Max(1, CpuFlashTiles.ColumnsPerItem / GroupSize));
            bool narrow = vectorWidth >= CpuFlashTiles.RowBlock && GroupSize * QueriesPerItem <= CpuFlashTiles.NarrowGroupMaxVectors * vectorWidth;
            GroupVectors = narrow ? 1 : CpuFlashTiles.GroupVectors;
            GroupWidth = GroupVectors * vectorWidth;
            QueryTiles = (QueryLength + QueriesPerItem - 1) / QueriesPerItem;
            Items = Batch * KeyValueHeads * QueryTiles;
            MaxColumns = (GroupSize * QueriesPerItem + GroupWidth - 1) / GroupWidth * GroupWidth;
            Log2Scale = (float)(problem.Scale * (1 / Math.Log(2)));
            ElementType = problem.ElementType;
            ElementSize = ElementType.SizeOf();
            Q = q; K = k; V = v; O = o; Lse = lse;
            (QueryOffset, QueryStrides) = (query.Offset, query.Strides.ToArray());
            (KeyOffset, KeyStrides) = (key.Offset, key.Strides.ToArray());
            (ValueOffset, ValueStrides) = (value.Offset, value.Strides.ToArray());
            (OutputOffset, OutputStrides) = (output.Offset, output.Strides.ToArray());
            (LseOffset, LseStrides) = logSumExp is { } l ? (l.Offset, l.Strides.ToArray()) : (0, [0, 0, 0]);
            DirectRows = ElementType == ElementType.Float32 && KeyStrides[3] == 1 && ValueStrides[3] == 1 && ValueStride == ValueDim;
            ScratchFloats = ScratchLayout.Floats(this);
        }
    }

    /// <summary>Carves one worker's scratch into the item's buffers; every block starts 64-byte aligned.</summary>
    private readonly struct ScratchLayout
    {
        public readonly float* QueryT, QueryRows, Output, Max, Sum, Alpha, Keys, Values, Scores, TileStart, TileEnd, Row;
        public readonly int* Start, End, QueryIndex, QueryHead, GroupLow, GroupHigh, GroupFullLow, GroupFullHigh;
        private readonly float* _end;

        public ScratchLayout(float* scratch, Plan p)
        {
            float* next = scratch;
            int columns = p.MaxColumns, groups = columns / p.GroupWidth;
            QueryT = Take(ref next, (long)columns * p.HeadDim);
            QueryRows = Take(ref next, (long)columns * p.HeadDim);
            Output = Take(ref next, (long)columns * p.ValueStride);
            Max = Take(ref next, columns);
            Sum = Take(ref next, columns);
            Alpha = Take(ref next, p.GroupWidth);
            Keys = Take(ref next, (long)KeyTile * p.HeadDim);
            Values = Take(ref next, (long)KeyTile * p.ValueStride);
            Scores = Take(ref next, (long)KeyTile * p.GroupWidth);
            TileStart = Take(ref next, p.GroupWidth);
            TileEnd = Take(ref next, p.GroupWidth);
            Row = Take(ref next, Math.Max(p.HeadDim, p.ValueDim));
            Start = (int*)Take(ref next, columns);
            End = (int*)Take(ref next, columns);
            QueryIndex = (int*)Take(ref next, columns);
            QueryHead = (int*)Take(ref next, columns);
            GroupLow = (int*)Take(ref next, groups);
            GroupHigh = (int*)Take(ref next, groups);
            GroupFullLow = (int*)Take(ref next, groups);
            GroupFullHigh = (int*)Take(ref next, groups);
            _end = next;
        }

        /// <summary>The floats the layout needs for <paramref name="p"/>, measured by laying it out from address 0.</summary>
        public static long Floats(Plan p) => (long)new ScratchLayout(null, p)._end / sizeof(float);

        private static float* Take(ref float* next, long floats)
        {
            float* block = next;
            next += (floats + 15) & ~15L;
            return block;
        }
    }
}
