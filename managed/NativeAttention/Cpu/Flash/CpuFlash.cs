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
/// <para>
/// Score options: a low-rank bias <c>U W^T</c> rides in the score kernel as extra head-dimension rows (U, times
/// log2 e, under Q^T; W beside K in the packed key tile); softcap, ALiBi and the dense bias are an
/// <see cref="OptionScoreModifier"/> on each score tile (with a softcap, the low-rank rows are a second, separate
/// score pass added after it). Sigmoid scoring turns each tile into log2 sigmoid weights and reuses the online
/// softmax as a stable sum of them; sinks enter only when a row is finished. Without options the kernel is
/// specialised with <see cref="NoScoreModifier"/> and none of this code is compiled in.
/// </para>
/// </remarks>
internal static unsafe class CpuFlash
{
    private const int KeyTile = CpuFlashTiles.KeyTile;

    /// <summary>
    /// Runs a validated flash problem, with every <see cref="FlashOptions"/> option, on <paramref name="threads"/>
    /// workers with the widest vector width the JIT accelerates (512, 256 or 128 bits, else scalar), or with
    /// <paramref name="vectorBits"/> when given (0 = scalar). Rows that see no key get zeros and a log-sum-exp of -inf.
    /// </summary>
    /// <exception cref="NotSupportedException"><paramref name="vectorBits"/> names a width the JIT does not accelerate here.</exception>
    public static void Run(FlashProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp, int threads,
        int? vectorBits = null)
    {
        switch (vectorBits ?? CpuFeatures.VectorBits)
        {
            case 512 when Vector512.IsHardwareAccelerated: Run<Simd512, Vector512<float>>(problem, query, key, value, output, logSumExp, threads); break;
            case 256 when Vector256.IsHardwareAccelerated: Run<Simd256, Vector256<float>>(problem, query, key, value, output, logSumExp, threads); break;
            case 128 when Vector128.IsHardwareAccelerated: Run<Simd128, Vector128<float>>(problem, query, key, value, output, logSumExp, threads); break;
            case 0: Run<SimdScalar, float>(problem, query, key, value, output, logSumExp, threads); break;
            default: ThrowNotSupported_VectorBits(vectorBits); break;
        }
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void ThrowNotSupported_VectorBits(int? bits) =>
        throw new NotSupportedException($"{bits}-bit vectors are not accelerated here (widest: {CpuFeatures.VectorBits}); use 512, 256, 128 or 0 (scalar) up to that width.");

    private static void Run<TSimd, T>(FlashProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp, int threads)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        using var qPin = query.Storage!.Pin();
        using var kPin = key.Storage!.Pin();
        using var vPin = value.Storage!.Pin();
        using var oPin = output.Storage!.Pin();
        using var lPin = logSumExp is { } l ? l.Storage!.Pin() : default;
        var options = problem.Options;
        using var biasPin = options.Bias is { } bias ? bias.Storage!.Pin() : default;
        using var uPin = options.LowRankBias is { } lowRankU ? lowRankU.U.Storage!.Pin() : default;
        using var wPin = options.LowRankBias is { } lowRankW ? lowRankW.W.Storage!.Pin() : default;
        var plan = Plan.Rent();
        try
        {
            plan.Reset(problem, TSimd.Count, query, key, value, output, logSumExp,
                (byte*)qPin.Pointer, (byte*)kPin.Pointer, (byte*)vPin.Pointer, (byte*)oPin.Pointer, (float*)lPin.Pointer,
                (byte*)biasPin.Pointer, (byte*)uPin.Pointer, (byte*)wPin.Pointer);
            CpuWorkers.Run(plan, threads, plan.Items, Work<TSimd, T>);
        }
        finally
        {
            plan.Return();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Work<TSimd, T>(Plan plan) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        float* scratch = CpuScratch.Get(plan.ScratchFloats);
        if (plan.ScoreOptions is { } scoreOptions)
        {
            var s = new ScratchLayout(scratch, plan);
            var modifier = new OptionScoreModifier(scoreOptions, s.ColumnSlope, s.ColumnPosition, s.ColumnBiasRow, s.BiasStrip, s.StripStart, s.StripEnd);
            for (int item = Interlocked.Increment(ref plan.NextItem) - 1; item < plan.Items; item = Interlocked.Increment(ref plan.NextItem) - 1)
            {
                if (plan.GroupVectors == 1) RunItem<TSimd, T, One, OptionScoreModifier>(plan, item, scratch, modifier);
                else RunItem<TSimd, T, Four, OptionScoreModifier>(plan, item, scratch, modifier);
            }
            return;
        }
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
        int dqk = p.HeadDim, dv = p.ValueDim, dvStride = p.ValueStride, scoreDim = p.ScoreDim;

        var s = new ScratchLayout(scratch, p);
        for (int c = 0; c < padded; c++)
        {
            float* qColumn = s.QueryT + (long)(c / width) * scoreDim * width + c % width;
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
                float* qRow = s.QueryRows + (long)c * scoreDim;
                for (int d = 0; d < dqk; d++) qColumn[(long)d * width] = qRow[d] = s.Row[d] * p.Log2Scale;
                if (!TModifier.IsIdentity)
                {
                    modifier.SetColumn(c, batch, head, index);
                    if (p.LowRank) SetLowRankColumn(p, s.Row, qColumn, width, qRow, batch, head, head - kvHead * p.GroupSize, index);
                }
            }
            else
            {
                // Padding columns see every key of every tile, so they never force the masked path; nothing reads them back.
                s.Start[c] = int.MinValue;
                s.End[c] = int.MaxValue;
                s.QueryIndex[c] = -1;
                s.QueryHead[c] = -1;
                for (int d = 0; d < scoreDim; d++) qColumn[(long)d * width] = 0;
                if (!TModifier.IsIdentity) modifier.SetColumn(c, batch, -1, -1);
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
            // Whole blocks of float32 rows with a contiguous last axis are read in place; anything else is packed
            // (keys always when a low-rank bias appends W's rows to them).
            float* tileKeys = s.Keys, tileValues = s.Values;
            long keyStride = scoreDim, valueStride = dvStride;
            if (p.DirectKeys && blocked == keys)
            {
                tileKeys = (float*)(kBase + p.ElementSize * k0 * p.KeyStrides[2]);
                keyStride = p.KeyStrides[2];
            }
            else
            {
                for (int j = 0; j < keys; j++)
                {
                    CpuPacking.ReadRow(s.Keys + (long)j * scoreDim, kBase + p.ElementSize * (k0 + j) * p.KeyStrides[2], p.KeyStrides[3], dqk, p.ElementType);
                    if (!TModifier.IsIdentity && p.LowRank) ReadLowRankKey(p, s.Keys + (long)j * scoreDim + dqk, batch, kvHead, k0 + j);
                }
                new Span<float>(s.Keys + (long)keys * scoreDim, (blocked - keys) * scoreDim).Clear();
            }
            tileValues = CpuPacking.TileRows(vBase, p.ValueStrides[2], p.ValueStrides[3], p.ElementType, p.DirectValues, k0, keys, blocked, dv, s.Values, dvStride, out valueStride);

            for (int g = 0; g < groups; g++)
            {
                if (k0 >= s.GroupHigh[g] || k0 + keys <= s.GroupLow[g]) continue;
                int first = g * width;
                int real = Math.Min(width, columns - first);
                // The low-rank rows this group needs: with W per query head, only the blocks of the heads among its columns.
                int lowRankStart = 0, lowRankRows = scoreDim - dqk;
                if (!TModifier.IsIdentity && p.LowRankBlocks > 1)
                {
                    int firstHead = s.QueryHead[first] - kvHead * p.GroupSize, lastHead = s.QueryHead[first + real - 1] - kvHead * p.GroupSize;
                    lowRankStart = firstHead * p.LowRankRank;
                    lowRankRows = (lastHead - firstHead + 1) * p.LowRankRank;
                }
                // The low-rank rows ride in the dot product when they follow Q's rows directly; after a softcap, or when
                // the group's blocks start further on, they are a second score pass, added after the modifier.
                bool lowRankApart = !TModifier.IsIdentity && p.LowRank && (!p.LowRankFolded || lowRankStart > 0);
                int dotDim = TModifier.IsIdentity ? scoreDim : lowRankApart ? dqk : dqk + lowRankRows;
                bool byDot = TGroup.Value == 1 && real <= CpuFlashTiles.DotProductMaxColumns;
                float* groupQueryT = s.QueryT + (long)g * scoreDim * width, groupQueryRows = s.QueryRows + (long)first * scoreDim;
                if (byDot) CpuFlashKernels.ScoresByDot<TSimd, T>(groupQueryRows, scoreDim, real, tileKeys, keyStride, dotDim, blocked, s.Scores);
                else CpuFlashKernels.Scores<TSimd, T, TGroup>(groupQueryT, tileKeys, keyStride, dotDim, blocked, s.Scores);
                if (!TModifier.IsIdentity)
                {
                    modifier.Apply<TSimd, T>(s.Scores, width, first, k0, blocked, keys, s.GroupHigh[g]);
                    if (lowRankApart)
                    {
                        int offset = dqk + lowRankStart;
                        if (byDot) CpuFlashKernels.ScoresByDot<TSimd, T>(groupQueryRows + offset, scoreDim, real, tileKeys + offset, keyStride, lowRankRows, blocked, s.Extra);
                        else CpuFlashKernels.Scores<TSimd, T, TGroup>(groupQueryT + (long)offset * width, tileKeys + offset, keyStride, lowRankRows, blocked, s.Extra);
                        CpuFlashKernels.AddTile<TSimd, T>(s.Scores, s.Extra, (long)blocked * width);
                    }
                }
                if (blocked != keys || k0 < s.GroupFullLow[g] || k0 + keys > s.GroupFullHigh[g])
                {
                    for (int c = 0; c < width; c++)
                    {
                        s.TileStart[c] = Math.Clamp((long)s.Start[first + c] - k0, -1, KeyTile + 1);
                        s.TileEnd[c] = Math.Clamp((long)s.End[first + c] - k0, -1, KeyTile + 1);
                    }
                    CpuFlashKernels.Mask<TSimd, T, TGroup>(s.Scores, blocked, s.TileStart, s.TileEnd);
                }
                if (!TModifier.IsIdentity && p.Sigmoid) CpuFlashKernels.Log2SigmoidTile<TSimd, T>(s.Scores, (long)blocked * width, p.SigmoidBiasLog2);
                CpuFlashKernels.Softmax<TSimd, T, TGroup>(s.Scores, blocked, s.Max + first, s.Sum + first, s.Alpha);
                CpuFlashKernels.Accumulate<TSimd, T, TGroup>(s.Scores, tileValues, valueStride, blocked, dvStride, s.Alpha, s.Output + (long)first * dvStride, real);
            }
        }

        for (int c = 0; c < columns; c++)
        {
            int head = s.QueryHead[c], index = s.QueryIndex[c];
            float sum = s.Sum[c], max = s.Max[c];
            // A row that saw no key has sum 0: zeros out, -inf log-sum-exp, never 0/0. (NaN inputs still give NaN.)
            bool empty = sum == 0;
            float factor = empty ? 0f : 1f / sum;
            float log2SumExp = max + MathF.Log2(sum);
            if (!TModifier.IsIdentity && !empty)
            {
                if (p.Sigmoid)
                {
                    // The softmax ran on log2 sigmoid weights: the row's total weight is 2^max * sum, unnormalised.
                    factor = float.Exp2(max);
                }
                else if (p.SinksLog2 is { } sinks)
                {
                    // The sink joins the denominator only: rescale both to the larger of the row max and the sink.
                    float top = Math.Max(max, sinks[head]);
                    float rowScale = float.Exp2(max - top);
                    float total = sum * rowScale + float.Exp2(sinks[head] - top);
                    factor = rowScale / total;
                    log2SumExp = top + MathF.Log2(total);
                }
            }
            CpuPacking.WriteRow(p.O + p.ElementSize * (p.OutputOffset + batch * p.OutputStrides[0] + head * p.OutputStrides[1] + index * p.OutputStrides[2]),
                p.OutputStrides[3], s.Output + (long)c * dvStride, factor, dv, p.ElementType);
            if (p.Lse != null)
                p.Lse[p.LseOffset + batch * p.LseStrides[0] + head * p.LseStrides[1] + index * p.LseStrides[2]] =
                    empty ? float.NegativeInfinity : log2SumExp * MathConstants.Ln2;
        }
    }

    /// <summary>
    /// Writes column <paramref name="queryT"/>'s low-rank rows: <c>U[b, h, i] log2(e)</c> into the block of the
    /// column's query head (block 0 when W is shared by all heads), zeros in the other heads' blocks, and the same
    /// into the column's query row. With the keys' rows extended by W's, the dot product then adds <c>U_i . W_j</c>.
    /// </summary>
    private static void SetLowRankColumn(Plan p, float* row, float* queryT, int width, float* queryRow, int batch, int head, int groupHead, int index)
    {
        int rank = p.LowRankRank, extra = p.ScoreDim - p.HeadDim;
        int block = p.LowRankBlocks == 1 ? 0 : groupHead;
        CpuPacking.ReadRow(row, p.U + p.USize * (p.UOffset + batch * p.UStrides[0] + head * p.UStrides[1] + index * p.UStrides[2]), p.UStrides[3], rank, p.UType);
        float* extQueryT = queryT + (long)p.HeadDim * width, extRow = queryRow + p.HeadDim;
        for (int e = 0; e < extra; e++)
        {
            int t = e - block * rank;
            extQueryT[(long)e * width] = extRow[e] = (uint)t < (uint)rank ? row[t] * MathConstants.Log2E : 0f;
        }
    }

    /// <summary>Appends key <paramref name="keyIndex"/>'s low-rank rows <c>W[b, h, j]</c>, one block per query head of the group (or one shared block).</summary>
    private static void ReadLowRankKey(Plan p, float* destination, int batch, int kvHead, int keyIndex)
    {
        int rank = p.LowRankRank;
        for (int block = 0; block < p.LowRankBlocks; block++)
        {
            int head = kvHead * p.GroupSize + block;
            CpuPacking.ReadRow(destination + block * rank, p.W + p.WSize * (p.WOffset + batch * p.WStrides[0] + head * p.WStrides[1] + keyIndex * p.WStrides[2]),
                p.WStrides[3], rank, p.WType);
        }
    }

    /// <summary>Sizes, pointers and strides of one call, shared read-only by the workers (plus the item counter).</summary>
    private sealed class Plan
    {
        public FlashProblem Problem = null!;
        public int Batch, KeyValueHeads, GroupSize, QueryLength, HeadDim, ValueDim, ValueStride;
        public int GroupVectors, GroupWidth, QueriesPerItem, QueryTiles, Items, MaxColumns;
        public float Log2Scale;
        /// <summary>K is float32 with a contiguous last axis and needs no low-rank rows appended: key tiles are read in place.</summary>
        public bool DirectKeys;
        /// <summary>V is float32 with a contiguous last axis and Dv fills whole vectors: value tiles are read in place.</summary>
        public bool DirectValues;
        /// <summary>
        /// Floats per query and packed key row in the score kernel: Dqk, plus <c>LowRankBlocks x rank</c> low-rank rows
        /// (one block per query head of a group when W differs per head, since a key row serves every head of its group).
        /// </summary>
        public int ScoreDim;
        /// <summary>Softcap, ALiBi or the dense bias as a score modifier, or null when none of the options is set.</summary>
        public ScoreOptionPlan? ScoreOptions;
        /// <summary>Any option beyond scale and masking is set: the kernel runs with <see cref="OptionScoreModifier"/>.</summary>
        public bool HasOptions;
        public bool LowRank, LowRankFolded, Sigmoid;
        public int LowRankRank, LowRankBlocks;
        public float SigmoidBiasLog2;
        /// <summary>Attention sinks times log2(e), per query head; null without sinks.</summary>
        public float[]? SinksLog2;
        /// <summary>The storage of <see cref="SinksLog2"/>, kept for the next call of the same head count.</summary>
        private float[]? _sinksBuffer;
        /// <summary>The storage of <see cref="ScoreOptions"/>, kept and refilled by the next call with options.</summary>
        private ScoreOptionPlan? _scoreOptions;
        public byte* U, W;
        public ElementType UType, WType;
        public long USize, WSize, UOffset, WOffset;
        /// <summary>Strides of U and W in elements; broadcast batch and head axes have stride 0.</summary>
        public readonly long[] UStrides = new long[4], WStrides = new long[4];
        public ElementType ElementType;
        public long ElementSize;
        public byte* Q, K, V, O;
        public float* Lse;
        public long QueryOffset, KeyOffset, ValueOffset, OutputOffset, LseOffset;
        public readonly long[] QueryStrides = new long[4], KeyStrides = new long[4], ValueStrides = new long[4], OutputStrides = new long[4], LseStrides = new long[3];
        public long ScratchFloats;
        public int NextItem;

        /// <summary>This thread's idle plan (<see cref="ThreadIdle{T}"/>), or a new one; give it back with <see cref="Return"/>.</summary>
        public static Plan Rent() => ThreadIdle<Plan>.Rent();

        /// <summary>Keeps the plan for this thread's next call, without the references of the finished one.</summary>
        public void Return()
        {
            (Problem, ScoreOptions) = (null!, null);
            ThreadIdle<Plan>.Return(this);
        }

        /// <summary>Fills every field for one call (nothing of a previous call survives).</summary>
        public void Reset(FlashProblem problem, int vectorWidth, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp,
            byte* q, byte* k, byte* v, byte* o, float* lse, byte* bias, byte* u, byte* w)
        {
            NextItem = 0;
            (LowRank, LowRankFolded, LowRankRank, LowRankBlocks, UType, WType, USize, WSize, UOffset, WOffset) = (false, false, 0, 0, default, default, 0, 0, 0, 0);
            U = W = null;
            (ScoreOptions, HasOptions, SinksLog2) = (null, false, null);
            Problem = problem;
            Batch = problem.Batch;
            KeyValueHeads = problem.KeyValueHeads;
            GroupSize = problem.GroupSize;
            QueryLength = problem.QueryLength;
            HeadDim = problem.HeadDim;
            ValueDim = problem.ValueDim;
            ValueStride = (ValueDim + vectorWidth - 1) / vectorWidth * vectorWidth;
            (QueriesPerItem, GroupVectors, GroupWidth, QueryTiles, MaxColumns) = CpuFlashTiles.Tiling(QueryLength, GroupSize, vectorWidth);
            Items = Batch * KeyValueHeads * QueryTiles;
            Log2Scale = (float)(problem.Scale * MathConstants.Log2EDouble);
            ElementType = problem.ElementType;
            ElementSize = ElementType.SizeOf();
            Q = q; K = k; V = v; O = o; Lse = lse;
            (QueryOffset, KeyOffset, ValueOffset, OutputOffset) = (query.Offset, key.Offset, value.Offset, output.Offset);
            query.Strides.CopyTo(QueryStrides);
            key.Strides.CopyTo(KeyStrides);
            value.Strides.CopyTo(ValueStrides);
            output.Strides.CopyTo(OutputStrides);
            LseOffset = logSumExp is { } l ? l.Offset : 0;
            if (logSumExp is { } lseView) lseView.Strides.CopyTo(LseStrides);
            else Array.Clear(LseStrides);
            var options = problem.Options;
            ScoreDim = HeadDim;
            if (options.LowRankBias is { } lowRank)
            {
                LowRank = true;
                // With a softcap the bias must be added after tanh, so it cannot ride in the dot product.
                LowRankFolded = options.Softcap == 0;
                LowRankRank = lowRank.U.Shape[3];
                LowRankBlocks = lowRank.W.Shape[1] == 1 ? 1 : GroupSize;
                ScoreDim = HeadDim + LowRankBlocks * LowRankRank;
                U = u;
                W = w;
                (UType, USize, UOffset) = (lowRank.U.ElementType, lowRank.U.ElementType.SizeOf(), lowRank.U.Offset);
                (WType, WSize, WOffset) = (lowRank.W.ElementType, lowRank.W.ElementType.SizeOf(), lowRank.W.Offset);
                BroadcastStrides(lowRank.U, UStrides);
                BroadcastStrides(lowRank.W, WStrides);
            }
            Sigmoid = options.ScoreFunction == ScoreFunction.Sigmoid;
            SigmoidBiasLog2 = options.SigmoidBias * MathConstants.Log2E;
            if (options.Sinks is { } sinks)
            {
                // Sinks are [Hq] float32 host tensors (validated); read element by element, into a kept buffer.
                var buffer = _sinksBuffer is { } kept && kept.Length == problem.QueryHeads ? kept : _sinksBuffer = new float[problem.QueryHeads];
                using var pin = sinks.Storage!.Pin();
                float* sink = (float*)pin.Pointer + sinks.Offset;
                for (int h = 0; h < buffer.Length; h++) buffer[h] = (float)(sink[h * sinks.Strides[0]] * MathConstants.Log2EDouble);
                SinksLog2 = buffer;
            }
            if (options.Softcap > 0 || options.AlibiSlopes is not null || options.Bias is not null || LowRank || Sigmoid || SinksLog2 is not null)
            {
                HasOptions = true;
                ScoreOptions = (_scoreOptions ??= new ScoreOptionPlan()).Fill(problem, bias);
            }
            DirectKeys = ElementType == ElementType.Float32 && KeyStrides[3] == 1 && !LowRank;
            DirectValues = ElementType == ElementType.Float32 && ValueStrides[3] == 1 && ValueStride == ValueDim;
            ScratchFloats = ScratchLayout.Floats(this);
        }

        private static void BroadcastStrides(in TensorView view, long[] strides) =>
            (strides[0], strides[1], strides[2], strides[3]) = (view.Shape[0] == 1 ? 0 : view.Strides[0], view.Shape[1] == 1 ? 0 : view.Strides[1], view.Strides[2], view.Strides[3]);
    }

    /// <summary>Carves one worker's scratch into the item's buffers; every block starts 64-byte aligned.</summary>
    private readonly struct ScratchLayout
    {
        public readonly float* QueryT, QueryRows, Output, Max, Sum, Alpha, Keys, Values, Scores, Extra, TileStart, TileEnd, Row, ColumnSlope, ColumnPosition, BiasStrip;
        public readonly byte** ColumnBiasRow;
        public readonly int* StripStart, StripEnd, Start, End, QueryIndex, QueryHead, GroupLow, GroupHigh, GroupFullLow, GroupFullHigh;
        private readonly float* _end;

        public ScratchLayout(float* scratch, Plan p)
        {
            float* next = scratch;
            int columns = p.MaxColumns, groups = columns / p.GroupWidth;
            QueryT = CpuScratch.Take(ref next, (long)columns * p.ScoreDim);
            QueryRows = CpuScratch.Take(ref next, (long)columns * p.ScoreDim);
            Output = CpuScratch.Take(ref next, (long)columns * p.ValueStride);
            Max = CpuScratch.Take(ref next, columns);
            Sum = CpuScratch.Take(ref next, columns);
            Alpha = CpuScratch.Take(ref next, p.GroupWidth);
            Keys = CpuScratch.Take(ref next, (long)KeyTile * p.ScoreDim);
            Values = CpuScratch.Take(ref next, (long)KeyTile * p.ValueStride);
            Scores = CpuScratch.Take(ref next, (long)KeyTile * p.GroupWidth);
            Extra = CpuScratch.Take(ref next, p.LowRank && (!p.LowRankFolded || p.LowRankBlocks > 1) ? (long)KeyTile * p.GroupWidth : 0);
            TileStart = CpuScratch.Take(ref next, p.GroupWidth);
            TileEnd = CpuScratch.Take(ref next, p.GroupWidth);
            Row = CpuScratch.Take(ref next, Math.Max(Math.Max(p.HeadDim, p.ValueDim), p.LowRankRank));
            ColumnSlope = CpuScratch.Take(ref next, p.HasOptions ? columns : 0);
            ColumnPosition = CpuScratch.Take(ref next, p.HasOptions ? columns : 0);
            ColumnBiasRow = (byte**)CpuScratch.Take(ref next, p.HasOptions ? columns * (long)(sizeof(nint) / sizeof(float)) : 0);
            int stripKeys = p.ScoreOptions?.BiasStripKeys ?? 0;
            BiasStrip = CpuScratch.Take(ref next, (long)columns * stripKeys);
            StripStart = (int*)CpuScratch.Take(ref next, stripKeys > 0 ? columns : 0);
            StripEnd = (int*)CpuScratch.Take(ref next, stripKeys > 0 ? columns : 0);
            Start = (int*)CpuScratch.Take(ref next, columns);
            End = (int*)CpuScratch.Take(ref next, columns);
            QueryIndex = (int*)CpuScratch.Take(ref next, columns);
            QueryHead = (int*)CpuScratch.Take(ref next, columns);
            GroupLow = (int*)CpuScratch.Take(ref next, groups);
            GroupHigh = (int*)CpuScratch.Take(ref next, groups);
            GroupFullLow = (int*)CpuScratch.Take(ref next, groups);
            GroupFullHigh = (int*)CpuScratch.Take(ref next, groups);
            _end = next;
        }

        /// <summary>The floats the layout needs for <paramref name="p"/>, measured by laying it out from address 0.</summary>
        public static long Floats(Plan p) => (long)new ScratchLayout(null, p)._end / sizeof(float);
    }
}
