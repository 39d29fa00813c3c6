// CPU neighborhood attention (NATTEN semantics): a fused, tiled kernel over the flash micro-kernels, one pass with an
// online softmax, work proportional to the key boxes of small query boxes rather than to the grid squared.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NativeAttention.Cpu;

/// <summary>
/// Computes neighborhood attention on 1-D, 2-D or 3-D grids (any kernel size, dilation, stride and causal flag per axis,
/// additional keys, GQA/MQA, Dv != Dqk, float32/float16/bfloat16 storage with float32 accumulation, optional LSE).
/// </summary>
/// <remarks>
/// Internally every grid has three axes (missing leading axes have length 1). Queries are grouped in query boxes: boxes
/// of consecutive queries of one dilation group whose columns (every query head of the key/value head x the box's
/// queries) fill at most one vector, e.g. 4 x 4 queries in 2-D or 16 in 1-D at 512 bits (<see cref="Plan.Box"/>). Every
/// box of a dilation group gets a key box of the same extent that holds all its queries' windows, so a vector of
/// columns computes only its own box (100 keys for 49 visible at 7 x 7, where one 64-query tile would compute its
/// 196-key union). A work item is (batch, key/value head, query tile), a query tile being the boxes that fill one
/// column group of four vectors. The item walks the key box in row-major order in tiles of up to
/// <see cref="CpuFlashTiles.KeyTile"/> keys; each vector reads the keys at the same offsets from its own box's corner
/// (<see cref="NeighborhoodKernels.ScoresSkewed"/>, <see cref="NeighborhoodKernels.AccumulateSkewed"/>), straight from
/// K and V where they are float32 with unit element stride, else from the item's union of boxes packed to float32
/// scratch once. Tiles outside a column group's union of windows are skipped, tiles inside the intersection of its
/// columns' windows skip the mask (full tiles), the others get a per-axis box mask
/// (<see cref="NeighborhoodKernels.MaskBox"/>); softmax is the flash kernel's online softmax. The additional keys follow
/// as further key tiles of the same online softmax, so they are merged exactly, as if they were part of the window.
/// When every query's window is the whole grid the call runs <see cref="CpuFlash"/> on the flattened grid.
/// Workers take items from a shared counter; an item is computed by one worker in a fixed order, so results do not
/// depend on the thread count.
/// </remarks>
internal static unsafe class CpuNeighborhood
{
    private const int KeyBlock = CpuFlashTiles.KeyBlock;
    private const int GroupVectors = CpuFlashTiles.GroupVectors;
    /// <summary>Mask tables a worker keeps (<see cref="Plan.MaskTables"/>): at 7 x 7 the interior boxes' and the eight border kinds (clamped low or high on either axis).</summary>
    private const int MaskTableEntries = 9;
    private const int Axes = 3;

    /// <summary>Runs a validated neighborhood problem on <paramref name="threads"/> workers.</summary>
    /// <exception cref="NotSupportedException"><paramref name="vectorBits"/> names a width the JIT does not accelerate here.</exception>
    public static void Run(NeighborhoodProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp, int threads,
        int? vectorBits = null)
    {
        if (TryRunDense(problem, query, key, value, output, logSumExp, threads, vectorBits)) return;
        // 1-D, float32, unit element stride, 512-bit vectors: the banded kernel (it declines everything else).
        if (Neighborhood1D.TryRun(problem, query, key, value, output, logSumExp, threads, vectorBits ?? CpuFeatures.VectorBits)) return;
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

    /// <summary>
    /// When every query sees the whole grid and there are no additional keys (<see cref="WholeGridFlash"/>: this thread's
    /// kept flattened views and flash problem, so the call allocates nothing), runs dense flash attention on the grid
    /// flattened to one axis. Returns false when it did not run.
    /// </summary>
    private static bool TryRunDense(NeighborhoodProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp, int threads,
        int? vectorBits)
    {
        if (WholeGridFlash.TryPrepare(problem, query, key, value, output, logSumExp) is not { } dense) return false;
        try
        {
            CpuFlash.Run(dense.Problem, dense.Query, dense.Key, dense.Value, dense.Output, dense.LogSumExp, threads, vectorBits);
        }
        finally
        {
            dense.Release();
        }
        return true;
    }

    private static void Run<TSimd, T>(NeighborhoodProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp, int threads)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        var options = problem.Options;
        using var qPin = query.Storage!.Pin();
        using var kPin = key.Storage!.Pin();
        using var vPin = value.Storage!.Pin();
        using var oPin = output.Storage!.Pin();
        using var lPin = logSumExp is { } l ? l.Storage!.Pin() : default;
        using var ekPin = options.AdditionalKeys is { } ek ? ek.Storage!.Pin() : default;
        using var evPin = options.AdditionalValues is { } ev ? ev.Storage!.Pin() : default;
        var plan = Plan.Rent(problem, TSimd.Count, query, key, value, output, logSumExp,
            (byte*)qPin.Pointer, (byte*)kPin.Pointer, (byte*)vPin.Pointer, (byte*)oPin.Pointer, (float*)lPin.Pointer, (byte*)ekPin.Pointer, (byte*)evPin.Pointer);
        try
        {
            if (problem.HasValidExtent) WritePaddingRows(plan, problem);
            CpuWorkers.Run(plan, threads, plan.Items, Work<TSimd, T>);
        }
        finally
        {
            plan.Release();
        }
    }

    /// <summary>Zero output rows and LSE -inf for every query outside its sample's valid extent (no item covers them).</summary>
    private static void WritePaddingRows(Plan p, NeighborhoodProblem problem)
    {
        float* zeros = stackalloc float[p.ValueDim];
        new Span<float>(zeros, p.ValueDim).Clear();
        int[] length = p.Length;
        for (int b = 0; b < problem.Batch; b++)
        {
            var tiling = p.Samples[b];
            for (int x0 = 0; x0 < length[0]; x0++)
            for (int x1 = 0; x1 < length[1]; x1++)
            for (int x2 = 0; x2 < length[2]; x2++)
            {
                if (x0 < tiling.Extent[0] && x1 < tiling.Extent[1] && x2 < tiling.Extent[2]) continue;
                for (int h = 0; h < problem.QueryHeads; h++)
                {
                    long o = p.OutputOffset + b * p.OutputStrides[0] + h * p.OutputStrides[1] + x0 * p.OutputSpatial[0] + x1 * p.OutputSpatial[1] + x2 * p.OutputSpatial[2];
                    CpuPacking.WriteRow(p.O + p.ElementSize * o, p.OutputStrides[^1], zeros, 1f, p.ValueDim, p.ElementType);
                    if (p.Lse != null)
                        p.Lse[p.LseOffset + b * p.LseStrides[0] + h * p.LseStrides[1] + x0 * p.LseSpatial[0] + x1 * p.LseSpatial[1] + x2 * p.LseSpatial[2]] = float.NegativeInfinity;
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Work<TSimd, T>(Plan plan) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        float* scratch = CpuScratch.Get(plan.ScratchFloats);
        var layout = new ScratchLayout(scratch, plan);
        layout.TileTables[0] = 0; // the scratch is shared with other calls and plans: no tables yet
        layout.MaskCount[0] = 0;
        if (plan.MaskTables) new Span<uint>(layout.MaskTables + (long)MaskTableEntries * plan.TileRows * 16, plan.TileRows * 16).Fill(uint.MaxValue);
        int item = Interlocked.Increment(ref plan.NextItem) - 1;
        while (item < plan.Items)
        {
            // One item is claimed ahead, so that its query and output rows (touched once per call: they come from
            // memory) are prefetched while this one computes. Which worker computes an item does not change its result.
            int next = Interlocked.Increment(ref plan.NextItem) - 1;
            RunItem<TSimd, T>(plan, item, scratch, next);
            item = next;
        }
    }

    /// <summary>
    /// The element offsets of item <paramref name="item"/>'s query rows in Q (<paramref name="queryRows"/>) and output
    /// rows in O (<paramref name="outputRows"/>), every query head of its key/value head x its queries; returns their count.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int ItemRows(Plan p, int item, long* queryRows, long* outputRows)
    {
        int batch = p.SampleOf(item);
        var tiling = p.Samples[batch];
        int rest = item - p.ItemStart[batch];
        Span<int> first = stackalloc int[Axes], count = stackalloc int[Axes], group = stackalloc int[Axes];
        for (int a = Axes - 1; a >= 0; a--)
        {
            var seg = tiling.Segments[a][rest % tiling.Segments[a].Length];
            rest /= tiling.Segments[a].Length;
            (group[a], first[a], count[a]) = (seg.Group, seg.First, seg.Count);
        }
        int n = 0;
        for (int h = 0; h < p.GroupSize; h++)
        {
            int head = rest * p.GroupSize + h;
            long q = p.QueryOffset + batch * p.QueryStrides[0] + head * p.QueryStrides[1], o = p.OutputOffset + batch * p.OutputStrides[0] + head * p.OutputStrides[1];
            for (int i0 = 0; i0 < count[0]; i0++)
            {
                int x0 = (first[0] + i0) * p.Dilation[0] + group[0];
                for (int i1 = 0; i1 < count[1]; i1++)
                {
                    int x1 = (first[1] + i1) * p.Dilation[1] + group[1];
                    long q01 = q + x0 * p.QuerySpatial[0] + x1 * p.QuerySpatial[1], o01 = o + x0 * p.OutputSpatial[0] + x1 * p.OutputSpatial[1];
                    for (int i2 = 0; i2 < count[2]; i2++, n++)
                    {
                        int x2 = (first[2] + i2) * p.Dilation[2] + group[2];
                        queryRows[n] = q01 + x2 * p.QuerySpatial[2];
                        outputRows[n] = o01 + x2 * p.OutputSpatial[2];
                    }
                }
            }
        }
        return n;
    }

    /// <summary>Prefetches rows <c>[from, to)</c> of the next item's query (in place) and output (wide) rows into L2.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PrefetchRows(Plan p, in ScratchLayout s, int from, int to)
    {
        for (int r = from; r < to; r++)
        {
            if (p.QueryRowsInPlace) Prefetch((float*)p.Q + s.NextQueryRows[r], p.HeadDim, 1);
            if (p.OutputRowsWide) Prefetch((float*)p.O + s.NextOutputRows[r], p.ValueDim, 1);
        }
    }

    /// <summary>
    /// The key and value rows of an item's union of windows on a 2-D grid (K and V read in place), prefetched into L2 a
    /// few key rows at a time while the item before it computes (<see cref="Step"/>).
    /// </summary>
    private struct KeyPrefetch
    {
        public float* Keys, Values;
        public long KeyRow, KeyColumn, ValueRow, ValueColumn;
        public int Rows, Columns, Done, HeadDim, ValueDim;

        /// <summary>Prefetches the next <paramref name="rows"/> key rows of the union (none once all are done).</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Step(int rows)
        {
            for (int end = Math.Min(Rows, Done + rows); Done < end; Done++)
            {
                float* k = Keys + Done * KeyRow, v = Values + Done * ValueRow;
                for (int c = 0; c < Columns; c++, k += KeyColumn, v += ValueColumn)
                {
                    Prefetch(k, HeadDim, 1);
                    Prefetch(v, ValueDim, 1);
                }
            }
        }
    }

    /// <summary>
    /// The <see cref="KeyPrefetch"/> of item <paramref name="item"/> (its segments' unions of windows), or one with no
    /// rows where the item's union spans more than one position on the first axis, or where its union overlaps the
    /// current item's (same sample, key/value head and dilation group, and union ranges that meet on every axis; the
    /// current item is <paramref name="batchNow"/>, <paramref name="kvHeadNow"/> and segment indices
    /// <paramref name="segmentNow"/>): the shared rows are in cache and the hardware prefetcher follows the rest. Where
    /// consecutive items of a worker share no key (at dilation 2 one worker's items alternate between groups, each
    /// group's runs at one place next to each other, see <c>Segmentation</c>; two workers take every other item) the next
    /// item's rows came from L3 or memory inside the score and P V blocks.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static KeyPrefetch NextKeys(Plan p, int item, int batchNow, int kvHeadNow, ReadOnlySpan<int> segmentNow)
    {
        int batch = p.SampleOf(item);
        var tiling = p.Samples[batch];
        int rest = item - p.ItemStart[batch];
        long k = p.KeyOffset + batch * p.KeyStrides[0], v = p.ValueOffset + batch * p.ValueStrides[0];
        var prefetch = new KeyPrefetch { HeadDim = p.HeadDim, ValueDim = p.ValueDim };
        int rows = 0, columns = 0;
        bool overlaps = batch == batchNow;
        for (int a = Axes - 1; a >= 0; a--)
        {
            var seg = tiling.Segments[a][rest % tiling.Segments[a].Length];
            rest /= tiling.Segments[a].Length;
            if (overlaps)
            {
                var now = tiling.Segments[a][segmentNow[a]]; // the same sample: the same tiling
                overlaps = seg.Group == now.Group && seg.UnionLow < now.UnionHigh && now.UnionLow < seg.UnionHigh;
            }
            int low = seg.UnionLow * p.Dilation[a] + seg.Group, count = seg.UnionHigh - seg.UnionLow;
            k += low * p.KeySpatial[a];
            v += low * p.ValueSpatial[a];
            if (a == 2) columns = count;
            else if (a == 1) rows = count;
            else if (count != 1) return prefetch;
        }
        if (overlaps && rest == kvHeadNow) return prefetch;
        k += rest * p.KeyStrides[1];
        v += rest * p.ValueStrides[1];
        prefetch.Keys = (float*)p.K + k;
        prefetch.Values = (float*)p.V + v;
        prefetch.KeyRow = p.KeySpatial[1] * p.Dilation[1];
        prefetch.KeyColumn = p.KeySpatial[2] * p.Dilation[2];
        prefetch.ValueRow = p.ValueSpatial[1] * p.Dilation[1];
        prefetch.ValueColumn = p.ValueSpatial[2] * p.Dilation[2];
        (prefetch.Rows, prefetch.Columns) = (rows, columns);
        return prefetch;
    }

    /// <summary>One item: every query head of one key/value head over one query tile, start to finish.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RunItem<TSimd, T>(Plan p, int item, float* scratch, int nextItem) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        // Decode the item: batch (items of one sample are consecutive), then key/value head, then segments innermost
        // (last axis fastest).
        int batch = p.SampleOf(item);
        var tiling = p.Samples[batch];
        Span<int> segment = stackalloc int[Axes];
        int rest = item - p.ItemStart[batch];
        for (int a = Axes - 1; a >= 0; a--)
        {
            segment[a] = rest % tiling.Segments[a].Length;
            rest /= tiling.Segments[a].Length;
        }
        int kvHead = rest;

        // The tile's query boxes: per axis, the segment's run of queries cut into runs of Box[a] (the last may be short).
        Span<int> group = stackalloc int[Axes], first = stackalloc int[Axes], count = stackalloc int[Axes], extent = stackalloc int[Axes], boxes = stackalloc int[Axes];
        int boxCount = 1, boxKeys = 1;
        for (int a = 0; a < Axes; a++)
        {
            var seg = tiling.Segments[a][segment[a]];
            (group[a], first[a], count[a]) = (seg.Group, seg.First, seg.Count);
            extent[a] = tiling.BoxExtent[a][seg.Group];
            boxes[a] = (count[a] + p.Box[a] - 1) / p.Box[a];
            boxCount *= boxes[a];
            boxKeys *= extent[a];
        }
        int w = TSimd.Count;
        int width = p.GroupWidth;
        int boxColumns = p.BoxColumns;
        int columns = boxCount * boxColumns;
        int groups = (columns + width - 1) / width;
        int padded = groups * width;
        int dqk = p.HeadDim, dv = p.ValueDim, dvStride = p.ValueStride;
        var s = new ScratchLayout(scratch, p);
        long maxColumns = p.MaxColumns;

        // Per box and axis: its first query (group coordinates), its query count and the low corner of its key box,
        // a box of `extent` keys that holds every window of its queries and lies inside the dilation group.
        // Box b's index on each axis, row-major (last axis fastest), counted up instead of divided out per box.
        Span<int> boxIndex = stackalloc int[Axes];
        for (int b = 0; b < boxCount; b++)
        {
            int queries = 1;
            if (b > 0)
                for (int a = Axes - 1; a >= 0 && ++boxIndex[a] == boxes[a]; a--) boxIndex[a] = 0;
            for (int a = Axes - 1; a >= 0; a--)
            {
                int ib = boxIndex[a];
                int boxFirst = first[a] + ib * p.Box[a], n = Math.Min(p.Box[a], count[a] - ib * p.Box[a]);
                s.BoxFirst[b * Axes + a] = boxFirst;
                s.BoxQueries[b * Axes + a] = n;
                s.BoxLow[b * Axes + a] = tiling.BoxLowAt[a][boxFirst * p.Dilation[a] + group[a]];
                queries *= n;
            }
            s.BoxColumnCount[b] = p.GroupSize * queries;
        }
        // Key tiles of whole key-box rows, and per box whether its P V runs over its query columns' window columns only.
        bool windowed = p.WindowValues && extent[0] == 1 && extent[2] <= p.TileRows;
        if (windowed) WindowBoxes(p, tiling, s, boxCount, group[2]);

        // Columns: box-major, then query head, then the box's queries in row-major order; each box padded to whole
        // vectors, the item to whole column groups. Per box, everything that depends on one axis (window in box
        // coordinates, bias term, memory offsets) is worked out once per query coordinate, then combined per column.
        long qItem = p.QueryOffset + batch * p.QueryStrides[0], oItem = p.OutputOffset + batch * p.OutputStrides[0], lItem = p.LseOffset + batch * p.LseStrides[0];
        int axisQueries = p.Box[0] + p.Box[1] + p.Box[2];
        float* axisStart = stackalloc float[axisQueries], axisEnd = stackalloc float[axisQueries];
        int* axisBias = stackalloc int[axisQueries], axisFirstKey = stackalloc int[axisQueries], axisLastKey = stackalloc int[axisQueries];
        long* axisQuery = stackalloc long[axisQueries], axisOutput = stackalloc long[axisQueries], axisLse = stackalloc long[axisQueries];
        var axis = new AxisScratch(axisStart, axisEnd, axisBias, axisFirstKey, axisLastKey, axisQuery, axisOutput, axisLse);
        int column = 0;
        for (int b = 0; b < boxCount; b++)
        {
            column = BoxColumns(p, tiling, s, axis, b, column, group[0], group[1], group[2], kvHead, qItem, oItem, lItem, extent[1], extent[2]);
            for (; column < (b + 1) * boxColumns; column++) PadColumn(s, column, dqk, width, dvStride, maxColumns);
        }
        for (; column < padded; column++) PadColumn(s, column, dqk, width, dvStride, maxColumns);
        if (p.QueryRowsInPlace)
        {
            new Span<float>(s.Row, dqk).Clear();
            for (int v = 0; v < padded / w; v++)
                NeighborhoodKernels.TransposeQueries<TSimd, T>(s.QueryRows + v * w, s.Row, dqk, p.Log2Scale,
                    s.QueryT + (long)(v / GroupVectors) * dqk * width + v % GroupVectors * w, width);
        }

        // Per column group and axis, in box coordinates: the union of its columns' windows (tiles outside are skipped)
        // and their intersection (tiles inside need no mask).
        for (int g = 0; g < groups; g++)
            for (int a = 0; a < Axes; a++)
            {
                float unionLow = float.MaxValue, unionHigh = float.MinValue, fullLow = float.MinValue, fullHigh = float.MaxValue;
                int c = g * width;
                if (System.Runtime.Intrinsics.X86.Sse.IsSupported)
                {
                    // Four columns at a time (the compares of the scalar loop mispredicted): padding columns (start
                    // -1e9, end 1e9) are left out of the union and cannot narrow the intersection.
                    var low = Vector128.Create(float.MaxValue);
                    var high = Vector128.Create(float.MinValue);
                    var fullLowV = Vector128.Create(float.MinValue);
                    var fullHighV = Vector128.Create(float.MaxValue);
                    var padding = Vector128.Create(-1e8f);
                    for (; c + 4 <= (g + 1) * width; c += 4)
                    {
                        var start = Vector128.Load(s.ColumnStart + a * maxColumns + c);
                        var end = Vector128.Load(s.ColumnEnd + a * maxColumns + c);
                        var real = Vector128.GreaterThanOrEqual(start, padding);
                        low = System.Runtime.Intrinsics.X86.Sse.Min(low, Vector128.ConditionalSelect(real, start, Vector128.Create(float.MaxValue)));
                        high = System.Runtime.Intrinsics.X86.Sse.Max(high, Vector128.ConditionalSelect(real, end, Vector128.Create(float.MinValue)));
                        fullLowV = System.Runtime.Intrinsics.X86.Sse.Max(fullLowV, start);
                        fullHighV = System.Runtime.Intrinsics.X86.Sse.Min(fullHighV, end);
                    }
                    for (int l = 0; l < 4; l++)
                    {
                        unionLow = low.GetElement(l) < unionLow ? low.GetElement(l) : unionLow;
                        unionHigh = high.GetElement(l) > unionHigh ? high.GetElement(l) : unionHigh;
                        fullLow = fullLowV.GetElement(l) > fullLow ? fullLowV.GetElement(l) : fullLow;
                        fullHigh = fullHighV.GetElement(l) < fullHigh ? fullHighV.GetElement(l) : fullHigh;
                    }
                }
                for (; c < (g + 1) * width; c++)
                {
                    float start = s.ColumnStart[a * maxColumns + c], end = s.ColumnEnd[a * maxColumns + c];
                    if (start < -1e8f) continue; // a padding column
                    // Plain comparisons: the bounds are small integers, and Math.Min/Max's NaN and signed-zero
                    // handling measured as a visible share of the per-item setup.
                    unionLow = start < unionLow ? start : unionLow;
                    unionHigh = end > unionHigh ? end : unionHigh;
                    fullLow = start > fullLow ? start : fullLow;
                    fullHigh = end < fullHigh ? end : fullHigh;
                }
                int at = (g * Axes + a) * 4;
                s.GroupBounds[at] = unionLow;
                s.GroupBounds[at + 1] = unionHigh;
                s.GroupBounds[at + 2] = fullLow;
                s.GroupBounds[at + 3] = fullHigh;
            }

        // Per register block of P V rows: the key-box indices (row-major) from its rows' first visible key to past their
        // last; the P V block runs only over those (a query's visible keys lie between its window's first and last
        // corner in row-major order). At 7 x 7 an 8-row block sees 80 of the 100 keys of its box, at k 33 a 4-row block 36 of 48.
        int rowBlock = NeighborhoodKernels.AccumulateRowBlock<TSimd, T>(dvStride);
        for (int c0 = 0, block = 0; c0 < padded; c0 += rowBlock, block++)
        {
            int low = int.MaxValue, high = int.MinValue;
            for (int c = c0; c < c0 + rowBlock; c++)
            {
                low = s.ColumnFirstKey[c] < low ? s.ColumnFirstKey[c] : low;
                high = s.ColumnEndKey[c] > high ? s.ColumnEndKey[c] : high;
            }
            if (low > high) low = high = 0; // only padding columns
            s.BlockKeyFirst[block] = low;
            s.BlockKeyEnd[block] = high;
        }

        // Where each vector's keys and values are read: in place where K (V) is float32 with unit element stride, else
        // from the item's union of key boxes packed once to scratch. Either way a key at box coordinate u lies at the
        // same offset u . stride from every box's corner.
        long kBase = p.KeyOffset + batch * p.KeyStrides[0] + kvHead * p.KeyStrides[1];
        long vBase = p.ValueOffset + batch * p.ValueStrides[0] + kvHead * p.ValueStrides[1];
        Span<int> itemLow = stackalloc int[Axes], itemExtent = stackalloc int[Axes];
        Span<long> keyStrides = stackalloc long[Axes], valueStrides = stackalloc long[Axes];
        int itemKeys = UnionOfBoxes(s.BoxLow, boxCount, extent, itemLow, itemExtent);
        float* keySource, valueSource;
        if (p.KeyRunsInPlace)
        {
            keySource = (float*)p.K + kBase;
            for (int a = 0; a < Axes; a++)
            {
                keyStrides[a] = p.KeySpatial[a] * p.Dilation[a];
                keySource += (long)group[a] * p.KeySpatial[a];
            }
        }
        else
        {
            keySource = s.Keys;
            (keyStrides[0], keyStrides[1], keyStrides[2]) = ((long)itemExtent[1] * itemExtent[2] * dqk, (long)itemExtent[2] * dqk, dqk);
        }
        if (p.ValueRunsInPlace)
        {
            valueSource = (float*)p.V + vBase;
            for (int a = 0; a < Axes; a++)
            {
                valueStrides[a] = p.ValueSpatial[a] * p.Dilation[a];
                valueSource += (long)group[a] * p.ValueSpatial[a];
            }
        }
        else
        {
            valueSource = s.Values;
            (valueStrides[0], valueStrides[1], valueStrides[2]) = ((long)itemExtent[1] * itemExtent[2] * dvStride, (long)itemExtent[2] * dvStride, dvStride);
        }
        if (!p.KeyRunsInPlace || !p.ValueRunsInPlace)
            PackBoxTile(p, 0, itemKeys, itemKeys, itemExtent, itemLow, group, kBase, vBase, p.KeyRunsInPlace ? null : s.Keys, p.ValueRunsInPlace ? null : s.Values);
        // Per vector (of the whole item): the corner of its box's keys and values; padding vectors take the first box's.
        int vectorCount = padded / w;
        for (int v = 0; v < vectorCount; v++)
        {
            int b = v * w / boxColumns;
            if (b >= boxCount) b = 0;
            long kCorner = 0, vCorner = 0;
            for (int a = 0; a < Axes; a++)
            {
                int low = s.BoxLow[b * Axes + a] - (p.KeyRunsInPlace ? 0 : itemLow[a]);
                kCorner += low * keyStrides[a];
                low = s.BoxLow[b * Axes + a] - (p.ValueRunsInPlace ? 0 : itemLow[a]);
                vCorner += low * valueStrides[a];
            }
            s.VectorKeys[v] = keySource + kCorner;
            s.VectorValues[v] = valueSource + vCorner;
        }

        // The key box in row-major order, in tiles of about equal size.
        int tiles = (boxKeys + p.KeyTile - 1) / p.KeyTile, tileRows = 0;
        if (windowed)
        {
            tileRows = p.TileRows / extent[2];
            tiles = (extent[1] + tileRows - 1) / tileRows;
            tileRows = (extent[1] + tiles - 1) / tiles;
        }
        // The next item's rows, prefetched a slice after each score block and each P V block (spread over the item, so
        // the misses overlap compute instead of filling the miss buffers at once).
        int nextRows = nextItem < p.Items && (p.QueryRowsInPlace || p.OutputRowsWide) ? ItemRows(p, nextItem, s.NextQueryRows, s.NextOutputRows) : 0;
        int prefetched = 0, slice = (nextRows + tiles * groups * (GroupVectors + 1) - 1) / (tiles * groups * (GroupVectors + 1));
        // And, for one-tile items of K and V read in place, the next item's key and value rows, a slice of key rows at
        // the same points.
        var nextKeys = p.MaskTables && tiles == 1 && p.KeyRunsInPlace && p.ValueRunsInPlace && nextItem < p.Items
            ? NextKeys(p, nextItem, batch, kvHead, segment) : default;
        int keySlice = (nextKeys.Rows + groups * (GroupVectors + 1) - 1) / (groups * (GroupVectors + 1));
        int tileKeys = windowed ? tileRows * extent[2] : RoundUp((boxKeys + tiles - 1) / tiles, KeyBlock);
        int firstAxis = extent[0] > 1 ? 0 : extent[1] > 1 ? 1 : 2;
        Span<float> tileLow = stackalloc float[Axes], tileHigh = stackalloc float[Axes];
        // One tile per item: the tile tables, and so the mask tables, are kept from item to item.
        bool maskTables = p.MaskTables && tileKeys >= boxKeys;
        for (int k0 = 0; k0 < boxKeys; k0 += tileKeys)
        {
            int real = Math.Min(tileKeys, boxKeys - k0);
            int keys = RoundUp(real, KeyBlock);
            // The tables are a function of (k0, real, keys, extent, key strides, value strides) only: box coordinates
            // and offsets from a box's corner, never the item's corner, sample, dilation group or head (those are in
            // VectorKeys/VectorValues). A worker's items of one dilation group and sample share them, so they are kept
            // in scratch with that whole key (TileTables) and rebuilt only when it changes.
            if (!TileTablesMatch(s, k0, real, keys, extent, keyStrides, valueStrides))
            {
                TileCoordinates(s, k0, real, keys, extent, keyStrides, valueStrides);
                s.MaskCount[0] = 0; // the mask tables are functions of the coordinates too
            }
            // The tile's bounding box per axis, from its first and last real key (row-major): an axis is exact while
            // every axis before it is constant over the tile, else it is taken whole (a larger box only masks more).
            int last = k0 + real - 1;
            int a2 = k0 % extent[2], a1 = k0 / extent[2] % extent[1], a0 = k0 / extent[2] / extent[1];
            int b2 = last % extent[2], b1 = last / extent[2] % extent[1], b0 = last / extent[2] / extent[1];
            (tileLow[0], tileHigh[0]) = (a0, b0);
            (tileLow[1], tileHigh[1]) = a0 == b0 ? (a1, b1) : (0, extent[1] - 1);
            (tileLow[2], tileHigh[2]) = a0 == b0 && a1 == b1 ? (a2, b2) : (0, extent[2] - 1);
            for (int g = 0; g < groups; g++)
            {
                bool outside = false, full = real == keys;
                for (int a = 0; a < Axes; a++)
                {
                    float* bounds = s.GroupBounds + (g * Axes + a) * 4;
                    outside |= tileHigh[a] < bounds[0] || tileLow[a] >= bounds[1];
                    full &= tileLow[a] >= bounds[2] && tileHigh[a] < bounds[3];
                }
                if (outside) continue;
                int firstColumn = g * width, firstVector = g * GroupVectors;
                if (maskTables && !full && p.Bias == null)
                {
                    // Mask and max pass in the score block's epilogue, when all four vectors have a kept table.
                    uint* m0 = FindMaskTable(s, firstColumn, 0, keys, maxColumns, firstAxis), m1 = FindMaskTable(s, firstColumn, 1, keys, maxColumns, firstAxis);
                    uint* m2 = FindMaskTable(s, firstColumn, 2, keys, maxColumns, firstAxis), m3 = FindMaskTable(s, firstColumn, 3, keys, maxColumns, firstAxis);
                    if (m0 != null && m1 != null && m2 != null && m3 != null)
                    {
                        // Keys no lane of a pair of vectors sees are not computed for it (border boxes: at 7 x 7 the 3
                        // key-box rows past a clamped window's 7): each pair's key range, from its tables.
                        var (low01, end01) = PairRows(s, m0, m1);
                        var (low23, end23) = PairRows(s, m2, m3);
                        NeighborhoodKernels.ScoresSkewedMasked(s.QueryT + (long)g * dqk * width, s.VectorKeys[firstVector], s.VectorKeys[firstVector + 1],
                            s.VectorKeys[firstVector + 2], s.VectorKeys[firstVector + 3], s.KeyOffsets, dqk, keys, s.Scores, m0, m1, m2, m3, s.TileMax,
                            low01, end01, low23, end23);
                        PrefetchRows(p, s, prefetched, prefetched = Math.Min(nextRows, prefetched + slice));
                        nextKeys.Step(keySlice);
                        NeighborhoodKernels.SoftmaxAfterMax(s.Scores, keys, s.TileMax, s.Max + firstColumn, s.Sum + firstColumn, s.Alpha, low01, end01, low23, end23);
                        goto values;
                    }
                }
                NeighborhoodKernels.ScoresSkewed<TSimd, T>(s.QueryT + (long)g * dqk * width, s.VectorKeys[firstVector], s.VectorKeys[firstVector + 1],
                    s.VectorKeys[firstVector + 2], s.VectorKeys[firstVector + 3], s.KeyOffsets, dqk, keys, s.Scores);
                PrefetchRows(p, s, prefetched, prefetched = Math.Min(nextRows, prefetched + slice));
                if (p.Bias != null)
                    NeighborhoodKernels.AddRelativePositionBias(s.Scores, width, keys, s.Coordinates, s.CoordinateStride, s.BiasTerm + firstColumn, maxColumns,
                        s.BiasHead + firstColumn, width, p.Bias, p.BiasExtent);
                if (full)
                    CpuFlashKernels.Softmax<TSimd, T, Four>(s.Scores, keys, s.Max + firstColumn, s.Sum + firstColumn, s.Alpha);
                else if (maskTables)
                    NeighborhoodKernels.SoftmaxMaskTables(s.Scores, keys, MaskTable(s, firstColumn, 0, keys, maxColumns, firstAxis),
                        MaskTable(s, firstColumn, 1, keys, maxColumns, firstAxis), MaskTable(s, firstColumn, 2, keys, maxColumns, firstAxis),
                        MaskTable(s, firstColumn, 3, keys, maxColumns, firstAxis), s.Max + firstColumn, s.Sum + firstColumn, s.Alpha);
                else
                {
                    NeighborhoodKernels.MaskBox<TSimd, T>(s.Scores, width, keys, s.Coordinates, s.CoordinateStride,
                        s.ColumnStart + firstColumn, s.ColumnEnd + firstColumn, maxColumns, firstAxis);
                    CpuFlashKernels.Softmax<TSimd, T, Four>(s.Scores, keys, s.Max + firstColumn, s.Sum + firstColumn, s.Alpha);
                }
            values:
                for (int v = 0; v < GroupVectors; v++)
                {
                    int c = firstColumn + v * w, b = c / boxColumns;
                    if (b >= boxCount) break;
                    int realColumns = Math.Min(w, s.BoxColumnCount[b] - c % boxColumns);
                    if (realColumns <= 0) continue;
                    if (windowed && s.BoxWindow[b * Axes] >= 0)
                    {
                        AccumulateWindows(p, s, b, c, k0 / extent[2], real / extent[2] + (real % extent[2] == 0 ? 0 : 1), extent[2], s.VectorValues[firstVector + v]);
                        PrefetchRows(p, s, prefetched, prefetched = Math.Min(nextRows, prefetched + slice));
                        nextKeys.Step(keySlice);
                        continue;
                    }
                    NeighborhoodKernels.AccumulateSkewedInRanges<TSimd, T>(s.Scores + v * w, s.VectorValues[firstVector + v], s.ValueOffsets, keys, dvStride, s.Alpha + v * w,
                        s.Output + (long)c * dvStride, realColumns, s.BlockKeyFirst + c / rowBlock, s.BlockKeyEnd + c / rowBlock, k0);
                    PrefetchRows(p, s, prefetched, prefetched = Math.Min(nextRows, prefetched + slice));
                }
            }
        }
        PrefetchRows(p, s, prefetched, nextRows);
        nextKeys.Step(nextKeys.Rows);

        // The additional keys: visible to every query, so only their padding is masked.
        int extra = p.AdditionalKeyCount;
        int extraBlocked = RoundUp(extra, KeyBlock);
        long ekBase = extra > 0 ? p.ExtraKeyOffset + batch * p.ExtraKeyStrides[0] + kvHead * p.ExtraKeyStrides[1] : 0;
        long evBase = extra > 0 ? p.ExtraValueOffset + batch * p.ExtraValueStrides[0] + kvHead * p.ExtraValueStrides[1] : 0;
        for (int e0 = 0; e0 < extraBlocked; e0 += p.KeyTile)
        {
            int keys = Math.Min(p.KeyTile, extraBlocked - e0);
            int real = Math.Min(keys, extra - e0);
            for (int n = 0; n < real; n++)
            {
                CpuPacking.ReadRow(s.Keys + (long)n * dqk, p.ExtraK + p.ElementSize * (ekBase + (e0 + n) * p.ExtraKeyStrides[2]), p.ExtraKeyStrides[3], dqk, p.ElementType);
                CpuPacking.ReadRow(s.Values + (long)n * dvStride, p.ExtraV + p.ElementSize * (evBase + (e0 + n) * p.ExtraValueStrides[2]), p.ExtraValueStrides[3], dv, p.ElementType);
            }
            for (int n = real; n < keys; n++) PadRows(s.Keys, s.Values, p, n);
            for (int c = 0; c < width; c++)
            {
                s.TileStart[c] = 0;
                s.TileEnd[c] = real;
            }
            for (int g = 0; g < groups; g++)
            {
                int firstColumn = g * width;
                CpuFlashKernels.Scores<TSimd, T, Four>(s.QueryT + (long)g * dqk * width, s.Keys, dqk, dqk, keys, s.Scores);
                if (real != keys) CpuFlashKernels.Mask<TSimd, T, Four>(s.Scores, keys, s.TileStart, s.TileEnd);
                CpuFlashKernels.Softmax<TSimd, T, Four>(s.Scores, keys, s.Max + firstColumn, s.Sum + firstColumn, s.Alpha);
                CpuFlashKernels.Accumulate<TSimd, T, Four>(s.Scores, s.Values, dvStride, keys, dvStride, s.Alpha,
                    s.Output + (long)firstColumn * dvStride, Math.Min(width, columns - firstColumn));
            }
        }

        // Per box its real columns (no division per column: the divisions measured as a visible share of the loop).
        for (int b = 0, c = 0, boxEnd = s.BoxColumnCount[0]; b < boxCount; c++)
        {
            if (c >= boxEnd)
            {
                if (++b == boxCount) break;
                c = b * boxColumns;
                boxEnd = c + s.BoxColumnCount[b];
            }
            float sum = s.Sum[c], max = s.Max[c];
            // Every query sees at least one key; the guard only keeps a NaN-free contract like the flash kernel's.
            bool empty = sum == 0;
            float factor = empty ? 0f : 1f / sum;
            if (p.OutputRowsWide)
            {
                float* target = (float*)p.O + s.OutputOffset[c], source = s.Output + (long)c * dvStride;
                T f = TSimd.Broadcast(factor);
                for (int e = 0; e < dv; e += w) TSimd.Store(target + e, TSimd.Multiply(TSimd.Load(source + e), f));
            }
            else CpuPacking.WriteRow(p.O + p.ElementSize * s.OutputOffset[c], p.OutputStrides[^1], s.Output + (long)c * dvStride, factor, dv, p.ElementType);
            if (p.Lse != null)
                p.Lse[s.LseOffset[c]] = empty ? float.NegativeInfinity : (max + MathF.Log2(sum)) * MathConstants.Ln2;
        }
    }

    /// <summary>
    /// The mask table of vector <paramref name="v"/> of the column group from <paramref name="firstColumn"/> for the
    /// current tile tables: the kept entry built for the same window bounds (start and end on every axis of its 16
    /// columns, compared exactly), else a new entry while there is room, else the vector is masked in place by
    /// <see cref="NeighborhoodKernels.MaskBoxColumns{TSimd, T}"/>
    /// and gets the table of all ones. Interior boxes (unclamped windows) all have one set of bounds in box coordinates.
    /// </summary>
    private static uint* MaskTable(in ScratchLayout s, int firstColumn, int v, int keys, long maxColumns, int firstAxis)
    {
        uint* table = FindMaskTable(s, firstColumn, v, keys, maxColumns, firstAxis);
        if (table != null) return table;
        const int w = 16;
        NeighborhoodKernels.MaskBoxColumns<Simd512, Vector512<float>>(s.Scores, 4 * w, v * w, (v + 1) * w, keys, s.Coordinates, s.CoordinateStride,
            s.ColumnStart + firstColumn, s.ColumnEnd + firstColumn, maxColumns, firstAxis);
        return s.MaskTables + MaskTableEntries * (long)s.CoordinateStride * w;
    }

    /// <summary>
    /// The keys <c>[low, end)</c> outside which the kept mask tables <paramref name="a"/> and <paramref name="b"/> (of
    /// <see cref="FindMaskTable"/>) are both 0: the smallest range holding both tables' ranges.
    /// </summary>
    private static (int Low, int End) PairRows(in ScratchLayout s, uint* a, uint* b)
    {
        long tableFloats = (long)s.CoordinateStride * 16;
        int* ra = s.MaskRows + 2 * (a - s.MaskTables) / tableFloats, rb = s.MaskRows + 2 * (b - s.MaskTables) / tableFloats;
        if (ra[0] == ra[1]) return (rb[0], rb[1]);
        if (rb[0] == rb[1]) return (ra[0], ra[1]);
        return (Math.Min(ra[0], rb[0]), Math.Max(ra[1], rb[1]));
    }

    /// <summary>
    /// The kept mask table for vector <paramref name="v"/>'s window bounds (see <c>MaskTable</c>), built into a new entry
    /// if there is none and there is room; null if there is none and no room. Reads no scores.
    /// </summary>
    private static uint* FindMaskTable(in ScratchLayout s, int firstColumn, int v, int keys, long maxColumns, int firstAxis)
    {
        const int w = 16;
        float* start = s.ColumnStart + firstColumn + v * w, end = s.ColumnEnd + firstColumn + v * w;
        int count = s.MaskCount[0];
        long tableFloats = (long)s.CoordinateStride * w;
        for (int e = 0; e < count; e++)
        {
            float* bounds = s.MaskBounds + e * 6 * w;
            bool same = true;
            for (int a = 0; a < Axes; a++)
                same &= Vector512.Load(start + a * maxColumns) == Vector512.Load(bounds + 2 * a * w)
                    && Vector512.Load(end + a * maxColumns) == Vector512.Load(bounds + (2 * a + 1) * w);
            if (same) return s.MaskTables + e * tableFloats;
        }
        if (count < MaskTableEntries)
        {
            float* bounds = s.MaskBounds + count * 6 * w;
            for (int a = 0; a < Axes; a++)
            {
                Vector512.Store(Vector512.Load(start + a * maxColumns), bounds + 2 * a * w);
                Vector512.Store(Vector512.Load(end + a * maxColumns), bounds + (2 * a + 1) * w);
            }
            uint* table = s.MaskTables + count * tableFloats;
            NeighborhoodKernels.BuildMaskTable(table, keys, s.Coordinates, s.CoordinateStride, start, end, maxColumns, firstAxis);
            (s.MaskRows[2 * count], s.MaskRows[2 * count + 1]) = NeighborhoodKernels.MaskTableRows(table, keys);
            s.MaskCount[0] = count + 1;
            return table;
        }
        return null;
    }

    /// <summary>
    /// Per box of the item (<see cref="ScratchLayout.BoxWindow"/>): whether it is a full 4 x 4 box whose query columns'
    /// windows have one length and start at consecutive columns (lane step 1) or at one column (step 0), and if so the
    /// step, the window's first column in key-box coordinates and its length.
    /// </summary>
    private static void WindowBoxes(Plan p, SampleTiling tiling, in ScratchLayout s, int boxCount, int group2)
    {
        int dilation = p.Dilation[2];
        int[] starts = tiling.WindowStart[2], counts = tiling.WindowCount[2];
        for (int b = 0; b < boxCount; b++)
        {
            int* info = s.BoxWindow + b * Axes;
            info[0] = -1;
            if (s.BoxQueries[b * Axes + 1] != 4 || s.BoxQueries[b * Axes + 2] != 4) continue;
            int x = s.BoxFirst[b * Axes + 2] * dilation + group2;
            int start = starts[x], count = counts[x], step = starts[x + dilation] - start;
            if (step != 0 && step != 1) continue;
            bool linear = true;
            for (int i = 1; i < 4; i++)
                linear &= starts[x + i * dilation] == start + i * step && counts[x + i * dilation] == count;
            if (!linear) continue;
            (info[0], info[1], info[2]) = (step, start - s.BoxLow[b * Axes + 2], count);
        }
    }

    /// <summary>
    /// The window P V of box <paramref name="b"/> (vector of columns from <paramref name="c"/>) over a key tile of
    /// key-box rows <c>[tileRow, tileRow + tileRows)</c>: per 8-row block, the rows its two query rows see.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AccumulateWindows(Plan p, in ScratchLayout s, int b, int c, int tileRow, int tileRows, int rowKeys, float* values)
    {
        const int width = 64;
        int* info = s.BoxWindow + b * Axes;
        int step = info[0], start = info[1], columns = info[2], dvStride = p.ValueStride;
        long maxColumns = p.MaxColumns;
        float* rowStart = s.ColumnStart + maxColumns, rowEnd = s.ColumnEnd + maxColumns;
        for (int half = 0; half < 16; half += 8)
        {
            int first = c + half;
            // The lanes' box rows: two query rows, four lanes each (the first lane of each holds its row's window).
            // Each query row's key rows in the tile, and their union.
            int firstA = Math.Clamp((int)rowStart[first] - tileRow, 0, tileRows), endA = Math.Clamp((int)rowEnd[first] - tileRow, firstA, tileRows);
            int firstB = Math.Clamp((int)rowStart[first + 4] - tileRow, 0, tileRows), endB = Math.Clamp((int)rowEnd[first + 4] - tileRow, firstB, tileRows);
            int low = (int)Math.Min(rowStart[first], rowStart[first + 4]) - tileRow, high = (int)Math.Max(rowEnd[first], rowEnd[first + 4]) - tileRow;
            low = Math.Clamp(low, 0, tileRows);
            high = Math.Clamp(high, low, tileRows);
            float* pv = s.Scores + (first & (width - 1)), alpha = s.Alpha + (first & (width - 1)), output = s.Output + (long)first * dvStride;
            if (dvStride == 32)
                NeighborhoodKernels.AccumulateWindows<Two>(pv, values, s.ValueOffsets, rowKeys, start, step, columns, low, high, firstA, endA, firstB, endB, dvStride, alpha, output);
            else
                NeighborhoodKernels.AccumulateWindows<One>(pv, values, s.ValueOffsets, rowKeys, start, step, columns, low, high, firstA, endA, firstB, endB, dvStride, alpha, output);
        }
    }

    /// <summary>Per-query-coordinate tables of one box (one entry per query coordinate of each axis, the axes one after another).</summary>
    private readonly struct AxisScratch(float* start, float* end, int* bias, int* firstKey, int* lastKey, long* query, long* output, long* lse)
    {
        public readonly float* Start = start, End = end;
        public readonly int* Bias = bias, FirstKey = firstKey, LastKey = lastKey;
        public readonly long* Query = query, Output = output, Lse = lse;
    }

    /// <summary>
    /// The columns of box <paramref name="b"/> from column <paramref name="column"/> on (its heads x its queries): window
    /// bounds in box coordinates, key-box index range, bias terms, output and LSE offsets, Q rows (prefetched, or read and
    /// transposed when Q is not read in place), an empty running softmax; returns the column after them. Everything that
    /// depends on one axis is worked out once per query coordinate, then combined per column, four columns at a time
    /// where Q is read in place (scalar, the per-column code reloaded every table pointer from the layout after each
    /// store, about 100 instructions a column). A method of its own: in <see cref="RunItem"/> these loops ran with most
    /// of their locals spilled.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static int BoxColumns(Plan p, SampleTiling tiling, in ScratchLayout s, in AxisScratch t, int b, int column, int group0, int group1, int group2, int kvHead,
        long qItem, long oItem, long lItem, int extent1, int extent2)
    {
        int* boxFirst = s.BoxFirst + b * Axes, boxQueries = s.BoxQueries + b * Axes, boxLow = s.BoxLow + b * Axes;
        for (int a = 0, at = 0; a < Axes; at += p.Box[a], a++)
        {
            int group = a == 0 ? group0 : a == 1 ? group1 : group2;
            // Key-box index (row-major) step of this axis.
            int keyStep = a == 0 ? extent1 * extent2 : a == 1 ? extent2 : 1;
            int dilation = p.Dilation[a], low = boxLow[a], first = boxFirst[a], kernel = p.Kernel[a];
            long querySpatial = p.QuerySpatial[a], outputSpatial = p.OutputSpatial[a], lseSpatial = p.LseSpatial[a];
            fixed (int* windowStart = tiling.WindowStart[a], windowCount = tiling.WindowCount[a])
                for (int i = 0; i < boxQueries[a]; i++)
                {
                    int groupPosition = first + i, x = groupPosition * dilation + group;
                    int start = windowStart[x] - low, count = windowCount[x];
                    t.Start[at + i] = start;
                    t.End[at + i] = start + count;
                    // Bias entry on this axis for the key at box coordinate u: u + this term (NATTEN's offset + k - 1).
                    t.Bias[at + i] = low - groupPosition + kernel - 1;
                    t.Query[at + i] = x * querySpatial;
                    t.Output[at + i] = x * outputSpatial;
                    t.Lse[at + i] = x * lseSpatial;
                    t.FirstKey[at + i] = start * keyStep;
                    t.LastKey[at + i] = (start + count - 1) * keyStep;
                }
        }
        int at1 = p.Box[0], at2 = p.Box[0] + p.Box[1];
        int dqk = p.HeadDim, dv = p.ValueDim, dvStride = p.ValueStride, width = p.GroupWidth;
        long maxColumns = p.MaxColumns;
        for (int h = 0; h < p.GroupSize; h++)
        {
            int head = kvHead * p.GroupSize + h;
            long qHead = qItem + head * p.QueryStrides[1], oHead = oItem + head * p.OutputStrides[1], lHead = lItem + head * p.LseStrides[1];
            for (int i0 = 0; i0 < boxQueries[0]; i0++)
            for (int i1 = at1; i1 < at1 + boxQueries[1]; i1++)
            {
                int i2 = at2;
                if (p.QueryRowsInPlace && Vector256.IsHardwareAccelerated)
                {
                    // Four columns at a time (consecutive queries on the last axis): the per-column tables are sums of
                    // per-axis terms, so each is a broadcast plus a vector of the last axis' terms.
                    int end2 = at2 + boxQueries[2] - 3;
                    if (i2 < end2)
                    {
                        float* columnStart = s.ColumnStart, columnEnd = s.ColumnEnd;
                        int* biasTerm = s.BiasTerm;
                        var start01 = (Vector128.Create(t.Start[i0]), Vector128.Create(t.Start[i1]));
                        var end01 = (Vector128.Create(t.End[i0]), Vector128.Create(t.End[i1]));
                        var bias01 = (Vector128.Create(t.Bias[i0]), Vector128.Create(t.Bias[i1]));
                        var biasHead = Vector128.Create(head * p.BiasHeadSize);
                        var output01 = Vector256.Create(oHead + t.Output[i0] + t.Output[i1]);
                        var lse01 = Vector256.Create(lHead + t.Lse[i0] + t.Lse[i1]);
                        var first01 = Vector128.Create(t.FirstKey[i0] + t.FirstKey[i1]);
                        var last01 = Vector128.Create(t.LastKey[i0] + t.LastKey[i1] + 1);
                        var query01 = Vector256.Create((long)p.Q + sizeof(float) * (qHead + t.Query[i0] + t.Query[i1]));
                        for (; i2 < end2; i2 += 4, column += 4)
                        {
                            int c = column;
                            start01.Item1.Store(columnStart + c);
                            start01.Item2.Store(columnStart + maxColumns + c);
                            Vector128.Load(t.Start + i2).Store(columnStart + 2 * maxColumns + c);
                            end01.Item1.Store(columnEnd + c);
                            end01.Item2.Store(columnEnd + maxColumns + c);
                            Vector128.Load(t.End + i2).Store(columnEnd + 2 * maxColumns + c);
                            bias01.Item1.Store(biasTerm + c);
                            bias01.Item2.Store(biasTerm + maxColumns + c);
                            Vector128.Load(t.Bias + i2).Store(biasTerm + 2 * maxColumns + c);
                            biasHead.Store(s.BiasHead + c);
                            var outputOffset = output01 + Vector256.Load(t.Output + i2);
                            outputOffset.Store(s.OutputOffset + c);
                            (lse01 + Vector256.Load(t.Lse + i2)).Store(s.LseOffset + c);
                            (first01 + Vector128.Load(t.FirstKey + i2)).Store(s.ColumnFirstKey + c);
                            (last01 + Vector128.Load(t.LastKey + i2)).Store(s.ColumnEndKey + c);
                            var rows = query01 + Vector256.ShiftLeft(Vector256.Load(t.Query + i2), 2);
                            rows.Store((long*)s.QueryRows + c);
                            // Q rows to L1 for the transpose; no O rows: the previous item's next-item prefetch
                            // (PrefetchRows) already brought them to L2 (all but a worker's first item).
                            for (int k = 0; k < 4; k++) Prefetch((float*)rows.GetElement(k), dqk, 0);
                            Vector128.Create(float.NegativeInfinity).Store(s.Max + c);
                            Vector128<float>.Zero.Store(s.Sum + c);
                            new Span<float>(s.Output + (long)c * dvStride, 4 * dvStride).Clear();
                        }
                    }
                }
                for (; i2 < at2 + boxQueries[2]; i2++, column++)
                {
                    int c = column;
                    s.ColumnStart[c] = t.Start[i0];
                    s.ColumnEnd[c] = t.End[i0];
                    s.BiasTerm[c] = t.Bias[i0];
                    s.ColumnStart[maxColumns + c] = t.Start[i1];
                    s.ColumnEnd[maxColumns + c] = t.End[i1];
                    s.BiasTerm[maxColumns + c] = t.Bias[i1];
                    s.ColumnStart[2 * maxColumns + c] = t.Start[i2];
                    s.ColumnEnd[2 * maxColumns + c] = t.End[i2];
                    s.BiasTerm[2 * maxColumns + c] = t.Bias[i2];
                    s.BiasHead[c] = head * p.BiasHeadSize;
                    s.OutputOffset[c] = oHead + t.Output[i0] + t.Output[i1] + t.Output[i2];
                    s.LseOffset[c] = lHead + t.Lse[i0] + t.Lse[i1] + t.Lse[i2];
                    s.ColumnFirstKey[c] = t.FirstKey[i0] + t.FirstKey[i1] + t.FirstKey[i2];
                    s.ColumnEndKey[c] = t.LastKey[i0] + t.LastKey[i1] + t.LastKey[i2] + 1;
                    long qOffset = qHead + t.Query[i0] + t.Query[i1] + t.Query[i2];
                    if (p.QueryRowsInPlace)
                    {
                        // Transposed per vector later. Q and O rows are touched once per call, so they come from memory:
                        // fetched now, while the setup runs (Q to L1, O to L2 for the end of the item).
                        s.QueryRows[c] = (float*)p.Q + qOffset;
                        Prefetch(s.QueryRows[c], dqk, 0);
                        if (p.OutputRowsWide) Prefetch((float*)p.O + s.OutputOffset[c], dv, 1);
                    }
                    else
                    {
                        CpuPacking.ReadRow(s.Row, p.Q + p.ElementSize * qOffset, p.QueryStrides[^1], dqk, p.ElementType);
                        // Column c of group c / width (a power of two: shifts, not divisions).
                        float* qColumn = s.QueryT + (long)(c >> p.GroupWidthShift) * dqk * width + (c & (width - 1));
                        float scale = p.Log2Scale;
                        for (int d = 0; d < dqk; d++) qColumn[(long)d * width] = s.Row[d] * scale;
                    }
                    InitColumn(s, c, dvStride);
                }
            }
        }
        return column;
    }

    /// <summary>An empty running softmax and output row for column <paramref name="c"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InitColumn(in ScratchLayout s, int c, int dvStride)
    {
        s.Max[c] = float.NegativeInfinity;
        s.Sum[c] = 0;
        new Span<float>(s.Output + (long)c * dvStride, dvStride).Clear();
    }

    /// <summary>
    /// A padding column: zero query, a window holding every key (so it never forces the masked path) and bias entry 0;
    /// nothing reads it back.
    /// </summary>
    private static void PadColumn(in ScratchLayout s, int c, int dqk, int width, int dvStride, long maxColumns)
    {
        for (int a = 0; a < Axes; a++)
        {
            s.ColumnStart[a * maxColumns + c] = -1e9f;
            s.ColumnEnd[a * maxColumns + c] = 1e9f;
            s.BiasTerm[a * maxColumns + c] = 0;
        }
        s.BiasHead[c] = 0;
        s.ColumnFirstKey[c] = int.MaxValue; // never read back: no key range of its own
        s.ColumnEndKey[c] = int.MinValue;
        s.QueryRows[c] = null;
        float* qColumn = s.QueryT + (long)(c / width) * dqk * width + c % width;
        for (int d = 0; d < dqk; d++) qColumn[(long)d * width] = 0;
        InitColumn(s, c, dvStride);
    }

    /// <summary>Prefetches the cache lines of <paramref name="count"/> floats from <paramref name="row"/> into L1 (<paramref name="level"/> 0) or L2 (1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(float* row, int count, int level)
    {
        if (!System.Runtime.Intrinsics.X86.Sse.IsSupported) return;
        for (int i = 0; i < count; i += 16)
            if (level == 0) System.Runtime.Intrinsics.X86.Sse.Prefetch0(row + i);
            else System.Runtime.Intrinsics.X86.Sse.Prefetch1(row + i);
    }

    /// <summary>Zero key and value rows <paramref name="j"/> (finite scores and values for a padding key).</summary>
    private static void PadRows(float* keys, float* values, Plan p, int j)
    {
        if (keys != null) new Span<float>(keys + (long)j * p.HeadDim, p.HeadDim).Clear();
        if (values != null) new Span<float>(values + (long)j * p.ValueStride, p.ValueStride).Clear();
    }

    /// <summary>
    /// For keys <c>[k0, k0 + real)</c> of the key box (row-major), in tile rows <c>0 .. real</c>: their box coordinates
    /// and their key and value offsets from a box's corner; the padding rows up to <paramref name="keys"/> get
    /// coordinate -1 (in no column's window) and the corner's offsets (readable, finite scores).
    /// </summary>
    private static void TileCoordinates(in ScratchLayout s, int k0, int real, int keys, ReadOnlySpan<int> extent, ReadOnlySpan<long> keyStrides, ReadOnlySpan<long> valueStrides)
    {
        int stride = s.CoordinateStride;
        int u2 = k0 % extent[2], rest = k0 / extent[2];
        int u1 = rest % extent[1], u0 = rest / extent[1];
        for (int n = 0; n < real; n++)
        {
            s.Coordinates[n] = u0;
            s.Coordinates[stride + n] = u1;
            s.Coordinates[2 * stride + n] = u2;
            s.KeyOffsets[n] = u0 * keyStrides[0] + u1 * keyStrides[1] + u2 * keyStrides[2];
            s.ValueOffsets[n] = u0 * valueStrides[0] + u1 * valueStrides[1] + u2 * valueStrides[2];
            if (++u2 == extent[2])
            {
                u2 = 0;
                if (++u1 == extent[1])
                {
                    u1 = 0;
                    u0++;
                }
            }
        }
        for (int n = real; n < keys; n++)
        {
            s.Coordinates[n] = -1;
            s.Coordinates[stride + n] = -1;
            s.Coordinates[2 * stride + n] = -1;
            s.KeyOffsets[n] = 0;
            s.ValueOffsets[n] = 0;
        }
    }

    /// <summary>
    /// Whether the tile tables (<see cref="ScratchLayout.Coordinates"/>, <see cref="ScratchLayout.KeyOffsets"/>,
    /// <see cref="ScratchLayout.ValueOffsets"/>) already hold keys <c>[k0, k0 + real)</c> of a key box of
    /// <paramref name="extent"/> with these strides, padded to <paramref name="keys"/>, i.e. every argument that
    /// <see cref="TileCoordinates"/> reads; if not, records that they will (the caller builds them next).
    /// </summary>
    private static bool TileTablesMatch(in ScratchLayout s, int k0, int real, int keys, ReadOnlySpan<int> extent, ReadOnlySpan<long> keyStrides, ReadOnlySpan<long> valueStrides)
    {
        long* key = s.TileTables;
        bool same = key[0] == 1 && key[1] == k0 && key[2] == real && key[3] == keys;
        for (int a = 0; a < Axes; a++)
            same &= key[4 + a] == extent[a] && key[7 + a] == keyStrides[a] && key[10 + a] == valueStrides[a];
        if (same) return true;
        (key[0], key[1], key[2], key[3]) = (1, k0, real, keys);
        for (int a = 0; a < Axes; a++) (key[4 + a], key[7 + a], key[10 + a]) = (extent[a], keyStrides[a], valueStrides[a]);
        return false;
    }

    /// <summary>
    /// The union of the item's key boxes (corners <paramref name="boxLow"/>, three per box, all of
    /// <paramref name="extent"/>): its corner and extent per axis, and its key count.
    /// </summary>
    private static int UnionOfBoxes(int* boxLow, int boxCount, ReadOnlySpan<int> extent, Span<int> low, Span<int> unionExtent)
    {
        int keys = 1;
        for (int a = 0; a < Axes; a++)
        {
            int lo = int.MaxValue, hi = int.MinValue;
            for (int b = 0; b < boxCount; b++)
            {
                lo = Math.Min(lo, boxLow[b * Axes + a]);
                hi = Math.Max(hi, boxLow[b * Axes + a] + extent[a]);
            }
            low[a] = lo;
            unionExtent[a] = hi - lo;
            keys *= hi - lo;
        }
        return keys;
    }

    /// <summary>
    /// Packs keys <c>[k0, k0 + real)</c> of one key box (row-major, low corner <paramref name="low"/> in group
    /// coordinates) into rows <c>0 .. real</c> of <paramref name="keyRows"/> and <paramref name="valueRows"/> (either may
    /// be null: not packed), then pads them with zero rows to <paramref name="keys"/>.
    /// </summary>
    private static void PackBoxTile(Plan p, int k0, int real, int keys, ReadOnlySpan<int> extent, ReadOnlySpan<int> low, ReadOnlySpan<int> group, long kBase, long vBase,
        float* keyRows, float* valueRows)
    {
        int dqk = p.HeadDim, dv = p.ValueDim, dvStride = p.ValueStride;
        int u2 = k0 % extent[2], rest = k0 / extent[2];
        int u1 = rest % extent[1], u0 = rest / extent[1];
        int n = 0;
        while (n < real)
        {
            // One run along the last axis: up to the end of the box row or of the tile.
            int run = Math.Min(extent[2] - u2, real - n);
            int x0 = (low[0] + u0) * p.Dilation[0] + group[0];
            int x1 = (low[1] + u1) * p.Dilation[1] + group[1];
            int firstX2 = (low[2] + u2) * p.Dilation[2] + group[2];
            long kRow = kBase + x0 * p.KeySpatial[0] + x1 * p.KeySpatial[1] + firstX2 * p.KeySpatial[2];
            long vRow = vBase + x0 * p.ValueSpatial[0] + x1 * p.ValueSpatial[1] + firstX2 * p.ValueSpatial[2];
            // A run of float32 rows that abut in memory, as the packed tile lays them out, is one copy.
            if (keyRows != null && p.KeyRunsContiguous)
                Buffer.MemoryCopy(p.K + p.ElementSize * kRow, keyRows + (long)n * dqk, 4L * run * dqk, 4L * run * dqk);
            if (valueRows != null && p.ValueRunsContiguous)
                Buffer.MemoryCopy(p.V + p.ElementSize * vRow, valueRows + (long)n * dvStride, 4L * run * dv, 4L * run * dv);
            if ((keyRows != null && !p.KeyRunsContiguous) || (valueRows != null && !p.ValueRunsContiguous))
                for (int r = 0; r < run; r++)
                {
                    long step = (long)r * p.Dilation[2];
                    if (keyRows != null && !p.KeyRunsContiguous)
                        CpuPacking.ReadRow(keyRows + (long)(n + r) * dqk, p.K + p.ElementSize * (kRow + step * p.KeySpatial[2]), p.KeyStrides[^1], dqk, p.ElementType);
                    if (valueRows != null && !p.ValueRunsContiguous)
                        CpuPacking.ReadRow(valueRows + (long)(n + r) * dvStride, p.V + p.ElementSize * (vRow + step * p.ValueSpatial[2]), p.ValueStrides[^1], dv, p.ElementType);
                }
            n += run;
            u2 += run;
            if (u2 == extent[2])
            {
                u2 = 0;
                if (++u1 == extent[1])
                {
                    u1 = 0;
                    u0++;
                }
            }
        }
        for (; n < keys; n++) PadRows(keyRows, valueRows, p, n);
    }

    private static int RoundUp(int value, int multiple) => (value + multiple - 1) / multiple * multiple;

    /// <summary>
    /// A run of queries along one axis: <see cref="Count"/> consecutive coordinates from <see cref="First"/> inside
    /// dilation group <see cref="Group"/>, whose windows together cover group coordinates <c>[UnionLow, UnionHigh)</c>.
    /// </summary>
    private readonly record struct Segment(int Group, int First, int Count, int UnionLow, int UnionHigh);

    /// <summary>Sizes, pointers, strides and the query tiling of one call, shared read-only by the workers (plus the item counter).</summary>
    private sealed class Plan
    {
        public readonly int KeyValueHeads, GroupSize, HeadDim, ValueDim, ValueStride, AdditionalKeyCount;
        public readonly int GroupWidth, GroupWidthShift, MaxColumns, MaxGroups, MaxBoxes, Items;
        /// <summary>At least the keys of any item's union of key boxes (packed when K or V is not read in place).</summary>
        public readonly int MaxUnionKeys;
        /// <summary>Keys per tile of a key box (the last tiles of a box are evened out and may be shorter).</summary>
        public readonly int KeyTile;
        /// <summary>
        /// Queries per axis of a query box: the queries whose columns (all their heads) share one key box, at most one
        /// vector of columns (one query when a key/value head has more query heads than a vector has lanes).
        /// </summary>
        public readonly int[] Box = new int[Axes];
        /// <summary>Columns per query box: its heads x queries, padded to whole vectors.</summary>
        public readonly int BoxColumns;
        public readonly float Log2Scale;
        /// <summary>Per internal axis (leading axes of length 1 pad the grid to three): length, kernel, dilation, stride, causal flag.</summary>
        public readonly int[] Length = new int[Axes], Kernel = new int[Axes], Dilation = new int[Axes], Stride = new int[Axes];
        public readonly bool[] Causal = new bool[Axes];
        /// <summary>Per sample: its windows and query tiling (samples with the same valid extent share one).</summary>
        public readonly SampleTiling[] Samples;
        /// <summary>The first item of each sample, and <see cref="Items"/> at the end.</summary>
        public readonly int[] ItemStart;
        /// <summary>The relative-position bias, float32 <c>[Hq, E0, E1, E2]</c> row-major, pre-multiplied by log2(e); null without one.</summary>
        public readonly float* Bias;
        private readonly float[]? _bias;
        /// <summary>Bias entries per internal axis (2k - 1; 1 on padding axes), and per head.</summary>
        public readonly int[] BiasExtent = [1, 1, 1];
        public readonly int BiasHeadSize = 1;
        public readonly ElementType ElementType;
        public readonly long ElementSize;
        public readonly byte* Q, K, V, O, ExtraK, ExtraV;
        public readonly float* Lse;
        public readonly long QueryOffset, KeyOffset, ValueOffset, OutputOffset, LseOffset, ExtraKeyOffset, ExtraValueOffset;
        public readonly long[] QueryStrides, KeyStrides, ValueStrides, OutputStrides, LseStrides, ExtraKeyStrides = [], ExtraValueStrides = [];
        /// <summary>Strides of the internal axes (0 for padding axes).</summary>
        public readonly long[] QuerySpatial, KeySpatial, ValueSpatial, OutputSpatial, LseSpatial;
        /// <summary>Union rows along the last axis are contiguous float32 memory in K (in V), copied in one block per run.</summary>
        public readonly bool KeyRunsContiguous, ValueRunsContiguous;
        /// <summary>
        /// K (V) is float32 with unit element stride (V also without padding to the vector width), so keys (values) are
        /// read where they are, through per-key offsets; otherwise the item's union of key boxes is packed to scratch.
        /// </summary>
        public readonly bool KeyRunsInPlace, ValueRunsInPlace;
        /// <summary>Q is float32 with unit element stride: its rows are transposed into the query tile straight from Q.</summary>
        public readonly bool QueryRowsInPlace;
        /// <summary>O is float32 with unit element stride and Dv a multiple of the vector width: rows are written a vector at a time.</summary>
        public readonly bool OutputRowsWide;
        public readonly long ScratchFloats;
        public int NextItem;
        /// <summary>
        /// 2-D, 512-bit vectors, one query head per key/value head, 4 x 4 query boxes, Dv 16 or 32: a box whose four
        /// query columns have windows of one length starting at consecutive columns (or at one column) runs its P V
        /// block over each row's window columns only (<see cref="NeighborhoodKernels.AccumulateWindows{TVectors}"/>), and
        /// key tiles hold whole rows of the key box.
        /// </summary>
        public readonly bool WindowValues;
        /// <summary>
        /// 512-bit vectors, four a column group: where an item's key box is one tile, the box mask of a vector is read
        /// from a per-worker table kept for its columns' window bounds (<see cref="MaskTableEntries"/> such tables, see
        /// <c>MaskTable</c>) and applied inside the softmax (<see cref="NeighborhoodKernels.SoftmaxMaskTables"/>).
        /// </summary>
        public readonly bool MaskTables;
        /// <summary>Rows of a score tile: <see cref="KeyTile"/>, or with <see cref="WindowValues"/> up to twice that (a 7 x 7 key box in one tile).</summary>
        public readonly int TileRows;

        public Plan(NeighborhoodProblem problem, int vectorWidth, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp,
            byte* q, byte* k, byte* v, byte* o, float* lse, byte* extraK, byte* extraV)
        {
            KeyValueHeads = problem.KeyValueHeads;
            GroupSize = problem.GroupSize;
            HeadDim = problem.HeadDim;
            ValueDim = problem.ValueDim;
            ValueStride = RoundUp(ValueDim, vectorWidth);
            AdditionalKeyCount = problem.AdditionalKeyCount;
            GroupWidth = CpuFlashTiles.GroupVectors * vectorWidth;
            GroupWidthShift = System.Numerics.BitOperations.Log2((uint)GroupWidth);
            if (1 << GroupWidthShift != GroupWidth) throw new InvalidOperationException($"Column groups of {GroupWidth} columns: expected a power of two.");
            Log2Scale = (float)(problem.Scale * MathConstants.Log2EDouble);
            ElementType = problem.ElementType;
            ElementSize = ElementType.SizeOf();
            int pad = Axes - problem.SpatialRank;
            for (int a = 0; a < Axes; a++)
            {
                bool real = a >= pad;
                Length[a] = real ? problem.SpatialShape[a - pad] : 1;
                Kernel[a] = real ? problem.KernelSize[a - pad] : 1;
                Dilation[a] = real ? problem.Dilation[a - pad] : 1;
                Stride[a] = real ? problem.Stride[a - pad] : 1;
                Causal[a] = real && problem.Causal[a - pad];
            }
            Q = q; K = k; V = v; O = o; Lse = lse; ExtraK = extraK; ExtraV = extraV;
            (QueryOffset, QueryStrides, QuerySpatial) = (query.Offset, query.Strides.ToArray(), Spatial(query, pad, 2));
            (KeyOffset, KeyStrides, KeySpatial) = (key.Offset, key.Strides.ToArray(), Spatial(key, pad, 2));
            (ValueOffset, ValueStrides, ValueSpatial) = (value.Offset, value.Strides.ToArray(), Spatial(value, pad, 2));
            (OutputOffset, OutputStrides, OutputSpatial) = (output.Offset, output.Strides.ToArray(), Spatial(output, pad, 2));
            (LseOffset, LseStrides, LseSpatial) = logSumExp is { } l ? (l.Offset, l.Strides.ToArray(), Spatial(l, pad, 2)) : (0, new long[] { 0, 0 }, new long[Axes]);
            if (problem.Options.AdditionalKeys is { } ek && problem.Options.AdditionalValues is { } ev)
            {
                (ExtraKeyOffset, ExtraKeyStrides) = (ek.Offset, ek.Strides.ToArray());
                (ExtraValueOffset, ExtraValueStrides) = (ev.Offset, ev.Strides.ToArray());
            }

            // Dilation 1 on the last axis, float32 rows with unit element stride, each row right after the previous one
            // (and, for values, no padding to the vector width): a run along the last axis is one block of memory.
            bool float32Runs = ElementType == ElementType.Float32 && Dilation[Axes - 1] == 1;
            KeyRunsContiguous = float32Runs && KeyStrides[^1] == 1 && KeySpatial[Axes - 1] == HeadDim;
            ValueRunsContiguous = float32Runs && ValueStrides[^1] == 1 && ValueSpatial[Axes - 1] == ValueDim && ValueStride == ValueDim;
            KeyRunsInPlace = ElementType == ElementType.Float32 && KeyStrides[^1] == 1;
            ValueRunsInPlace = ElementType == ElementType.Float32 && ValueStrides[^1] == 1 && ValueStride == ValueDim;
            QueryRowsInPlace = ElementType == ElementType.Float32 && QueryStrides[^1] == 1;
            OutputRowsWide = ElementType == ElementType.Float32 && OutputStrides[^1] == 1 && ValueStride == ValueDim;

            if (problem.Options.RelativePositionBias is { } rpb)
            {
                for (int a = pad; a < Axes; a++) BiasExtent[a] = 2 * Kernel[a] - 1;
                BiasHeadSize = BiasExtent[0] * BiasExtent[1] * BiasExtent[2];
                // Read (any strides) into a pinned row-major copy, in the log2 domain of the kernels' scores; a reused
                // plan reads it again for every call (ReadBias), as the caller may have changed it.
                _bias = GC.AllocateArray<float>(checked((int)rpb.ElementCount), pinned: true);
                ReadBias(rpb, _bias);
                Bias = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(_bias));
            }

            KeyTile = CpuFlashTiles.KeyTile;
            Box = ChooseBox();
            int boxQueries = Box[0] * Box[1] * Box[2];
            BoxColumns = RoundUp(GroupSize * boxQueries, vectorWidth);
            WindowValues = vectorWidth == 16 && System.Runtime.Intrinsics.X86.Avx512F.IsSupported && Length[0] == 1 && GroupSize == 1
                && Box[0] == 1 && Box[1] == 4 && Box[2] == 4 && (ValueStride == 16 || ValueStride == 32);
            TileRows = WindowValues ? 2 * KeyTile : KeyTile;
            MaskTables = vectorWidth == 16 && GroupWidth == 64 && System.Runtime.Intrinsics.X86.Avx512F.IsSupported;
            // An item: as many query boxes as fill one column group, doubled along whichever axis grows the item's union of
            // key boxes least (a compact union: fewer K/V rows per item, read from cache by its four vectors).
            int itemBoxes = Math.Max(1, GroupWidth / BoxColumns);
            int[] boxesPerItem = [1, 1, 1];
            int maxBoxes = 1;
            while (maxBoxes * 2 <= itemBoxes)
            {
                int best = -1;
                double bestGrowth = double.MaxValue;
                for (int a = Axes - 1; a >= 0; a--)
                {
                    if (boxesPerItem[a] * 2 > (GroupLength(a, 0) + Box[a] - 1) / Box[a]) continue;
                    double union = Math.Min(GroupLength(a, 0), boxesPerItem[a] * Box[a] + Kernel[a] + Stride[a] - 2);
                    double growth = Math.Min(GroupLength(a, 0), 2 * boxesPerItem[a] * Box[a] + Kernel[a] + Stride[a] - 2) / union;
                    if (growth < bestGrowth) (best, bestGrowth) = (a, growth);
                }
                if (best < 0) break;
                boxesPerItem[best] *= 2;
                maxBoxes *= 2;
            }
            var tile = new int[Axes];
            for (int a = 0; a < Axes; a++) tile[a] = boxesPerItem[a] * Box[a];
            Samples = new SampleTiling[problem.Batch];
            ItemStart = new int[problem.Batch + 1];
            var shared = new Dictionary<(int, int, int), SampleTiling>();
            for (int b = 0; b < problem.Batch; b++)
            {
                var extent = new int[Axes];
                for (int a = 0; a < Axes; a++) extent[a] = a >= pad ? problem.ValidExtentOf(b, a - pad) : 1;
                if (!shared.TryGetValue((extent[0], extent[1], extent[2]), out var tiling))
                    shared[(extent[0], extent[1], extent[2])] = tiling = new SampleTiling(this, extent, tile);
                Samples[b] = tiling;
                ItemStart[b + 1] = checked(ItemStart[b] + KeyValueHeads * tiling.ItemsPerHead);
            }
            Items = ItemStart[problem.Batch];
            foreach (var tiling in Samples) MaxUnionKeys = Math.Max(MaxUnionKeys, tiling.MaxUnionKeys);
            MaxBoxes = maxBoxes;
            MaxColumns = RoundUp(maxBoxes * BoxColumns, GroupWidth);
            MaxGroups = MaxColumns / GroupWidth;

            ScratchFloats = ScratchLayout.Floats(this);
        }

        /// <summary>The strides of the internal axes of a <c>[B, H, X..(, D)]</c> view whose spatial axes start at <paramref name="firstSpatial"/>.</summary>
        private static long[] Spatial(in TensorView view, int pad, int firstSpatial)
        {
            var strides = new long[Axes];
            for (int a = pad; a < Axes; a++) strides[a] = view.Strides[firstSpatial + a - pad];
            return strides;
        }

        /// <summary>The sample that item <paramref name="item"/> belongs to.</summary>
        public int SampleOf(int item)
        {
            int at = Array.BinarySearch(ItemStart, item);
            // An exact hit is a sample's first item, unless empty samples share the start (none are: every sample has items).
            return at >= 0 ? at : ~at - 1;
        }

        // Reuse across calls: the plan depends only on the problem's sizes and options, the vector width, the tensors'
        // pointers, offsets and strides, and the bias values. A thread keeps its last plan; a call whose plan would be
        // equal (a steady stream of calls with the same shapes and buffers) refills the bias and the item counter and
        // runs on it, so it allocates nothing. Any difference builds a new plan.

        /// <summary>This thread's idle plan: the last one it ran, taken while a call runs on it.</summary>
        [ThreadStatic] private static Plan? t_idle;

        /// <summary>
        /// The thread's idle plan when it fits this call (its bias read again, its item counter reset), else a new plan;
        /// give it back with <see cref="Release"/>.
        /// </summary>
        public static Plan Rent(NeighborhoodProblem problem, int vectorWidth, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp,
            byte* q, byte* k, byte* v, byte* o, float* lse, byte* extraK, byte* extraV)
        {
            var idle = t_idle;
            t_idle = null;
            if (idle is null || !idle.Fits(problem, vectorWidth, query, key, value, output, logSumExp, q, k, v, o, lse, extraK, extraV))
                return new Plan(problem, vectorWidth, query, key, value, output, logSumExp, q, k, v, o, lse, extraK, extraV);
            if (problem.Options.RelativePositionBias is { } rpb) ReadBias(rpb, idle._bias!);
            idle.NextItem = 0;
            return idle;
        }

        /// <summary>Keeps the finished call's plan for this thread's next call.</summary>
        public void Release() => t_idle = this;

        /// <summary>True when a plan built for these arguments would equal this one (the bias values aside).</summary>
        private bool Fits(NeighborhoodProblem problem, int vectorWidth, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp,
            byte* q, byte* k, byte* v, byte* o, float* lse, byte* extraK, byte* extraV)
        {
            if (q != Q || k != K || v != V || o != O || lse != Lse || extraK != ExtraK || extraV != ExtraV) return false;
            if (GroupWidth != CpuFlashTiles.GroupVectors * vectorWidth || problem.Batch != Samples.Length || problem.ElementType != ElementType
                || problem.KeyValueHeads != KeyValueHeads || problem.GroupSize != GroupSize || problem.HeadDim != HeadDim || problem.ValueDim != ValueDim
                || problem.AdditionalKeyCount != AdditionalKeyCount || (float)(problem.Scale * MathConstants.Log2EDouble) != Log2Scale
                || problem.HasRelativePositionBias != (_bias is not null)) return false;
            int pad = Axes - problem.SpatialRank;
            for (int a = 0; a < Axes; a++)
            {
                bool real = a >= pad;
                if (Length[a] != (real ? problem.SpatialShape[a - pad] : 1) || Kernel[a] != (real ? problem.KernelSize[a - pad] : 1)
                    || Dilation[a] != (real ? problem.Dilation[a - pad] : 1) || Stride[a] != (real ? problem.Stride[a - pad] : 1)
                    || Causal[a] != (real && problem.Causal[a - pad])) return false;
                for (int b = 0; b < Samples.Length; b++)
                    if (Samples[b].Extent[a] != (real ? problem.ValidExtentOf(b, a - pad) : 1)) return false;
            }
            if (query.Offset != QueryOffset || !query.Strides.SequenceEqual(QueryStrides) || key.Offset != KeyOffset || !key.Strides.SequenceEqual(KeyStrides)
                || value.Offset != ValueOffset || !value.Strides.SequenceEqual(ValueStrides) || output.Offset != OutputOffset || !output.Strides.SequenceEqual(OutputStrides))
                return false;
            if (logSumExp is { } l && (l.Offset != LseOffset || !l.Strides.SequenceEqual(LseStrides))) return false;
            if (problem.Options.AdditionalKeys is { } ek && problem.Options.AdditionalValues is { } ev
                && (ek.Offset != ExtraKeyOffset || !ek.Strides.SequenceEqual(ExtraKeyStrides) || ev.Offset != ExtraValueOffset || !ev.Strides.SequenceEqual(ExtraValueStrides)))
                return false;
            return true;
        }

        /// <summary>The float32 bias (any strides) into <paramref name="bias"/>, row-major, times log2(e).</summary>
        private static void ReadBias(in TensorView rpb, float[] bias)
        {
            using var pin = rpb.Storage!.Pin();
            Span<int> index = stackalloc int[rpb.Rank];
            var shape = rpb.Shape;
            var strides = rpb.Strides;
            for (int n = 0; n < bias.Length; n++)
            {
                long offset = rpb.Offset;
                for (int i = 0; i < index.Length; i++) offset += index[i] * strides[i];
                bias[n] = (float)(TensorView.ReadElement(pin.Pointer, rpb.ElementType, offset) * MathConstants.Log2EDouble);
                for (int i = index.Length - 1; i >= 0; i--)
                {
                    if (++index[i] < shape[i]) break;
                    index[i] = 0;
                }
            }
        }

        /// <summary>The number of positions in dilation group <paramref name="group"/> of an axis of <paramref name="length"/> positions.</summary>
        public int GroupLength(int axis, int group, int length) => (length - group + Dilation[axis] - 1) / Dilation[axis];

        private int GroupLength(int axis, int group) => GroupLength(axis, group, Length[axis]);

        /// <summary>
        /// The query box extents per axis: among boxes whose columns fill at most one vector (or one query when its
        /// heads fill a vector), the one that computes the fewest keys per column, counting its key box (the union of
        /// its windows, estimated) and its padding columns; ties go to the larger box.
        /// </summary>
        private int[] ChooseBox()
        {
            int vectorWidth = GroupWidth / GroupVectors;
            int maxQueries = Math.Max(1, vectorWidth / GroupSize);
            var limit = new int[Axes];
            for (int a = 0; a < Axes; a++) limit[a] = Math.Min(GroupLength(a, 0), maxQueries);
            int[] best = [1, 1, 1];
            double bestCost = double.MaxValue;
            int bestQueries = 0;
            for (int t0 = 1; t0 <= limit[0]; t0++)
                for (int t1 = 1; t1 <= limit[1] && t0 * t1 <= maxQueries; t1++)
                    for (int t2 = 1; t2 <= limit[2] && t0 * t1 * t2 <= maxQueries; t2++)
                    {
                        int[] t = [t0, t1, t2];
                        double union = 1;
                        for (int a = 0; a < Axes; a++) union *= Math.Min(GroupLength(a, 0), t[a] + Kernel[a] + Stride[a] - 2);
                        int queries = t0 * t1 * t2;
                        double cost = union * RoundUp(GroupSize * queries, vectorWidth) / queries;
                        if (cost < bestCost * (1 - 1e-9) || (cost <= bestCost * (1 + 1e-9) && queries > bestQueries))
                            (best, bestCost, bestQueries) = (t, cost, queries);
                    }
            return best;
        }
    }

    /// <summary>
    /// The windows and query tiling of one sample: per axis and query position (inside the valid
    /// <see cref="Extent"/>), the window's first key in group coordinates and its key count, and the axis cut into
    /// segments of queries.
    /// </summary>
    private sealed class SampleTiling
    {
        private readonly Plan _plan;
        public readonly int[] Extent;
        public readonly int[][] WindowStart = new int[Axes][], WindowCount = new int[Axes][];
        public readonly Segment[][] Segments = new Segment[Axes][];
        /// <summary>
        /// Per axis and dilation group: the extent of the key box of every query box in the group, the largest union
        /// of the windows of one query box (at most the group's length).
        /// </summary>
        public readonly int[][] BoxExtent = new int[Axes][];
        /// <summary>
        /// Per axis and query position: <see cref="BoxLow"/> of the query box that starts there (only box starts are
        /// filled; a box's query count follows from its start, as segments do not overlap), looked up per item instead
        /// of recomputed.
        /// </summary>
        public readonly int[][] BoxLowAt = new int[Axes][];
        /// <summary>At least the keys of any item's union of key boxes.</summary>
        public readonly int MaxUnionKeys = 1;
        /// <summary>Items per key/value head: the product of the segment counts.</summary>
        public readonly int ItemsPerHead = 1;

        public SampleTiling(Plan plan, int[] extent, int[] tile)
        {
            _plan = plan;
            Extent = extent;
            for (int a = 0; a < Axes; a++)
            {
                (WindowStart[a], WindowCount[a]) = (new int[extent[a]], new int[extent[a]]);
                for (int x = 0; x < extent[a]; x++)
                {
                    var window = NeighborhoodProblem.WindowOnAxis(x, extent[a], plan.Kernel[a], plan.Dilation[a], plan.Stride[a], plan.Causal[a]);
                    WindowStart[a][x] = window.Start / plan.Dilation[a];
                    WindowCount[a][x] = window.Count;
                }
                Segments[a] = Segmentation(a, tile[a]);
                BoxExtent[a] = new int[plan.Dilation[a]];
                foreach (var segment in Segments[a])
                    for (int b0 = 0; b0 < segment.Count; b0 += plan.Box[a])
                    {
                        int low = int.MaxValue, high = int.MinValue;
                        for (int i = b0; i < Math.Min(segment.Count, b0 + plan.Box[a]); i++)
                        {
                            int x = (segment.First + i) * plan.Dilation[a] + segment.Group;
                            low = Math.Min(low, WindowStart[a][x]);
                            high = Math.Max(high, WindowStart[a][x] + WindowCount[a][x]);
                        }
                        BoxExtent[a][segment.Group] = Math.Max(BoxExtent[a][segment.Group], high - low);
                    }
                // The largest union of one segment's key boxes (an item's union is a product of these).
                int maxUnion = 0;
                BoxLowAt[a] = new int[extent[a]];
                foreach (var segment in Segments[a])
                {
                    int low = int.MaxValue, high = int.MinValue;
                    for (int b0 = 0; b0 < segment.Count; b0 += plan.Box[a])
                    {
                        int boxLow = BoxLow(a, segment.Group, segment.First + b0, Math.Min(plan.Box[a], segment.Count - b0));
                        BoxLowAt[a][(segment.First + b0) * plan.Dilation[a] + segment.Group] = boxLow;
                        low = Math.Min(low, boxLow);
                        high = Math.Max(high, boxLow + BoxExtent[a][segment.Group]);
                    }
                    maxUnion = Math.Max(maxUnion, high - low);
                }
                MaxUnionKeys = checked(MaxUnionKeys * maxUnion);
                ItemsPerHead = checked(ItemsPerHead * Segments[a].Length);
            }
        }

        /// <summary>
        /// The low corner, on axis <paramref name="axis"/> in group coordinates, of the key box of the
        /// <paramref name="count"/> queries from <paramref name="first"/> of dilation group <paramref name="group"/>: the
        /// lowest window start, moved down where needed so the box's <see cref="BoxExtent"/> keys fit in the group.
        /// </summary>
        public int BoxLow(int axis, int group, int first, int count)
        {
            int low = int.MaxValue;
            for (int i = 0; i < count; i++) low = Math.Min(low, WindowStart[axis][(first + i) * _plan.Dilation[axis] + group]);
            return Math.Min(low, _plan.GroupLength(axis, group, Extent[axis]) - BoxExtent[axis][group]);
        }

        /// <summary>Valid part of axis <paramref name="axis"/> cut into runs of <paramref name="tile"/> queries per dilation group, with their union windows.</summary>
        private Segment[] Segmentation(int axis, int tile)
        {
            var segments = new List<Segment>();
            int d = _plan.Dilation[axis];
            for (int g = 0; g < Math.Min(d, Extent[axis]); g++)
            {
                int groupLength = _plan.GroupLength(axis, g, Extent[axis]);
                for (int x0 = 0; x0 < groupLength; x0 += tile)
                {
                    int n = Math.Min(tile, groupLength - x0);
                    int low = int.MaxValue, high = int.MinValue;
                    for (int i = 0; i < n; i++)
                    {
                        var window = NeighborhoodProblem.WindowOnAxis((x0 + i) * d + g, Extent[axis], _plan.Kernel[axis], d, _plan.Stride[axis], _plan.Causal[axis]);
                        int start = (window.Start - g) / d;
                        low = Math.Min(low, start);
                        high = Math.Max(high, start + window.Count);
                    }
                    segments.Add(new Segment(g, x0, n, low, high));
                }
            }
            // Runs at the same place of every dilation group next to each other: their rows interleave in memory, so
            // consecutive items read neighbouring rows instead of one row in d.
            return [.. segments.OrderBy(segment => segment.First).ThenBy(segment => segment.Group)];
        }
    }

    /// <summary>Carves one worker's scratch into the item's buffers; every block starts 64-byte aligned.</summary>
    private readonly struct ScratchLayout
    {
        public readonly float* QueryT, Output, Max, Sum, Alpha, Keys, Values, Coordinates, Scores, ColumnStart, ColumnEnd, TileStart, TileEnd, Row, GroupBounds;
        public readonly int* BiasHead, BiasTerm, BoxFirst, BoxQueries, BoxLow, BoxColumnCount;
        /// <summary>Per box: the lane step of its window P V (-1: none), its window's first column in the key box, and its window's columns.</summary>
        public readonly int* BoxWindow;
        /// <summary>Per register block of P V rows: the key-box indices <c>[first, end)</c> its rows see.</summary>
        public readonly int* BlockKeyFirst, BlockKeyEnd;
        /// <summary>Per column: the key-box indices (row-major) of its window's first key and past its last.</summary>
        public readonly int* ColumnFirstKey, ColumnEndKey;
        /// <summary>
        /// What the tile tables hold (see <c>TileTablesMatch</c>): [0] 1 once built, [1] k0, [2] real keys, [3] keys,
        /// [4..6] box extent, [7..9] key strides, [10..12] value strides.
        /// </summary>
        public readonly long* TileTables;
        /// <summary>
        /// The mask tables (<see cref="Plan.MaskTables"/>): [0] how many of the <see cref="MaskTableEntries"/> entries
        /// hold a table for the current tile tables (0 whenever those are rebuilt).
        /// </summary>
        public readonly int* MaskCount;
        /// <summary>Per entry, the window bounds it was built for: start and end of the 16 lanes on each of the three axes (96 floats).</summary>
        public readonly float* MaskBounds;
        /// <summary>Per entry, the keys <c>[low, end)</c> outside which its table is 0 (<see cref="NeighborhoodKernels.MaskTableRows"/>).</summary>
        public readonly int* MaskRows;
        /// <summary>Per entry, <see cref="Plan.TileRows"/> x 16 lane masks (<see cref="NeighborhoodKernels.BuildMaskTable"/>); after the entries, a table of all ones.</summary>
        public readonly uint* MaskTables;
        /// <summary>A score tile's column max (<see cref="NeighborhoodKernels.ScoresSkewedMasked"/>), one group's width.</summary>
        public readonly float* TileMax;
        /// <summary>Floats between the coordinate arrays of the three axes in <see cref="Coordinates"/>.</summary>
        public readonly int CoordinateStride;
        public readonly long* OutputOffset, LseOffset, KeyOffsets, ValueOffsets;
        /// <summary>The next item's query and output rows (element offsets), prefetched during this item.</summary>
        public readonly long* NextQueryRows, NextOutputRows;
        /// <summary>Per vector of columns: the corner of its key box in K (or the packed union) and in V.</summary>
        public readonly float** VectorKeys, VectorValues;
        /// <summary>Per column: its query row in Q (null for padding columns), when Q is read in place.</summary>
        public readonly float** QueryRows;
        private readonly float* _end;

        public ScratchLayout(float* scratch, Plan p)
        {
            float* next = scratch;
            long columns = p.MaxColumns;
            QueryT = CpuScratch.Take(ref next, columns * p.HeadDim);
            Output = CpuScratch.Take(ref next, columns * p.ValueStride);
            Max = CpuScratch.Take(ref next, columns);
            Sum = CpuScratch.Take(ref next, columns);
            Alpha = CpuScratch.Take(ref next, p.GroupWidth);
            Keys = CpuScratch.Take(ref next, (long)Math.Max(p.KeyRunsInPlace ? 0 : p.MaxUnionKeys, p.KeyTile) * p.HeadDim);
            Values = CpuScratch.Take(ref next, (long)Math.Max(p.ValueRunsInPlace ? 0 : p.MaxUnionKeys, p.KeyTile) * p.ValueStride);
            KeyOffsets = (long*)CpuScratch.Take(ref next, 2L * p.TileRows);
            ValueOffsets = (long*)CpuScratch.Take(ref next, 2L * p.TileRows);
            VectorKeys = (float**)CpuScratch.Take(ref next, 2L * columns);
            VectorValues = (float**)CpuScratch.Take(ref next, 2L * columns);
            QueryRows = (float**)CpuScratch.Take(ref next, 2L * columns);
            CoordinateStride = p.TileRows;
            Coordinates = CpuScratch.Take(ref next, (long)Axes * p.TileRows);
            Scores = CpuScratch.Take(ref next, (long)p.TileRows * p.GroupWidth);
            ColumnStart = CpuScratch.Take(ref next, Axes * columns);
            ColumnEnd = CpuScratch.Take(ref next, Axes * columns);
            TileStart = CpuScratch.Take(ref next, p.GroupWidth);
            TileEnd = CpuScratch.Take(ref next, p.GroupWidth);
            Row = CpuScratch.Take(ref next, Math.Max(p.HeadDim, p.ValueDim));
            GroupBounds = CpuScratch.Take(ref next, (long)p.MaxGroups * Axes * 4);
            BiasHead = (int*)CpuScratch.Take(ref next, columns);
            BiasTerm = (int*)CpuScratch.Take(ref next, Axes * columns);
            BoxFirst = (int*)CpuScratch.Take(ref next, Axes * p.MaxBoxes);
            BoxQueries = (int*)CpuScratch.Take(ref next, Axes * p.MaxBoxes);
            BoxLow = (int*)CpuScratch.Take(ref next, Axes * p.MaxBoxes);
            BoxColumnCount = (int*)CpuScratch.Take(ref next, p.MaxBoxes);
            BoxWindow = (int*)CpuScratch.Take(ref next, Axes * p.MaxBoxes);
            BlockKeyFirst = (int*)CpuScratch.Take(ref next, columns);
            BlockKeyEnd = (int*)CpuScratch.Take(ref next, columns);
            ColumnFirstKey = (int*)CpuScratch.Take(ref next, columns);
            ColumnEndKey = (int*)CpuScratch.Take(ref next, columns);
            TileTables = (long*)CpuScratch.Take(ref next, 2 * 16);
            MaskCount = (int*)CpuScratch.Take(ref next, 16);
            MaskBounds = CpuScratch.Take(ref next, p.MaskTables ? MaskTableEntries * 6 * 16 : 0);
            MaskRows = (int*)CpuScratch.Take(ref next, p.MaskTables ? 2 * MaskTableEntries : 0);
            MaskTables = (uint*)CpuScratch.Take(ref next, p.MaskTables ? (MaskTableEntries + 1L) * p.TileRows * 16 : 0);
            TileMax = CpuScratch.Take(ref next, p.GroupWidth);
            OutputOffset = (long*)CpuScratch.Take(ref next, 2 * columns);
            LseOffset = (long*)CpuScratch.Take(ref next, 2 * columns);
            NextQueryRows = (long*)CpuScratch.Take(ref next, 2 * columns);
            NextOutputRows = (long*)CpuScratch.Take(ref next, 2 * columns);
            _end = next;
        }

        /// <summary>The floats the layout needs for <paramref name="p"/>, measured by laying it out from address 0.</summary>
        public static long Floats(Plan p) => (long)new ScratchLayout(null, p)._end / sizeof(float);
    }
}
