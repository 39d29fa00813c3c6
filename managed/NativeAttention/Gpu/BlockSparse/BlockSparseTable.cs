// The block mask of a validated block-sparse call in the one format the kernels read (kernels/blocksparse/
// blocksparse_params.h): a row pointer per (mask batch, mask head, query block) into one list of key-block indices,
// full blocks first, then partial ones, followed by what the predicate reads (document ids, prefix lengths).
namespace NativeAttention.Gpu;

/// <summary>
/// The flattened block table of one call, the first <see cref="Length"/> entries of <see cref="Meta"/> (a per-thread
/// buffer, valid until the thread builds its next table). It is <c>[2 R + 1]</c> absolute offsets (row r's full blocks
/// are <c>Meta[Meta[2r] .. Meta[2r + 1])</c>, its partial blocks <c>Meta[Meta[2r + 1] .. Meta[2r + 2])</c>), then the
/// indices, then, for the document predicate, the query ids <c>[B, Nq]</c> at <see cref="QueryDocuments"/> and the key
/// ids <c>[B, Nk]</c> at <see cref="KeyDocuments"/>, or, for prefix-LM, the prefix lengths (<c>[1]</c> or <c>[B]</c>) at
/// <see cref="Prefixes"/>. Row r = b' <see cref="StrideB"/> + h' <see cref="StrideH"/> + query block, with
/// h' = h / <see cref="HeadDiv"/>; a stride of 0 broadcasts. <see cref="LongestRow"/> is the most blocks one row lists.
/// </summary>
internal readonly record struct BlockSparseTable(int[] Meta, int StrideB, int StrideH, int HeadDiv, int QueryDocuments, int KeyDocuments, int Prefixes,
    int LongestRow, int Length)
{
    /// <summary>This thread's table buffer, grown as needed: a table is valid until the thread builds its next one.</summary>
    [ThreadStatic] private static int[]? t_meta;

    /// <summary>
    /// Flattens the mask of a validated problem (<see cref="BlockSparseProblem.Mask"/>, every input format already in
    /// Flex form). Mask axes of extent 1 stay broadcast (stride 0); a head extent of Hkv maps a GQA group's query heads
    /// to one row set.
    /// </summary>
    /// <exception cref="NotSupportedException">The table would exceed <c>2^31 - 1</c> entries.</exception>
    public static BlockSparseTable Build(BlockSparseProblem problem)
    {
        var mask = problem.Mask;
        int queryBlocks = problem.QueryBlocks, capacity = mask.MaxBlocksPerRow;
        long rows = (long)mask.MaskBatch * mask.MaskHeads * queryBlocks;
        var fullCounts = mask.FullCounts.Span;
        var partialCounts = mask.PartialCounts.Span;
        long entries = 0;
        int longest = 0;
        for (int r = 0; r < rows; r++)
        {
            int count = (fullCounts.IsEmpty ? 0 : fullCounts[r]) + partialCounts[r];
            entries += count;
            longest = Math.Max(longest, count);
        }
        var predicate = problem.Options.Predicate;
        long extra = predicate.Kind switch
        {
            ElementPredicateKind.Document => (long)predicate.QueryDocuments.Length + predicate.KeyDocuments.Length,
            ElementPredicateKind.PrefixLM => predicate.PrefixLengths.Length,
            _ => 0,
        };
        long length = 2 * rows + 1 + entries + extra;
        if (length > int.MaxValue)
            throw new NotSupportedException($"The block table of this call needs {length} entries; a device table holds at most {int.MaxValue}.");

        var meta = t_meta is { } kept && kept.Length >= length ? kept : t_meta = new int[length];
        var fullIndices = mask.FullIndices.Span;
        var partialIndices = mask.PartialIndices.Span;
        int next = (int)(2 * rows + 1);
        for (int r = 0; r < rows; r++)
        {
            meta[2 * r] = next;
            if (!fullCounts.IsEmpty)
            {
                fullIndices.Slice(r * capacity, fullCounts[r]).CopyTo(meta.AsSpan(next));
                next += fullCounts[r];
            }
            meta[2 * r + 1] = next;
            partialIndices.Slice(r * capacity, partialCounts[r]).CopyTo(meta.AsSpan(next));
            next += partialCounts[r];
            meta[2 * r + 2] = next;
        }
        int queryDocuments = 0, keyDocuments = 0, prefixes = 0;
        if (predicate.Kind == ElementPredicateKind.Document)
        {
            queryDocuments = next;
            predicate.QueryDocuments.Span.CopyTo(meta.AsSpan(queryDocuments));
            keyDocuments = queryDocuments + predicate.QueryDocuments.Length;
            predicate.KeyDocuments.Span.CopyTo(meta.AsSpan(keyDocuments));
        }
        else if (predicate.Kind == ElementPredicateKind.PrefixLM)
        {
            prefixes = next;
            predicate.PrefixLengths.Span.CopyTo(meta.AsSpan(prefixes));
        }
        return new BlockSparseTable(meta, mask.MaskBatch == 1 ? 0 : mask.MaskHeads * queryBlocks, mask.MaskHeads == 1 ? 0 : queryBlocks,
            problem.QueryHeads / mask.MaskHeads, queryDocuments, keyDocuments, prefixes, longest, (int)length);
    }
}
