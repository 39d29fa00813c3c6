// CPU neighborhood attention on 1-D grids, banded ("diagonal") form: only the visible (query, key) pairs of a block of
// 16 consecutive queries are computed, no per-item tables (1-D windows are arithmetic).
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NativeAttention.Cpu;

/// <summary>
/// The dedicated 1-D path of <see cref="CpuNeighborhood"/>: float32 storage with unit element stride on every tensor,
/// 512-bit vectors (AVX-512F), stride 1; any kernel size (odd or even), dilation, causal flag, valid extent (padding),
/// relative-position bias, GQA/MQA, Dv != Dqk and LSE. Other problems (additional keys, stride &gt; 1, 16-bit storage,
/// strided elements, narrower vectors) return false from <see cref="TryRun"/> and take the general kernel.
/// </summary>
/// <remarks>
/// <para>Work item: (sample, key/value head, dilation group, run of up to <see cref="ChunkQueries"/> consecutive
/// queries of the group). In group coordinates a query i sees the keys <c>[start(i), end(i))</c>; both ends move by 0 or
/// 1 from one query to the next (stride 1). The item copies the keys its queries see, transposed, to
/// <c>KT[d][u]</c> (16 x 16 register transposes), once for all its query heads; P V reads the value rows in place when
/// Dv is a multiple of 16, else from a copy padded to whole vectors.</para>
/// <para>Per query head and block of 16 queries (the lanes, query <c>i0 + l</c> in lane l): diagonal j holds key
/// <c>i0 + l + j + D0</c> in lane l (<c>D0 = -(k/2)</c>, causal <c>-(k-1)</c>), so the scores of one diagonal are
/// <c>sum_d QT[d][lanes] * KT[d][i0 + j + D0 + lanes]</c>: a vector multiply-add with an unaligned load, no broadcast,
/// no keys outside the union of the lanes' diagonal ranges (exactly k diagonals inside the grid). For 17 &lt;= k &lt;= 33
/// the full interior blocks of an item form a chain: consecutive blocks share the loads of every key column they
/// overlap on (<see cref="Link"/>; at k 33 a column also serves the block before, <see cref="Pair8Plus1"/>), so only a
/// run's first and last blocks compute diagonals alone; otherwise two consecutive full blocks with the same diagonals
/// share the loads of the diagonals they overlap on (<see cref="ScoresPair"/>). The diagonals outside
/// a lane's window are masked, the relative-position bias is one scalar per diagonal (the offset key - query is
/// <c>j + D0</c> in every lane), and the softmax runs once over the block's diagonals (all of a query's keys are there).
/// P V then runs per 4 lanes in row form: each value row of the 4 queries' union of windows is loaded once and
/// multiplies the 4 queries' probabilities (zero outside a query's window: the score rows around the block's diagonals
/// are zeros), so 4 queries x up to 4 vectors of values are 16 accumulators.</para>
/// <para>Workers claim units from a shared counter: the items of one chunk, every dilation group in turn (one item at
/// dilation 1; single items for the last units of a call, see <see cref="Plan.GroupUnits"/>), the next unit claimed
/// when the last item of the current one starts. The next item's K, V, Q and O rows are prefetched into L2 a few rows
/// between the current item's kernels (<see cref="NextItemRows"/>). An item is computed by one worker in a fixed order,
/// so results do not depend on the thread count.</para>
/// </remarks>
internal static unsafe class Neighborhood1D
{
    /// <summary>Queries of one dilation group per work item.</summary>
    private const int ChunkQueries = 256;
    /// <summary>Lanes of a block: the queries whose diagonals are computed together.</summary>
    private const int Lanes = 16;
    /// <summary>Zero key columns before the first key of an item's transposed keys (unaligned loads of border lanes reach up to 15 before).</summary>
    private const int LeftPad = 16;
    /// <summary>Zero score rows before and after a block's diagonals, read by the P V quads (their lanes' windows differ by up to 3 rows).</summary>
    private const int ZeroRows = 4;

    /// <summary>
    /// Calls this path ran on the calling thread (a test hook: the properties check that their 1-D cases of its shapes
    /// take it; per thread, so tests running side by side do not see each other's calls).
    /// </summary>
    [ThreadStatic] internal static long CallsOnThisThread;

    /// <summary>Whether <see cref="TryRun"/> takes the problem (and its tensors), without running it.</summary>
    internal static bool Accepts(NeighborhoodProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, int vectorBits) =>
        vectorBits == 512 && Avx512F.IsSupported && Vector512.IsHardwareAccelerated
        && problem.SpatialRank == 1 && problem.ElementType == ElementType.Float32 && problem.Stride[0] == 1 && problem.AdditionalKeyCount == 0
        && query.Strides[^1] == 1 && key.Strides[^1] == 1 && value.Strides[^1] == 1 && output.Strides[^1] == 1
        && problem.KernelSize[0] <= 4096;

    /// <summary>Runs the problem on this path when <see cref="Accepts"/> takes it; returns false (having done nothing) otherwise.</summary>
    public static bool TryRun(NeighborhoodProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp,
        int threads, int vectorBits)
    {
        if (!Accepts(problem, query, key, value, output, vectorBits)) return false;
        using var qPin = query.Storage!.Pin();
        using var kPin = key.Storage!.Pin();
        using var vPin = value.Storage!.Pin();
        using var oPin = output.Storage!.Pin();
        using var lPin = logSumExp is { } l ? l.Storage!.Pin() : default;
        // The thread's idle plan, refilled: a steady stream of calls allocates nothing (its arrays are kept and grow only).
        var plan = Plan.Rent();
        try
        {
            plan.Reset(problem, query, key, value, output, logSumExp, (float*)qPin.Pointer, (float*)kPin.Pointer, (float*)vPin.Pointer, (float*)oPin.Pointer,
                (float*)lPin.Pointer);
            plan.WritePaddingRows();
            plan.GroupUnits(threads);
            CpuWorkers.Run(plan, threads, plan.UnitCount, Work);
        }
        finally
        {
            plan.Return();
        }
        CallsOnThisThread++;
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Work(Plan plan)
    {
        float* scratch = CpuScratch.Get(plan.ScratchFloats);
        int unit = Interlocked.Increment(ref plan.NextItem) - 1;
        while (unit < plan.UnitCount)
        {
            // A unit's items run in turn; the next unit is claimed ahead when its last item starts, so that the next
            // item's keys and values (from memory) are prefetched while this one computes.
            int end = plan.UnitStart[unit + 1], next = plan.UnitCount;
            for (int i = plan.UnitStart[unit]; i < end; i++)
            {
                Item? following = null;
                if (i + 1 < end) following = plan.Items[i + 1];
                else
                {
                    next = Interlocked.Increment(ref plan.NextItem) - 1;
                    if (next < plan.UnitCount) following = plan.Items[plan.UnitStart[next]];
                }
                RunItem(plan, plan.Items[i], scratch, following);
            }
            unit = next;
        }
    }

    /// <summary>The window <c>[start, end)</c> of query <paramref name="i"/> of a group of <paramref name="length"/> positions (group coordinates, stride 1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (int Start, int End) Window(int i, int length, int kernel, bool causal)
    {
        if (causal) return (Math.Max(i - kernel + 1, 0), i + 1);
        int start = Math.Clamp(i - kernel / 2, 0, length - kernel);
        return (start, start + kernel);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RunItem(Plan p, Item item, float* scratch, Item? nextItem)
    {
        var s = new ScratchLayout(scratch, p);
        int kernel = p.Kernel, dilation = p.Dilation, group = item.Group, length = item.GroupLength;
        bool causal = p.Causal;
        int d0 = causal ? -(kernel - 1) : -(kernel / 2);
        int first = item.First, last = item.First + item.Count - 1;
        int keyLow = Window(first, length, kernel, causal).Start, keyHigh = Window(last, length, kernel, causal).End;
        int keys = keyHigh - keyLow;
        int dqk = p.HeadDim, dv = p.ValueDim, dvStride = p.ValueStride;
        long rowLength = p.KeyRowLength;

        // Keys transposed (KT[d][LeftPad + u - keyLow]) with zero columns around them; values as rows of whole vectors.
        long kBase = p.KeyOffset + item.Batch * p.KeyStrides[0] + item.KeyValueHead * p.KeyStrides[1] + (long)group * p.KeyStrides[2];
        long kStep = dilation * p.KeyStrides[2];
        int blocked = (keys + Lanes - 1) / Lanes * Lanes;
        for (int u0 = 0; u0 < blocked; u0 += Lanes)
        {
            // The rows come from memory (touched once per call and head); two blocks ahead are prefetched.
            for (int u = u0 + 2 * Lanes; u < Math.Min(keys, u0 + 3 * Lanes); u++)
                Prefetch(p.K + kBase + (keyLow + u) * kStep, dqk);
            for (int l = 0; l < Lanes; l++)
                s.Rows[l] = u0 + l < keys ? p.K + kBase + (keyLow + u0 + l) * kStep : null;
            NeighborhoodKernels.TransposeQueries<Simd512, Vector512<float>>(s.Rows, s.Zeros, dqk, 1f, s.KeysT + LeftPad + u0, (int)rowLength);
        }
        for (int d = 0; d < dqk; d++)
        {
            float* row = s.KeysT + d * rowLength;
            new Span<float>(row, LeftPad).Clear();
            new Span<float>(row + LeftPad + blocked, (int)(rowLength - LeftPad - blocked)).Clear();
        }
        long vBase = p.ValueOffset + item.Batch * p.ValueStrides[0] + item.KeyValueHead * p.ValueStrides[1] + (long)group * p.ValueStrides[2];
        long vStep = dilation * p.ValueStrides[2];
        // Rows of whole vectors (Dv a multiple of 16) are read in place by P V, vStep floats apart (measured 1.03-1.08x
        // on the Intel host, aligned or not, against copying them: the copy's loads and stores cost more than reading
        // the rows from where the next-item prefetch put them); other rows are copied, padded with zeros to whole vectors.
        bool inPlace = dv == dvStride && vStep <= int.MaxValue;
        float* valueRows = inPlace ? p.V + vBase + keyLow * vStep : s.Values;
        int valueRowStride = inPlace ? (int)vStep : dvStride;
        for (int u = 0; u < (inPlace ? 0 : keys); u++)
        {
            if (u + 8 < keys) Prefetch(p.V + vBase + (keyLow + u + 8) * vStep, dv);
            float* source = p.V + vBase + (keyLow + u) * vStep, target = s.Values + (long)u * dvStride;
            int e = 0;
            for (; e + 16 <= dv; e += 16) Vector512.Store(Vector512.Load(source + e), target + e);
            for (; e < dv; e++) target[e] = source[e];
            for (; e < dvStride; e++) target[e] = 0;
        }

        int* windowStart = s.WindowStart, windowEnd = s.WindowEnd;
        // The next item's key, value, query and output rows, into L2 a few rows at a time between the blocks' kernels.
        var ahead = new NextItemRows(p, nextItem, item);
        bool pending = false; // this block's scores were computed with the previous block's (a pair)
        int current = 0;
        // A chain (17 <= k <= 33): a run of full interior blocks [chainStart, chainEnd) whose consecutive blocks share
        // the key loads of every diagonal they overlap on (see Link); chainLinked: the run's blocks whose first 16
        // diagonals are computed.
        bool chains = kernel >= Lanes + 1 && kernel <= 2 * Lanes + 1;
        int chainStart = 0, chainEnd = 0, chainLinked = 0;
        for (int h = 0; h < p.GroupSize; h++)
        {
            int head = item.KeyValueHead * p.GroupSize + h;
            long qBase = p.QueryOffset + item.Batch * p.QueryStrides[0] + head * p.QueryStrides[1];
            long oBase = p.OutputOffset + item.Batch * p.OutputStrides[0] + head * p.OutputStrides[1];
            long lBase = p.LseOffset + item.Batch * p.LseStrides[0] + head * p.LseStrides[1];
            float* bias = p.Bias == null ? null : p.Bias + (long)head * (2 * kernel - 1) + kernel - 1 + d0;
            chainEnd = 0; // runs are per head
            for (int i0 = first; i0 <= last; i0 += Lanes)
            {
                int real = Math.Min(Lanes, last + 1 - i0);
                // Lane windows in diagonal coordinates; padding lanes copy a real lane's (finite scores; never written).
                int jLow = int.MaxValue, jHigh = int.MinValue;
                bool interior = Interior(i0, real, length, kernel, causal);
                if (interior)
                {
                    // Every lane's window is [i + d0, i + d0 + k): diagonals [0, k) in every lane.
                    var lane = Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
                    (lane + Vector512.Create(i0 + d0)).Store(windowStart);
                    (lane + Vector512.Create(i0 + d0 + kernel)).Store(windowEnd);
                    Vector512<int>.Zero.Store(s.DiagonalStart);
                    Vector512.Create(kernel).Store(s.DiagonalEnd);
                    (jLow, jHigh) = (0, kernel);
                }
                else for (int l = 0; l < Lanes; l++)
                {
                    int i = i0 + Math.Min(l, real - 1);
                    var (start, end) = Window(i, length, kernel, causal);
                    windowStart[l] = start;
                    windowEnd[l] = end;
                    int js = start - i - d0, je = end - i - d0;
                    s.DiagonalStart[l] = js;
                    s.DiagonalEnd[l] = je;
                    if (l < real)
                    {
                        jLow = Math.Min(jLow, js);
                        jHigh = Math.Max(jHigh, je);
                    }
                }
                for (int l = real; l < Lanes; l++)
                {
                    // A padding lane keeps one diagonal inside the block's range, so its row stays finite.
                    s.DiagonalStart[l] = jLow;
                    s.DiagonalEnd[l] = jLow + 1;
                }
                // Exactly the union of the lanes' diagonals (k inside the grid): the kernels take 12, 9, 8 or 4 at a
                // time and a tail of 1 to 3, so no diagonal is computed only to be masked.
                int diagonals = jHigh - jLow;
                // The next block's query rows (in L2 from the previous item's prefetch) into L1.
                for (int i = i0 + Lanes; i < Math.Min(last + 1, i0 + 2 * Lanes); i++)
                    Prefetch(p.Q + qBase + (long)(group + i * dilation) * p.QuerySpatial, dqk);

                // Scores: diagonal t of the block (j = jLow + t) reads KT from the column of lane 0's key.
                float* scores = s.Scores + (current * s.ScoreBlockFloats + ZeroRows * Lanes);
                float* keyT = s.KeysT + LeftPad + (i0 + d0 + jLow - keyLow);
                if (chains && !pending && i0 >= chainEnd && Interior(i0, real, length, kernel, causal))
                {
                    // A new run: the full interior blocks from here to the item's last one (at least two).
                    int end = i0 + Lanes;
                    while (end + Lanes - 1 <= last && Interior(end, Lanes, length, kernel, causal)) end += Lanes;
                    if (end - i0 >= 2 * Lanes)
                    {
                        (chainStart, chainEnd, chainLinked) = (i0, end, 1);
                        TransposeQueryBlock(p, s, qBase, group, dilation, i0, Lanes, s.ChainQueryT);
                        DiagonalsRun(s.ChainQueryT, keyT, rowLength, dqk, s.ChainScores + ZeroRows * Lanes, Lanes, ref ahead);
                    }
                }
                if (i0 < chainEnd)
                {
                    // Block b of the run keeps its transposed queries and scores in ring slot b % 3; its scores are
                    // complete once the links to the next one and (k 33) the one after are computed.
                    int b = (i0 - chainStart) / Lanes, blocks = (chainEnd - chainStart) / Lanes;
                    scores = ChainScores(s, b);
                    for (int need = Math.Min(blocks - 1, b + (kernel > 2 * Lanes ? 2 : 1)); chainLinked <= need; chainLinked++)
                    {
                        int l = chainLinked;
                        TransposeQueryBlock(p, s, qBase, group, dilation, chainStart + l * Lanes, Lanes, ChainQueryT(s, l));
                        ahead.Step();
                        Link(ChainQueryT(s, l - 1), ChainQueryT(s, l), l >= 2 ? ChainQueryT(s, l - 2) : null, keyT + (l - b) * Lanes, rowLength, dqk, kernel,
                            ChainScores(s, l - 1), ChainScores(s, l), l >= 2 ? ChainScores(s, l - 2) : null, ref ahead);
                    }
                    float* queryT = ChainQueryT(s, b);
                    if (b == blocks - 1) DiagonalsRun(queryT, keyT + Lanes, rowLength, dqk, scores + Lanes * Lanes, kernel - Lanes, ref ahead);
                    else if (kernel > 2 * Lanes && b == blocks - 2) DiagonalsTail<One>(queryT, keyT + 2 * Lanes, rowLength, dqk, scores + 2 * Lanes * Lanes);
                }
                else if (!pending)
                {
                    TransposeQueryBlock(p, s, qBase, group, dilation, i0, real, s.QueryT);
                    // A full next block with the same diagonals 16 columns on: the two share the key loads of the
                    // diagonals they overlap on (this block's t >= 16 are the next one's t - 16).
                    bool pair = real == Lanes && i0 + 2 * Lanes - 1 <= last && diagonals >= 20
                        && (Interior(i0 + Lanes, Lanes, length, kernel, causal) ? (0, kernel) : BlockDiagonals(i0 + Lanes, length, kernel, causal, d0)) == (jLow, jHigh);
                    if (pair)
                    {
                        float* other = s.Scores + ((current ^ 1) * s.ScoreBlockFloats + ZeroRows * Lanes);
                        TransposeQueryBlock(p, s, qBase, group, dilation, i0 + Lanes, Lanes, s.QueryT2);
                        ahead.Step();
                        ScoresPair(s.QueryT, s.QueryT2, keyT, rowLength, dqk, diagonals, scores, other, ref ahead);
                        pending = true;
                    }
                    else
                    {
                        int t = 0;
                        for (; t + 12 <= diagonals; t += 12, ahead.Step()) Diagonals12(s.QueryT, keyT + t, rowLength, dqk, scores + t * Lanes);
                        for (; t + 4 <= diagonals; t += 4) Diagonals4(s.QueryT, keyT + t, rowLength, dqk, scores + t * Lanes);
                        DiagonalsTail(s.QueryT, keyT + t, rowLength, dqk, scores + t * Lanes, diagonals - t);
                    }
                }
                else pending = false;
                if (bias != null)
                    for (int j = jLow; j < jHigh; j++)
                    {
                        float* row = scores + (j - jLow) * Lanes;
                        Vector512.Store(Vector512.Load(row) + Vector512.Create(bias[j]), row);
                    }
                var (max, sum) = MaskAndSoftmax(scores, diagonals, jLow, s.DiagonalStart, s.DiagonalEnd, interior);
                var zero = Vector512<float>.Zero;
                for (int r = 0; r < ZeroRows; r++)
                {
                    Vector512.Store(zero, scores + (r - ZeroRows) * Lanes);
                    Vector512.Store(zero, scores + (diagonals + r) * Lanes);
                }
                var inverse = Vector512<float>.One / sum;
                inverse.Store(s.Inverse);

                // P V per quad of lanes over the union of its windows: key row u is diagonal u - (i0 + l) - d0 of lane l.
                for (int quad = 0; quad * 4 < real; quad++)
                {
                    int l0 = quad * 4, lastLane = Math.Min(l0 + 3, real - 1);
                    // Straight into O when its rows take whole vectors and all four lanes are queries.
                    bool wide = p.OutputRowsWide && lastLane == l0 + 3;
                    int uLow = windowStart[l0], uHigh = windowEnd[lastLane];
                    float* probabilities = scores + (uLow - i0 - l0 - d0 - jLow) * Lanes + l0;
                    float* values = valueRows + (long)(uLow - keyLow) * valueRowStride;
                    float* target = wide ? p.O + oBase + (long)(group + (i0 + l0) * dilation) * p.OutputSpatial : s.Output;
                    long targetStride = wide ? dilation * p.OutputSpatial : dvStride;
                    ahead.Step();
                    int e = 0;
                    for (; e + 64 <= dvStride; e += 64)
                        AccumulateQuad<Four>(probabilities, values + e, uHigh - uLow, valueRowStride, s.Inverse + l0, target + e, targetStride);
                    switch ((dvStride - e) / 16)
                    {
                        case 3: AccumulateQuad<Three>(probabilities, values + e, uHigh - uLow, valueRowStride, s.Inverse + l0, target + e, targetStride); break;
                        case 2: AccumulateQuad<Two>(probabilities, values + e, uHigh - uLow, valueRowStride, s.Inverse + l0, target + e, targetStride); break;
                        case 1: AccumulateQuad<One>(probabilities, values + e, uHigh - uLow, valueRowStride, s.Inverse + l0, target + e, targetStride); break;
                    }
                    if (!wide)
                        for (int l = l0; l <= lastLane; l++)
                        {
                            float* row = p.O + oBase + (long)(group + (i0 + l) * dilation) * p.OutputSpatial, source = s.Output + (long)(l - l0) * dvStride;
                            for (int x = 0; x < dv; x++) row[x] = source[x];
                        }
                }
                if (p.Lse != null)
                {
                    var lse = (max + Log2(sum)) * Vector512.Create(MathConstants.Ln2);
                    for (int l = 0; l < real; l++) p.Lse[lBase + (long)(group + (i0 + l) * dilation) * p.LseSpatial] = lse.GetElement(l);
                }
                // A pair's second block has its scores in the other buffer.
                if (pending) current ^= 1;
            }
        }
    }

    /// <summary>Ring slot <c>b % 3</c> of a chain's transposed queries.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float* ChainQueryT(in ScratchLayout s, int b) => s.ChainQueryT + (long)(b % 3) * s.QueryTFloats;

    /// <summary>Ring slot <c>b % 3</c> of a chain's score blocks (row 0, past the zero rows).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float* ChainScores(in ScratchLayout s, int b) => s.ChainScores + ((b % 3) * s.ScoreBlockFloats + ZeroRows * Lanes);

    /// <summary><paramref name="count"/> diagonals of one block in twelves, fours and a tail.</summary>
    private static void DiagonalsRun(float* queryT, float* keyT, long rowLength, int headDim, float* scores, int count, ref NextItemRows ahead)
    {
        int t = 0;
        for (; t + 12 <= count; t += 12, ahead.Step()) Diagonals12(queryT, keyT + t, rowLength, headDim, scores + t * Lanes);
        for (; t + 4 <= count; t += 4) Diagonals4(queryT, keyT + t, rowLength, headDim, scores + t * Lanes);
        DiagonalsTail(queryT, keyT + t, rowLength, headDim, scores + t * Lanes, count - t);
    }

    /// <summary>
    /// The link between consecutive full interior blocks A and B of a chain (17 &lt;= k &lt;= 33): the 16 key columns
    /// from B's first, <paramref name="keyT"/>, are B's diagonals 0-15 and A's 16 to min(k, 32) - 1 (one load for both
    /// blocks' multiply-adds), and at k 33 the first of them is also diagonal 32 of the block before A
    /// (<paramref name="queryC"/>, null for none: then computed alone at the end of the run). Every block but a
    /// run's first and last then gets all its diagonals from two links, 0.6 loads per multiply-add.
    /// </summary>
    private static void Link(float* queryA, float* queryB, float* queryC, float* keyT, long rowLength, int headDim, int kernel, float* scoresA, float* scoresB,
        float* scoresC, ref NextItemRows ahead)
    {
        int shared = Math.Min(kernel, 2 * Lanes) - Lanes;
        float* a = scoresA + Lanes * Lanes;
        if (shared == Lanes)
        {
            if (kernel > 2 * Lanes && queryC != null) Pair8Plus1(queryA, queryB, queryC, keyT, rowLength, headDim, a, scoresB, scoresC + 2 * Lanes * Lanes);
            else Pair8(queryA, queryB, keyT, rowLength, headDim, a, scoresB);
            ahead.Step();
            Pair8(queryA, queryB, keyT + 8, rowLength, headDim, a + 8 * Lanes, scoresB + 8 * Lanes);
            ahead.Step();
            return;
        }
        int t = 0;
        for (; t + 8 <= shared; t += 8, ahead.Step()) Pair8(queryA, queryB, keyT + t, rowLength, headDim, a + t * Lanes, scoresB + t * Lanes);
        if (t + 4 <= shared)
        {
            Pair4(queryA, queryB, keyT + t, rowLength, headDim, a + t * Lanes, scoresB + t * Lanes);
            t += 4;
        }
        switch (shared - t)
        {
            case 3: PairTail<Three>(queryA, queryB, keyT + t, rowLength, headDim, a + t * Lanes, scoresB + t * Lanes); break;
            case 2: PairTail<Two>(queryA, queryB, keyT + t, rowLength, headDim, a + t * Lanes, scoresB + t * Lanes); break;
            case 1: PairTail<One>(queryA, queryB, keyT + t, rowLength, headDim, a + t * Lanes, scoresB + t * Lanes); break;
        }
        // B's diagonals past A's last.
        DiagonalsRun(queryB, keyT + shared, rowLength, headDim, scoresB + shared * Lanes, Lanes - shared, ref ahead);
    }

    /// <summary>
    /// Eight diagonals of two blocks as <see cref="Pair8"/>, and the first column's multiply-add for a third block
    /// (<c>c += qc * k[0]</c>): a chain link at k 33, where that column is also diagonal 32 of the block before.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Pair8Plus1(float* queryA, float* queryB, float* queryC, float* keyT, long rowLength, int headDim, float* scoresA, float* scoresB, float* scoresC)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default, b4 = default, b5 = default, b6 = default, b7 = default, c0 = default;
        float* k = keyT;
        for (int d = 0; d < headDim; d++, k += rowLength)
        {
            var qa = Vector512.Load(queryA + d * Lanes);
            var qb = Vector512.Load(queryB + d * Lanes);
            var qc = Vector512.Load(queryC + d * Lanes);
            var x = Vector512.Load(k);
            a0 = Avx512F.FusedMultiplyAdd(qa, x, a0); b0 = Avx512F.FusedMultiplyAdd(qb, x, b0); c0 = Avx512F.FusedMultiplyAdd(qc, x, c0);
            x = Vector512.Load(k + 1);
            a1 = Avx512F.FusedMultiplyAdd(qa, x, a1); b1 = Avx512F.FusedMultiplyAdd(qb, x, b1);
            x = Vector512.Load(k + 2);
            a2 = Avx512F.FusedMultiplyAdd(qa, x, a2); b2 = Avx512F.FusedMultiplyAdd(qb, x, b2);
            x = Vector512.Load(k + 3);
            a3 = Avx512F.FusedMultiplyAdd(qa, x, a3); b3 = Avx512F.FusedMultiplyAdd(qb, x, b3);
            x = Vector512.Load(k + 4);
            a4 = Avx512F.FusedMultiplyAdd(qa, x, a4); b4 = Avx512F.FusedMultiplyAdd(qb, x, b4);
            x = Vector512.Load(k + 5);
            a5 = Avx512F.FusedMultiplyAdd(qa, x, a5); b5 = Avx512F.FusedMultiplyAdd(qb, x, b5);
            x = Vector512.Load(k + 6);
            a6 = Avx512F.FusedMultiplyAdd(qa, x, a6); b6 = Avx512F.FusedMultiplyAdd(qb, x, b6);
            x = Vector512.Load(k + 7);
            a7 = Avx512F.FusedMultiplyAdd(qa, x, a7); b7 = Avx512F.FusedMultiplyAdd(qb, x, b7);
        }
        a0.Store(scoresA); a1.Store(scoresA + 16); a2.Store(scoresA + 32); a3.Store(scoresA + 48);
        a4.Store(scoresA + 64); a5.Store(scoresA + 80); a6.Store(scoresA + 96); a7.Store(scoresA + 112);
        b0.Store(scoresB); b1.Store(scoresB + 16); b2.Store(scoresB + 32); b3.Store(scoresB + 48);
        b4.Store(scoresB + 64); b5.Store(scoresB + 80); b6.Store(scoresB + 96); b7.Store(scoresB + 112);
        c0.Store(scoresC);
    }

    /// <summary>
    /// Whether the 16 queries from <paramref name="i0"/> (all real) are away from the borders: every window is
    /// <c>[i + d0, i + d0 + k)</c>, unclamped.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Interior(int i0, int real, int length, int kernel, bool causal) =>
        real == Lanes && (causal ? i0 - kernel + 1 >= 0 : i0 - kernel / 2 >= 0 && i0 + Lanes - 1 - kernel / 2 + kernel <= length);

    /// <summary>The union of the diagonal ranges <c>[jLow, jHigh)</c> of the 16 queries from <paramref name="i0"/> (all real).</summary>
    private static (int, int) BlockDiagonals(int i0, int length, int kernel, bool causal, int d0)
    {
        int jLow = int.MaxValue, jHigh = int.MinValue;
        for (int i = i0; i < i0 + Lanes; i++)
        {
            var (start, end) = Window(i, length, kernel, causal);
            jLow = Math.Min(jLow, start - i - d0);
            jHigh = Math.Max(jHigh, end - i - d0);
        }
        return (jLow, jHigh);
    }

    /// <summary>The block's query rows (<paramref name="real"/> of 16; zeros for the rest) transposed and scaled into <paramref name="queryT"/>.</summary>
    private static void TransposeQueryBlock(Plan p, in ScratchLayout s, long qBase, int group, int dilation, int i0, int real, float* queryT)
    {
        for (int l = 0; l < Lanes; l++)
            s.Rows[l] = l < real ? p.Q + qBase + (long)(group + (i0 + l) * dilation) * p.QuerySpatial : null;
        NeighborhoodKernels.TransposeQueries<Simd512, Vector512<float>>(s.Rows, s.Zeros, p.HeadDim, p.Log2Scale, queryT, Lanes);
    }

    /// <summary>
    /// The scores of two consecutive full blocks with the same <paramref name="diagonals"/> (at least 20): block A's
    /// diagonal t reads column <c>keyT + t</c>, block B's <c>keyT + 16 + t</c>, so A's t &gt;= 16 and B's t - 16 are
    /// computed together from one load.
    /// </summary>
    private static void ScoresPair(float* queryA, float* queryB, float* keyT, long rowLength, int headDim, int diagonals, float* scoresA, float* scoresB,
        ref NextItemRows ahead)
    {
        Diagonals12(queryA, keyT, rowLength, headDim, scoresA);
        Diagonals4(queryA, keyT + 12, rowLength, headDim, scoresA + 12 * Lanes);
        ahead.Step();
        int t = Lanes;
        // Eights, and nine where one diagonal would be left over (k 33: 16 + 8 + 9); then a four and a tail of 1-3.
        for (; t + 8 <= diagonals && diagonals - t != 9; t += 8, ahead.Step()) Pair8(queryA, queryB, keyT + t, rowLength, headDim, scoresA + t * Lanes, scoresB + (t - Lanes) * Lanes);
        if (diagonals - t == 9)
        {
            Pair9(queryA, queryB, keyT + t, rowLength, headDim, scoresA + t * Lanes, scoresB + (t - Lanes) * Lanes);
            t += 9;
        }
        if (t + 4 <= diagonals)
        {
            Pair4(queryA, queryB, keyT + t, rowLength, headDim, scoresA + t * Lanes, scoresB + (t - Lanes) * Lanes);
            t += 4;
        }
        switch (diagonals - t)
        {
            case 3: PairTail<Three>(queryA, queryB, keyT + t, rowLength, headDim, scoresA + t * Lanes, scoresB + (t - Lanes) * Lanes); break;
            case 2: PairTail<Two>(queryA, queryB, keyT + t, rowLength, headDim, scoresA + t * Lanes, scoresB + (t - Lanes) * Lanes); break;
            case 1: PairTail<One>(queryA, queryB, keyT + t, rowLength, headDim, scoresA + t * Lanes, scoresB + (t - Lanes) * Lanes); break;
        }
        // B's last 16 diagonals, past A's.
        t = diagonals - Lanes;
        Diagonals12(queryB, keyT + Lanes + t, rowLength, headDim, scoresB + t * Lanes);
        Diagonals4(queryB, keyT + Lanes + t + 12, rowLength, headDim, scoresB + (t + 12) * Lanes);
    }

    /// <summary>Eight diagonals of two blocks from one load each: <c>a[t] += qa * k[t]</c>, <c>b[t] += qb * k[t]</c>.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Pair8(float* queryA, float* queryB, float* keyT, long rowLength, int headDim, float* scoresA, float* scoresB)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default, b4 = default, b5 = default, b6 = default, b7 = default;
        float* k = keyT;
        for (int d = 0; d < headDim; d++, k += rowLength)
        {
            var qa = Vector512.Load(queryA + d * Lanes);
            var qb = Vector512.Load(queryB + d * Lanes);
            var x = Vector512.Load(k);
            a0 = Avx512F.FusedMultiplyAdd(qa, x, a0); b0 = Avx512F.FusedMultiplyAdd(qb, x, b0);
            x = Vector512.Load(k + 1);
            a1 = Avx512F.FusedMultiplyAdd(qa, x, a1); b1 = Avx512F.FusedMultiplyAdd(qb, x, b1);
            x = Vector512.Load(k + 2);
            a2 = Avx512F.FusedMultiplyAdd(qa, x, a2); b2 = Avx512F.FusedMultiplyAdd(qb, x, b2);
            x = Vector512.Load(k + 3);
            a3 = Avx512F.FusedMultiplyAdd(qa, x, a3); b3 = Avx512F.FusedMultiplyAdd(qb, x, b3);
            x = Vector512.Load(k + 4);
            a4 = Avx512F.FusedMultiplyAdd(qa, x, a4); b4 = Avx512F.FusedMultiplyAdd(qb, x, b4);
            x = Vector512.Load(k + 5);
            a5 = Avx512F.FusedMultiplyAdd(qa, x, a5); b5 = Avx512F.FusedMultiplyAdd(qb, x, b5);
            x = Vector512.Load(k + 6);
            a6 = Avx512F.FusedMultiplyAdd(qa, x, a6); b6 = Avx512F.FusedMultiplyAdd(qb, x, b6);
            x = Vector512.Load(k + 7);
            a7 = Avx512F.FusedMultiplyAdd(qa, x, a7); b7 = Avx512F.FusedMultiplyAdd(qb, x, b7);
        }
        a0.Store(scoresA); a1.Store(scoresA + 16); a2.Store(scoresA + 32); a3.Store(scoresA + 48);
        a4.Store(scoresA + 64); a5.Store(scoresA + 80); a6.Store(scoresA + 96); a7.Store(scoresA + 112);
        b0.Store(scoresB); b1.Store(scoresB + 16); b2.Store(scoresB + 32); b3.Store(scoresB + 48);
        b4.Store(scoresB + 64); b5.Store(scoresB + 80); b6.Store(scoresB + 96); b7.Store(scoresB + 112);
    }

    /// <summary>Nine diagonals of two blocks, as <see cref="Pair8"/> (18 accumulators): a pair's shared range of 17 at k 33 is 8 + 9.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Pair9(float* queryA, float* queryB, float* keyT, long rowLength, int headDim, float* scoresA, float* scoresB)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default, a8 = default;
        Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default, b4 = default, b5 = default, b6 = default, b7 = default, b8 = default;
        float* k = keyT;
        for (int d = 0; d < headDim; d++, k += rowLength)
        {
            var qa = Vector512.Load(queryA + d * Lanes);
            var qb = Vector512.Load(queryB + d * Lanes);
            var x = Vector512.Load(k);
            a0 = Avx512F.FusedMultiplyAdd(qa, x, a0); b0 = Avx512F.FusedMultiplyAdd(qb, x, b0);
            x = Vector512.Load(k + 1);
            a1 = Avx512F.FusedMultiplyAdd(qa, x, a1); b1 = Avx512F.FusedMultiplyAdd(qb, x, b1);
            x = Vector512.Load(k + 2);
            a2 = Avx512F.FusedMultiplyAdd(qa, x, a2); b2 = Avx512F.FusedMultiplyAdd(qb, x, b2);
            x = Vector512.Load(k + 3);
            a3 = Avx512F.FusedMultiplyAdd(qa, x, a3); b3 = Avx512F.FusedMultiplyAdd(qb, x, b3);
            x = Vector512.Load(k + 4);
            a4 = Avx512F.FusedMultiplyAdd(qa, x, a4); b4 = Avx512F.FusedMultiplyAdd(qb, x, b4);
            x = Vector512.Load(k + 5);
            a5 = Avx512F.FusedMultiplyAdd(qa, x, a5); b5 = Avx512F.FusedMultiplyAdd(qb, x, b5);
            x = Vector512.Load(k + 6);
            a6 = Avx512F.FusedMultiplyAdd(qa, x, a6); b6 = Avx512F.FusedMultiplyAdd(qb, x, b6);
            x = Vector512.Load(k + 7);
            a7 = Avx512F.FusedMultiplyAdd(qa, x, a7); b7 = Avx512F.FusedMultiplyAdd(qb, x, b7);
            x = Vector512.Load(k + 8);
            a8 = Avx512F.FusedMultiplyAdd(qa, x, a8); b8 = Avx512F.FusedMultiplyAdd(qb, x, b8);
        }
        a0.Store(scoresA); a1.Store(scoresA + 16); a2.Store(scoresA + 32); a3.Store(scoresA + 48);
        a4.Store(scoresA + 64); a5.Store(scoresA + 80); a6.Store(scoresA + 96); a7.Store(scoresA + 112); a8.Store(scoresA + 128);
        b0.Store(scoresB); b1.Store(scoresB + 16); b2.Store(scoresB + 32); b3.Store(scoresB + 48);
        b4.Store(scoresB + 64); b5.Store(scoresB + 80); b6.Store(scoresB + 96); b7.Store(scoresB + 112); b8.Store(scoresB + 128);
    }

    /// <summary><typeparamref name="TCount"/> (1 to 3) diagonals of two blocks, as <see cref="Pair8"/>: the tail of a pair's shared range.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void PairTail<TCount>(float* queryA, float* queryB, float* keyT, long rowLength, int headDim, float* scoresA, float* scoresB)
        where TCount : struct, IConstant
    {
        int n = TCount.Value;
        Vector512<float> a0 = default, a1 = default, a2 = default, b0 = default, b1 = default, b2 = default;
        float* k = keyT;
        for (int d = 0; d < headDim; d++, k += rowLength)
        {
            var qa = Vector512.Load(queryA + d * Lanes);
            var qb = Vector512.Load(queryB + d * Lanes);
            var x = Vector512.Load(k);
            a0 = Avx512F.FusedMultiplyAdd(qa, x, a0); b0 = Avx512F.FusedMultiplyAdd(qb, x, b0);
            if (n > 1)
            {
                x = Vector512.Load(k + 1);
                a1 = Avx512F.FusedMultiplyAdd(qa, x, a1); b1 = Avx512F.FusedMultiplyAdd(qb, x, b1);
            }
            if (n > 2)
            {
                x = Vector512.Load(k + 2);
                a2 = Avx512F.FusedMultiplyAdd(qa, x, a2); b2 = Avx512F.FusedMultiplyAdd(qb, x, b2);
            }
        }
        a0.Store(scoresA); b0.Store(scoresB);
        if (n > 1) { a1.Store(scoresA + 16); b1.Store(scoresB + 16); }
        if (n > 2) { a2.Store(scoresA + 32); b2.Store(scoresB + 32); }
    }

    /// <summary>Four diagonals of two blocks, as <see cref="Pair8"/>.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Pair4(float* queryA, float* queryB, float* keyT, long rowLength, int headDim, float* scoresA, float* scoresB)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
        float* k = keyT;
        for (int d = 0; d < headDim; d++, k += rowLength)
        {
            var qa = Vector512.Load(queryA + d * Lanes);
            var qb = Vector512.Load(queryB + d * Lanes);
            var x = Vector512.Load(k);
            a0 = Avx512F.FusedMultiplyAdd(qa, x, a0); b0 = Avx512F.FusedMultiplyAdd(qb, x, b0);
            x = Vector512.Load(k + 1);
            a1 = Avx512F.FusedMultiplyAdd(qa, x, a1); b1 = Avx512F.FusedMultiplyAdd(qb, x, b1);
            x = Vector512.Load(k + 2);
            a2 = Avx512F.FusedMultiplyAdd(qa, x, a2); b2 = Avx512F.FusedMultiplyAdd(qb, x, b2);
            x = Vector512.Load(k + 3);
            a3 = Avx512F.FusedMultiplyAdd(qa, x, a3); b3 = Avx512F.FusedMultiplyAdd(qb, x, b3);
        }
        a0.Store(scoresA); a1.Store(scoresA + 16); a2.Store(scoresA + 32); a3.Store(scoresA + 48);
        b0.Store(scoresB); b1.Store(scoresB + 16); b2.Store(scoresB + 32); b3.Store(scoresB + 48);
    }

    /// <summary>
    /// The next item's K, V, Q and O rows (every query head), prefetched into L2 a few rows per <see cref="Step"/>: spread
    /// over the item's kernels, so the misses overlap compute instead of stalling on full miss buffers.
    /// </summary>
    private struct NextItemRows
    {
        private readonly float* _keys, _values;
        private readonly long _keyStep, _valueStep;
        private readonly int _keyRows, _queryRows, _perStep, _headDim, _valueDim;
        private readonly Plan? _plan;
        private readonly Item _next;
        private int _done;

        public NextItemRows(Plan p, Item? nextItem, Item item)
        {
            this = default;
            if (nextItem is not { } n) return;
            _plan = p;
            _next = n;
            var (low, _) = Window(n.First, n.GroupLength, p.Kernel, p.Causal);
            int high = Window(n.First + n.Count - 1, n.GroupLength, p.Kernel, p.Causal).End;
            _keyStep = p.Dilation * p.KeyStrides[2];
            _valueStep = p.Dilation * p.ValueStrides[2];
            _keys = p.K + p.KeyOffset + n.Batch * p.KeyStrides[0] + n.KeyValueHead * p.KeyStrides[1] + (n.Group + (long)low * p.Dilation) * p.KeyStrides[2];
            _values = p.V + p.ValueOffset + n.Batch * p.ValueStrides[0] + n.KeyValueHead * p.ValueStrides[1] + (n.Group + (long)low * p.Dilation) * p.ValueStrides[2];
            _keyRows = high - low;
            _queryRows = p.GroupSize * n.Count;
            (_headDim, _valueDim) = (p.HeadDim, p.ValueDim);
            // About eight steps per block (score kernels and P V quads).
            int steps = 8 * p.GroupSize * ((item.Count + Lanes - 1) / Lanes);
            _perStep = (_keyRows + _queryRows + steps - 1) / steps;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Step()
        {
            if (_done < _keyRows + _queryRows) Advance();
        }

        [MethodImpl(MethodImplOptions.NoInlining)]
        private void Advance()
        {
            var p = _plan!;
            for (int end = Math.Min(_keyRows + _queryRows, _done + _perStep); _done < end; _done++)
            {
                if (_done < _keyRows)
                {
                    Prefetch(_keys + _done * _keyStep, _headDim, l2: true);
                    Prefetch(_values + _done * _valueStep, _valueDim, l2: true);
                    continue;
                }
                int r = _done - _keyRows;
                int head = _next.KeyValueHead * p.GroupSize + r / _next.Count;
                long x = _next.Group + (long)(_next.First + r % _next.Count) * p.Dilation;
                Prefetch(p.Q + p.QueryOffset + _next.Batch * p.QueryStrides[0] + head * p.QueryStrides[1] + x * p.QuerySpatial, _headDim, l2: true);
                Prefetch(p.O + p.OutputOffset + _next.Batch * p.OutputStrides[0] + head * p.OutputStrides[1] + x * p.OutputSpatial, _valueDim, l2: true);
            }
        }
    }

    /// <summary>
    /// Prefetches the cache lines of <paramref name="floats"/> floats from <paramref name="row"/> into L1 (into L2 with
    /// <paramref name="l2"/>), each line once: 4 prefetches for a 64-byte aligned row of 64 floats (5 before, the last
    /// one again for the row's last float). A software prefetch that misses takes a fill buffer on Intel cores and stalls
    /// once they are all taken, so one instruction fewer a row is measurable there.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(float* row, int floats, bool l2 = false)
    {
        if (l2) CacheLines.PrefetchL2(row, (long)floats * sizeof(float));
        else CacheLines.PrefetchL1(row, (long)floats * sizeof(float));
    }

    /// <summary>log2 per lane (the LSE of a block), in vector form (the 16 scalar logs it replaced cost about as much as a block's softmax).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Log2(Vector512<float> x) => Vector512.Log2(x);

    /// <summary>
    /// Sets score row t (diagonal <c>jLow + t</c>) of each lane to -inf outside the lane's diagonals
    /// <c>[start[l], end[l])</c> (nothing to mask when <paramref name="full"/>: every lane sees every row, an interior
    /// block), then replaces the rows by <c>2^(s - max)</c>; returns the lanes' max and sum.
    /// </summary>
    /// <remarks>
    /// The running max is <c>vmaxps</c> (<c>Avx512F.Max</c>), one instruction with a 4-cycle latency on the
    /// loop-carried chain, where <see cref="Vector512.Max"/> (NaN- and signed-zero-exact) compiles to three (vrangeps and
    /// two vfixupimmps; 12 cycles a row on Intel cores). The results are the same: scores are never -0 (sums of products
    /// start from +0), and a NaN score makes its lane's sum, output and LSE NaN whichever max it leaves.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static (Vector512<float> Max, Vector512<float> Sum) MaskAndSoftmax(float* scores, int rows, int jLow, int* start, int* end, bool full)
    {
        var minusInfinity = Vector512.Create(float.NegativeInfinity);
        var max = minusInfinity;
        if (full)
            for (int t = 0; t < rows; t++) max = Avx512F.Max(max, Vector512.Load(scores + t * Lanes));
        else
        {
            var low = Vector512.ConvertToSingle(Vector512.Load(start) - Vector512.Create(jLow));
            var high = Vector512.ConvertToSingle(Vector512.Load(end) - Vector512.Create(jLow));
            for (int t = 0; t < rows; t++)
            {
                var index = Vector512.Create((float)t);
                var keep = Vector512.GreaterThanOrEqual(index, low) & Vector512.LessThan(index, high);
                var x = Vector512.ConditionalSelect(keep, Vector512.Load(scores + t * Lanes), minusInfinity);
                Vector512.Store(x, scores + t * Lanes);
                max = Avx512F.Max(max, x);
            }
        }
        var sum = Vector512<float>.Zero;
        for (int t = 0; t < rows; t++)
        {
            var e = Simd512.Exp2NonPositive(Vector512.Load(scores + t * Lanes) - max);
            Vector512.Store(e, scores + t * Lanes);
            sum += e;
        }
        return (max, sum);
    }

    /// <summary>
    /// Twelve diagonals of a block: <c>scores[t][l] = sum_d queryT[d][l] * keyT[d * rowLength + t + l]</c>, t &lt; 12; one
    /// unaligned load per multiply-add, the query vector reused by the twelve.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Diagonals12(float* queryT, float* keyT, long rowLength, int headDim, float* scores)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default;
        Vector512<float> a6 = default, a7 = default, a8 = default, a9 = default, a10 = default, a11 = default;
        float* k = keyT;
        for (int d = 0; d < headDim; d++, k += rowLength)
        {
            var q = Vector512.Load(queryT + d * Lanes);
            a0 = Avx512F.FusedMultiplyAdd(q, Vector512.Load(k), a0);
            a1 = Avx512F.FusedMultiplyAdd(q, Vector512.Load(k + 1), a1);
            a2 = Avx512F.FusedMultiplyAdd(q, Vector512.Load(k + 2), a2);
            a3 = Avx512F.FusedMultiplyAdd(q, Vector512.Load(k + 3), a3);
            a4 = Avx512F.FusedMultiplyAdd(q, Vector512.Load(k + 4), a4);
            a5 = Avx512F.FusedMultiplyAdd(q, Vector512.Load(k + 5), a5);
            a6 = Avx512F.FusedMultiplyAdd(q, Vector512.Load(k + 6), a6);
            a7 = Avx512F.FusedMultiplyAdd(q, Vector512.Load(k + 7), a7);
            a8 = Avx512F.FusedMultiplyAdd(q, Vector512.Load(k + 8), a8);
            a9 = Avx512F.FusedMultiplyAdd(q, Vector512.Load(k + 9), a9);
            a10 = Avx512F.FusedMultiplyAdd(q, Vector512.Load(k + 10), a10);
            a11 = Avx512F.FusedMultiplyAdd(q, Vector512.Load(k + 11), a11);
        }
        a0.Store(scores); a1.Store(scores + 16); a2.Store(scores + 32); a3.Store(scores + 48);
        a4.Store(scores + 64); a5.Store(scores + 80); a6.Store(scores + 96); a7.Store(scores + 112);
        a8.Store(scores + 128); a9.Store(scores + 144); a10.Store(scores + 160); a11.Store(scores + 176);
    }

    /// <summary>Four diagonals of a block, as <see cref="Diagonals12"/>.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Diagonals4(float* queryT, float* keyT, long rowLength, int headDim, float* scores)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        float* k = keyT;
        for (int d = 0; d < headDim; d++, k += rowLength)
        {
            var q = Vector512.Load(queryT + d * Lanes);
            a0 = Avx512F.FusedMultiplyAdd(q, Vector512.Load(k), a0);
            a1 = Avx512F.FusedMultiplyAdd(q, Vector512.Load(k + 1), a1);
            a2 = Avx512F.FusedMultiplyAdd(q, Vector512.Load(k + 2), a2);
            a3 = Avx512F.FusedMultiplyAdd(q, Vector512.Load(k + 3), a3);
        }
        a0.Store(scores); a1.Store(scores + 16); a2.Store(scores + 32); a3.Store(scores + 48);
    }

    /// <summary><paramref name="count"/> (0 to 3) diagonals of a block, as <see cref="Diagonals12"/>: the tail after the twelves and fours.</summary>
    private static void DiagonalsTail(float* queryT, float* keyT, long rowLength, int headDim, float* scores, int count)
    {
        switch (count)
        {
            case 3: DiagonalsTail<Three>(queryT, keyT, rowLength, headDim, scores); break;
            case 2: DiagonalsTail<Two>(queryT, keyT, rowLength, headDim, scores); break;
            case 1: DiagonalsTail<One>(queryT, keyT, rowLength, headDim, scores); break;
        }
    }

    /// <summary><typeparamref name="TCount"/> (1 to 3) diagonals of a block, as <see cref="Diagonals12"/>.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void DiagonalsTail<TCount>(float* queryT, float* keyT, long rowLength, int headDim, float* scores) where TCount : struct, IConstant
    {
        int n = TCount.Value;
        Vector512<float> a0 = default, a1 = default, a2 = default;
        float* k = keyT;
        for (int d = 0; d < headDim; d++, k += rowLength)
        {
            var q = Vector512.Load(queryT + d * Lanes);
            a0 = Avx512F.FusedMultiplyAdd(q, Vector512.Load(k), a0);
            if (n > 1) a1 = Avx512F.FusedMultiplyAdd(q, Vector512.Load(k + 1), a1);
            if (n > 2) a2 = Avx512F.FusedMultiplyAdd(q, Vector512.Load(k + 2), a2);
        }
        a0.Store(scores);
        if (n > 1) a1.Store(scores + 16);
        if (n > 2) a2.Store(scores + 32);
    }

    /// <summary>
    /// P V of four consecutive lanes over <paramref name="rows"/> value rows: lane m's probability for row r is at
    /// <c>probabilities[r * 16 - 15 m]</c> (diagonal r - m relative to lane 0's, column m), the row at
    /// <c>values + r * valueStride</c>; writes <c>inverse[m] * sum_r p * v</c> for <typeparamref name="TVectors"/> vectors
    /// to <c>target + m * targetStride</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void AccumulateQuad<TVectors>(float* probabilities, float* values, int rows, int valueStride, float* inverse, float* target, long targetStride)
        where TVectors : struct, IConstant
    {
        int n = TVectors.Value;
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
        Vector512<float> a30 = default, a31 = default, a32 = default, a33 = default;
        float* pr = probabilities, v = values;
        for (int r = 0; r < rows; r++, pr += Lanes, v += valueStride)
        {
            var v0 = Vector512.Load(v);
            var v1 = n > 1 ? Vector512.Load(v + 16) : default;
            var v2 = n > 2 ? Vector512.Load(v + 32) : default;
            var v3 = n > 3 ? Vector512.Load(v + 48) : default;
            var b = Vector512.Create(pr[0]);
            a00 = Avx512F.FusedMultiplyAdd(v0, b, a00);
            if (n > 1) a01 = Avx512F.FusedMultiplyAdd(v1, b, a01);
            if (n > 2) a02 = Avx512F.FusedMultiplyAdd(v2, b, a02);
            if (n > 3) a03 = Avx512F.FusedMultiplyAdd(v3, b, a03);
            b = Vector512.Create(pr[-15]);
            a10 = Avx512F.FusedMultiplyAdd(v0, b, a10);
            if (n > 1) a11 = Avx512F.FusedMultiplyAdd(v1, b, a11);
            if (n > 2) a12 = Avx512F.FusedMultiplyAdd(v2, b, a12);
            if (n > 3) a13 = Avx512F.FusedMultiplyAdd(v3, b, a13);
            b = Vector512.Create(pr[-30]);
            a20 = Avx512F.FusedMultiplyAdd(v0, b, a20);
            if (n > 1) a21 = Avx512F.FusedMultiplyAdd(v1, b, a21);
            if (n > 2) a22 = Avx512F.FusedMultiplyAdd(v2, b, a22);
            if (n > 3) a23 = Avx512F.FusedMultiplyAdd(v3, b, a23);
            b = Vector512.Create(pr[-45]);
            a30 = Avx512F.FusedMultiplyAdd(v0, b, a30);
            if (n > 1) a31 = Avx512F.FusedMultiplyAdd(v1, b, a31);
            if (n > 2) a32 = Avx512F.FusedMultiplyAdd(v2, b, a32);
            if (n > 3) a33 = Avx512F.FusedMultiplyAdd(v3, b, a33);
        }
        float* o0 = target, o1 = o0 + targetStride, o2 = o1 + targetStride, o3 = o2 + targetStride;
        var f0 = Vector512.Create(inverse[0]);
        var f1 = Vector512.Create(inverse[1]);
        var f2 = Vector512.Create(inverse[2]);
        var f3 = Vector512.Create(inverse[3]);
        (a00 * f0).Store(o0); (a10 * f1).Store(o1); (a20 * f2).Store(o2); (a30 * f3).Store(o3);
        if (n > 1) { (a01 * f0).Store(o0 + 16); (a11 * f1).Store(o1 + 16); (a21 * f2).Store(o2 + 16); (a31 * f3).Store(o3 + 16); }
        if (n > 2) { (a02 * f0).Store(o0 + 32); (a12 * f1).Store(o1 + 32); (a22 * f2).Store(o2 + 32); (a32 * f3).Store(o3 + 32); }
        if (n > 3) { (a03 * f0).Store(o0 + 48); (a13 * f1).Store(o1 + 48); (a23 * f2).Store(o2 + 48); (a33 * f3).Store(o3 + 48); }
    }

    /// <summary>One work item: a run of queries of one dilation group of one (sample, key/value head).</summary>
    private readonly record struct Item(int Batch, int KeyValueHead, int Group, int GroupLength, int First, int Count);

    /// <summary>
    /// Sizes, pointers and strides of one call, and its items; shared read-only by the workers (plus the item counter).
    /// One idle plan per thread (<see cref="ThreadIdle{T}"/>) is refilled by <see cref="Reset"/> for each call, its arrays
    /// (strides, items, bias, extents) kept and grown only, so that steady-state calls allocate nothing.
    /// </summary>
    private sealed class Plan
    {
        public int Kernel, Dilation, GroupSize, HeadDim, ValueDim, ValueStride, Length, Batch, QueryHeads;
        public bool Causal;
        public float Log2Scale;
        public float* Q, K, V, O, Lse;
        public long QueryOffset, KeyOffset, ValueOffset, OutputOffset, LseOffset;
        /// <summary>Strides of <c>[B, H, X, D]</c> (LSE: <c>[B, H, X]</c>, zeros without one).</summary>
        public readonly long[] QueryStrides = new long[4], KeyStrides = new long[4], ValueStrides = new long[4], OutputStrides = new long[4], LseStrides = new long[3];
        public long QuerySpatial, OutputSpatial, LseSpatial;
        /// <summary>O rows take whole vectors (Dv a multiple of 16): P V writes them directly.</summary>
        public bool OutputRowsWide;
        /// <summary>Floats per row of an item's transposed keys.</summary>
        public long KeyRowLength;
        /// <summary>The call's items, the first <see cref="ItemCount"/> entries (the array is kept for the next call).</summary>
        public Item[] Items = [];
        public int ItemCount;
        public long ScratchFloats;
        /// <summary>The relative-position bias <c>[Hq, 2k - 1]</c> times log2(e), in <see cref="_bias"/>; null without one.</summary>
        public float* Bias;
        /// <summary>Pinned (pinned object heap) storage of <see cref="Bias"/>, kept for the next call.</summary>
        private float[] _bias = [];
        private int[] _extent = [];
        /// <summary>Units claimed from <see cref="NextItem"/>: unit u is items <c>[UnitStart[u], UnitStart[u + 1])</c>.</summary>
        public int[] UnitStart = [];
        public int UnitCount;
        /// <summary>The next unit to claim.</summary>
        public int NextItem;

        /// <summary>This thread's idle plan, or a new one; give it back with <see cref="Return"/>.</summary>
        public static Plan Rent() => ThreadIdle<Plan>.Rent();

        /// <summary>Keeps the plan for this thread's next call (it holds no reference to the finished call's objects).</summary>
        public void Return()
        {
            Q = K = V = O = Lse = Bias = null;
            ThreadIdle<Plan>.Return(this);
        }

        /// <summary>Fills every field for one call (nothing of a previous call survives).</summary>
        public void Reset(NeighborhoodProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp,
            float* q, float* k, float* v, float* o, float* lse)
        {
            NextItem = 0;
            Kernel = problem.KernelSize[0];
            Dilation = problem.Dilation[0];
            Causal = problem.Causal[0];
            GroupSize = problem.GroupSize;
            HeadDim = problem.HeadDim;
            ValueDim = problem.ValueDim;
            ValueStride = (ValueDim + 15) & ~15;
            Length = problem.SpatialShape[0];
            Batch = problem.Batch;
            QueryHeads = problem.QueryHeads;
            Log2Scale = (float)(problem.Scale * MathConstants.Log2EDouble);
            Q = q;
            K = k;
            V = v;
            O = o;
            Lse = lse;
            query.Strides.CopyTo(QueryStrides);
            key.Strides.CopyTo(KeyStrides);
            value.Strides.CopyTo(ValueStrides);
            output.Strides.CopyTo(OutputStrides);
            (QueryOffset, QuerySpatial) = (query.Offset, query.Strides[2]);
            KeyOffset = key.Offset;
            ValueOffset = value.Offset;
            (OutputOffset, OutputSpatial) = (output.Offset, output.Strides[2]);
            if (logSumExp is { } l)
            {
                l.Strides.CopyTo(LseStrides);
                (LseOffset, LseSpatial) = (l.Offset, l.Strides[2]);
            }
            else
            {
                Array.Clear(LseStrides);
                (LseOffset, LseSpatial) = (0, 0);
            }
            OutputRowsWide = ValueDim == ValueStride;
            Bias = null;
            if (problem.Options.RelativePositionBias is { } rpb)
            {
                // float32 [Hq, 2k - 1] on the host (validated), any strides: read in place into the kept buffer.
                int offsets = 2 * Kernel - 1, count = QueryHeads * offsets;
                if (_bias.Length < count) _bias = GC.AllocateUninitializedArray<float>(count, pinned: true);
                using var pin = rpb.Storage!.Pin();
                float* source = (float*)pin.Pointer + rpb.Offset;
                long headStride = rpb.Strides[0], offsetStride = rpb.Strides[1];
                for (int h = 0; h < QueryHeads; h++)
                    for (int j = 0; j < offsets; j++)
                        _bias[h * offsets + j] = (float)(source[h * headStride + j * offsetStride] * MathConstants.Log2EDouble);
                Bias = (float*)Unsafe.AsPointer(ref _bias[0]);
            }

            if (_extent.Length < Batch) _extent = new int[Batch];
            int itemCount = 0;
            for (int b = 0; b < Batch; b++)
            {
                int extent = _extent[b] = problem.ValidExtentOf(b, 0);
                for (int g = 0; g < Math.Min(Dilation, extent); g++)
                    itemCount += ((extent - g + Dilation - 1) / Dilation + ChunkQueries - 1) / ChunkQueries;
            }
            itemCount *= problem.KeyValueHeads;
            if (Items.Length < itemCount) Items = new Item[itemCount];
            ItemCount = 0;
            for (int b = 0; b < Batch; b++)
            {
                int extent = _extent[b];
                for (int h = 0; h < problem.KeyValueHeads; h++)
                    // Chunk by chunk, a chunk's groups in turn: one unit (see GroupUnits), whose rows interleave.
                    for (int first = 0; first < (extent + Dilation - 1) / Dilation; first += ChunkQueries)
                        for (int g = 0; g < Math.Min(Dilation, extent); g++)
                        {
                            int groupLength = (extent - g + Dilation - 1) / Dilation;
                            if (first < groupLength) Items[ItemCount++] = new Item(b, h, g, groupLength, first, Math.Min(ChunkQueries, groupLength - first));
                        }
            }
            // An item's keys: at most its queries plus the kernel; the rows take the left padding and the unaligned
            // loads past the last key (up to 15 lanes; 48 more columns kept from when diagonals were rounded up to 4).
            int maxKeys = Math.Min(ChunkQueries + Kernel, Length);
            KeyRowLength = ((LeftPad + maxKeys + Lanes + 48) + 15) & ~15;
            // An odd number of cache lines per row: the Dqk rows a block reads then spread over every L1 set (an even
            // count, 24 lines at k 33, put all 64 rows on 8 set offsets, 8 rows per set: the L1's whole associativity).
            if ((KeyRowLength / 16) % 2 == 0) KeyRowLength += 16;
            ScratchFloats = ScratchLayout.Floats(this);
        }

        /// <summary>
        /// Groups the items into units for <paramref name="threads"/> workers: the items of one chunk (same sample, head
        /// and queries, every dilation group) form one unit, run by one worker in turn, so that a row's cache lines shared
        /// with the next token's row (another group's: rows are not 64-byte aligned in general) are still in its L2 when
        /// that group's item runs. The last 2 x threads units are split into single items, so that no worker waits
        /// for another's whole unit at the end of a call. Dilation 1: one item per unit.
        /// </summary>
        public void GroupUnits(int threads)
        {
            if (UnitStart.Length < ItemCount + 1) UnitStart = new int[ItemCount + 1];
            UnitCount = 0;
            for (int i = 0; i < ItemCount; i++)
            {
                var a = Items[i];
                bool same = i > 0 && Items[i - 1] is var b && b.Batch == a.Batch && b.KeyValueHead == a.KeyValueHead && b.First == a.First;
                if (!same) UnitStart[UnitCount++] = i;
            }
            UnitStart[UnitCount] = ItemCount;
            // Split the tail: from the unit where the last 2 x threads units start, one item per unit.
            int tail = Math.Max(0, UnitCount - 2 * Math.Max(1, threads));
            int splitFrom = UnitStart[tail];
            for (int i = splitFrom; i < ItemCount; i++) UnitStart[tail + i - splitFrom] = i;
            UnitCount = tail + ItemCount - splitFrom;
            UnitStart[UnitCount] = ItemCount;
        }

        /// <summary>Zero output rows and LSE -inf for the queries past their sample's valid extent (no item covers them).</summary>
        public void WritePaddingRows()
        {
            for (int b = 0; b < Batch; b++)
                for (int h = 0; h < QueryHeads; h++)
                    for (int x = _extent[b]; x < Length; x++)
                    {
                        float* row = O + OutputOffset + b * OutputStrides[0] + h * OutputStrides[1] + x * OutputSpatial;
                        for (int e = 0; e < ValueDim; e++) row[e] = 0;
                        if (Lse != null) Lse[LseOffset + b * LseStrides[0] + h * LseStrides[1] + x * LseSpatial] = float.NegativeInfinity;
                    }
        }
    }

    /// <summary>Carves one worker's scratch into an item's buffers; every block starts 64-byte aligned.</summary>
    private readonly struct ScratchLayout
    {
        public readonly float* KeysT, Values, QueryT, QueryT2, Scores, Output, Zeros, Inverse;
        /// <summary>A chain's ring of three transposed-query blocks and three score blocks (<see cref="Link"/>).</summary>
        public readonly float* ChainQueryT, ChainScores;
        /// <summary>Floats per transposed-query block.</summary>
        public readonly long QueryTFloats;
        /// <summary>Floats per block's score buffer (two buffers: a pair's second block keeps its scores in the other).</summary>
        public readonly long ScoreBlockFloats;
        public readonly int* WindowStart, WindowEnd, DiagonalStart, DiagonalEnd;
        public readonly float** Rows;
        private readonly float* _end;

        public ScratchLayout(float* scratch, Plan p)
        {
            float* next = scratch;
            int maxKeys = Math.Min(ChunkQueries + p.Kernel, p.Length);
            KeysT = CpuScratch.Take(ref next, p.HeadDim * p.KeyRowLength);
            Values = CpuScratch.Take(ref next, (long)maxKeys * p.ValueStride);
            QueryT = CpuScratch.Take(ref next, (long)p.HeadDim * Lanes);
            QueryT2 = CpuScratch.Take(ref next, (long)p.HeadDim * Lanes);
            // A block's diagonals: at most k + 15 (border lanes), with zero rows around (3 rows more than needed, kept).
            ScoreBlockFloats = (long)(p.Kernel + Lanes + 3 + 2 * ZeroRows) * Lanes;
            Scores = CpuScratch.Take(ref next, 2 * ScoreBlockFloats);
            QueryTFloats = (long)p.HeadDim * Lanes;
            ChainQueryT = CpuScratch.Take(ref next, 3 * QueryTFloats);
            ChainScores = CpuScratch.Take(ref next, 3 * ScoreBlockFloats);
            Output = CpuScratch.Take(ref next, 4L * p.ValueStride);
            Zeros = CpuScratch.Take(ref next, Math.Max(p.HeadDim, Lanes));
            Inverse = CpuScratch.Take(ref next, Lanes);
            WindowStart = (int*)CpuScratch.Take(ref next, Lanes);
            WindowEnd = (int*)CpuScratch.Take(ref next, Lanes);
            DiagonalStart = (int*)CpuScratch.Take(ref next, Lanes);
            DiagonalEnd = (int*)CpuScratch.Take(ref next, Lanes);
            Rows = (float**)CpuScratch.Take(ref next, 2L * Lanes);
            _end = next;
            if (scratch != null) new Span<float>(Zeros, Math.Max(p.HeadDim, Lanes)).Clear();
        }

        /// <summary>The floats the layout needs for <paramref name="p"/>, measured by laying it out from address 0.</summary>
        public static long Floats(Plan p) => (long)new ScratchLayout(null, p)._end / sizeof(float);
    }
}
