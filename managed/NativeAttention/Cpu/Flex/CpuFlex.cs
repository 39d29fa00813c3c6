// CPU Flex attention: the flash micro-kernels specialised by the JIT for the user's score and mask structs.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NativeAttention.Cpu;

/// <summary>
/// Computes Flex attention (<see cref="FlexProblem"/>) in float32 whatever the storage type, with the user's
/// <see cref="IScoreMod"/> and <see cref="IMaskMod"/> structs as type arguments, so that the JIT compiles one kernel
/// per pair of types with both calls inlined.
/// </summary>
/// <remarks>
/// Items, column groups, tiles and the online softmax are those of <see cref="CpuFlash"/> (an item is one key/value
/// head's query heads over a run of queries, as columns; each packed K/V tile serves every column group). An item
/// expands the block-mask rows its columns use into dense kind rows (a byte per key block) in its scratch, so memory
/// does not grow with the mask's size. Per key tile and column group the block mask decides: a tile every row of the
/// group lists as empty is skipped (a tile no group needs is not even packed), one every row lists as full runs with no
/// mask call, and a partial one first evaluates
/// <see cref="IMaskMod.Visible"/> for each (column, key) whose block is partial, into a byte tile: a tile nothing sees
/// is skipped before its scores are formed, one everything sees runs unmasked. Without a block mask every tile is
/// partial. Scores leave the score kernel in log2 units (<c>scale log2(e) q.k</c>); the score modification sees
/// natural-log scores, <c>s ln 2</c>, and its result is brought back times <c>log2(e)</c>. A struct that implements
/// <see cref="IScoreModVector"/> is called eight columns at a time. The mask is applied after the score modification,
/// so a hidden pair is hidden whatever the modification returns. Results do not depend on the thread count.
/// <para>
/// An exception thrown by a modification ends the call as a <see cref="FlexModificationException"/> naming the struct,
/// the role and the tile being computed; the output is then partly written.
/// </para>
/// </remarks>
internal static unsafe class CpuFlex
{
    private const int KeyTile = CpuFlashTiles.KeyTile;
    private const byte Empty = 0, Partial = 1, Full = 2;
    private const int StageNone = 0, StageScore = 1, StageMask = 2;

    /// <summary>Runs a validated flex problem on <paramref name="threads"/> workers at the widest vector width (or <paramref name="vectorBits"/>).</summary>
    public static void Run<TScore, TMask>(FlexProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp,
        TScore scoreMod, TMask maskMod, int threads, int? vectorBits = null)
        where TScore : struct, IScoreMod where TMask : struct, IMaskMod
    {
        switch (vectorBits ?? CpuFeatures.VectorBits)
        {
            case 512 when Vector512.IsHardwareAccelerated: Run<Simd512, Vector512<float>, TScore, TMask>(problem, query, key, value, output, logSumExp, scoreMod, maskMod, threads); break;
            case 256 when Vector256.IsHardwareAccelerated: Run<Simd256, Vector256<float>, TScore, TMask>(problem, query, key, value, output, logSumExp, scoreMod, maskMod, threads); break;
            case 128 when Vector128.IsHardwareAccelerated: Run<Simd128, Vector128<float>, TScore, TMask>(problem, query, key, value, output, logSumExp, scoreMod, maskMod, threads); break;
            case 0: Run<SimdScalar, float, TScore, TMask>(problem, query, key, value, output, logSumExp, scoreMod, maskMod, threads); break;
            default:
                throw new NotSupportedException($"{vectorBits}-bit vectors are not accelerated here (widest: {CpuFeatures.VectorBits}); use 512, 256, 128 or 0 (scalar) up to that width.");
        }
    }

    private static void Run<TSimd, T, TScore, TMask>(FlexProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp,
        TScore scoreMod, TMask maskMod, int threads)
        where TSimd : struct, ISimd<T> where T : unmanaged where TScore : struct, IScoreMod where TMask : struct, IMaskMod
    {
        using var qPin = query.Storage!.Pin();
        using var kPin = key.Storage!.Pin();
        using var vPin = value.Storage!.Pin();
        using var oPin = output.Storage!.Pin();
        using var lPin = logSumExp is { } l ? l.Storage!.Pin() : default;
        var plan = ThreadIdle<Plan<TScore, TMask>>.Rent();
        try
        {
            plan.Reset(problem, TSimd.Count, query, key, value, output, logSumExp,
                (byte*)qPin.Pointer, (byte*)kPin.Pointer, (byte*)vPin.Pointer, (byte*)oPin.Pointer, (float*)lPin.Pointer, scoreMod, maskMod);
            RunWorkers(plan, threads, plan.Items, Workers<TSimd, T, TScore, TMask>.Work);
        }
        finally
        {
            plan.Return();
        }
    }

    /// <summary>
    /// <see cref="CpuWorkers.Run"/>, with a modification's exception surfacing as itself also when the call ran under the
    /// thread-pool fallback (a concurrent or nested call), which wraps it in an <see cref="AggregateException"/>.
    /// </summary>
    private static void RunWorkers<TPlan>(TPlan plan, int threads, int items, Action<TPlan> work)
    {
        try
        {
            CpuWorkers.Run(plan, threads, items, work);
        }
        catch (AggregateException e) when (e.Flatten().InnerExceptions is [FlexModificationException inner, ..])
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(inner);
        }
    }

    /// <summary>The work loop as a delegate, created once per instantiation (a method group would allocate one per call).</summary>
    private static class Workers<TSimd, T, TScore, TMask>
        where TSimd : struct, ISimd<T> where T : unmanaged where TScore : struct, IScoreMod where TMask : struct, IMaskMod
    {
        public static readonly Action<Plan<TScore, TMask>> Work = Work<TSimd, T, TScore, TMask>;
    }

    /// <summary>What a worker is doing, for the message when a modification throws.</summary>
    private struct Progress
    {
        public int Stage, Batch, KvHead, Query0, Queries, Key0, Keys;

        public readonly FlexModificationException Wrap<TScore, TMask>(Exception e, int groupSize) =>
            new(Stage == StageScore ? typeof(TScore) : typeof(TMask), Stage == StageScore ? "score" : "mask",
                $"while computing batch {Batch}, query heads {KvHead * groupSize}..{(KvHead + 1) * groupSize - 1}, queries {Query0}..{Query0 + Queries - 1}, keys {Key0}..{Key0 + Keys - 1}", e);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Work<TSimd, T, TScore, TMask>(Plan<TScore, TMask> plan)
        where TSimd : struct, ISimd<T> where T : unmanaged where TScore : struct, IScoreMod where TMask : struct, IMaskMod
    {
        float* scratch = CpuScratch.Get(plan.ScratchFloats);
        var progress = new Progress();
        try
        {
            for (int item = Interlocked.Increment(ref plan.NextItem) - 1; item < plan.Items; item = Interlocked.Increment(ref plan.NextItem) - 1)
            {
                if (plan.GroupVectors == 1) RunItem<TSimd, T, One, TScore, TMask>(plan, item, scratch, ref progress);
                else RunItem<TSimd, T, Four, TScore, TMask>(plan, item, scratch, ref progress);
            }
        }
        catch (Exception e) when (progress.Stage != StageNone)
        {
            // Only the modifications run under a stage: a fault of the kernel itself propagates unchanged.
            throw progress.Wrap<TScore, TMask>(e, plan.GroupSize);
        }
    }

    /// <summary>One item: every query head of one key/value head over one run of queries, start to finish.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RunItem<TSimd, T, TGroup, TScore, TMask>(Plan<TScore, TMask> p, int item, float* scratch, ref Progress progress)
        where TSimd : struct, ISimd<T> where T : unmanaged where TGroup : struct, IConstant where TScore : struct, IScoreMod where TMask : struct, IMaskMod
    {
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
        bool hasKinds = p.Mask is not null;
        (progress.Batch, progress.KvHead, progress.Query0, progress.Queries) = (batch, kvHead, q0, queries);

        var s = ScratchLayout.Of(scratch, p);
        for (int c = 0; c < padded; c++)
        {
            float* qColumn = s.QueryT + (long)(c / width) * dqk * width + c % width;
            if (c < columns)
            {
                int head = kvHead * p.GroupSize + c / queries, index = q0 + c % queries;
                s.QueryHead[c] = head;
                s.QueryIndex[c] = index;
                s.MaskRow[c] = hasKinds ? ItemKindRow(p, s, batch, head, index, c == 0) : 0;
                CpuPacking.ReadRow(s.Row, p.Q + p.ElementSize * (p.QueryOffset + batch * p.QueryStrides[0] + head * p.QueryStrides[1] + index * p.QueryStrides[2]),
                    p.QueryStrides[3], dqk, p.ElementType);
                float* qRow = s.QueryRows + (long)c * dqk;
                for (int d = 0; d < dqk; d++) qColumn[(long)d * width] = qRow[d] = s.Row[d] * p.Log2Scale;
            }
            else
            {
                // Padding columns repeat column 0's indices, so a vector score modification reads valid entries; their
                // scores are zeros and nothing reads them back.
                s.QueryHead[c] = s.QueryHead[0];
                s.QueryIndex[c] = s.QueryIndex[0];
                s.MaskRow[c] = -1;
                for (int d = 0; d < dqk; d++) qColumn[(long)d * width] = 0;
            }
            s.Max[c] = float.NegativeInfinity;
            s.Sum[c] = 0;
            new Span<float>(s.Output + (long)c * dvStride, dvStride).Clear();
        }

        // Per group: its distinct mask rows (adjacent columns mostly share one), and the item's key range: from the
        // first to the last block any of its rows lists.
        int itemLow = 0, itemHigh = p.KeyLength;
        if (hasKinds)
        {
            int firstBlock = int.MaxValue, lastBlock = -1;
            for (int g = 0; g < groups; g++)
            {
                int count = 0;
                int* rows = s.GroupRows + (long)g * width;
                for (int c = g * width; c < Math.Min(columns, (g + 1) * width); c++)
                {
                    int row = s.MaskRow[c];
                    if (count > 0 && rows[count - 1] == row) continue;
                    rows[count++] = row;
                    byte* kinds = s.KindRows + row;
                    for (int kb = 0; kb < p.KeyBlocks; kb++)
                        if (kinds[kb] != Empty) { firstBlock = Math.Min(firstBlock, kb); break; }
                    for (int kb = p.KeyBlocks - 1; kb >= 0; kb--)
                        if (kinds[kb] != Empty) { lastBlock = Math.Max(lastBlock, kb); break; }
                }
                s.GroupRowCount[g] = count;
            }
            if (lastBlock < 0) itemHigh = 0;
            else
            {
                itemLow = firstBlock * p.KeyBlockSize;
                itemHigh = (int)Math.Min(p.KeyLength, ((long)lastBlock + 1) * p.KeyBlockSize);
            }
        }

        byte* kBase = p.K + p.ElementSize * (p.KeyOffset + batch * p.KeyStrides[0] + kvHead * p.KeyStrides[1]);
        byte* vBase = p.V + p.ElementSize * (p.ValueOffset + batch * p.ValueStrides[0] + kvHead * p.ValueStrides[1]);
        for (int k0 = itemLow / KeyTile * KeyTile; k0 < itemHigh; k0 += KeyTile)
        {
            int keys = Math.Min(KeyTile, p.KeyLength - k0);
            int blocked = (keys + CpuFlashTiles.KeyBlock - 1) / CpuFlashTiles.KeyBlock * CpuFlashTiles.KeyBlock;
            (progress.Key0, progress.Keys) = (k0, keys);
            bool anyGroup = false;
            for (int g = 0; g < groups; g++)
            {
                byte kind = hasKinds ? Classify(p, s.KindRows, s.GroupRows + (long)g * width, s.GroupRowCount[g], k0, keys)
                    : typeof(TMask) == typeof(NoMask) ? Full : Partial;
                s.GroupKind[g] = kind;
                anyGroup |= kind != Empty;
            }
            if (!anyGroup) continue;

            // Whole blocks of float32 rows with a contiguous last axis are read in place; anything else is packed.
            float* tileKeys = CpuPacking.TileRows(kBase, p.KeyStrides[2], p.KeyStrides[3], p.ElementType, p.DirectKeys, k0, keys, blocked, dqk, s.Keys, dqk, out long keyStride);
            float* tileValues = CpuPacking.TileRows(vBase, p.ValueStrides[2], p.ValueStrides[3], p.ElementType, p.DirectValues, k0, keys, blocked, dv, s.Values, dvStride, out long valueStride);

            for (int g = 0; g < groups; g++)
            {
                byte kind = s.GroupKind[g];
                if (kind == Empty) continue;
                int first = g * width;
                int real = Math.Min(width, columns - first);
                bool masked = false;
                if (kind == Partial)
                {
                    progress.Stage = StageMask;
                    int visible = EvaluateMask(p, s, first, real, width, batch, k0, keys);
                    progress.Stage = StageNone;
                    if (visible == 0) continue;
                    masked = visible < real * keys;
                }
                float* groupQueryT = s.QueryT + (long)g * dqk * width, groupQueryRows = s.QueryRows + (long)first * dqk;
                if (TGroup.Value == 1 && real <= CpuFlashTiles.DotProductMaxColumns)
                    CpuFlashKernels.ScoresByDot<TSimd, T>(groupQueryRows, dqk, real, tileKeys, keyStride, dqk, blocked, s.Scores);
                else CpuFlashKernels.Scores<TSimd, T, TGroup>(groupQueryT, tileKeys, keyStride, dqk, blocked, s.Scores);
                if (typeof(TScore) != typeof(NoScoreMod))
                {
                    progress.Stage = StageScore;
                    if (typeof(TScore).IsAssignableTo(typeof(IScoreModVector)) && width % 8 == 0)
                        ApplyScoreVector(p.ScoreMod, s.Scores, width, real, s.QueryHead + first, s.QueryIndex + first, batch, k0, keys);
                    else ApplyScore(p.ScoreMod, s.Scores, width, real, s.QueryHead + first, s.QueryIndex + first, batch, k0, keys);
                    progress.Stage = StageNone;
                }
                if (masked) ApplyMask(s.Scores, s.Visible, width, real, keys);
                if (blocked != keys)
                {
                    // Padding keys of a short last tile.
                    T negative = TSimd.NegativeInfinity;
                    for (long n = (long)keys * width; n < (long)blocked * width; n += TSimd.Count) TSimd.Store(s.Scores + n, negative);
                }
                CpuFlashKernels.Softmax<TSimd, T, TGroup>(s.Scores, blocked, s.Max + first, s.Sum + first, s.Alpha);
                CpuFlashKernels.Accumulate<TSimd, T, TGroup>(s.Scores, tileValues, valueStride, blocked, dvStride, s.Alpha, s.Output + (long)first * dvStride, real);
            }
        }

        for (int c = 0; c < columns; c++)
        {
            int head = s.QueryHead[c], index = s.QueryIndex[c];
            float sum = s.Sum[c], max = s.Max[c];
            // A row that saw no key has sum 0: zeros out, -inf log-sum-exp, never 0/0.
            bool empty = sum == 0;
            float factor = empty ? 0f : 1f / sum;
            CpuPacking.WriteRow(p.O + p.ElementSize * (p.OutputOffset + batch * p.OutputStrides[0] + head * p.OutputStrides[1] + index * p.OutputStrides[2]),
                p.OutputStrides[3], s.Output + (long)c * dvStride, factor, dv, p.ElementType);
            if (p.Lse != null)
                p.Lse[p.LseOffset + batch * p.LseStrides[0] + head * p.LseStrides[1] + index * p.LseStrides[2]] =
                    empty ? float.NegativeInfinity : (max + MathF.Log2(sum)) * MathConstants.Ln2;
        }
    }

    /// <summary>
    /// The offset in <c>s.KindRows</c> of the dense kind row (one byte per key block: empty, partial, full) of the mask row
    /// of (batch, head, query), expanded from the block mask's lists the first time the item needs that row;
    /// <paramref name="firstColumn"/> starts a new item.
    /// </summary>
    private static int ItemKindRow<TScore, TMask>(Plan<TScore, TMask> p, in ScratchLayout s, int batch, int head, int queryIndex, bool firstColumn)
        where TScore : struct, IScoreMod where TMask : struct, IMaskMod
    {
        if (firstColumn) *s.ItemRowCount = 0;
        int row = p.MaskRow(batch, head, queryIndex), count = *s.ItemRowCount;
        for (int n = count - 1; n >= 0; n--)
            if (s.ItemRows[n] == row) return n * p.KeyBlocks;
        var mask = p.Mask!;
        byte* kinds = s.KindRows + (long)count * p.KeyBlocks;
        new Span<byte>(kinds, p.KeyBlocks).Clear();
        int slots = row * mask.MaxBlocksPerRow;
        var partialIndices = mask.PartialIndices.Span;
        for (int n = 0, end = mask.PartialCounts.Span[row]; n < end; n++) kinds[partialIndices[slots + n]] = Partial;
        if (!mask.FullCounts.IsEmpty)
        {
            var fullIndices = mask.FullIndices.Span;
            for (int n = 0, end = mask.FullCounts.Span[row]; n < end; n++) kinds[fullIndices[slots + n]] = Full;
        }
        s.ItemRows[count] = row;
        *s.ItemRowCount = count + 1;
        return count * p.KeyBlocks;
    }

    /// <summary>The kind of a tile for a group: empty when every row lists none of its blocks, full when every row lists all of them as full.</summary>
    private static byte Classify<TScore, TMask>(Plan<TScore, TMask> p, byte* kindRows, int* rows, int rowCount, int k0, int keys)
        where TScore : struct, IScoreMod where TMask : struct, IMaskMod
    {
        int kb0 = k0 / p.KeyBlockSize, kb1 = (k0 + keys - 1) / p.KeyBlockSize;
        bool any = false, allFull = true;
        for (int r = 0; r < rowCount; r++)
        {
            byte* kinds = kindRows + rows[r];
            for (int kb = kb0; kb <= kb1; kb++)
            {
                byte kind = kinds[kb];
                any |= kind != Empty;
                allFull &= kind == Full;
            }
        }
        return !any ? Empty : allFull ? Full : Partial;
    }

    /// <summary>
    /// Writes <c>visible[j * width + c]</c> (1 or 0) for the group's real columns and the tile's keys, calling the
    /// mask modification only for pairs in partial blocks, and returns how many pairs are visible.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int EvaluateMask<TScore, TMask>(Plan<TScore, TMask> p, in ScratchLayout s, int first, int real, int width, int batch, int k0, int keys)
        where TScore : struct, IScoreMod where TMask : struct, IMaskMod
    {
        var mask = p.MaskMod;
        byte* visible = s.Visible;
        int count = 0;
        bool hasKinds = p.Mask is not null;
        int blockSize = hasKinds ? p.KeyBlockSize : int.MaxValue;
        for (int c = 0; c < real; c++)
        {
            int head = s.QueryHead[first + c], query = s.QueryIndex[first + c];
            byte* kinds = hasKinds ? s.KindRows + s.MaskRow[first + c] : null;
            byte* v = visible + c;
            // Runs of keys inside one key block share its kind.
            for (int j = 0; j < keys;)
            {
                int key = k0 + j;
                int runEnd = hasKinds ? Math.Min(keys, (key / blockSize + 1) * blockSize - k0) : keys;
                byte kind = hasKinds ? kinds[key / blockSize] : Partial;
                if (kind == Partial && typeof(TMask) != typeof(NoMask))
                {
                    for (; j < runEnd; j++)
                    {
                        byte seen = mask.Visible(batch, head, query, k0 + j) ? (byte)1 : (byte)0;
                        v[(long)j * width] = seen;
                        count += seen;
                    }
                }
                else
                {
                    byte seen = kind == Empty ? (byte)0 : (byte)1;
                    for (; j < runEnd; j++) v[(long)j * width] = seen;
                    count += seen * (runEnd - (key - k0));
                }
            }
        }
        return count;
    }

    /// <summary>Hides every pair of the tile whose visibility byte is 0 (-inf scores).</summary>
    private static void ApplyMask(float* scores, byte* visible, int width, int real, int keys)
    {
        for (int j = 0; j < keys; j++)
        {
            float* row = scores + (long)j * width;
            byte* v = visible + (long)j * width;
            for (int c = 0; c < real; c++)
                if (v[c] == 0) row[c] = float.NegativeInfinity;
        }
    }

    /// <summary>The score modification one pair at a time, on the tile's real keys and columns (log2 in and out).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ApplyScore<TScore>(TScore mod, float* scores, int width, int real, int* heads, int* queries, int batch, int k0, int keys)
        where TScore : struct, IScoreMod
    {
        for (int c = 0; c < real; c++)
        {
            int head = heads[c], query = queries[c];
            float* e = scores + c;
            for (int j = 0; j < keys; j++, e += width)
                *e = mod.Score(*e * MathConstants.Ln2, batch, head, query, k0 + j) * MathConstants.Log2E;
        }
    }

    /// <summary>The score modification's vector form, eight columns at a time, on the tile's real keys (log2 in and out).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ApplyScoreVector<TScore>(TScore mod, float* scores, int width, int real, int* heads, int* queries, int batch, int k0, int keys)
        where TScore : struct, IScoreMod
    {
        var ln2 = Vector256.Create(MathConstants.Ln2);
        var log2E = Vector256.Create(MathConstants.Log2E);
        for (int v = 0; v < real; v += 8)
        {
            var head = Vector256.Load(heads + v);
            var query = Vector256.Load(queries + v);
            float* e = scores + v;
            for (int j = 0; j < keys; j++, e += width)
                (((IScoreModVector)mod).Score(Vector256.Load(e) * ln2, batch, head, query, k0 + j) * log2E).Store(e);
        }
    }

    /// <summary>
    /// Evaluates <paramref name="maskMod"/> for every element of every <c>queryBlockSize x keyBlockSize</c> block of
    /// <paramref name="batch"/> x <paramref name="heads"/> (batch index b and head index h as passed to the mask) on
    /// <paramref name="threads"/> workers, and returns the block mask: blocks whose elements are all visible full, those
    /// with some partial, the rest empty (not listed). A modification that throws ends the call with a
    /// <see cref="FlexModificationException"/> naming the struct and the element.
    /// </summary>
    public static FlexBlockMask CreateBlockMask<TMask>(TMask maskMod, int batch, int heads, int queryLength, int keyLength, int queryBlockSize, int keyBlockSize, int threads)
        where TMask : struct, IMaskMod
    {
        var plan = new MaskPlan<TMask>
        {
            Mask = maskMod, Batch = batch, Heads = heads, QueryLength = queryLength, KeyLength = keyLength,
            QueryBlockSize = queryBlockSize, KeyBlockSize = keyBlockSize,
            QueryBlocks = (queryLength + queryBlockSize - 1) / queryBlockSize,
            KeyBlocks = (keyLength + keyBlockSize - 1) / keyBlockSize,
        };
        int rows = batch * heads * plan.QueryBlocks;
        plan.Partial = new int[rows][];
        plan.Full = new int[rows][];
        RunWorkers(plan, threads, rows, ClassifyRows);
        return BlockMasks.Build(batch, heads, plan.QueryBlocks, queryBlockSize, keyBlockSize, plan.Partial, plan.Full);
    }

    private sealed class MaskPlan<TMask> where TMask : struct, IMaskMod
    {
        public TMask Mask;
        public int Batch, Heads, QueryLength, KeyLength, QueryBlockSize, KeyBlockSize, QueryBlocks, KeyBlocks;
        public int[][] Partial = null!, Full = null!;
        public int NextRow;
    }

    /// <summary>One worker of <see cref="CreateBlockMask"/>: whole rows (batch, head, query block) from a shared counter, every element evaluated.</summary>
    private static void ClassifyRows<TMask>(MaskPlan<TMask> p) where TMask : struct, IMaskMod
    {
        var mask = p.Mask;
        int rows = p.Batch * p.Heads * p.QueryBlocks;
        var partial = new List<int>();
        var full = new List<int>();
        int b = 0, h = 0, q = 0, k = 0;
        try
        {
            for (int row = Interlocked.Increment(ref p.NextRow) - 1; row < rows; row = Interlocked.Increment(ref p.NextRow) - 1)
            {
                int qb = row % p.QueryBlocks;
                h = row / p.QueryBlocks % p.Heads;
                b = row / p.QueryBlocks / p.Heads;
                int qEnd = Math.Min(p.QueryLength, (qb + 1) * p.QueryBlockSize);
                partial.Clear();
                full.Clear();
                for (int kb = 0; kb < p.KeyBlocks; kb++)
                {
                    int kEnd = Math.Min(p.KeyLength, (kb + 1) * p.KeyBlockSize);
                    int seen = 0, total = 0;
                    for (q = qb * p.QueryBlockSize; q < qEnd; q++)
                        for (k = kb * p.KeyBlockSize; k < kEnd; k++, total++)
                            if (mask.Visible(b, h, q, k)) seen++;
                    if (seen == total) full.Add(kb);
                    else if (seen > 0) partial.Add(kb);
                }
                p.Partial[row] = [.. partial];
                p.Full[row] = [.. full];
            }
        }
        catch (Exception e)
        {
            throw new FlexModificationException(typeof(TMask), "mask", $"at (batch {b}, head {h}, query {q}, key {k}) while CreateBlockMask evaluated it", e);
        }
    }

    /// <summary>Sizes, pointers, strides and the block mask of one call, shared read-only by the workers (plus the item counter).</summary>
    private sealed class Plan<TScore, TMask> where TScore : struct, IScoreMod where TMask : struct, IMaskMod
    {
        public TScore ScoreMod;
        public TMask MaskMod;
        public int Batch, KeyValueHeads, GroupSize, QueryLength, KeyLength, HeadDim, ValueDim, ValueStride;
        public int GroupVectors, GroupWidth, QueriesPerItem, QueryTiles, Items, MaxColumns;
        public float Log2Scale;
        public bool DirectKeys, DirectValues;
        public ElementType ElementType;
        public long ElementSize;
        public byte* Q, K, V, O;
        public float* Lse;
        public long QueryOffset, KeyOffset, ValueOffset, OutputOffset, LseOffset;
        public readonly long[] QueryStrides = new long[4], KeyStrides = new long[4], ValueStrides = new long[4], OutputStrides = new long[4], LseStrides = new long[3];
        /// <summary>The validated block mask, or null (every pair calls the mask modification).</summary>
        public FlexBlockMask? Mask;
        public int KeyBlocks, QueryBlocks, KeyBlockSize, QueryBlockSize, MaskBatch, HeadsPerMaskHead, MaskHeads;
        /// <summary>
        /// The most distinct mask rows one item's columns use: its query heads times the query blocks its queries touch
        /// (at most one more than fit), and never more than its columns. Each is expanded into a dense kind row.
        /// </summary>
        public int MaxItemRows;
        public long ScratchFloats;
        public int NextItem;

        /// <summary>Drops the finished call's references (the modifications' fields, the mask) and keeps the plan for this thread's next call.</summary>
        public void Return()
        {
            (ScoreMod, MaskMod, Mask) = (default, default, null);
            ThreadIdle<Plan<TScore, TMask>>.Return(this);
        }

        /// <summary>Fills every field for one call (nothing of a previous call survives).</summary>
        public void Reset(FlexProblem problem, int vectorWidth, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp,
            byte* q, byte* k, byte* v, byte* o, float* lse, TScore scoreMod, TMask maskMod)
        {
            NextItem = 0;
            (ScoreMod, MaskMod) = (scoreMod, maskMod);
            Batch = problem.Batch;
            KeyValueHeads = problem.KeyValueHeads;
            GroupSize = problem.GroupSize;
            QueryLength = problem.QueryLength;
            KeyLength = problem.KeyLength;
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
            LseOffset = 0;
            Array.Clear(LseStrides);
            if (logSumExp is { } l)
            {
                LseOffset = l.Offset;
                l.Strides.CopyTo(LseStrides);
            }
            DirectKeys = ElementType == ElementType.Float32 && KeyStrides[3] == 1;
            DirectValues = ElementType == ElementType.Float32 && ValueStrides[3] == 1 && ValueStride == ValueDim;
            (Mask, KeyBlocks, QueryBlocks, KeyBlockSize, QueryBlockSize, MaskBatch, MaskHeads, HeadsPerMaskHead, MaxItemRows) = (null, 0, 0, 0, 0, 0, 0, 0, 0);
            if (problem.BlockMask is { } mask)
            {
                (KeyBlocks, QueryBlocks, KeyBlockSize, QueryBlockSize) = (problem.KeyBlocks, problem.QueryBlocks, mask.KeyBlockSize, mask.QueryBlockSize);
                (MaskBatch, MaskHeads, HeadsPerMaskHead) = (mask.MaskBatch, mask.MaskHeads, problem.QueryHeads / mask.MaskHeads);
                Mask = mask;
                MaxItemRows = Math.Min(MaxColumns, GroupSize * ((QueriesPerItem + QueryBlockSize - 1) / QueryBlockSize + 1));
            }
            ScratchFloats = ScratchLayout.Floats(this);
        }

        /// <summary>The mask row (into the count arrays) of query <paramref name="queryIndex"/> of (batch, query head).</summary>
        public int MaskRow(int batch, int head, int queryIndex)
        {
            int b = MaskBatch == 1 ? 0 : batch;
            int h = head / HeadsPerMaskHead;
            return (b * MaskHeads + h) * QueryBlocks + queryIndex / QueryBlockSize;
        }
    }

    /// <summary>Carves one worker's scratch into the item's buffers; every block starts 64-byte aligned.</summary>
    private readonly struct ScratchLayout
    {
        public readonly float* QueryT, QueryRows, Output, Max, Sum, Alpha, Keys, Values, Scores, Row;
        public readonly byte* Visible, GroupKind, KindRows;
        public readonly int* QueryHead, QueryIndex, MaskRow, GroupRows, GroupRowCount, ItemRows, ItemRowCount;
        private readonly float* _end;

        public ScratchLayout(float* scratch, int maxColumns, int groupWidth, int headDim, int valueDim, int valueStride, int itemRows, int keyBlocks)
        {
            float* next = scratch;
            int columns = maxColumns, groups = columns / groupWidth;
            QueryT = CpuScratch.Take(ref next, (long)columns * headDim);
            QueryRows = CpuScratch.Take(ref next, (long)columns * headDim);
            Output = CpuScratch.Take(ref next, (long)columns * valueStride);
            Max = CpuScratch.Take(ref next, columns);
            Sum = CpuScratch.Take(ref next, columns);
            Alpha = CpuScratch.Take(ref next, groupWidth);
            Keys = CpuScratch.Take(ref next, (long)KeyTile * headDim);
            Values = CpuScratch.Take(ref next, (long)KeyTile * valueStride);
            Scores = CpuScratch.Take(ref next, (long)KeyTile * groupWidth);
            Row = CpuScratch.Take(ref next, Math.Max(headDim, valueDim));
            Visible = (byte*)CpuScratch.Take(ref next, ((long)KeyTile * groupWidth + 3) / 4);
            GroupKind = (byte*)CpuScratch.Take(ref next, (groups + 3) / 4);
            QueryHead = (int*)CpuScratch.Take(ref next, columns);
            QueryIndex = (int*)CpuScratch.Take(ref next, columns);
            MaskRow = (int*)CpuScratch.Take(ref next, columns);
            GroupRows = (int*)CpuScratch.Take(ref next, columns);
            GroupRowCount = (int*)CpuScratch.Take(ref next, groups);
            ItemRows = (int*)CpuScratch.Take(ref next, itemRows);
            ItemRowCount = (int*)CpuScratch.Take(ref next, 1);
            KindRows = (byte*)CpuScratch.Take(ref next, ((long)itemRows * keyBlocks + 3) / 4);
            _end = next;
        }

        /// <summary>The layout of <paramref name="p"/>'s scratch.</summary>
        public static ScratchLayout Of<TScore, TMask>(float* scratch, Plan<TScore, TMask> p) where TScore : struct, IScoreMod where TMask : struct, IMaskMod =>
            new(scratch, p.MaxColumns, p.GroupWidth, p.HeadDim, p.ValueDim, p.ValueStride, p.MaxItemRows, p.KeyBlocks);

        /// <summary>The floats the layout needs for <paramref name="p"/>, measured by laying it out from address 0.</summary>
        public static long Floats<TScore, TMask>(Plan<TScore, TMask> p) where TScore : struct, IScoreMod where TMask : struct, IMaskMod =>
            (long)Of(null, p)._end / sizeof(float);
    }
}
