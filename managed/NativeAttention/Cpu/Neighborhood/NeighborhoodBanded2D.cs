// CPU neighborhood attention on 2-D grids, banded form: 16 consecutive queries along the contiguous axis share their
// window's key rows, and each key row is a 1-D banded problem computed by the 1-D kernel's inner kernels.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NativeAttention.Cpu;

/// <summary>
/// A 2-D path of <see cref="CpuNeighborhood"/> over the banded kernels of <see cref="Neighborhood1D"/>: float32 storage
/// with unit element stride on every tensor, 512-bit vectors (AVX-512F), stride 1 on both axes, no additional keys; any
/// kernel sizes (odd or even), dilation, causal flags, valid extents (padding), relative-position bias, GQA/MQA,
/// Dv != Dqk and LSE. Other problems return false from <see cref="TryRun"/> and take the general kernel.
/// </summary>
/// <remarks>
/// <para>Axis 0 is x (rows), axis 1 is y (the contiguous axis of the grid). Along each axis positions split into
/// dilation groups; inside a group a query's window is the 1-D window (<see cref="Neighborhood1D.Window"/>). Work item:
/// (sample, key/value head, x group, y group, run of up to <see cref="RowsPerItem"/> query rows of the x group). The item
/// copies the key rows its queries see, each transposed (<c>KT[row][d][column]</c>, the 1-D kernel's layout per row),
/// and their values as rows of whole vectors, once for all its query heads.</para>
/// <para>Block: 16 consecutive queries of one query row along y (the lanes). Their x window, hence their key rows, is
/// the same for every lane, and the y windows are those of a 1-D block: diagonal j of key row r holds key column
/// <c>i0 + l + j + D0</c> in lane l. The block's scores are, per key row of its window, the 1-D diagonals (one segment
/// of rows per key row, all segments with the same diagonals); two blocks of consecutive query rows at the same columns
/// share the key loads of the key rows both windows hold (<see cref="Neighborhood1D.Pair8"/>). One softmax over all
/// segments (mask per lane, the same in every segment), then P V in row form per key row and quad of lanes
/// (<see cref="Neighborhood1D.AccumulateQuad{TVectors}"/>), the key rows' partial outputs summed into O.</para>
/// </remarks>
internal static unsafe class NeighborhoodBanded2D
{
    /// <summary>Query rows of one x group per work item.</summary>
    private const int RowsPerItem = 32;
    private const int Lanes = Neighborhood1D.Lanes;
    private const int LeftPad = Neighborhood1D.LeftPad;
    private const int ZeroRows = Neighborhood1D.ZeroRows;
    /// <summary>The largest per-worker scratch (floats) this path takes; larger problems go to the general kernel.</summary>
    private const long MaxScratchFloats = 1L << 23;

    /// <summary>Calls this path ran on the calling thread (a test hook, per thread as <see cref="Neighborhood1D.CallsOnThisThread"/>).</summary>
    [ThreadStatic] internal static long CallsOnThisThread;

    /// <summary>Whether <see cref="TryRun"/> takes the problem (and its tensors), without running it.</summary>
    internal static bool Accepts(NeighborhoodProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, int vectorBits) =>
        vectorBits == 512 && Avx512F.IsSupported && Vector512.IsHardwareAccelerated
        && problem.SpatialRank == 2 && problem.ElementType == ElementType.Float32 && problem.Stride[0] == 1 && problem.Stride[1] == 1
        && problem.AdditionalKeyCount == 0
        && query.Strides[^1] == 1 && key.Strides[^1] == 1 && value.Strides[^1] == 1 && output.Strides[^1] == 1
        && ScratchFloatsFor(problem) <= MaxScratchFloats;

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
        var plan = new Plan(problem, query, key, value, output, logSumExp, (float*)qPin.Pointer, (float*)kPin.Pointer, (float*)vPin.Pointer, (float*)oPin.Pointer,
            (float*)lPin.Pointer);
        try
        {
            plan.WritePaddingRows();
            CpuWorkers.Run(plan, threads, plan.Items.Length, Work);
        }
        finally
        {
            plan.Release();
        }
        CallsOnThisThread++;
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Work(Plan plan)
    {
        float* scratch = CpuScratch.Get(plan.ScratchFloats);
        for (int item = Interlocked.Increment(ref plan.NextItem) - 1; item < plan.Items.Length; item = Interlocked.Increment(ref plan.NextItem) - 1)
            RunItem(plan, plan.Items[item], scratch);
    }

    /// <summary>Per-item sizes: key rows, transposed-row length, widest block's diagonals.</summary>
    private readonly record struct Sizes(int KeyRows, int GroupColumns, long KeyRowLength, int MaxDiagonals, int ValueStride)
    {
        public static Sizes Of(NeighborhoodProblem problem)
        {
            int kx = problem.KernelSize[0], ky = problem.KernelSize[1];
            int columns = Math.Min((problem.SpatialShape[1] + problem.Dilation[1] - 1) / problem.Dilation[1], problem.SpatialShape[1]);
            int rows = Math.Min(RowsPerItem + kx - 1, (problem.SpatialShape[0] + problem.Dilation[0] - 1) / problem.Dilation[0]);
            // Left padding, the columns, and the unaligned loads past the last column (15 lanes, rounding, one 12-diagonal overshoot).
            long rowLength = ((LeftPad + columns + Lanes + 48) + 15) & ~15;
            return new Sizes(rows, columns, rowLength, (ky + Lanes - 1 + 3) & ~3, (problem.ValueDim + 15) & ~15);
        }
    }

    private static long ScratchFloatsFor(NeighborhoodProblem problem) => ScratchLayout.Floats(problem.HeadDim, problem.KernelSize[0], Sizes.Of(problem));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RunItem(Plan p, Item item, float* scratch)
    {
        var s = new ScratchLayout(scratch, p.HeadDim, p.KernelX, p.Size);
        int kx = p.KernelX, ky = p.KernelY, dx = p.DilationX, dy = p.DilationY;
        bool cx = p.CausalX, cy = p.CausalY;
        int lengthX = item.LengthX, lengthY = item.LengthY;
        int d0 = cy ? -(ky - 1) : -(ky / 2);
        int firstRow = item.FirstRow, lastRow = item.FirstRow + item.RowCount - 1;
        int rowLow = Neighborhood1D.Window(firstRow, lengthX, kx, cx).Start, rowHigh = Neighborhood1D.Window(lastRow, lengthX, kx, cx).End;
        int dqk = p.HeadDim, dv = p.ValueDim, dvStride = p.Size.ValueStride;
        long rowLength = p.Size.KeyRowLength;
        long keyRowFloats = dqk * rowLength;

        // Every key row of the item: keys transposed with zero columns around them, values as rows of whole vectors.
        int blocked = (lengthY + Lanes - 1) / Lanes * Lanes;
        long kStep = dy * p.KeyStrides[3], vStep = dy * p.ValueStrides[3];
        for (int m = 0; m < rowHigh - rowLow; m++)
        {
            long x = item.GroupX + (long)(rowLow + m) * dx;
            float* kRow = p.K + p.KeyOffset + item.Batch * p.KeyStrides[0] + item.KeyValueHead * p.KeyStrides[1] + x * p.KeyStrides[2] + item.GroupY * p.KeyStrides[3];
            float* keysT = s.KeysT + m * keyRowFloats;
            for (int u0 = 0; u0 < blocked; u0 += Lanes)
            {
                for (int l = 0; l < Lanes; l++)
                    s.Rows[l] = u0 + l < lengthY ? kRow + (u0 + l) * kStep : null;
                NeighborhoodKernels.TransposeQueries<Simd512, Vector512<float>>(s.Rows, s.Zeros, dqk, 1f, keysT + LeftPad + u0, (int)rowLength);
            }
            for (int d = 0; d < dqk; d++)
            {
                float* row = keysT + d * rowLength;
                new Span<float>(row, LeftPad).Clear();
                new Span<float>(row + LeftPad + blocked, (int)(rowLength - LeftPad - blocked)).Clear();
            }
            float* vRow = p.V + p.ValueOffset + item.Batch * p.ValueStrides[0] + item.KeyValueHead * p.ValueStrides[1] + x * p.ValueStrides[2] + item.GroupY * p.ValueStrides[3];
            float* values = s.Values + (long)m * p.Size.GroupColumns * dvStride;
            for (int u = 0; u < lengthY; u++)
            {
                float* source = vRow + u * vStep, target = values + (long)u * dvStride;
                int e = 0;
                for (; e + 16 <= dv; e += 16) Vector512.Store(Vector512.Load(source + e), target + e);
                for (; e < dv; e++) target[e] = source[e];
                for (; e < dvStride; e++) target[e] = 0;
            }
        }

        for (int h = 0; h < p.GroupSize; h++)
        {
            int head = item.KeyValueHead * p.GroupSize + h;
            float* bias = p.Bias == null ? null : p.Bias + (long)head * (2 * kx - 1) * (2 * ky - 1);
            for (int q = firstRow; q <= lastRow; q += 2)
            {
                // Two query rows at a time (the second absent on the item's last odd row).
                bool two = q + 1 <= lastRow;
                var (xsA, xeA) = Neighborhood1D.Window(q, lengthX, kx, cx);
                var (xsB, xeB) = two ? Neighborhood1D.Window(q + 1, lengthX, kx, cx) : (0, 0);
                for (int i0 = 0; i0 < lengthY; i0 += Lanes)
                {
                    int real = Math.Min(Lanes, lengthY - i0);
                    var (jLow, jHigh) = LaneWindows(s, i0, real, lengthY, ky, cy, d0);
                    int diagonals = (jHigh - jLow + 3) & ~3;
                    long segmentFloats = (long)(diagonals + ZeroRows) * Lanes;
                    // Query rows transposed and scaled, then the scores of both blocks, key row by key row.
                    TransposeQueryBlock(p, s, item, head, q, i0, real, s.QueryT);
                    if (two) TransposeQueryBlock(p, s, item, head, q + 1, i0, real, s.QueryT2);
                    // The next blocks' Q rows and this pair's O rows (written after the scores), into L1.
                    if (i0 + Lanes < lengthY) PrefetchBlock(p, item, head, q, i0 + Lanes, lengthY, two ? 2 : 1, o: false);
                    else if (q + 2 <= lastRow) PrefetchBlock(p, item, head, q + 2, 0, lengthY, Math.Min(2, lastRow - q - 1), o: false);
                    PrefetchBlock(p, item, head, q, i0, lengthY, two ? 2 : 1, o: true);
                    float* scoresA = s.Scores + ZeroRows * Lanes, scoresB = s.Scores + s.ScoreBlockFloats + ZeroRows * Lanes;
                    for (int r = Math.Min(xsA, two ? xsB : xsA); r < Math.Max(xeA, two ? xeB : xeA); r++)
                    {
                        float* keyT = s.KeysT + (r - rowLow) * keyRowFloats + LeftPad + (i0 + d0 + jLow);
                        bool inA = r >= xsA && r < xeA, inB = two && r >= xsB && r < xeB;
                        float* a = scoresA + (r - xsA) * segmentFloats, b = scoresB + (r - xsB) * segmentFloats;
                        if (inA && inB)
                        {
                            int t = 0;
                            for (; t + 8 <= diagonals; t += 8) Neighborhood1D.Pair8(s.QueryT, s.QueryT2, keyT + t, rowLength, dqk, a + t * Lanes, b + t * Lanes);
                            if (t < diagonals) Neighborhood1D.Pair4(s.QueryT, s.QueryT2, keyT + t, rowLength, dqk, a + t * Lanes, b + t * Lanes);
                        }
                        else if (inA) Diagonals(s.QueryT, keyT, rowLength, dqk, diagonals, a);
                        else Diagonals(s.QueryT2, keyT, rowLength, dqk, diagonals, b);
                    }
                    var (maxA, sumA) = Normalize(p, s, bias, q, xsA, xeA, jLow, jHigh, diagonals, d0, scoresA, s.Inverse);
                    var (maxB, sumB) = two ? Normalize(p, s, bias, q + 1, xsB, xeB, jLow, jHigh, diagonals, d0, scoresB, s.Inverse + Lanes) : default;
                    if (p.Size.ValueStride <= 32)
                        AccumulateRows(p, s, item, head, q, two, xsA, xeA, xsB, xeB, rowLow, i0, real, jLow, diagonals, d0, scoresA, scoresB);
                    else
                    {
                        AccumulateQuads(p, s, item, head, q, xsA, xeA, rowLow, i0, real, jLow, diagonals, d0, scoresA, s.Inverse);
                        if (two) AccumulateQuads(p, s, item, head, q + 1, xsB, xeB, rowLow, i0, real, jLow, diagonals, d0, scoresB, s.Inverse + Lanes);
                    }
                    WriteLse(p, item, head, q, i0, real, maxA, sumA);
                    if (two) WriteLse(p, item, head, q + 1, i0, real, maxB, sumB);
                }
            }
        }
    }

    /// <summary>
    /// The y windows of the 16 lanes from column <paramref name="i0"/> (<paramref name="real"/> of them queries): key
    /// columns <c>[WindowStart, WindowEnd)</c> and diagonals <c>[DiagonalStart, DiagonalEnd)</c> per lane; returns the
    /// union of the real lanes' diagonals. Padding lanes keep one diagonal (finite rows, never written).
    /// </summary>
    private static (int JLow, int JHigh) LaneWindows(in ScratchLayout s, int i0, int real, int length, int kernel, bool causal, int d0)
    {
        int jLow = int.MaxValue, jHigh = int.MinValue;
        if (Neighborhood1D.Interior(i0, real, length, kernel, causal))
        {
            var lane = Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            (lane + Vector512.Create(i0 + d0)).Store(s.WindowStart);
            (lane + Vector512.Create(i0 + d0 + kernel)).Store(s.WindowEnd);
            Vector512<int>.Zero.Store(s.DiagonalStart);
            Vector512.Create(kernel).Store(s.DiagonalEnd);
            return (0, kernel);
        }
        for (int l = 0; l < real; l++)
        {
            int i = i0 + l;
            var (start, end) = Neighborhood1D.Window(i, length, kernel, causal);
            s.WindowStart[l] = start;
            s.WindowEnd[l] = end;
            s.DiagonalStart[l] = start - i - d0;
            s.DiagonalEnd[l] = end - i - d0;
            jLow = Math.Min(jLow, start - i - d0);
            jHigh = Math.Max(jHigh, end - i - d0);
        }
        for (int l = real; l < Lanes; l++)
        {
            s.WindowStart[l] = s.WindowStart[real - 1];
            s.WindowEnd[l] = s.WindowEnd[real - 1];
            s.DiagonalStart[l] = jLow;
            s.DiagonalEnd[l] = jLow + 1;
        }
        return (jLow, jHigh);
    }

    /// <summary>
    /// The <paramref name="diagonals"/> (a multiple of 4) of one block and key row.
    /// </summary>
    private static void Diagonals(float* queryT, float* keyT, long rowLength, int headDim, int diagonals, float* scores)
    {
        int t = 0;
        for (; t + 12 <= diagonals; t += 12) Neighborhood1D.Diagonals12(queryT, keyT + t, rowLength, headDim, scores + t * Lanes);
        for (; t < diagonals; t += 4) Neighborhood1D.Diagonals4(queryT, keyT + t, rowLength, headDim, scores + t * Lanes);
    }

    /// <summary>Prefetches into L1 the Q (or O) rows of the blocks at column <paramref name="i0"/> of <paramref name="count"/> query rows from <paramref name="q"/>.</summary>
    private static void PrefetchBlock(Plan p, Item item, int head, int q, int i0, int lengthY, int count, bool o)
    {
        float* origin = o ? p.O + p.OutputOffset : p.Q + p.QueryOffset;
        long[] strides = o ? p.OutputStrides : p.QueryStrides;
        int floats = o ? p.ValueDim : p.HeadDim;
        for (int n = 0; n < count; n++)
        {
            float* row = origin + item.Batch * strides[0] + head * strides[1] + (item.GroupX + (long)(q + n) * p.DilationX) * strides[2] + item.GroupY * strides[3];
            long step = p.DilationY * strides[3];
            for (int l = i0; l < Math.Min(lengthY, i0 + Lanes); l++) Neighborhood1D.Prefetch(row + l * step, floats);
        }
    }

    /// <summary>The block's query rows (<paramref name="real"/> of 16; zeros for the rest) transposed and scaled into <paramref name="queryT"/>.</summary>
    private static void TransposeQueryBlock(Plan p, in ScratchLayout s, Item item, int head, int q, int i0, int real, float* queryT)
    {
        float* row = p.Q + p.QueryOffset + item.Batch * p.QueryStrides[0] + head * p.QueryStrides[1] + (item.GroupX + (long)q * p.DilationX) * p.QueryStrides[2]
            + item.GroupY * p.QueryStrides[3];
        long step = p.DilationY * p.QueryStrides[3];
        for (int l = 0; l < Lanes; l++)
            s.Rows[l] = l < real ? row + (i0 + l) * step : null;
        NeighborhoodKernels.TransposeQueries<Simd512, Vector512<float>>(s.Rows, s.Zeros, p.HeadDim, p.Log2Scale, queryT, Lanes);
    }

    /// <summary>
    /// Bias and softmax of one block whose scores lie in segments of <c>diagonals + ZeroRows</c> rows from
    /// <paramref name="scores"/>, one per key row <c>[xs, xe)</c>: the rows become probabilities (unnormalised), the zero
    /// rows around the segments are written, 1/sum goes to <paramref name="inverse"/>; returns the lanes' max and sum.
    /// </summary>
    private static (Vector512<float> Max, Vector512<float> Sum) Normalize(Plan p, in ScratchLayout s, float* bias, int q, int xs, int xe, int jLow, int jHigh,
        int diagonals, int d0, float* scores, float* inverse)
    {
        int segments = xe - xs, ky = p.KernelY;
        long segmentFloats = (long)(diagonals + ZeroRows) * Lanes;
        if (bias != null)
            for (int m = 0; m < segments; m++)
            {
                // The bias row of key-row offset (xs + m) - q; the y offset of diagonal j is j + d0 in every lane.
                float* b = bias + (long)(xs + m - q + p.KernelX - 1) * (2 * ky - 1) + ky - 1 + d0;
                float* row = scores + m * segmentFloats;
                for (int j = jLow; j < jHigh; j++)
                {
                    float* at = row + (j - jLow) * Lanes;
                    Vector512.Store(Vector512.Load(at) + Vector512.Create(b[j]), at);
                }
            }
        var (max, sum) = MaskedSoftmax(scores, segments, segmentFloats, diagonals, jLow, s.DiagonalStart, s.DiagonalEnd, s.Mask);
        var zero = Vector512<float>.Zero;
        for (int r = 0; r < ZeroRows; r++) Vector512.Store(zero, scores + (r - ZeroRows) * Lanes);
        for (int m = 0; m < segments; m++)
            for (int r = 0; r < ZeroRows; r++) Vector512.Store(zero, scores + m * segmentFloats + (diagonals + r) * Lanes);
        (Vector512<float>.One / sum).Store(inverse);
        return (max, sum);
    }

    /// <summary>The O row of query row <paramref name="q"/> at group column 0 (columns step <c>dy * stride</c>).</summary>
    private static float* OutputRow(Plan p, Item item, int head, int q) =>
        p.O + p.OutputOffset + item.Batch * p.OutputStrides[0] + head * p.OutputStrides[1] + (item.GroupX + (long)q * p.DilationX) * p.OutputStrides[2]
        + item.GroupY * p.OutputStrides[3];

    /// <summary>LSE of the block's real lanes, <c>(max + log2 sum) ln 2</c>.</summary>
    private static void WriteLse(Plan p, Item item, int head, int q, int i0, int real, Vector512<float> max, Vector512<float> sum)
    {
        if (p.Lse == null) return;
        var lse = (max + Neighborhood1D.Log2(sum)) * Vector512.Create(MathConstants.Ln2);
        float* lRow = p.Lse + p.LseOffset + item.Batch * p.LseStrides[0] + head * p.LseStrides[1] + (item.GroupX + (long)q * p.DilationX) * p.LseStrides[2]
            + item.GroupY * p.LseStrides[3];
        for (int l = 0; l < real; l++) lRow[(i0 + l) * p.DilationY * p.LseStrides[3]] = lse.GetElement(l);
    }

    /// <summary>
    /// P V of one block, Dv over 32: per quad of lanes and key row, <see cref="Neighborhood1D.AccumulateQuad{TVectors}"/>
    /// into the key row's partial rows, then their sum into O.
    /// </summary>
    private static void AccumulateQuads(Plan p, in ScratchLayout s, Item item, int head, int q, int xs, int xe, int rowLow, int i0, int real, int jLow, int diagonals,
        int d0, float* scores, float* inverse)
    {
        int segments = xe - xs, dv = p.ValueDim, dvStride = p.Size.ValueStride;
        long segmentFloats = (long)(diagonals + ZeroRows) * Lanes;
        float* oRow = OutputRow(p, item, head, q);
        long oStep = p.DilationY * p.OutputStrides[3];
        long valueRowFloats = (long)p.Size.GroupColumns * dvStride, partialFloats = 4L * dvStride;
        for (int quad = 0; quad * 4 < real; quad++)
        {
            int l0 = quad * 4, lastLane = Math.Min(l0 + 3, real - 1);
            int uLow = s.WindowStart[l0], uHigh = s.WindowEnd[lastLane];
            long probabilityOffset = (long)(uLow - i0 - l0 - d0 - jLow) * Lanes + l0;
            for (int m = 0; m < segments; m++)
            {
                float* probabilities = scores + m * segmentFloats + probabilityOffset;
                float* values = s.Values + (xs + m - rowLow) * valueRowFloats + (long)uLow * dvStride;
                float* target = s.Partial + m * partialFloats;
                int e = 0;
                for (; e + 64 <= dvStride; e += 64)
                    Neighborhood1D.AccumulateQuad<Four>(probabilities, values + e, uHigh - uLow, dvStride, inverse + l0, target + e, dvStride);
                switch ((dvStride - e) / 16)
                {
                    case 3: Neighborhood1D.AccumulateQuad<Three>(probabilities, values + e, uHigh - uLow, dvStride, inverse + l0, target + e, dvStride); break;
                    case 2: Neighborhood1D.AccumulateQuad<Two>(probabilities, values + e, uHigh - uLow, dvStride, inverse + l0, target + e, dvStride); break;
                    case 1: Neighborhood1D.AccumulateQuad<One>(probabilities, values + e, uHigh - uLow, dvStride, inverse + l0, target + e, dvStride); break;
                }
            }
            for (int l = l0; l <= lastLane; l++)
                SumPartials(s.Partial + (long)(l - l0) * dvStride, segments, partialFloats, dv, oRow + (i0 + l) * oStep);
        }
    }

    /// <summary>
    /// P V of the blocks of query rows q (A) and q + 1 (B, when <paramref name="two"/>) at the same columns, Dv up to 32:
    /// per pair of lanes (their union of windows is k + 1 value rows), one pass over the key rows of both windows (a
    /// key row outside one block's window is skipped for it), each value row loaded once for the 4 queries
    /// (<see cref="AccumulateLanePair{TVectors}"/>).
    /// </summary>
    private static void AccumulateRows(Plan p, in ScratchLayout s, Item item, int head, int q, bool two, int xsA, int xeA, int xsB, int xeB, int rowLow,
        int i0, int real, int jLow, int diagonals, int d0, float* scoresA, float* scoresB)
    {
        int dv = p.ValueDim, dvStride = p.Size.ValueStride;
        long segmentFloats = (long)(diagonals + ZeroRows) * Lanes;
        float* oRowA = OutputRow(p, item, head, q), oRowB = two ? OutputRow(p, item, head, q + 1) : null;
        long oStep = p.DilationY * p.OutputStrides[3];
        long valueRowFloats = (long)p.Size.GroupColumns * dvStride;
        int rLow = two ? Math.Min(xsA, xsB) : xsA, rHigh = two ? Math.Max(xeA, xeB) : xeA;
        bool direct = dv == dvStride;
        for (int l0 = 0; l0 < real; l0 += 2)
        {
            int lastLane = Math.Min(l0 + 1, real - 1);
            int uLow = s.WindowStart[l0], uHigh = s.WindowEnd[lastLane];
            long probabilityOffset = (long)(uLow - i0 - l0 - d0 - jLow) * Lanes + l0;
            for (int r = rLow; r < rHigh; r++)
            {
                int k = r - rLow;
                s.SegmentA[k] = r >= xsA && r < xeA ? scoresA + (r - xsA) * segmentFloats + probabilityOffset : null;
                s.SegmentB[k] = two && r >= xsB && r < xeB ? scoresB + (r - xsB) * segmentFloats + probabilityOffset : null;
                s.SegmentValues[k] = s.Values + (r - rowLow) * valueRowFloats + (long)uLow * dvStride;
            }
            bool full = direct && lastLane == l0 + 1;
            float* targetA = full ? oRowA + (i0 + l0) * oStep : s.Partial, targetB = full && two ? oRowB + (i0 + l0) * oStep : s.Partial + 2L * dvStride;
            long targetStride = full ? oStep : dvStride;
            if (dvStride == 32)
                AccumulateLanePair<Two>(s.SegmentA, s.SegmentB, s.SegmentValues, rHigh - rLow, uHigh - uLow, dvStride, s.Inverse + l0, s.Inverse + Lanes + l0, targetA, targetB, targetStride);
            else
                AccumulateLanePair<One>(s.SegmentA, s.SegmentB, s.SegmentValues, rHigh - rLow, uHigh - uLow, dvStride, s.Inverse + l0, s.Inverse + Lanes + l0, targetA, targetB, targetStride);
            if (!full)
                for (int l = l0; l <= lastLane; l++)
                {
                    float* a = s.Partial + (long)(l - l0) * dvStride, b = s.Partial + (2L + l - l0) * dvStride;
                    for (int e = 0; e < dv; e++) oRowA[(i0 + l) * oStep + e] = a[e];
                    if (two)
                        for (int e = 0; e < dv; e++) oRowB[(i0 + l) * oStep + e] = b[e];
                }
        }
    }

    /// <summary>
    /// Row-form P V of 2 lanes of two blocks over <paramref name="segments"/> key rows of <paramref name="rows"/> value
    /// rows each: lane m's probabilities for row r of segment k are at <c>a[k][r * 16 - 15 m]</c> (block A) and
    /// <c>b[k][r * 16 - 15 m]</c> (block B; a null segment is outside that block's window and skipped for it), the value
    /// row at <c>values[k] + r * valueStride</c>; one value load feeds the 4 queries. Writes <c>inverse * sum</c> for
    /// <typeparamref name="TVectors"/> (1 or 2) vectors to <c>targetA/B + m * targetStride</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void AccumulateLanePair<TVectors>(float** a, float** b, float** values, int segments, int rows, int valueStride, float* inverseA, float* inverseB,
        float* targetA, float* targetB, long targetStride) where TVectors : struct, IConstant
    {
        bool two = TVectors.Value == 2;
        // Block A lanes 0 and 1 (vector 0: a0, a1; vector 1: c0, c1), block B likewise (b0, b1; e0, e1).
        Vector512<float> a0 = default, a1 = default, c0 = default, c1 = default, b0 = default, b1 = default, e0 = default, e1 = default;
        for (int k = 0; k < segments; k++)
        {
            float* pa = a[k], pb = b[k], v = values[k];
            if (pa != null && pb != null)
                for (int r = 0; r < rows; r++, pa += Lanes, pb += Lanes, v += valueStride)
                {
                    var x = Vector512.Load(v);
                    var y = two ? Vector512.Load(v + 16) : default;
                    var w = Vector512.Create(pa[0]);
                    a0 = Avx512F.FusedMultiplyAdd(x, w, a0);
                    if (two) c0 = Avx512F.FusedMultiplyAdd(y, w, c0);
                    w = Vector512.Create(pa[-15]);
                    a1 = Avx512F.FusedMultiplyAdd(x, w, a1);
                    if (two) c1 = Avx512F.FusedMultiplyAdd(y, w, c1);
                    w = Vector512.Create(pb[0]);
                    b0 = Avx512F.FusedMultiplyAdd(x, w, b0);
                    if (two) e0 = Avx512F.FusedMultiplyAdd(y, w, e0);
                    w = Vector512.Create(pb[-15]);
                    b1 = Avx512F.FusedMultiplyAdd(x, w, b1);
                    if (two) e1 = Avx512F.FusedMultiplyAdd(y, w, e1);
                }
            else if (pa != null)
                for (int r = 0; r < rows; r++, pa += Lanes, v += valueStride)
                {
                    var x = Vector512.Load(v);
                    var y = two ? Vector512.Load(v + 16) : default;
                    var w = Vector512.Create(pa[0]);
                    var z = Vector512.Create(pa[-15]);
                    a0 = Avx512F.FusedMultiplyAdd(x, w, a0);
                    a1 = Avx512F.FusedMultiplyAdd(x, z, a1);
                    if (two) c0 = Avx512F.FusedMultiplyAdd(y, w, c0);
                    if (two) c1 = Avx512F.FusedMultiplyAdd(y, z, c1);
                }
            else
                for (int r = 0; r < rows; r++, pb += Lanes, v += valueStride)
                {
                    var x = Vector512.Load(v);
                    var y = two ? Vector512.Load(v + 16) : default;
                    var w = Vector512.Create(pb[0]);
                    var z = Vector512.Create(pb[-15]);
                    b0 = Avx512F.FusedMultiplyAdd(x, w, b0);
                    b1 = Avx512F.FusedMultiplyAdd(x, z, b1);
                    if (two) e0 = Avx512F.FusedMultiplyAdd(y, w, e0);
                    if (two) e1 = Avx512F.FusedMultiplyAdd(y, z, e1);
                }
        }
        var fa0 = Vector512.Create(inverseA[0]);
        var fa1 = Vector512.Create(inverseA[1]);
        var fb0 = Vector512.Create(inverseB[0]);
        var fb1 = Vector512.Create(inverseB[1]);
        (a0 * fa0).Store(targetA);
        (a1 * fa1).Store(targetA + targetStride);
        (b0 * fb0).Store(targetB);
        (b1 * fb1).Store(targetB + targetStride);
        if (!two) return;
        (c0 * fa0).Store(targetA + 16);
        (c1 * fa1).Store(targetA + targetStride + 16);
        (e0 * fb0).Store(targetB + 16);
        (e1 * fb1).Store(targetB + targetStride + 16);
    }

    /// <summary><c>target[e] = sum_m partial[m * step + e]</c> for <paramref name="dv"/> elements.</summary>
    private static void SumPartials(float* partial, int segments, long step, int dv, float* target)
    {
        int e = 0;
        for (; e + 16 <= dv; e += 16)
        {
            var acc = Vector512.Load(partial + e);
            for (int m = 1; m < segments; m++) acc += Vector512.Load(partial + m * step + e);
            acc.Store(target + e);
        }
        for (; e < dv; e++)
        {
            float acc = partial[e];
            for (int m = 1; m < segments; m++) acc += partial[m * step + e];
            target[e] = acc;
        }
    }

    /// <summary>
    /// One softmax over <paramref name="segments"/> segments of <paramref name="rows"/> score rows (diagonal
    /// <c>jLow + t</c> in row t): rows outside a lane's diagonals <c>[start[l], end[l])</c> count as -inf and become 0,
    /// the others <c>2^(s - max)</c>; returns the lanes' max and sum.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static (Vector512<float> Max, Vector512<float> Sum) MaskedSoftmax(float* scores, int segments, long segmentFloats, int rows, int jLow, int* start, int* end,
        float* mask)
    {
        // The mask as one additive row per diagonal (0 inside a lane's diagonals, -inf outside), the same in every segment.
        var low = Vector512.ConvertToSingle(Vector512.Load(start) - Vector512.Create(jLow));
        var high = Vector512.ConvertToSingle(Vector512.Load(end) - Vector512.Create(jLow));
        var minusInfinity = Vector512.Create(float.NegativeInfinity);
        for (int t = 0; t < rows; t++)
        {
            var index = Vector512.Create((float)t);
            Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(index, low) & Vector512.LessThan(index, high), Vector512<float>.Zero, minusInfinity)
                .Store(mask + t * Lanes);
        }
        var max = minusInfinity;
        for (int m = 0; m < segments; m++)
        {
            float* segment = scores + m * segmentFloats;
            for (int t = 0; t < rows; t++)
            {
                var x = Vector512.Load(segment + t * Lanes) + Vector512.Load(mask + t * Lanes);
                x.Store(segment + t * Lanes);
                max = Vector512.Max(max, x);
            }
        }
        var sum = Vector512<float>.Zero;
        for (int m = 0; m < segments; m++)
        {
            float* segment = scores + m * segmentFloats;
            for (int t = 0; t < rows; t++)
            {
                var e = Simd512.Exp2NonPositive(Vector512.Load(segment + t * Lanes) - max);
                e.Store(segment + t * Lanes);
                sum += e;
            }
        }
        return (max, sum);
    }

    /// <summary>One work item: a run of query rows of one (x, y) dilation group of one (sample, key/value head).</summary>
    private readonly record struct Item(int Batch, int KeyValueHead, int GroupX, int GroupY, int LengthX, int LengthY, int FirstRow, int RowCount);

    /// <summary>Sizes, pointers and strides of one call, and its items; shared read-only by the workers (plus the item counter).</summary>
    private sealed class Plan
    {
        public readonly int KernelX, KernelY, DilationX, DilationY, GroupSize, HeadDim, ValueDim, Batch, QueryHeads, LengthX, LengthY;
        public readonly bool CausalX, CausalY;
        public readonly float Log2Scale;
        public readonly float* Q, K, V, O, Lse;
        public readonly long QueryOffset, KeyOffset, ValueOffset, OutputOffset, LseOffset;
        public readonly long[] QueryStrides, KeyStrides, ValueStrides, OutputStrides, LseStrides;
        public readonly Sizes Size;
        public readonly Item[] Items;
        public readonly long ScratchFloats;
        /// <summary>The relative-position bias <c>[Hq, 2kx - 1, 2ky - 1]</c> times log2(e), pinned; null without one.</summary>
        public readonly float* Bias;
        private readonly System.Runtime.InteropServices.GCHandle _biasHandle;
        private readonly int[,] _extent;
        public int NextItem;

        public Plan(NeighborhoodProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp,
            float* q, float* k, float* v, float* o, float* lse)
        {
            (KernelX, KernelY) = (problem.KernelSize[0], problem.KernelSize[1]);
            (DilationX, DilationY) = (problem.Dilation[0], problem.Dilation[1]);
            (CausalX, CausalY) = (problem.Causal[0], problem.Causal[1]);
            (LengthX, LengthY) = (problem.SpatialShape[0], problem.SpatialShape[1]);
            GroupSize = problem.GroupSize;
            HeadDim = problem.HeadDim;
            ValueDim = problem.ValueDim;
            Batch = problem.Batch;
            QueryHeads = problem.QueryHeads;
            Log2Scale = (float)(problem.Scale * MathConstants.Log2EDouble);
            Q = q;
            K = k;
            V = v;
            O = o;
            Lse = lse;
            (QueryOffset, QueryStrides) = (query.Offset, query.Strides.ToArray());
            (KeyOffset, KeyStrides) = (key.Offset, key.Strides.ToArray());
            (ValueOffset, ValueStrides) = (value.Offset, value.Strides.ToArray());
            (OutputOffset, OutputStrides) = (output.Offset, output.Strides.ToArray());
            (LseOffset, LseStrides) = logSumExp is { } l ? (l.Offset, l.Strides.ToArray()) : (0, new long[4]);
            Size = Sizes.Of(problem);
            if (problem.Options.RelativePositionBias is { } rpb)
            {
                var values = rpb.ToDoubleArray();
                var bias = new float[values.Length];
                for (int n = 0; n < values.Length; n++) bias[n] = (float)(values[n] * MathConstants.Log2EDouble);
                _biasHandle = System.Runtime.InteropServices.GCHandle.Alloc(bias, System.Runtime.InteropServices.GCHandleType.Pinned);
                Bias = (float*)_biasHandle.AddrOfPinnedObject();
            }

            _extent = new int[Batch, 2];
            var items = new List<Item>();
            for (int b = 0; b < Batch; b++)
            {
                int extentX = _extent[b, 0] = problem.ValidExtentOf(b, 0), extentY = _extent[b, 1] = problem.ValidExtentOf(b, 1);
                for (int h = 0; h < problem.KeyValueHeads; h++)
                    for (int gx = 0; gx < Math.Min(DilationX, extentX); gx++)
                        for (int gy = 0; gy < Math.Min(DilationY, extentY); gy++)
                        {
                            int lengthX = (extentX - gx + DilationX - 1) / DilationX, lengthY = (extentY - gy + DilationY - 1) / DilationY;
                            for (int first = 0; first < lengthX; first += RowsPerItem)
                                items.Add(new Item(b, h, gx, gy, lengthX, lengthY, first, Math.Min(RowsPerItem, lengthX - first)));
                        }
            }
            Items = [.. items];
            ScratchFloats = ScratchLayout.Floats(HeadDim, KernelX, Size);
        }

        /// <summary>Zero output rows and LSE -inf for the queries past their sample's valid extent (no item covers them).</summary>
        public void WritePaddingRows()
        {
            for (int b = 0; b < Batch; b++)
            {
                if (_extent[b, 0] == LengthX && _extent[b, 1] == LengthY) continue;
                for (int h = 0; h < QueryHeads; h++)
                    for (int x = 0; x < LengthX; x++)
                        for (int y = x < _extent[b, 0] ? _extent[b, 1] : 0; y < LengthY; y++)
                        {
                            float* row = O + OutputOffset + b * OutputStrides[0] + h * OutputStrides[1] + x * OutputStrides[2] + y * OutputStrides[3];
                            for (int e = 0; e < ValueDim; e++) row[e] = 0;
                            if (Lse != null) Lse[LseOffset + b * LseStrides[0] + h * LseStrides[1] + x * LseStrides[2] + y * LseStrides[3]] = float.NegativeInfinity;
                        }
            }
        }

        /// <summary>Releases the pinned bias copy.</summary>
        public void Release()
        {
            if (_biasHandle.IsAllocated) _biasHandle.Free();
        }
    }

    /// <summary>Carves one worker's scratch into an item's buffers; every block starts 64-byte aligned.</summary>
    private readonly struct ScratchLayout
    {
        public readonly float* KeysT, Values, QueryT, QueryT2, Scores, Partial, Zeros, Inverse, Mask;
        /// <summary>Per key row of a pair's windows: block A's and B's probabilities and the value rows (<see cref="AccumulateRows"/>).</summary>
        public readonly float** SegmentA, SegmentB, SegmentValues;
        /// <summary>Floats per block's score buffer (two: the blocks of two query rows).</summary>
        public readonly long ScoreBlockFloats;
        public readonly int* WindowStart, WindowEnd, DiagonalStart, DiagonalEnd;
        public readonly float** Rows;
        private readonly float* _end;

        public ScratchLayout(float* scratch, int headDim, int kernelX, Sizes size)
        {
            float* next = scratch;
            KeysT = CpuScratch.Take(ref next, (long)size.KeyRows * headDim * size.KeyRowLength);
            Values = CpuScratch.Take(ref next, (long)size.KeyRows * size.GroupColumns * size.ValueStride);
            QueryT = CpuScratch.Take(ref next, (long)headDim * Lanes);
            QueryT2 = CpuScratch.Take(ref next, (long)headDim * Lanes);
            // Per key row a segment of the block's diagonals and the zero rows after it, and zero rows before the first.
            ScoreBlockFloats = (ZeroRows + (long)kernelX * (size.MaxDiagonals + ZeroRows)) * Lanes;
            Scores = CpuScratch.Take(ref next, 2 * ScoreBlockFloats);
            Partial = CpuScratch.Take(ref next, Math.Max(kernelX, 2) * 4L * size.ValueStride);
            Zeros = CpuScratch.Take(ref next, Math.Max(headDim, Lanes));
            Inverse = CpuScratch.Take(ref next, 2 * Lanes);
            SegmentA = (float**)CpuScratch.Take(ref next, 2L * (kernelX + 1));
            SegmentB = (float**)CpuScratch.Take(ref next, 2L * (kernelX + 1));
            SegmentValues = (float**)CpuScratch.Take(ref next, 2L * (kernelX + 1));
            Mask = CpuScratch.Take(ref next, (long)size.MaxDiagonals * Lanes);
            WindowStart = (int*)CpuScratch.Take(ref next, Lanes);
            WindowEnd = (int*)CpuScratch.Take(ref next, Lanes);
            DiagonalStart = (int*)CpuScratch.Take(ref next, Lanes);
            DiagonalEnd = (int*)CpuScratch.Take(ref next, Lanes);
            Rows = (float**)CpuScratch.Take(ref next, 2L * Lanes);
            _end = next;
            if (scratch != null)
            {
                new Span<float>(Zeros, Math.Max(headDim, Lanes)).Clear();
            }
        }

        /// <summary>The floats the layout needs, measured by laying it out from address 0.</summary>
        public static long Floats(int headDim, int kernelX, Sizes size) => (long)new ScratchLayout(null, headDim, kernelX, size)._end / sizeof(float);
    }
}
