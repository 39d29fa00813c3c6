// Lossless conversions between the one mask type the kernels read (FlexBlockMask) and the other block-mask layouts:
// ONNX Runtime's block CSR, FlashInfer's BSR (indptr/indices) and a dense block matrix.
namespace NativeAttention;

/// <summary>
/// FlashInfer's block-sparse row layout: the mask rows <c>(b, h, query block)</c> of a <c>[MaskBatch, MaskHeads,
/// QueryBlocks]</c> mask stacked as one BSR matrix. Row r lists key blocks <c>Indices[Indptr[r] .. Indptr[r + 1])</c>;
/// <see cref="Indptr"/> has <c>MaskBatch x MaskHeads x QueryBlocks + 1</c> entries. With MaskBatch = MaskHeads = 1
/// this is exactly FlashInfer's <c>indptr</c>/<c>indices</c> of block size <c>(R, C)</c> = (QueryBlockSize, KeyBlockSize).
/// </summary>
/// <param name="Indptr">Row pointers, starting at 0, non-decreasing.</param>
/// <param name="Indices">Key block indices, ascending within each row.</param>
/// <param name="QueryBlockSize">Tokens per query block (FlashInfer's R).</param>
/// <param name="KeyBlockSize">Tokens per key block (FlashInfer's C).</param>
/// <param name="MaskBatch">Batch extent of the rows (1 broadcasts).</param>
/// <param name="MaskHeads">Head extent of the rows: 1, Hkv or Hq.</param>
public sealed record BsrBlocks(int[] Indptr, int[] Indices, int QueryBlockSize, int KeyBlockSize, int MaskBatch = 1, int MaskHeads = 1);

/// <summary>
/// A dense block matrix <c>[MaskBatch, MaskHeads, QueryBlocks, KeyBlocks]</c>, row-major, one byte per block:
/// <see cref="BlockMasks.Skip"/> (0), <see cref="BlockMasks.Partial"/> (1: computed, the predicate applies) or
/// <see cref="BlockMasks.Full"/> (2: computed without the predicate). A 0/1 matrix is a mask of partial blocks.
/// </summary>
/// <param name="Blocks">The block kinds.</param>
/// <param name="MaskBatch">Batch extent (1 broadcasts).</param>
/// <param name="MaskHeads">Head extent: 1, Hkv or Hq.</param>
/// <param name="QueryBlocks">Query blocks per (batch, head).</param>
/// <param name="KeyBlocks">Key blocks per row.</param>
/// <param name="QueryBlockSize">Tokens per query block.</param>
/// <param name="KeyBlockSize">Tokens per key block.</param>
public sealed record DenseBlocks(byte[] Blocks, int MaskBatch, int MaskHeads, int QueryBlocks, int KeyBlocks, int QueryBlockSize, int KeyBlockSize);

/// <summary>
/// Conversions to and from <see cref="FlexBlockMask"/> (the layout the kernels read), pattern builders and content
/// builders. Conversions are lossless: converting there and back gives the same blocks in every row, in the same
/// (ascending) order, with the same full/partial split; a Flex mask with full blocks converts to CSR or BSR, which have
/// none, only when asked to merge them into the partial lists (<c>mergeFull</c>). Bad input throws
/// <see cref="ArgumentException"/> naming the argument and, for arrays, the row and value at fault.
/// </summary>
public static partial class BlockMasks
{
    /// <summary>Dense block value: the block is not computed.</summary>
    public const byte Skip = 0;
    /// <summary>Dense block value: the block is computed and the element predicate applies.</summary>
    public const byte Partial = 1;
    /// <summary>Dense block value: the block is computed without the predicate.</summary>
    public const byte Full = 2;

    /// <summary>The block CSR mask as Flex: the same rows, every block partial, MaskBatch 1.</summary>
    public static FlexBlockMask FromCsr(BlockCsrMask mask)
    {
        ArgumentNullException.ThrowIfNull(mask);
        const string name = nameof(mask);
        if (mask.MaskHeads < 1) Fail($"{name}.MaskHeads is {mask.MaskHeads}; expected at least 1.", $"{name}.MaskHeads");
        if (mask.ColumnCapacity < 0) Fail($"{name}.ColumnCapacity is {mask.ColumnCapacity}; expected a non-negative capacity.", $"{name}.ColumnCapacity");
        if (mask.RowOffsets.Length % mask.MaskHeads != 0 || mask.RowOffsets.Length / mask.MaskHeads < 1)
            Fail($"{name}.RowOffsets has {mask.RowOffsets.Length} elements; expected MaskHeads ({mask.MaskHeads}) x (QueryBlocks + 1).", $"{name}.RowOffsets");
        if (mask.ColumnIndices.Length != (long)mask.MaskHeads * mask.ColumnCapacity)
            Fail($"{name}.ColumnIndices has {mask.ColumnIndices.Length} elements; expected MaskHeads x ColumnCapacity = {(long)mask.MaskHeads * mask.ColumnCapacity}.", $"{name}.ColumnIndices");
        int queryBlocks = mask.RowOffsets.Length / mask.MaskHeads - 1;
        var offsets = mask.RowOffsets.Span;
        var columns = mask.ColumnIndices.Span;
        var rows = new int[mask.MaskHeads * queryBlocks][];
        for (int h = 0; h < mask.MaskHeads; h++)
        {
            var headOffsets = offsets.Slice(h * (queryBlocks + 1), queryBlocks + 1);
            if (headOffsets[0] != 0) Fail($"{name}.RowOffsets[h={h}, 0] is {headOffsets[0]}; expected 0.", $"{name}.RowOffsets");
            for (int r = 0; r < queryBlocks; r++)
            {
                int begin = headOffsets[r], end = headOffsets[r + 1];
                if (end < begin || end > mask.ColumnCapacity)
                    Fail($"{name}.RowOffsets[h={h}, {r + 1}] is {end}; expected from RowOffsets[h={h}, {r}] = {begin} to ColumnCapacity = {mask.ColumnCapacity}.", $"{name}.RowOffsets");
                var row = columns.Slice(h * mask.ColumnCapacity + begin, end - begin);
                CheckAscending(row, $"{name}.ColumnIndices", $"[h={h}, query block {r}]");
                rows[h * queryBlocks + r] = row.ToArray();
            }
        }
        return Build(1, mask.MaskHeads, queryBlocks, mask.QueryBlockSize, mask.KeyBlockSize, rows, null);
    }

    /// <summary>
    /// The Flex mask as block CSR (MaskBatch must be 1: CSR has no batch axis). CSR blocks are all partial: a mask with
    /// full blocks throws unless <paramref name="mergeFull"/>, which lists them with the partial ones (exact when the
    /// predicate is <see cref="ElementPredicate.All"/>, or when it keeps every element of those blocks anyway).
    /// </summary>
    public static BlockCsrMask ToCsr(FlexBlockMask mask, bool mergeFull = false)
    {
        var (queryBlocks, rows) = Rows(mask, mergeFull, nameof(mask));
        if (mask.MaskBatch != 1) Fail($"{nameof(mask)}.MaskBatch is {mask.MaskBatch}; block CSR has no batch axis, expected 1.", $"{nameof(mask)}.MaskBatch");
        int heads = mask.MaskHeads;
        int capacity = 0;
        for (int h = 0; h < heads; h++)
        {
            int total = 0;
            for (int r = 0; r < queryBlocks; r++) total += rows[h * queryBlocks + r].Length;
            capacity = Math.Max(capacity, total);
        }
        var offsets = new int[heads * (queryBlocks + 1)];
        var columns = new int[heads * capacity];
        for (int h = 0; h < heads; h++)
        {
            int n = 0;
            for (int r = 0; r < queryBlocks; r++)
            {
                offsets[h * (queryBlocks + 1) + r] = n;
                foreach (int c in rows[h * queryBlocks + r]) columns[h * capacity + n++] = c;
            }
            offsets[h * (queryBlocks + 1) + queryBlocks] = n;
        }
        return new BlockCsrMask
        {
            QueryBlockSize = mask.QueryBlockSize, KeyBlockSize = mask.KeyBlockSize, MaskHeads = heads,
            RowOffsets = offsets, ColumnIndices = columns, ColumnCapacity = capacity,
        };
    }

    /// <summary>
    /// FlashInfer's BSR as Flex: every listed block partial, or full with <paramref name="full"/> (FlashInfer computes
    /// listed blocks whole; with <see cref="ElementPredicate.All"/> both are the same).
    /// </summary>
    public static FlexBlockMask FromBsr(BsrBlocks bsr, bool full = false)
    {
        ArgumentNullException.ThrowIfNull(bsr);
        const string name = nameof(bsr);
        ArgumentNullException.ThrowIfNull(bsr.Indptr, $"{name}.Indptr");
        ArgumentNullException.ThrowIfNull(bsr.Indices, $"{name}.Indices");
        if (bsr.MaskBatch < 1) Fail($"{name}.MaskBatch is {bsr.MaskBatch}; expected at least 1.", $"{name}.MaskBatch");
        if (bsr.MaskHeads < 1) Fail($"{name}.MaskHeads is {bsr.MaskHeads}; expected at least 1.", $"{name}.MaskHeads");
        int stacked = bsr.Indptr.Length - 1;
        long planes = (long)bsr.MaskBatch * bsr.MaskHeads;
        if (stacked < 0 || stacked % planes != 0)
            Fail($"{name}.Indptr has {bsr.Indptr.Length} elements; expected MaskBatch x MaskHeads x QueryBlocks + 1 with MaskBatch x MaskHeads = {planes}.", $"{name}.Indptr");
        if (bsr.Indptr[0] != 0) Fail($"{name}.Indptr[0] is {bsr.Indptr[0]}; expected 0.", $"{name}.Indptr");
        var rows = new int[stacked][];
        for (int r = 0; r < stacked; r++)
        {
            int begin = bsr.Indptr[r], end = bsr.Indptr[r + 1];
            if (end < begin || end > bsr.Indices.Length)
                Fail($"{name}.Indptr[{r + 1}] is {end}; expected from Indptr[{r}] = {begin} to Indices.Length = {bsr.Indices.Length}.", $"{name}.Indptr");
            var row = bsr.Indices.AsSpan(begin, end - begin);
            CheckAscending(row, $"{name}.Indices", $"[row {r}]");
            rows[r] = row.ToArray();
        }
        int queryBlocks = (int)(stacked / planes);
        return full
            ? Build(bsr.MaskBatch, bsr.MaskHeads, queryBlocks, bsr.QueryBlockSize, bsr.KeyBlockSize, Empty(stacked), rows)
            : Build(bsr.MaskBatch, bsr.MaskHeads, queryBlocks, bsr.QueryBlockSize, bsr.KeyBlockSize, rows, null);
    }

    /// <summary>
    /// The Flex mask as FlashInfer's BSR, rows stacked <c>(b, h, query block)</c>. BSR blocks have no kind: a mask with
    /// both full and partial blocks throws unless <paramref name="mergeFull"/>; a mask of full blocks only converts
    /// as is (read it back with <c>FromBsr(bsr, full: true)</c>).
    /// </summary>
    public static BsrBlocks ToBsr(FlexBlockMask mask, bool mergeFull = false)
    {
        bool onlyFull = HasFull(mask) && !HasPartial(mask);
        var (_, rows) = Rows(mask, mergeFull || onlyFull, nameof(mask));
        var indptr = new int[rows.Length + 1];
        for (int r = 0; r < rows.Length; r++) indptr[r + 1] = indptr[r] + rows[r].Length;
        var indices = new int[indptr[rows.Length]];
        for (int r = 0; r < rows.Length; r++) rows[r].CopyTo(indices, indptr[r]);
        return new BsrBlocks(indptr, indices, mask.QueryBlockSize, mask.KeyBlockSize, mask.MaskBatch, mask.MaskHeads);
    }

    /// <summary>A dense block matrix as Flex: 1 gives partial blocks, 2 full ones, 0 nothing.</summary>
    public static FlexBlockMask FromDense(DenseBlocks dense)
    {
        ArgumentNullException.ThrowIfNull(dense);
        const string name = nameof(dense);
        ArgumentNullException.ThrowIfNull(dense.Blocks, $"{name}.Blocks");
        if (dense.MaskBatch < 1 || dense.MaskHeads < 1 || dense.QueryBlocks < 0 || dense.KeyBlocks < 0)
            Fail($"{name} has extents [{dense.MaskBatch}, {dense.MaskHeads}, {dense.QueryBlocks}, {dense.KeyBlocks}]; expected MaskBatch and MaskHeads at least 1, block counts non-negative.", name);
        long rowCount = (long)dense.MaskBatch * dense.MaskHeads * dense.QueryBlocks;
        if (dense.Blocks.Length != rowCount * dense.KeyBlocks)
            Fail($"{name}.Blocks has {dense.Blocks.Length} elements; expected {rowCount * dense.KeyBlocks} for shape [{dense.MaskBatch}, {dense.MaskHeads}, {dense.QueryBlocks}, {dense.KeyBlocks}].", $"{name}.Blocks");
        var partial = new int[rowCount][];
        var full = new int[rowCount][];
        var p = new List<int>();
        var f = new List<int>();
        for (long r = 0; r < rowCount; r++)
        {
            p.Clear();
            f.Clear();
            for (int c = 0; c < dense.KeyBlocks; c++)
            {
                byte kind = dense.Blocks[r * dense.KeyBlocks + c];
                if (kind == Partial) p.Add(c);
                else if (kind == Full) f.Add(c);
                else if (kind != Skip)
                    Fail($"{name}.Blocks[row {r}, key block {c}] is {kind}; expected 0 (skip), 1 (partial) or 2 (full).", $"{name}.Blocks");
            }
            partial[r] = p.ToArray();
            full[r] = f.ToArray();
        }
        return Build(dense.MaskBatch, dense.MaskHeads, dense.QueryBlocks, dense.QueryBlockSize, dense.KeyBlockSize, partial, full);
    }

    /// <summary>The Flex mask as a dense block matrix over <paramref name="keyBlocks"/> key blocks (0 skip, 1 partial, 2 full).</summary>
    public static DenseBlocks ToDense(FlexBlockMask mask, int keyBlocks)
    {
        if (keyBlocks < 0) Fail($"{nameof(keyBlocks)} is {keyBlocks}; expected a non-negative block count.", nameof(keyBlocks));
        var (queryBlocks, partial) = Rows(mask, false, nameof(mask), partialOnly: true);
        var full = FullRows(mask, queryBlocks);
        var blocks = new byte[(long)partial.Length * keyBlocks];
        for (int r = 0; r < partial.Length; r++)
        {
            foreach (var (list, kind, field) in new[] { (partial[r], Partial, "PartialIndices"), (full[r], Full, "FullIndices") })
                foreach (int c in list)
                {
                    if (c >= keyBlocks)
                        Fail($"{nameof(mask)}.{field}[row {r}] lists key block {c}; expected an index below keyBlocks = {keyBlocks}.", $"{nameof(mask)}.{field}");
                    blocks[(long)r * keyBlocks + c] = kind;
                }
        }
        return new DenseBlocks(blocks, mask.MaskBatch, mask.MaskHeads, queryBlocks, keyBlocks, mask.QueryBlockSize, mask.KeyBlockSize);
    }

    // ---- helpers shared by the conversions and the builders ----

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void Fail(string message, string name) => throw new ArgumentException(message, name);

    private static int[][] Empty(long rows)
    {
        var empty = new int[rows][];
        Array.Fill(empty, []);
        return empty;
    }

    /// <summary>A row's indices are non-negative and strictly increasing.</summary>
    private static void CheckAscending(ReadOnlySpan<int> row, string name, string where)
    {
        for (int n = 0; n < row.Length; n++)
        {
            if (row[n] < 0) Fail($"{name}{where} entry {n} is {row[n]}; expected a non-negative key block index.", name);
            if (n > 0 && row[n] <= row[n - 1])
                Fail($"{name}{where} entry {n} is {row[n]} after {row[n - 1]}; a row lists its blocks in ascending order, each once.", name);
        }
    }

    private static bool HasFull(FlexBlockMask mask)
    {
        foreach (int count in mask.FullCounts.Span) if (count != 0) return true;
        return false;
    }

    private static bool HasPartial(FlexBlockMask mask)
    {
        foreach (int count in mask.PartialCounts.Span) if (count != 0) return true;
        return false;
    }

    /// <summary>
    /// Checks a Flex mask's structure and returns its query block count and its rows: the partial lists, with the full
    /// blocks merged in (ascending) when <paramref name="mergeFull"/>; a mask with full blocks throws otherwise, unless
    /// <paramref name="partialOnly"/> asks for the partial lists alone.
    /// </summary>
    private static (int QueryBlocks, int[][] Rows) Rows(FlexBlockMask mask, bool mergeFull, string name, bool partialOnly = false)
    {
        ArgumentNullException.ThrowIfNull(mask, name);
        if (mask.MaskBatch < 1) Fail($"{name}.MaskBatch is {mask.MaskBatch}; expected at least 1.", $"{name}.MaskBatch");
        if (mask.MaskHeads < 1) Fail($"{name}.MaskHeads is {mask.MaskHeads}; expected at least 1.", $"{name}.MaskHeads");
        if (mask.MaxBlocksPerRow < 0) Fail($"{name}.MaxBlocksPerRow is {mask.MaxBlocksPerRow}; expected a non-negative capacity.", $"{name}.MaxBlocksPerRow");
        long planes = (long)mask.MaskBatch * mask.MaskHeads;
        if (mask.PartialCounts.Length % planes != 0)
            Fail($"{name}.PartialCounts has {mask.PartialCounts.Length} elements; expected MaskBatch x MaskHeads x QueryBlocks with MaskBatch x MaskHeads = {planes}.", $"{name}.PartialCounts");
        int queryBlocks = (int)(mask.PartialCounts.Length / planes);
        int rowCount = mask.PartialCounts.Length;
        if (mask.PartialIndices.Length != (long)rowCount * mask.MaxBlocksPerRow)
            Fail($"{name}.PartialIndices has {mask.PartialIndices.Length} elements; expected {(long)rowCount * mask.MaxBlocksPerRow} (rows x MaxBlocksPerRow).", $"{name}.PartialIndices");
        bool hasFullArrays = !mask.FullCounts.IsEmpty || !mask.FullIndices.IsEmpty;
        if (hasFullArrays && (mask.FullCounts.Length != rowCount || mask.FullIndices.Length != (long)rowCount * mask.MaxBlocksPerRow))
            Fail($"{name}.FullCounts and FullIndices have {mask.FullCounts.Length} and {mask.FullIndices.Length} elements; expected {rowCount} and {(long)rowCount * mask.MaxBlocksPerRow}, or both empty.", $"{name}.FullCounts");
        if (!partialOnly && !mergeFull && HasFull(mask))
            Fail($"{name} has full blocks, which this layout cannot mark; pass mergeFull: true to list them as partial blocks.", $"{name}.FullCounts");
        var partial = RowLists(mask.PartialCounts.Span, mask.PartialIndices.Span, mask.MaxBlocksPerRow, $"{name}.PartialCounts", $"{name}.PartialIndices");
        var full = hasFullArrays ? RowLists(mask.FullCounts.Span, mask.FullIndices.Span, mask.MaxBlocksPerRow, $"{name}.FullCounts", $"{name}.FullIndices") : Empty(rowCount);
        var rows = new int[rowCount][];
        for (int r = 0; r < rowCount; r++)
        {
            if (full[r].Intersect(partial[r]).FirstOrDefault(-1) is int both and >= 0)
                Fail($"{name} row {r} lists key block {both} as full and as partial; a block appears at most once per row.", $"{name}.PartialIndices");
            rows[r] = partialOnly || full[r].Length == 0 ? partial[r] : [.. partial[r].Concat(full[r]).Order()];
        }
        return (queryBlocks, rows);
    }

    /// <summary>The full-block lists of a mask already checked by <see cref="Rows"/>.</summary>
    private static int[][] FullRows(FlexBlockMask mask, int queryBlocks)
    {
        long rowCount = (long)mask.MaskBatch * mask.MaskHeads * queryBlocks;
        if (mask.FullCounts.IsEmpty) return Empty(rowCount);
        return RowLists(mask.FullCounts.Span, mask.FullIndices.Span, mask.MaxBlocksPerRow, "mask.FullCounts", "mask.FullIndices");
    }

    private static int[][] RowLists(ReadOnlySpan<int> counts, ReadOnlySpan<int> indices, int capacity, string countsName, string indicesName)
    {
        var rows = new int[counts.Length][];
        for (int r = 0; r < counts.Length; r++)
        {
            if (counts[r] < 0 || counts[r] > capacity)
                Fail($"{countsName}[row {r}] is {counts[r]}; expected a count in [0, MaxBlocksPerRow = {capacity}].", countsName);
            var row = indices.Slice(r * capacity, counts[r]);
            CheckAscending(row, indicesName, $"[row {r}]");
            rows[r] = row.ToArray();
        }
        return rows;
    }

    /// <summary>
    /// A Flex mask from per-row lists (rows ordered <c>(b, h, query block)</c>, each ascending), with the smallest
    /// capacity that holds every list; <paramref name="full"/> null means no full blocks.
    /// </summary>
    internal static FlexBlockMask Build(int maskBatch, int maskHeads, int queryBlocks, int queryBlockSize, int keyBlockSize, int[][] partial, int[][]? full)
    {
        int capacity = 0;
        foreach (var row in partial) capacity = Math.Max(capacity, row.Length);
        if (full is not null) foreach (var row in full) capacity = Math.Max(capacity, row.Length);
        var (partialCounts, partialIndices) = Pack(partial, capacity);
        var mask = new FlexBlockMask
        {
            QueryBlockSize = queryBlockSize, KeyBlockSize = keyBlockSize, MaskBatch = maskBatch, MaskHeads = maskHeads,
            MaxBlocksPerRow = capacity, PartialCounts = partialCounts, PartialIndices = partialIndices,
        };
        if (full is null || Array.TrueForAll(full, r => r.Length == 0)) return mask;
        var (fullCounts, fullIndices) = Pack(full, capacity);
        return mask with { FullCounts = fullCounts, FullIndices = fullIndices };
    }

    private static (int[] Counts, int[] Indices) Pack(int[][] rows, int capacity)
    {
        var counts = new int[rows.Length];
        var indices = new int[(long)rows.Length * capacity];
        for (int r = 0; r < rows.Length; r++)
        {
            counts[r] = rows[r].Length;
            rows[r].CopyTo(indices, (long)r * capacity);
        }
        return (counts, indices);
    }
}
