// Pattern builders (causal, local, sinks, power-of-two strides, vertical-slash), their union and intersection, and
// mask updates between steps (append a query block, change one row) without rebuilding the mask.
namespace NativeAttention;

/// <summary>
/// The block grid of a call: query and key lengths and block sizes. Causal patterns align bottom-right as flash does
/// (query i sits at <c>i + Nk - Nq</c>).
/// </summary>
/// <param name="QueryLength">Nq.</param>
/// <param name="KeyLength">Nk.</param>
/// <param name="QueryBlockSize">Bq.</param>
/// <param name="KeyBlockSize">Bk.</param>
public sealed record BlockGrid(int QueryLength, int KeyLength, int QueryBlockSize, int KeyBlockSize)
{
    /// <summary><c>ceil(Nq / Bq)</c>.</summary>
    public int QueryBlocks => (int)(((long)QueryLength + QueryBlockSize - 1) / QueryBlockSize);

    /// <summary><c>ceil(Nk / Bk)</c>.</summary>
    public int KeyBlocks => (int)(((long)KeyLength + KeyBlockSize - 1) / KeyBlockSize);

    /// <summary>Throws naming <paramref name="name"/> unless every size is positive.</summary>
    internal void Check(string name)
    {
        if (QueryLength < 1 || KeyLength < 1 || QueryBlockSize < 1 || KeyBlockSize < 1)
            throw new ArgumentException($"{name} is {this}; expected positive lengths and block sizes.", name);
    }

    /// <summary>
    /// Under bottom-right causal masking: the key blocks query block <paramref name="queryBlock"/> sees at all
    /// (<c>[0, Seen)</c>), and the first of them that only some of its queries see (<c>[Frontier, Seen)</c> cross
    /// the causal diagonal; the blocks before are seen whole).
    /// </summary>
    internal (int Seen, int Frontier) Causal(int queryBlock)
    {
        long shift = (long)KeyLength - QueryLength;
        long first = (long)queryBlock * QueryBlockSize + shift;
        long last = Math.Min((long)(queryBlock + 1) * QueryBlockSize, QueryLength) - 1 + shift;
        if (last < 0) return (0, 0);
        int seen = (int)Math.Min(KeyBlocks, last / KeyBlockSize + 1);
        int whole = first < 0 ? 0 : (int)Math.Min(seen, (first + 1) / KeyBlockSize);
        return (seen, whole);
    }

    /// <summary>The key block holding the aligned position of the query block's last query (clamped to the key blocks).</summary>
    internal int Diagonal(int queryBlock)
    {
        long last = Math.Min((long)(queryBlock + 1) * QueryBlockSize, QueryLength) - 1 + (long)KeyLength - QueryLength;
        return (int)Math.Clamp(last / KeyBlockSize, 0, KeyBlocks - 1);
    }
}

public static partial class BlockMasks
{
    /// <summary>Every block any query of the row sees causally: blocks crossing the diagonal partial (use with <see cref="ElementPredicate.CausalMask"/>), the rest full.</summary>
    public static FlexBlockMask Causal(BlockGrid grid) => Pattern(grid, causal: true, (_, _) => true);

    /// <summary>
    /// Local attention: per query block, the diagonal key block and the <paramref name="blocksBack"/> blocks before it.
    /// With <paramref name="causal"/>, blocks past the causal diagonal are dropped and those crossing it are partial.
    /// </summary>
    public static FlexBlockMask Local(BlockGrid grid, int blocksBack, bool causal = true)
    {
        if (blocksBack < 0) Fail($"{nameof(blocksBack)} is {blocksBack}; expected a non-negative block count.", nameof(blocksBack));
        return Pattern(grid, causal, (qb, c) => c <= grid.Diagonal(qb) && c >= grid.Diagonal(qb) - blocksBack);
    }

    /// <summary>Attention sinks: the first <paramref name="sinkBlocks"/> key blocks for every query block (causal as in <see cref="Local"/>).</summary>
    public static FlexBlockMask Sinks(BlockGrid grid, int sinkBlocks, bool causal = true)
    {
        if (sinkBlocks < 0) Fail($"{nameof(sinkBlocks)} is {sinkBlocks}; expected a non-negative block count.", nameof(sinkBlocks));
        return Pattern(grid, causal, (_, c) => c < sinkBlocks);
    }

    /// <summary>
    /// PowerAttention's dilated pattern: per query block, the key blocks at distances 0, 1, 2, 4, 8, ... (powers of two)
    /// back from the diagonal block, so every earlier block is reached in a logarithmic number of layers.
    /// </summary>
    public static FlexBlockMask PowerStrided(BlockGrid grid, bool causal = true) =>
        Pattern(grid, causal, (qb, c) =>
        {
            int distance = grid.Diagonal(qb) - c;
            return distance == 0 || (distance > 0 && (distance & (distance - 1)) == 0);
        });

    /// <summary>
    /// Vertical-slash (MInference): the listed key blocks (<paramref name="verticalBlocks"/>, "vertical" columns seen by
    /// every query block) plus the blocks at the listed distances back from the diagonal (<paramref name="slashOffsets"/>,
    /// "slash" diagonals; 0 is the diagonal).
    /// </summary>
    public static FlexBlockMask VerticalSlash(BlockGrid grid, IReadOnlyCollection<int> verticalBlocks, IReadOnlyCollection<int> slashOffsets, bool causal = true)
    {
        ArgumentNullException.ThrowIfNull(verticalBlocks);
        ArgumentNullException.ThrowIfNull(slashOffsets);
        if (verticalBlocks.FirstOrDefault(c => c < 0, 0) is int badColumn and < 0)
            Fail($"{nameof(verticalBlocks)} holds {badColumn}; expected key block indices.", nameof(verticalBlocks));
        if (slashOffsets.FirstOrDefault(o => o < 0, 0) is int badOffset and < 0)
            Fail($"{nameof(slashOffsets)} holds {badOffset}; expected non-negative distances back from the diagonal.", nameof(slashOffsets));
        var columns = new HashSet<int>(verticalBlocks);
        var offsets = new HashSet<int>(slashOffsets);
        return Pattern(grid, causal, (qb, c) => columns.Contains(c) || offsets.Contains(grid.Diagonal(qb) - c));
    }

    /// <summary>
    /// Per row, the blocks either mask lists. A block full in either is full (its whole block is visible through that
    /// mask); otherwise partial. The masks must have the same extents and block sizes.
    /// </summary>
    public static FlexBlockMask Union(FlexBlockMask first, FlexBlockMask second) => Combine(first, second, union: true);

    /// <summary>Per row, the blocks both masks list: full when full in both, otherwise partial.</summary>
    public static FlexBlockMask Intersection(FlexBlockMask first, FlexBlockMask second) => Combine(first, second, union: false);

    /// <summary>
    /// The mask with one more query block appended to every (b, h) plane (a decoding or chunked-prefill step), listing
    /// <paramref name="partial"/> and <paramref name="full"/> (ascending) in each plane; the existing rows are copied as is.
    /// </summary>
    public static FlexBlockMask AppendQueryBlock(FlexBlockMask mask, IReadOnlyList<int> partial, IReadOnlyList<int>? full = null)
    {
        ArgumentNullException.ThrowIfNull(partial);
        var (queryBlocks, partialRows) = Rows(mask, false, nameof(mask), partialOnly: true);
        var fullRows = FullRows(mask, queryBlocks);
        CheckAscending(partial.ToArray(), nameof(partial), "");
        CheckAscending((full ?? []).ToArray(), nameof(full), "");
        int planes = mask.MaskBatch * mask.MaskHeads;
        var newPartial = new int[planes * (queryBlocks + 1)][];
        var newFull = new int[planes * (queryBlocks + 1)][];
        for (int plane = 0; plane < planes; plane++)
        {
            for (int r = 0; r < queryBlocks; r++)
            {
                newPartial[plane * (queryBlocks + 1) + r] = partialRows[plane * queryBlocks + r];
                newFull[plane * (queryBlocks + 1) + r] = fullRows[plane * queryBlocks + r];
            }
            newPartial[plane * (queryBlocks + 1) + queryBlocks] = [.. partial];
            newFull[plane * (queryBlocks + 1) + queryBlocks] = [.. (full ?? [])];
        }
        return Build(mask.MaskBatch, mask.MaskHeads, queryBlocks + 1, mask.QueryBlockSize, mask.KeyBlockSize, newPartial, newFull);
    }

    /// <summary>
    /// The mask with row (<paramref name="batch"/>, <paramref name="head"/>, <paramref name="queryBlock"/>) (mask
    /// coordinates) replaced by the given blocks. When the new row fits the capacity, only the arrays change (copied,
    /// so the original mask is untouched); otherwise the capacity grows.
    /// </summary>
    public static FlexBlockMask SetRow(FlexBlockMask mask, int batch, int head, int queryBlock, IReadOnlyList<int> partial, IReadOnlyList<int>? full = null)
    {
        ArgumentNullException.ThrowIfNull(partial);
        var (queryBlocks, _) = Rows(mask, false, nameof(mask), partialOnly: true);
        if ((uint)batch >= (uint)mask.MaskBatch) Fail($"{nameof(batch)} is {batch}; expected a mask batch index below {mask.MaskBatch}.", nameof(batch));
        if ((uint)head >= (uint)mask.MaskHeads) Fail($"{nameof(head)} is {head}; expected a mask head index below {mask.MaskHeads}.", nameof(head));
        if ((uint)queryBlock >= (uint)queryBlocks) Fail($"{nameof(queryBlock)} is {queryBlock}; expected a query block below {queryBlocks}.", nameof(queryBlock));
        full ??= [];
        CheckAscending(partial.ToArray(), nameof(partial), "");
        CheckAscending(full.ToArray(), nameof(full), "");
        if (partial.Intersect(full).Any()) Fail($"{nameof(partial)} and {nameof(full)} share a block; a block appears at most once per row.", nameof(full));
        int row = (batch * mask.MaskHeads + head) * queryBlocks + queryBlock;
        int capacity = mask.MaxBlocksPerRow;
        if (partial.Count > capacity || full.Count > capacity)
        {
            var (_, partialRows) = Rows(mask, false, nameof(mask), partialOnly: true);
            var fullRows = FullRows(mask, queryBlocks);
            partialRows[row] = [.. partial];
            fullRows[row] = [.. full];
            return Build(mask.MaskBatch, mask.MaskHeads, queryBlocks, mask.QueryBlockSize, mask.KeyBlockSize, partialRows, fullRows);
        }
        var partialCounts = mask.PartialCounts.ToArray();
        var partialIndices = mask.PartialIndices.ToArray();
        partialCounts[row] = partial.Count;
        for (int n = 0; n < partial.Count; n++) partialIndices[row * capacity + n] = partial[n];
        var result = mask with { PartialCounts = partialCounts, PartialIndices = partialIndices };
        if (mask.FullCounts.IsEmpty && full.Count == 0) return result;
        var fullCounts = mask.FullCounts.IsEmpty ? new int[partialCounts.Length] : mask.FullCounts.ToArray();
        var fullIndices = mask.FullIndices.IsEmpty ? new int[partialIndices.Length] : mask.FullIndices.ToArray();
        fullCounts[row] = full.Count;
        for (int n = 0; n < full.Count; n++) fullIndices[row * capacity + n] = full[n];
        return result with { FullCounts = fullCounts, FullIndices = fullIndices };
    }

    /// <summary>
    /// A single-plane mask keeping, per query block, the key blocks <paramref name="keep"/> accepts; with
    /// <paramref name="causal"/> only blocks some query sees causally, those crossing the diagonal partial.
    /// </summary>
    private static FlexBlockMask Pattern(BlockGrid grid, bool causal, Func<int, int, bool> keep)
    {
        ArgumentNullException.ThrowIfNull(grid);
        grid.Check(nameof(grid));
        int queryBlocks = grid.QueryBlocks, keyBlocks = grid.KeyBlocks;
        var partial = new int[queryBlocks][];
        var full = new int[queryBlocks][];
        var p = new List<int>();
        var f = new List<int>();
        for (int qb = 0; qb < queryBlocks; qb++)
        {
            p.Clear();
            f.Clear();
            var (seen, frontier) = causal ? grid.Causal(qb) : (keyBlocks, keyBlocks);
            for (int c = 0; c < seen; c++)
            {
                if (!keep(qb, c)) continue;
                (c >= frontier ? p : f).Add(c);
            }
            partial[qb] = [.. p];
            full[qb] = [.. f];
        }
        return Build(1, 1, queryBlocks, grid.QueryBlockSize, grid.KeyBlockSize, partial, full);
    }

    private static FlexBlockMask Combine(FlexBlockMask first, FlexBlockMask second, bool union)
    {
        var (queryBlocks, firstPartial) = Rows(first, false, nameof(first), partialOnly: true);
        var (secondBlocks, secondPartial) = Rows(second, false, nameof(second), partialOnly: true);
        if (first.MaskBatch != second.MaskBatch || first.MaskHeads != second.MaskHeads || queryBlocks != secondBlocks
            || first.QueryBlockSize != second.QueryBlockSize || first.KeyBlockSize != second.KeyBlockSize)
            Fail($"{nameof(second)} has extents [{second.MaskBatch}, {second.MaskHeads}, {secondBlocks}] and blocks {second.QueryBlockSize}x{second.KeyBlockSize}; " +
                 $"expected those of {nameof(first)}, [{first.MaskBatch}, {first.MaskHeads}, {queryBlocks}] and {first.QueryBlockSize}x{first.KeyBlockSize}.", nameof(second));
        var firstFull = FullRows(first, queryBlocks);
        var secondFull = FullRows(second, queryBlocks);
        int rows = firstPartial.Length;
        var partial = new int[rows][];
        var full = new int[rows][];
        for (int r = 0; r < rows; r++)
        {
            var kinds = new SortedDictionary<int, (bool InFirst, bool FirstFull, bool InSecond, bool SecondFull)>();
            foreach (int c in firstPartial[r]) kinds[c] = (true, false, false, false);
            foreach (int c in firstFull[r]) kinds[c] = (true, true, false, false);
            foreach (int c in secondPartial[r]) kinds[c] = kinds.TryGetValue(c, out var k) ? k with { InSecond = true } : (false, false, true, false);
            foreach (int c in secondFull[r]) kinds[c] = kinds.TryGetValue(c, out var k) ? k with { InSecond = true, SecondFull = true } : (false, false, true, true);
            var p = new List<int>();
            var f = new List<int>();
            foreach (var (c, k) in kinds)
            {
                if (union) (k.FirstFull || k.SecondFull ? f : p).Add(c);
                else if (k.InFirst && k.InSecond) (k.FirstFull && k.SecondFull ? f : p).Add(c);
            }
            partial[r] = [.. p];
            full[r] = [.. f];
        }
        return Build(first.MaskBatch, first.MaskHeads, queryBlocks, first.QueryBlockSize, first.KeyBlockSize, partial, full);
    }
}
