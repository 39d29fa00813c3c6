// CPU block-sparse attention: the flash micro-kernels run over the key blocks each query block lists, so the cost is
// that of the blocks kept. Full blocks skip the element predicate; partial blocks apply it per column or per element.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NativeAttention.Cpu;

/// <summary>
/// Computes <see cref="AttentionContext.BlockSparse"/> in float32 whatever the storage type (float32, float16,
/// bfloat16), with GQA/MQA, Dv != Dqk, scale, softcap and the log-sum-exp.
/// </summary>
/// <remarks>
/// A work item is (batch, key/value head, run of adjacent query blocks, chunk of the group's query heads, key split).
/// Its columns are, per query block, the chunk's query heads x the block's queries, as in <see cref="CpuFlash"/>, so
/// one K/V tile serves every query head of the group and every query block of the run that lists it. Blocks are
/// joined into runs only when one block's columns fill whole column groups (Bq = 64 with one head per group: four
/// blocks, flash's 256 columns), so each group follows one mask row and computes only the tiles that row lists. The
/// item walks the union of its rows in ascending key-block order (rows are sorted, so each keeps two cursors, full and
/// partial); adjacent blocks of the same kind for every row are joined into one run and the run is cut into tiles of
/// <see cref="CpuFlashTiles.KeyTile"/> keys. Per
/// tile and column group: full blocks compute without any mask (only a short last tile masks its padding), partial
/// blocks under a range predicate (causal, window, prefix-LM) skip groups whose columns see nothing of the tile, run
/// unmasked when every column sees all of it, and otherwise mask each column to its range (computing, on a four-vector
/// group, only the vectors that see each run of keys and, per register block of output rows, only the keys those rows
/// see: a causal diagonal block costs about 60% of a full one); partial blocks under the document predicate compare ids
/// per element. Rows that do not list a block get an empty range in that tile.
/// <para>
/// Few, long items (decoding: one query per sequence) are cut into key splits by key-block index, each giving a
/// partial (o, LSE) merged exactly through <see cref="LogSumExpMerge"/>, as split-KV decoding does; float32 K/V rows of
/// the next tile are prefetched while a narrow item computes the current one. A group holding a single real column
/// (decoding with one query head per item) skips the group kernels, which would exponentiate and accumulate a whole
/// vector of columns per key, for a row kernel (<see cref="SingleColumnTile"/>) that also spreads its prefetches
/// over the tile's keys. Items are taken from a shared counter,
/// head by head (both workers read one head's K and V, which stays in cache) and within a head most listed blocks
/// first; each is computed start to finish by one worker in a fixed order, so results do not depend on timing.
/// </para>
/// </remarks>
internal static unsafe class CpuBlockSparse
{
    private const int KeyTile = CpuFlashTiles.KeyTile;
    private const int KindNone = 0, KindFull = 1, KindPartial = 2;

    /// <summary>Split items whose rows hold at least this many keys per split; shorter splits cost more to merge than they balance.</summary>
    private const int MinKeysPerSplit = 512;

    /// <summary>Narrow items also prefetch the block this many places ahead into L2 (scattered blocks are latency-bound).</summary>
    private const int PrefetchBlocksAhead = 4;

    /// <summary>Runs a validated block-sparse problem on <paramref name="threads"/> workers.</summary>
    /// <exception cref="NotSupportedException"><paramref name="vectorBits"/> names a width the JIT does not accelerate here.</exception>
    public static void Run(BlockSparseProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp, int threads,
        int? vectorBits = null)
    {
        switch (vectorBits ?? CpuFeatures.VectorBits)
        {
            case 512 when Vector512.IsHardwareAccelerated: Run<Simd512, Vector512<float>>(problem, query, key, value, output, logSumExp, threads); break;
            case 256 when Vector256.IsHardwareAccelerated: Run<Simd256, Vector256<float>>(problem, query, key, value, output, logSumExp, threads); break;
            case 128 when Vector128.IsHardwareAccelerated: Run<Simd128, Vector128<float>>(problem, query, key, value, output, logSumExp, threads); break;
            case 0: Run<SimdScalar, float>(problem, query, key, value, output, logSumExp, threads); break;
            default:
                throw new NotSupportedException($"{vectorBits}-bit vectors are not accelerated here (widest: {CpuFeatures.VectorBits}); use 512, 256, 128 or 0 (scalar) up to that width.");
        }
    }

    private static void Run<TSimd, T>(BlockSparseProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp, int threads)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        using var qPin = query.Storage!.Pin();
        using var kPin = key.Storage!.Pin();
        using var vPin = value.Storage!.Pin();
        using var oPin = output.Storage!.Pin();
        using var lPin = logSumExp is { } l ? l.Storage!.Pin() : default;
        var plan = ThreadIdle<Plan>.Rent();
        try
        {
            plan.Reset(problem, TSimd.Count, threads, query, key, value, output, logSumExp,
                (byte*)qPin.Pointer, (byte*)kPin.Pointer, (byte*)vPin.Pointer, (byte*)oPin.Pointer, (float*)lPin.Pointer);
            fixed (int* keyDocuments = plan.KeyDocuments)
            {
                plan.KeyDocumentsPointer = keyDocuments;
                CpuWorkers.Run(plan, threads, plan.Items, Work<TSimd, T>);
            }
            if (plan.Splits > 1) Merge(plan);
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
        for (int next = Interlocked.Increment(ref plan.NextItem) - 1; next < plan.Items; next = Interlocked.Increment(ref plan.NextItem) - 1)
        {
            int item = plan.Order[next];
            if (plan.GroupVectors == 1) RunItem<TSimd, T, One>(plan, item, scratch);
            else RunItem<TSimd, T, Four>(plan, item, scratch);
        }
    }

    /// <summary>The parts of an item number: batch, kv head, run of query blocks, head chunk, split (split fastest).</summary>
    private static (int Batch, int KvHead, int BlockRun, int Chunk, int Split) Parts(Plan p, int item)
    {
        int split = item % p.Splits;
        int rest = item / p.Splits;
        int chunk = rest % p.HeadChunks;
        rest /= p.HeadChunks;
        int blockRun = rest % p.BlockRuns;
        rest /= p.BlockRuns;
        return (rest / p.KeyValueHeads, rest % p.KeyValueHeads, blockRun, chunk, split);
    }

    /// <summary>One item: the chunk's query heads x the run's query blocks' queries, over the listed key blocks of one split.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RunItem<TSimd, T, TGroup>(Plan p, int item, float* scratch)
        where TSimd : struct, ISimd<T> where T : unmanaged where TGroup : struct, IConstant
    {
        var (batch, kvHead, blockRun, chunk, split) = Parts(p, item);
        var problem = p.Problem;
        int firstBlock = blockRun * p.QueryBlocksPerItem;
        int blocks = Math.Min(p.QueryBlocksPerItem, p.QueryBlocks - firstBlock);
        int firstHead = kvHead * p.GroupSize + chunk * p.HeadsPerItem;
        int heads = Math.Min(p.HeadsPerItem, (kvHead + 1) * p.GroupSize - firstHead);
        // Columns: query block by query block, each its heads x its queries; only the last block can be short, so
        // every block starts at a column group's start when the plan joins blocks (heads x Bq fills whole groups).
        int blockColumns = heads * p.QueryBlockSize;
        int lastQueries = Math.Min(p.QueryBlockSize, p.QueryLength - (firstBlock + blocks - 1) * p.QueryBlockSize);
        int columns = (blocks - 1) * blockColumns + heads * lastQueries;
        int width = p.GroupWidth;
        int groups = (columns + width - 1) / width;
        int padded = groups * width;
        int dqk = p.HeadDim, dv = p.ValueDim, dvStride = p.ValueStride;
        var s = new ScratchLayout(scratch, p);

        // Mask rows: per query block, one per head, or one for all when the chunk's heads share it (mask per group,
        // or broadcast). Row r is query block r / headRows, head r % headRows.
        int firstRow = problem.MaskRow(batch, firstHead, firstBlock);
        bool shared = heads == 1 || problem.MaskRow(batch, firstHead + heads - 1, firstBlock) == firstRow;
        int headRows = shared ? 1 : heads;
        int rows = blocks * headRows;
        int capacity = p.Capacity;
        int splitLow = (int)((long)p.KeyBlocks * split / p.Splits), splitHigh = (int)((long)p.KeyBlocks * (split + 1) / p.Splits);
        var fullIndices = p.FullIndices;
        var partialIndices = p.PartialIndices;
        for (int r = 0; r < rows; r++)
        {
            int row = problem.MaskRow(batch, firstHead + (shared ? 0 : r % headRows), firstBlock + r / headRows);
            int fullCount = p.FullCounts is null ? 0 : p.FullCounts[row], partialCount = p.PartialCounts[row];
            s.FullAt[r] = LowerBound(fullIndices, row * capacity, row * capacity + fullCount, splitLow);
            s.FullEnd[r] = LowerBound(fullIndices, row * capacity, row * capacity + fullCount, splitHigh);
            s.PartialAt[r] = LowerBound(partialIndices, row * capacity, row * capacity + partialCount, splitLow);
            s.PartialEnd[r] = LowerBound(partialIndices, row * capacity, row * capacity + partialCount, splitHigh);
        }

        bool range = p.PredicateIsRange;
        for (int c = 0; c < padded; c++)
        {
            float* qColumn = s.QueryT + (long)(c / width) * dqk * width + c % width;
            if (c < columns)
            {
                int block = c / blockColumns, inBlock = c - block * blockColumns;
                int queries = block == blocks - 1 ? lastQueries : p.QueryBlockSize;
                int head = firstHead + inBlock / queries, index = (firstBlock + block) * p.QueryBlockSize + inBlock % queries;
                s.ColumnHead[c] = head;
                s.ColumnIndex[c] = index;
                s.ColumnRow[c] = block * headRows + (shared ? 0 : inBlock / queries);
                if (p.PredicateNone) (s.Start[c], s.End[c]) = (0, p.KeyLength);
                else if (range) (s.Start[c], s.End[c]) = problem.PredicateKeys(batch, index);
                else
                {
                    (s.Start[c], s.End[c]) = (0, p.KeyLength);
                    s.QueryDocument[c] = p.QueryDocuments![batch * p.QueryLength + index];
                }
                CpuPacking.ReadRow(s.Row, p.Q + p.ElementSize * (p.QueryOffset + batch * p.QueryStrides[0] + head * p.QueryStrides[1] + index * p.QueryStrides[2]),
                    p.QueryStrides[3], dqk, p.ElementType);
                float* qRow = s.QueryRows + (long)c * dqk;
                for (int d = 0; d < dqk; d++) qColumn[(long)d * width] = qRow[d] = s.Row[d] * p.Log2Scale;
            }
            else
            {
                // Padding columns see everything, so they never force the masked path; nothing reads them back.
                s.Start[c] = int.MinValue;
                s.End[c] = int.MaxValue;
                s.ColumnRow[c] = 0;
                for (int d = 0; d < dqk; d++) qColumn[(long)d * width] = 0;
            }
            s.Max[c] = float.NegativeInfinity;
            s.Sum[c] = 0;
            new Span<float>(s.Output + (long)c * dvStride, dvStride).Clear();
        }
        // Per group under a range predicate: the union of its columns' ranges (partial tiles outside it are skipped)
        // and their intersection (partial tiles inside it need no mask).
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
            // The group's one mask row when all its columns have the same (so its kind in a tile is that row's), else -1.
            int groupRow = s.ColumnRow[g * width];
            for (int c = g * width + 1; c < Math.Min(columns, (g + 1) * width); c++)
                if (s.ColumnRow[c] != groupRow) groupRow = -1;
            s.GroupRow[g] = groupRow;
        }

        byte* kBase = p.K + p.ElementSize * (p.KeyOffset + batch * p.KeyStrides[0] + kvHead * p.KeyStrides[1]);
        byte* vBase = p.V + p.ElementSize * (p.ValueOffset + batch * p.ValueStrides[0] + kvHead * p.ValueStrides[1]);
        bool prefetch = Sse.IsSupported && p.DirectKeys && p.DirectValues && groups == 1 && TGroup.Value == 1;
        int bk = p.KeyBlockSize;
        if (prefetch && rows == 1)
        {
            // Start the first blocks' reads together, so that the item never waits on one block at a time.
            for (int ahead = 0; ahead < PrefetchBlocksAhead; ahead++)
            {
                int early = BlockAhead(s, fullIndices, partialIndices, ahead);
                if (early < 0) break;
                int first = early * bk, count = Math.Min(bk, p.KeyLength - first);
                PrefetchL2(kBase + p.ElementSize * first * p.KeyStrides[2], count * p.ElementSize * p.KeyStrides[2]);
                PrefetchL2(vBase + p.ElementSize * first * p.ValueStrides[2], count * p.ElementSize * p.ValueStrides[2]);
            }
        }
        while (true)
        {
            // The next block any row lists, each row's kind there, and the run of following blocks with the same kinds.
            int block = NextBlock(s, rows, fullIndices, partialIndices);
            if (block == int.MaxValue) break;
            bool uniform = true;
            for (int r = 0; r < rows; r++)
            {
                s.Kind[r] = TakeKind(s, r, block, fullIndices, partialIndices);
                uniform &= s.Kind[r] == s.Kind[0];
            }
            int runEnd = block + 1;
            while (runEnd < splitHigh && SameKindsAt(s, rows, runEnd, fullIndices, partialIndices))
            {
                for (int r = 0; r < rows; r++) TakeKind(s, r, runEnd, fullIndices, partialIndices);
                runEnd++;
            }
            int keyStart = block * bk, keyEnd = Math.Min(p.KeyLength, runEnd * bk);
            // Under no predicate partial blocks are full ones.
            int kind0 = s.Kind[0] == KindPartial && p.PredicateNone ? KindFull : s.Kind[0];
            int nextStart = prefetch ? PeekNextKey(s, rows, fullIndices, partialIndices, bk) : -1;
            // A single column (decoding one head) asks for the far block and the next tile a few lines per four keys
            // inside its row kernel: asked for all at once they stalled the core on full fill buffers (1.12x CPU time
            // each, far and next, measured in one process).
            bool spread = prefetch && rows == 1 && columns == 1;
            byte* farK = null, farV = null;
            long farKeyBytes = 0, farValueBytes = 0;
            if (spread)
            {
                int far = BlockAhead(s, fullIndices, partialIndices, PrefetchBlocksAhead);
                if (far >= 0)
                {
                    int first = far * bk, count = Math.Min(bk, p.KeyLength - first);
                    farK = kBase + p.ElementSize * first * p.KeyStrides[2];
                    farV = vBase + p.ElementSize * first * p.ValueStrides[2];
                    farKeyBytes = count * p.ElementSize * p.KeyStrides[2];
                    farValueBytes = count * p.ElementSize * p.ValueStrides[2];
                }
            }
            else if (prefetch && rows == 1)
            {
                // Reading scattered blocks from memory is latency-bound: ask for a block several ahead into L2 as well.
                int far = BlockAhead(s, fullIndices, partialIndices, PrefetchBlocksAhead);
                if (far >= 0)
                {
                    int first = far * bk, count = Math.Min(bk, p.KeyLength - first);
                    PrefetchL2(kBase + p.ElementSize * first * p.KeyStrides[2], count * p.ElementSize * p.KeyStrides[2]);
                    PrefetchL2(vBase + p.ElementSize * first * p.ValueStrides[2], count * p.ElementSize * p.ValueStrides[2]);
                }
            }

            for (int k0 = keyStart; k0 < keyEnd; k0 += KeyTile)
            {
                int keys = Math.Min(KeyTile, keyEnd - k0);
                int blocked = (keys + CpuFlashTiles.KeyBlock - 1) / CpuFlashTiles.KeyBlock * CpuFlashTiles.KeyBlock;
                float* tileKeys = CpuPacking.TileRows(kBase, p.KeyStrides[2], p.KeyStrides[3], p.ElementType, p.DirectKeys, k0, keys, blocked, dqk, s.Keys, dqk, out long keyStride);
                float* tileValues = CpuPacking.TileRows(vBase, p.ValueStrides[2], p.ValueStrides[3], p.ElementType, p.DirectValues, k0, keys, blocked, dv, s.Values, dvStride, out long valueStride);
                byte* spreadK = null, spreadV = null;
                int spreadKeys = 0;
                if (prefetch)
                {
                    // Narrow items are bound by reading K and V: ask for the next tile (this run's or the next block's) now.
                    int ahead = k0 + KeyTile < keyEnd ? k0 + KeyTile : nextStart;
                    if (spread && ahead >= 0 && ahead < p.KeyLength)
                    {
                        spreadK = kBase + p.ElementSize * ahead * p.KeyStrides[2];
                        spreadV = vBase + p.ElementSize * ahead * p.ValueStrides[2];
                        spreadKeys = Math.Min(KeyTile, p.KeyLength - ahead);
                    }
                    else if (ahead >= 0 && ahead < p.KeyLength)
                    {
                        int count = Math.Min(KeyTile, p.KeyLength - ahead);
                        Prefetch(kBase + p.ElementSize * ahead * p.KeyStrides[2], count * p.ElementSize * p.KeyStrides[2]);
                        Prefetch(vBase + p.ElementSize * ahead * p.ValueStrides[2], count * p.ElementSize * p.ValueStrides[2]);
                    }
                }

                for (int g = 0; g < groups; g++)
                {
                    int first = g * width;
                    int real = Math.Min(width, columns - first);
                    // How this group's columns see the tile: all of it (no mask), none of it (skip), or a range each.
                    // The group's kind is every row's when the rows agree, else its own row's when it has one.
                    int groupKind = uniform ? kind0 : s.GroupRow[g] >= 0 ? s.Kind[s.GroupRow[g]] : -1;
                    if (groupKind == KindPartial && p.PredicateNone) groupKind = KindFull;
                    if (groupKind == KindNone) continue;
                    bool masked, perElement = false;
                    if (groupKind == KindFull) masked = blocked != keys;
                    else if (groupKind == KindPartial && range)
                    {
                        if (k0 >= s.GroupHigh[g] || k0 + keys <= s.GroupLow[g]) continue;
                        masked = blocked != keys || k0 < s.GroupFullLow[g] || k0 + keys > s.GroupFullHigh[g];
                    }
                    else
                    {
                        bool any = false;
                        masked = blocked != keys;
                        for (int c = first; c < first + real; c++)
                        {
                            int kind = s.Kind[s.ColumnRow[c]];
                            if (kind == KindPartial && p.PredicateNone) kind = KindFull;
                            int start = kind == KindFull ? k0 : kind == KindPartial ? Math.Max(s.Start[c], k0) : k0;
                            int end = kind == KindFull ? k0 + keys : kind == KindPartial ? Math.Min(s.End[c], k0 + keys) : k0;
                            if (start < end) any = true;
                            masked |= start != k0 || end != k0 + keys;
                            perElement |= kind == KindPartial && !range;
                        }
                        if (!any) continue;
                    }
                    if (TGroup.Value == 1 && real == 1)
                    {
                        // One query column (decoding one head): the row kernel, with no work on the group's padding columns.
                        int start = 0, end = keys;
                        if (masked)
                        {
                            int kind = s.Kind[s.ColumnRow[first]];
                            if (kind == KindPartial && p.PredicateNone) kind = KindFull;
                            if (kind == KindNone) end = 0;
                            else if (kind == KindPartial && range)
                            {
                                start = Math.Clamp(s.Start[first] - k0, 0, keys);
                                end = Math.Clamp(s.End[first] - k0, start, keys);
                            }
                        }
                        int* keyDocs = perElement && s.Kind[s.ColumnRow[first]] == KindPartial ? p.KeyDocumentsPointer + (long)batch * p.KeyLength + k0 : null;
                        SingleColumnTile<TSimd, T>(p, s.QueryRows + (long)first * dqk, tileKeys, keyStride, tileValues, valueStride, keys, start, end, keyDocs,
                            s.QueryDocument[first], s.Scores, s.Max + first, s.Sum + first, s.Output + (long)first * dvStride,
                            spreadK, spreadV, spreadKeys, p.ElementSize * p.KeyStrides[2], p.ElementSize * p.ValueStrides[2],
                            k0 == keyStart ? farK : null, farV, farKeyBytes, farValueBytes);
                        continue;
                    }
                    bool byDot = TGroup.Value == 1 && real <= CpuFlashTiles.DotProductMaxColumns;
                    float* groupQueryT = s.QueryT + (long)g * dqk * width, groupQueryRows = s.QueryRows + (long)first * dqk;
                    if (masked)
                    {
                        for (int c = 0; c < width; c++)
                        {
                            int column = first + c;
                            int start = 0, end = keys;
                            if (c < real)
                            {
                                int kind = s.Kind[s.ColumnRow[column]];
                                if (kind == KindPartial && p.PredicateNone) kind = KindFull;
                                if (kind == KindNone) end = 0;
                                else if (kind == KindPartial)
                                {
                                    start = Math.Clamp(s.Start[column] - k0, 0, keys);
                                    end = Math.Clamp(s.End[column] - k0, start, keys);
                                }
                            }
                            s.TileStart[c] = start;
                            s.TileEnd[c] = end;
                        }
                    }
                    // A masked four-vector tile under a range predicate (a causal diagonal block) computes, per run of
                    // keys, only the vectors whose columns see some of them; the mask then clears what was not computed.
                    bool ranged = masked && !perElement && TGroup.Value == 4;
                    if (byDot) CpuFlashKernels.ScoresByDot<TSimd, T>(groupQueryRows, dqk, real, tileKeys, keyStride, dqk, blocked, s.Scores);
                    else if (!ranged || !ScoresByVectorRanges<TSimd, T>(s, groupQueryT, width, tileKeys, keyStride, dqk, blocked))
                        CpuFlashKernels.Scores<TSimd, T, TGroup>(groupQueryT, tileKeys, keyStride, dqk, blocked, s.Scores);
                    if (p.Softcap) Softcap<TSimd, T>(s.Scores, (long)blocked * width, p.SoftcapIn, p.SoftcapOut);
                    if (masked) CpuFlashKernels.Mask<TSimd, T, TGroup>(s.Scores, blocked, s.TileStart, s.TileEnd);
                    if (perElement)
                    {
                        // Document predicate: partial columns keep only keys of their own document.
                        for (int c = 0; c < real; c++)
                        {
                            int column = first + c;
                            if (s.Kind[s.ColumnRow[column]] != KindPartial) continue;
                            int doc = s.QueryDocument[column];
                            int* keyDocs = p.KeyDocumentsPointer + (long)batch * p.KeyLength + k0;
                            for (int j = 0; j < keys; j++)
                                if (keyDocs[j] != doc) s.Scores[(long)j * width + c] = float.NegativeInfinity;
                        }
                    }
                    CpuFlashKernels.Softmax<TSimd, T, TGroup>(s.Scores, blocked, s.Max + first, s.Sum + first, s.Alpha);
                    if (ranged)
                        CpuFlashKernels.AccumulateInRanges<TSimd, T, TGroup>(s.Scores, tileValues, valueStride, blocked, dvStride, s.Alpha, s.Output + (long)first * dvStride, real,
                            s.TileStart, s.TileEnd);
                    else CpuFlashKernels.Accumulate<TSimd, T, TGroup>(s.Scores, tileValues, valueStride, blocked, dvStride, s.Alpha, s.Output + (long)first * dvStride, real);
                }
            }
        }

        for (int c = 0; c < columns; c++)
        {
            int head = s.ColumnHead[c], index = s.ColumnIndex[c];
            float sum = s.Sum[c], max = s.Max[c];
            // A row that saw no key has sum 0: zeros out, -inf log-sum-exp, never 0/0.
            bool empty = sum == 0;
            float factor = empty ? 0f : 1f / sum;
            float lse = empty ? float.NegativeInfinity : (max + MathF.Log2(sum)) * MathConstants.Ln2;
            float* acc = s.Output + (long)c * dvStride;
            if (p.Splits > 1)
            {
                long partial = p.PartialRow(batch, head, index, split);
                for (int d = 0; d < dv; d++) p.Partials[partial * dv + d] = acc[d] * factor;
                p.PartialLse[partial] = lse;
                continue;
            }
            CpuPacking.WriteRow(p.O + p.ElementSize * (p.OutputOffset + batch * p.OutputStrides[0] + head * p.OutputStrides[1] + index * p.OutputStrides[2]),
                p.OutputStrides[3], acc, factor, dv, p.ElementType);
            if (p.Lse != null)
                p.Lse[p.LseOffset + batch * p.LseStrides[0] + head * p.LseStrides[1] + index * p.LseStrides[2]] = lse;
        }
    }

    /// <summary>
    /// Scores of a masked four-vector tile, vector by vector over the keys each vector's columns see (from
    /// <c>s.TileStart</c> and <c>s.TileEnd</c>, rounded out to whole key blocks): the key range is cut where any vector's
    /// range starts or ends, and each run computes the adjacent vectors that see it. Returns false, computing nothing,
    /// when every vector sees the whole tile (the plain kernel is then as fast).
    /// </summary>
    private static bool ScoresByVectorRanges<TSimd, T>(in ScratchLayout s, float* queryT, int width, float* keys, long keyStride, int headDim, int keyCount)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        const int Vectors = CpuFlashTiles.GroupVectors, Block = CpuFlashTiles.KeyBlock;
        int w = TSimd.Count;
        int* low = stackalloc int[Vectors];
        int* high = stackalloc int[Vectors];
        bool whole = true;
        for (int v = 0; v < Vectors; v++)
        {
            float first = float.PositiveInfinity, last = float.NegativeInfinity;
            for (int c = v * w; c < (v + 1) * w; c++)
            {
                if (s.TileStart[c] >= s.TileEnd[c]) continue;
                first = MathF.Min(first, s.TileStart[c]);
                last = MathF.Max(last, s.TileEnd[c]);
            }
            if (first >= last) (low[v], high[v]) = (0, 0);
            else
            {
                low[v] = Math.Clamp((int)first, 0, keyCount) / Block * Block;
                high[v] = Math.Min(keyCount, ((int)last + Block - 1) / Block * Block);
            }
            whole &= low[v] == 0 && high[v] == keyCount;
        }
        if (whole) return false;
        for (int a = 0; a < keyCount;)
        {
            // The run [a, b): up to the next place any vector's range starts or ends.
            int b = keyCount;
            for (int v = 0; v < Vectors; v++)
            {
                if (low[v] > a) b = Math.Min(b, low[v]);
                if (high[v] > a) b = Math.Min(b, high[v]);
            }
            int firstVector = Vectors, lastVector = -1;
            for (int v = 0; v < Vectors; v++)
            {
                if (low[v] > a || high[v] < b || low[v] >= high[v]) continue;
                firstVector = Math.Min(firstVector, v);
                lastVector = v;
            }
            if (lastVector >= 0)
            {
                float* q = queryT + firstVector * w, scores = s.Scores + (long)a * width + firstVector * w, k = keys + a * keyStride;
                switch (lastVector - firstVector)
                {
                    case 0: CpuFlashKernels.ScoresSlice<TSimd, T, One>(q, width, k, keyStride, headDim, b - a, scores); break;
                    case 1: CpuFlashKernels.ScoresSlice<TSimd, T, Two>(q, width, k, keyStride, headDim, b - a, scores); break;
                    case 2: CpuFlashKernels.ScoresSlice<TSimd, T, Three>(q, width, k, keyStride, headDim, b - a, scores); break;
                    default: CpuFlashKernels.ScoresSlice<TSimd, T, Four>(q, width, k, keyStride, headDim, b - a, scores); break;
                }
            }
            a = b;
        }
        return true;
    }

    /// <summary>
    /// One query column over a tile of float32 K/V rows (decoding, where a narrow group holds a single real column):
    /// the scores of keys <paramref name="start"/>..<paramref name="end"/> as dot products four keys at a time, each four
    /// reduced by one transposing add tree (<see cref="ISimd{T}.Sum4"/>); the online-softmax step over the tile's keys a
    /// vector of keys at a time; and P V into the column's accumulator, eight vectors in flight. The group path would
    /// exponentiate and accumulate a whole vector of columns (or a register block of rows) per key for this one column.
    /// Keys outside the range, or of another document when <paramref name="keyDocuments"/> is given, weigh 0; the
    /// running max, sum and accumulator follow the group path's conventions (log2 units, -inf max before any key).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SingleColumnTile<TSimd, T>(Plan p, float* q, float* keys, long keyStride, float* values, long valueStride, int keyCount, int start, int end,
        int* keyDocuments, int document, float* scores, float* max, float* sum, float* output,
        byte* nextKeys, byte* nextValues, int nextCount, long nextKeyBytes, long nextValueBytes,
        byte* farKeys, byte* farValues, long farKeyBytes, long farValueBytes)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        byte* fkLine = farKeys, fkStop = farKeys == null ? null : farKeys + farKeyBytes, fvLine = farValues, fvStop = farKeys == null ? null : farValues + farValueBytes;
        // The next tile's lines are asked for a few per four keys while this tile computes (never all at once, which
        // would stall the core on full fill buffers); what is left after the loop is asked for at its end.
        byte* kLine = nextKeys, kStop = nextKeys + nextCount * nextKeyBytes, vLine = nextValues, vStop = nextValues + nextCount * nextValueBytes;
        if (start >= end)
        {
            for (; fkLine < fkStop; fkLine += 64) Sse.Prefetch1(fkLine);
            for (; fvLine < fvStop; fvLine += 64) Sse.Prefetch1(fvLine);
            for (; kLine < kStop; kLine += 64) Sse.Prefetch0(kLine);
            for (; vLine < vStop; vLine += 64) Sse.Prefetch0(vLine);
            return;
        }
        int w = TSimd.Count, dqk = p.HeadDim;
        int vectorEnd = dqk - dqk % w;
        int first = start & ~3, last = Math.Min((end + 3) & ~3, (keyCount + 3) & ~3);
        int padded = (last + w - 1) / w * w;
        int steps = Math.Max(1, (last - first) / 4);
        long kStep = (kStop - kLine + 64L * steps - 1) / (64L * steps) * 64, vStep = (vStop - vLine + 64L * steps - 1) / (64L * steps) * 64;
        long fkStep = (fkStop - fkLine + 64L * steps - 1) / (64L * steps) * 64, fvStep = (fvStop - fvLine + 64L * steps - 1) / (64L * steps) * 64;
        // Rows past keyCount up to the next multiple of four are readable: the tile is staged and zero-padded when short.
        for (int j = first; j < last; j += 4)
        {
            if (kLine < kStop)
            {
                for (byte* stop = kLine + kStep; kLine < stop; kLine += 64) Sse.Prefetch0(kLine);
                for (byte* stop = vLine + vStep; vLine < stop; vLine += 64) Sse.Prefetch0(vLine);
            }
            if (fkLine < fkStop)
            {
                for (byte* stop = fkLine + fkStep; fkLine < stop; fkLine += 64) Sse.Prefetch1(fkLine);
                for (byte* stop = fvLine + fvStep; fvLine < stop; fvLine += 64) Sse.Prefetch1(fvLine);
            }
            float* k0 = keys + j * keyStride, k1 = k0 + keyStride, k2 = k1 + keyStride, k3 = k2 + keyStride;
            T a0 = TSimd.Zero, a1 = TSimd.Zero, a2 = TSimd.Zero, a3 = TSimd.Zero;
            for (int d = 0; d < vectorEnd; d += w)
            {
                T qv = TSimd.Load(q + d);
                a0 = TSimd.MultiplyAdd(qv, TSimd.Load(k0 + d), a0);
                a1 = TSimd.MultiplyAdd(qv, TSimd.Load(k1 + d), a1);
                a2 = TSimd.MultiplyAdd(qv, TSimd.Load(k2 + d), a2);
                a3 = TSimd.MultiplyAdd(qv, TSimd.Load(k3 + d), a3);
            }
            var four = TSimd.Sum4(a0, a1, a2, a3);
            if (vectorEnd < dqk)
            {
                float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                for (int d = vectorEnd; d < dqk; d++)
                {
                    s0 += q[d] * k0[d];
                    s1 += q[d] * k1[d];
                    s2 += q[d] * k2[d];
                    s3 += q[d] * k3[d];
                }
                four += Vector128.Create(s0, s1, s2, s3);
            }
            four.Store(scores + j);
        }
        for (; fkLine < fkStop; fkLine += 64) Sse.Prefetch1(fkLine);
        for (; fvLine < fvStop; fvLine += 64) Sse.Prefetch1(fvLine);
        for (; kLine < kStop; kLine += 64) Sse.Prefetch0(kLine);
        for (; vLine < vStop; vLine += 64) Sse.Prefetch0(vLine);
        int from = first / w * w;
        for (int j = from; j < first; j++) scores[j] = 0;
        for (int j = last; j < padded; j++) scores[j] = 0;
        if (p.Softcap) Softcap<TSimd, T>(scores + from, padded - from, p.SoftcapIn, p.SoftcapOut);
        for (int j = from; j < start; j++) scores[j] = float.NegativeInfinity;
        for (int j = end; j < padded; j++) scores[j] = float.NegativeInfinity;
        if (keyDocuments != null)
            for (int j = start; j < end; j++)
                if (keyDocuments[j] != document) scores[j] = float.NegativeInfinity;

        T top = TSimd.NegativeInfinity;
        for (int j = from; j < padded; j += w) top = TSimd.Max(top, TSimd.Load(scores + j));
        float tileMax = TSimd.MaxAcross(top);
        if (float.IsNegativeInfinity(tileMax)) return;
        float previous = *max, next = MathF.Max(previous, tileMax);
        // 2^(previous - next): 0 before the first key (previous = -inf), through the kernels' polynomial.
        float rescale = Vector128.IsHardwareAccelerated ? Simd128.Exp2NonPositive(Vector128.Create(previous - next)).ToScalar() : SimdScalar.Exp2NonPositive(previous - next);
        T alpha = TSimd.Broadcast(rescale);
        var negativeMax = TSimd.Broadcast(-next);
        T total = TSimd.Zero;
        for (int j = from; j < padded; j += w)
        {
            T weight = TSimd.Exp2NonPositive(TSimd.Add(TSimd.Load(scores + j), negativeMax));
            TSimd.Store(scores + j, weight);
            total = TSimd.Add(total, weight);
        }
        *max = next;
        *sum = *sum * rescale + TSimd.Sum(total);

        // P V over the keys with weight: two keys per step into two accumulator sets (eight vectors in flight).
        int vectors = p.ValueStride / w, v = 0;
        for (; v + 4 <= vectors; v += 4)
        {
            float* o = output + v * w;
            float* vb = values + v * w;
            T e0 = TSimd.Multiply(TSimd.Load(o), alpha), e1 = TSimd.Multiply(TSimd.Load(o + w), alpha);
            T e2 = TSimd.Multiply(TSimd.Load(o + 2 * w), alpha), e3 = TSimd.Multiply(TSimd.Load(o + 3 * w), alpha);
            T f0 = TSimd.Zero, f1 = TSimd.Zero, f2 = TSimd.Zero, f3 = TSimd.Zero;
            int j = start;
            for (; j + 2 <= end; j += 2)
            {
                float* r0 = vb + j * valueStride, r1 = r0 + valueStride;
                T pa = TSimd.Broadcast(scores[j]), pb = TSimd.Broadcast(scores[j + 1]);
                e0 = TSimd.MultiplyAdd(pa, TSimd.Load(r0), e0);
                e1 = TSimd.MultiplyAdd(pa, TSimd.Load(r0 + w), e1);
                e2 = TSimd.MultiplyAdd(pa, TSimd.Load(r0 + 2 * w), e2);
                e3 = TSimd.MultiplyAdd(pa, TSimd.Load(r0 + 3 * w), e3);
                f0 = TSimd.MultiplyAdd(pb, TSimd.Load(r1), f0);
                f1 = TSimd.MultiplyAdd(pb, TSimd.Load(r1 + w), f1);
                f2 = TSimd.MultiplyAdd(pb, TSimd.Load(r1 + 2 * w), f2);
                f3 = TSimd.MultiplyAdd(pb, TSimd.Load(r1 + 3 * w), f3);
            }
            if (j < end)
            {
                float* r0 = vb + j * valueStride;
                T pa = TSimd.Broadcast(scores[j]);
                e0 = TSimd.MultiplyAdd(pa, TSimd.Load(r0), e0);
                e1 = TSimd.MultiplyAdd(pa, TSimd.Load(r0 + w), e1);
                e2 = TSimd.MultiplyAdd(pa, TSimd.Load(r0 + 2 * w), e2);
                e3 = TSimd.MultiplyAdd(pa, TSimd.Load(r0 + 3 * w), e3);
            }
            TSimd.Store(o, TSimd.Add(e0, f0));
            TSimd.Store(o + w, TSimd.Add(e1, f1));
            TSimd.Store(o + 2 * w, TSimd.Add(e2, f2));
            TSimd.Store(o + 3 * w, TSimd.Add(e3, f3));
        }
        for (; v < vectors; v++)
        {
            float* o = output + v * w;
            float* vb = values + v * w;
            T e0 = TSimd.Multiply(TSimd.Load(o), alpha), f0 = TSimd.Zero;
            int j = start;
            for (; j + 2 <= end; j += 2)
            {
                e0 = TSimd.MultiplyAdd(TSimd.Broadcast(scores[j]), TSimd.Load(vb + j * valueStride), e0);
                f0 = TSimd.MultiplyAdd(TSimd.Broadcast(scores[j + 1]), TSimd.Load(vb + (j + 1) * valueStride), f0);
            }
            if (j < end) e0 = TSimd.MultiplyAdd(TSimd.Broadcast(scores[j]), TSimd.Load(vb + j * valueStride), e0);
            TSimd.Store(o, TSimd.Add(e0, f0));
        }
    }

    /// <summary>The first position in <c>indices[from..to)</c> (ascending) holding a value at least <paramref name="value"/>.</summary>
    private static int LowerBound(int[] indices, int from, int to, int value)
    {
        while (from < to)
        {
            int mid = (from + to) >>> 1;
            if (indices[mid] < value) from = mid + 1;
            else to = mid;
        }
        return from;
    }

    /// <summary>The smallest key block any row still lists in this split (int.MaxValue when none).</summary>
    private static int NextBlock(in ScratchLayout s, int rows, int[] full, int[] partial)
    {
        int next = int.MaxValue;
        for (int r = 0; r < rows; r++)
        {
            if (s.FullAt[r] < s.FullEnd[r]) next = Math.Min(next, full[s.FullAt[r]]);
            if (s.PartialAt[r] < s.PartialEnd[r]) next = Math.Min(next, partial[s.PartialAt[r]]);
        }
        return next;
    }

    /// <summary>Row r's kind at <paramref name="block"/> (the next block it may list), advancing its cursor past it.</summary>
    private static int TakeKind(in ScratchLayout s, int r, int block, int[] full, int[] partial)
    {
        if (s.FullAt[r] < s.FullEnd[r] && full[s.FullAt[r]] == block)
        {
            s.FullAt[r]++;
            return KindFull;
        }
        if (s.PartialAt[r] < s.PartialEnd[r] && partial[s.PartialAt[r]] == block)
        {
            s.PartialAt[r]++;
            return KindPartial;
        }
        return KindNone;
    }

    /// <summary>Whether every row's kind at <paramref name="block"/> equals its kind in the current run (nothing advanced).</summary>
    private static bool SameKindsAt(in ScratchLayout s, int rows, int block, int[] full, int[] partial)
    {
        for (int r = 0; r < rows; r++)
        {
            int kind = s.FullAt[r] < s.FullEnd[r] && full[s.FullAt[r]] == block ? KindFull
                : s.PartialAt[r] < s.PartialEnd[r] && partial[s.PartialAt[r]] == block ? KindPartial : KindNone;
            if (kind != s.Kind[r]) return false;
        }
        return true;
    }

    /// <summary>The first key of the next block any row lists, or -1.</summary>
    private static int PeekNextKey(in ScratchLayout s, int rows, int[] full, int[] partial, int blockSize)
    {
        int next = NextBlock(s, rows, full, partial);
        return next == int.MaxValue ? -1 : next * blockSize;
    }

    /// <summary>
    /// The block <paramref name="ahead"/> places after the next one row 0 lists (merging its full and partial lists
    /// from the cursors, which are left as they are), or -1 past the end.
    /// </summary>
    private static int BlockAhead(in ScratchLayout s, int[] full, int[] partial, int ahead)
    {
        int f = s.FullAt[0], fe = s.FullEnd[0], q = s.PartialAt[0], qe = s.PartialEnd[0];
        for (int step = 0; ; step++)
        {
            bool takeFull = f < fe && (q >= qe || full[f] < partial[q]);
            if (!takeFull && q >= qe) return -1;
            int block = takeFull ? full[f++] : partial[q++];
            if (step == ahead) return block;
        }
    }

    /// <summary>Asks for <paramref name="bytes"/> bytes from <paramref name="start"/> to be brought into L2.</summary>
    private static void PrefetchL2(byte* start, long bytes)
    {
        for (long offset = 0; offset < bytes; offset += 64) Sse.Prefetch1(start + offset);
    }

    /// <summary>Asks for <paramref name="bytes"/> bytes from <paramref name="start"/> to be brought into cache.</summary>
    private static void Prefetch(byte* start, long bytes)
    {
        for (long offset = 0; offset < bytes; offset += 64) Sse.Prefetch0(start + offset);
    }

    /// <summary>Softcap on scores in log2 units: <c>s2 = out tanh(in s2)</c> is <c>c tanh(s / c)</c> times log2(e).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Softcap<TSimd, T>(float* scores, long count, float inScale, float outScale) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        T input = TSimd.Broadcast(inScale), output = TSimd.Broadcast(outScale);
        for (long n = 0; n < count; n += TSimd.Count)
            TSimd.Store(scores + n, TSimd.Multiply(output, CpuSimdMath.Tanh<TSimd, T>(TSimd.Multiply(TSimd.Load(scores + n), input))));
    }

    /// <summary>Merges the splits of every row through their log-sum-exps and writes O and the LSE.</summary>
    private static void Merge(Plan p)
    {
        Span<float> weights = stackalloc float[p.Splits];
        var row = p.MergeRow;
        fixed (float* rowPointer = row)
        {
            for (int b = 0; b < p.Batch; b++)
            for (int h = 0; h < p.QueryHeads; h++)
            for (int i = 0; i < p.QueryLength; i++)
            {
                for (int split = 0; split < p.Splits; split++) weights[split] = p.PartialLse[p.PartialRow(b, h, i, split)];
                float lse = LogSumExpMerge.ToWeights(weights);
                Array.Clear(row);
                for (int split = 0; split < p.Splits; split++)
                {
                    float weight = weights[split];
                    if (weight == 0) continue;
                    long partial = p.PartialRow(b, h, i, split) * p.ValueDim;
                    for (int d = 0; d < p.ValueDim; d++) row[d] += weight * p.Partials[partial + d];
                }
                CpuPacking.WriteRow(p.O + p.ElementSize * (p.OutputOffset + b * p.OutputStrides[0] + h * p.OutputStrides[1] + i * p.OutputStrides[2]),
                    p.OutputStrides[3], rowPointer, 1f, p.ValueDim, p.ElementType);
                if (p.Lse != null) p.Lse[p.LseOffset + b * p.LseStrides[0] + h * p.LseStrides[1] + i * p.LseStrides[2]] = lse;
            }
        }
    }

    /// <summary>
    /// Sizes, pointers, strides and the mask of one call, shared read-only by the workers (plus the item counter). One
    /// idle plan per thread (<see cref="ThreadIdle{T}"/>) is refilled by <see cref="Reset"/> for each call, its arrays
    /// kept while their lengths fit, so a steady stream of calls with the same shapes allocates nothing;
    /// <see cref="Return"/> drops the call's problem before keeping it.
    /// </summary>
    private sealed class Plan
    {
        public BlockSparseProblem Problem = null!;
        public int Batch, QueryHeads, KeyValueHeads, GroupSize, QueryLength, KeyLength, HeadDim, ValueDim, ValueStride;
        public int QueryBlockSize, KeyBlockSize, QueryBlocks, KeyBlocks;
        public int HeadsPerItem, HeadChunks, Splits, Items, GroupVectors, GroupWidth, MaxColumns;
        /// <summary>
        /// Adjacent query blocks per item (when one block's columns fill whole column groups, as flash's 256 columns):
        /// a K/V tile two of them list is read once, and the per-item and per-tile costs are shared.
        /// </summary>
        public int QueryBlocksPerItem, BlockRuns, RowsPerItem;
        public float Log2Scale, SoftcapIn, SoftcapOut;
        public bool Softcap, PredicateNone, PredicateIsRange, DirectKeys, DirectValues;
        public int Capacity;
        public int[] PartialCounts = [], PartialIndices = [], FullIndices = [];
        public int[]? FullCounts;
        public int[]? QueryDocuments, KeyDocuments;
        /// <summary>The pinned <see cref="KeyDocuments"/> while the workers run.</summary>
        public int* KeyDocumentsPointer;
        /// <summary>Items in the order workers take them: head by head, within a head most listed blocks first, so long items do not finish last.</summary>
        public int[] Order = [];
        public float[] Partials = [], PartialLse = [];
        /// <summary>One output row of <see cref="Merge"/>.</summary>
        public float[] MergeRow = [];
        public ElementType ElementType;
        public long ElementSize;
        public byte* Q, K, V, O;
        public float* Lse;
        public long QueryOffset, KeyOffset, ValueOffset, OutputOffset, LseOffset;
        public long[] QueryStrides = new long[4], KeyStrides = new long[4], ValueStrides = new long[4], OutputStrides = new long[4], LseStrides = new long[3];
        public long ScratchFloats;
        public int NextItem;

        // What the arrays above are refilled from, kept between calls: full counts, document ids and item costs.
        private int[] _fullCounts = [], _queryDocuments = [], _keyDocuments = [];
        private long[] _orderKeys = [];

        public void Reset(BlockSparseProblem problem, int vectorWidth, int threads, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp,
            byte* q, byte* k, byte* v, byte* o, float* lse)
        {
            Problem = problem;
            NextItem = 0;
            Batch = problem.Batch;
            QueryHeads = problem.QueryHeads;
            KeyValueHeads = problem.KeyValueHeads;
            GroupSize = problem.GroupSize;
            QueryLength = problem.QueryLength;
            KeyLength = problem.KeyLength;
            HeadDim = problem.HeadDim;
            ValueDim = problem.ValueDim;
            ValueStride = (ValueDim + vectorWidth - 1) / vectorWidth * vectorWidth;
            QueryBlockSize = problem.QueryBlockSize;
            KeyBlockSize = problem.KeyBlockSize;
            QueryBlocks = problem.QueryBlocks;
            KeyBlocks = problem.KeyBlocks;
            int queriesPerBlock = Math.Min(QueryBlockSize, QueryLength);
            HeadsPerItem = Math.Clamp(CpuFlashTiles.ColumnsPerItem / queriesPerBlock, 1, GroupSize);
            HeadChunks = (GroupSize + HeadsPerItem - 1) / HeadsPerItem;
            bool narrow = vectorWidth >= CpuFlashTiles.RowBlock && HeadsPerItem * queriesPerBlock <= CpuFlashTiles.NarrowGroupMaxVectors * vectorWidth;
            GroupVectors = narrow ? 1 : CpuFlashTiles.GroupVectors;
            GroupWidth = GroupVectors * vectorWidth;
            int blockColumns = HeadsPerItem * queriesPerBlock;
            QueryBlocksPerItem = !narrow && HeadsPerItem == GroupSize && blockColumns % GroupWidth == 0
                ? Math.Clamp(CpuFlashTiles.ColumnsPerItem / blockColumns, 1, QueryBlocks) : 1;
            BlockRuns = (QueryBlocks + QueryBlocksPerItem - 1) / QueryBlocksPerItem;
            RowsPerItem = QueryBlocksPerItem * HeadsPerItem;
            MaxColumns = (QueryBlocksPerItem * blockColumns + GroupWidth - 1) / GroupWidth * GroupWidth;
            Log2Scale = (float)(problem.Scale * MathConstants.Log2EDouble);
            float softcap = problem.Options.Softcap;
            (Softcap, SoftcapIn, SoftcapOut) = (false, 0, 0);
            if (softcap > 0)
            {
                Softcap = true;
                SoftcapIn = (float)(1 / (MathConstants.Log2EDouble * softcap));
                SoftcapOut = (float)(softcap * MathConstants.Log2EDouble);
            }
            var predicate = problem.Options.Predicate;
            PredicateNone = predicate.Kind == ElementPredicateKind.None;
            PredicateIsRange = problem.PredicateIsRange;
            (QueryDocuments, KeyDocuments) = (null, null);
            if (predicate.Kind == ElementPredicateKind.Document)
            {
                QueryDocuments = _queryDocuments = KeptArray.Refill(_queryDocuments, predicate.QueryDocuments.Span);
                KeyDocuments = _keyDocuments = KeptArray.Refill(_keyDocuments, predicate.KeyDocuments.Span);
            }

            var mask = problem.Mask;
            Capacity = mask.MaxBlocksPerRow;
            PartialCounts = KeptArray.Refill(PartialCounts, mask.PartialCounts.Span);
            PartialIndices = KeptArray.Refill(PartialIndices, mask.PartialIndices.Span);
            FullCounts = mask.FullCounts.IsEmpty ? null : _fullCounts = KeptArray.Refill(_fullCounts, mask.FullCounts.Span);
            FullIndices = KeptArray.Refill(FullIndices, mask.FullIndices.Span);

            ElementType = problem.ElementType;
            ElementSize = ElementType.SizeOf();
            Q = q; K = k; V = v; O = o; Lse = lse;
            QueryOffset = query.Offset;
            query.Strides.CopyTo(QueryStrides);
            KeyOffset = key.Offset;
            key.Strides.CopyTo(KeyStrides);
            ValueOffset = value.Offset;
            value.Strides.CopyTo(ValueStrides);
            OutputOffset = output.Offset;
            output.Strides.CopyTo(OutputStrides);
            if (logSumExp is { } l)
            {
                LseOffset = l.Offset;
                l.Strides.CopyTo(LseStrides);
            }
            else
            {
                LseOffset = 0;
                Array.Clear(LseStrides);
            }
            DirectKeys = ElementType == ElementType.Float32 && KeyStrides[3] == 1;
            DirectValues = ElementType == ElementType.Float32 && ValueStrides[3] == 1 && ValueStride == ValueDim;

            // Split the key blocks when there are too few items to keep every worker busy and rows are long.
            int baseItems = Batch * KeyValueHeads * BlockRuns * HeadChunks;
            long longest = 0;
            for (int row = 0; row < PartialCounts.Length; row++)
                longest = Math.Max(longest, PartialCounts[row] + (FullCounts?[row] ?? 0));
            int wanted = baseItems >= 2 * threads ? 1 : (4 * threads + baseItems - 1) / baseItems;
            Splits = (int)Math.Clamp(Math.Min(wanted, longest * KeyBlockSize / MinKeysPerSplit), 1, Math.Max(1, KeyBlocks));
            Items = baseItems * Splits;
            if (Splits > 1)
            {
                // Every (row, split) is written by exactly one item before Merge reads it: the arrays need no clearing.
                long partialRows = (long)Batch * QueryHeads * QueryLength * Splits;
                if (Partials.Length != partialRows * ValueDim) Partials = new float[partialRows * ValueDim];
                if (PartialLse.Length != partialRows) PartialLse = new float[partialRows];
                if (MergeRow.Length != ValueDim) MergeRow = new float[ValueDim];
            }
            OrderByCost();
            ScratchFloats = ScratchLayout.Floats(this);
        }

        /// <summary>Drops the finished call's problem (and through it the caller's options) and keeps the plan for this thread's next call.</summary>
        public void Return()
        {
            Problem = null!;
            Q = K = V = O = null;
            Lse = null;
            KeyDocumentsPointer = null;
            ThreadIdle<Plan>.Return(this);
        }

        /// <summary>Row of the partial results of (batch, query head, query, split).</summary>
        public long PartialRow(int batch, int head, int index, int split) =>
            (((long)batch * QueryHeads + head) * QueryLength + index) * Splits + split;

        /// <summary>
        /// Fills <see cref="Order"/>: item numbers (batch, kv head) by (batch, kv head), so that both workers read one
        /// head's K and V at a time (it stays in cache, where scattered blocks of every head would come from memory);
        /// within a head, by the number of blocks their first head lists over the item's query blocks (descending, ties
        /// by number).
        /// </summary>
        private void OrderByCost()
        {
            if (Order.Length != Items) Order = new int[Items];
            if (_orderKeys.Length != Items) _orderKeys = new long[Items];
            var keys = _orderKeys;
            for (int item = 0; item < Items; item++)
            {
                int split = item % Splits, rest = item / Splits;
                int chunk = rest % HeadChunks;
                rest /= HeadChunks;
                int blockRun = rest % BlockRuns;
                rest /= BlockRuns;
                int batch = rest / KeyValueHeads, kvHead = rest % KeyValueHeads;
                long blocks = 0;
                for (int qb = blockRun * QueryBlocksPerItem; qb < Math.Min(QueryBlocks, (blockRun + 1) * QueryBlocksPerItem); qb++)
                {
                    int row = Problem.MaskRow(batch, kvHead * GroupSize + chunk * HeadsPerItem, qb);
                    blocks += PartialCounts[row] + (FullCounts?[row] ?? 0);
                }
                long cost = Splits > 1 ? blocks / Splits : blocks;
                // Sort key: cost descending, then item ascending (costs are at most 2 x KeyBlocks x QueryBlocksPerItem).
                keys[item] = ((long)(int.MaxValue - (int)Math.Min(cost, int.MaxValue)) << 32) | (uint)item;
            }
            // Item numbers run batch and kv head outermost: one (batch, kv head)'s items are perHead numbers in a row,
            // each such run sorted by itself.
            int perHead = Splits * HeadChunks * BlockRuns;
            for (int start = 0; start < Items; start += perHead)
                keys.AsSpan(start, Math.Min(perHead, Items - start)).Sort();
            for (int n = 0; n < Items; n++) Order[n] = (int)(keys[n] & 0xFFFFFFFF);
        }
    }

    /// <summary>Carves one worker's scratch into the item's buffers; every block starts 64-byte aligned.</summary>
    private readonly struct ScratchLayout
    {
        public readonly float* QueryT, QueryRows, Output, Max, Sum, Alpha, Keys, Values, Scores, TileStart, TileEnd, Row;
        public readonly int* Start, End, QueryDocument, GroupLow, GroupHigh, GroupFullLow, GroupFullHigh;
        public readonly int* FullAt, FullEnd, PartialAt, PartialEnd, Kind, ColumnRow, ColumnHead, ColumnIndex, GroupRow;
        private readonly float* _end;

        public ScratchLayout(float* scratch, Plan p)
        {
            float* next = scratch;
            int columns = p.MaxColumns, groups = columns / p.GroupWidth, rows = p.RowsPerItem;
            QueryT = CpuScratch.Take(ref next, (long)columns * p.HeadDim);
            QueryRows = CpuScratch.Take(ref next, (long)columns * p.HeadDim);
            Output = CpuScratch.Take(ref next, (long)columns * p.ValueStride);
            Max = CpuScratch.Take(ref next, columns);
            Sum = CpuScratch.Take(ref next, columns);
            Alpha = CpuScratch.Take(ref next, p.GroupWidth);
            Keys = CpuScratch.Take(ref next, (long)KeyTile * p.HeadDim);
            Values = CpuScratch.Take(ref next, (long)KeyTile * p.ValueStride);
            Scores = CpuScratch.Take(ref next, (long)KeyTile * p.GroupWidth);
            TileStart = CpuScratch.Take(ref next, p.GroupWidth);
            TileEnd = CpuScratch.Take(ref next, p.GroupWidth);
            Row = CpuScratch.Take(ref next, Math.Max(p.HeadDim, p.ValueDim));
            Start = (int*)CpuScratch.Take(ref next, columns);
            End = (int*)CpuScratch.Take(ref next, columns);
            QueryDocument = (int*)CpuScratch.Take(ref next, columns);
            GroupLow = (int*)CpuScratch.Take(ref next, groups);
            GroupHigh = (int*)CpuScratch.Take(ref next, groups);
            GroupFullLow = (int*)CpuScratch.Take(ref next, groups);
            GroupFullHigh = (int*)CpuScratch.Take(ref next, groups);
            FullAt = (int*)CpuScratch.Take(ref next, rows);
            FullEnd = (int*)CpuScratch.Take(ref next, rows);
            PartialAt = (int*)CpuScratch.Take(ref next, rows);
            PartialEnd = (int*)CpuScratch.Take(ref next, rows);
            Kind = (int*)CpuScratch.Take(ref next, rows);
            ColumnRow = (int*)CpuScratch.Take(ref next, columns);
            ColumnHead = (int*)CpuScratch.Take(ref next, columns);
            ColumnIndex = (int*)CpuScratch.Take(ref next, columns);
            GroupRow = (int*)CpuScratch.Take(ref next, groups);
            _end = next;
        }

        /// <summary>The floats the layout needs for <paramref name="p"/>, measured by laying it out from address 0.</summary>
        public static long Floats(Plan p) => (long)new ScratchLayout(null, p)._end / sizeof(float);
    }
}
