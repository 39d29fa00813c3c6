// The block mask of a validated block-sparse call in the one format the kernels read (kernels/blocksparse/
// blocksparse_params.h): whatever the mask type, a row pointer per (mask batch, mask head, query block) into one list
// of key-block indices, full blocks first, then partial ones, followed by the document ids of the predicate.
namespace NativeAttention.Gpu;

/// <summary>
/// The flattened block table of one call. <see cref="Meta"/> is <c>[2 R + 1]</c> absolute offsets (row r's full blocks
/// are <c>Meta[Meta[2r] .. Meta[2r + 1])</c>, its partial blocks <c>Meta[Meta[2r + 1] .. Meta[2r + 2])</c>), then the
/// indices, then, for the document predicate, the query ids <c>[B, Nq]</c> at <see cref="QueryDocuments"/> and the key
/// ids <c>[B, Nk]</c> at <see cref="KeyDocuments"/>. Row r = b' <see cref="StrideB"/> + h' <see cref="StrideH"/> +
/// query block, with h' = h / <see cref="HeadDiv"/>; a stride of 0 broadcasts.
/// </summary>
internal readonly record struct BlockSparseTable(int[] Meta, int StrideB, int StrideH, int HeadDiv, int QueryDocuments, int KeyDocuments)
{
    /// <summary>
    /// Flattens the mask of a validated problem. Mask arrays of extent 1 stay broadcast (one row set, stride 0); a mask
    /// type this method does not know gets one row set per (batch, query head), read through
    /// <see cref="BlockSparseProblem.GetRow"/> like every other.
    /// </summary>
    /// <exception cref="NotSupportedException">The table would exceed <c>2^31 - 1</c> entries.</exception>
    public static BlockSparseTable Build(BlockSparseProblem problem)
    {
        var (maskBatch, maskHeads) = problem.Options.Mask switch
        {
            FlexBlockMask flex => (flex.MaskBatch, flex.MaskHeads),
            BlockCsrMask csr => (1, csr.MaskHeads),
            _ => (problem.Batch, problem.QueryHeads),
        };
        if (problem.QueryHeads % maskHeads != 0) (maskBatch, maskHeads) = (problem.Batch, problem.QueryHeads);
        int headDiv = problem.QueryHeads / maskHeads;
        int queryBlocks = problem.QueryBlocks;
        long rows = (long)maskBatch * maskHeads * queryBlocks;

        long entries = 0;
        for (int mb = 0; mb < maskBatch; mb++)
            for (int mh = 0; mh < maskHeads; mh++)
                for (int r = 0; r < queryBlocks; r++)
                {
                    var row = problem.GetRow(mb, mh * headDiv, r);
                    entries += row.Full.Length + row.Partial.Length;
                }
        bool documents = problem.Options.Predicate.Kind == ElementPredicateKind.Document;
        long documentIds = documents ? (long)problem.Batch * (problem.QueryLength + problem.KeyLength) : 0;
        long length = 2 * rows + 1 + entries + documentIds;
        if (length > int.MaxValue)
            throw new NotSupportedException($"The block table of this call needs {length} entries; a device table holds at most {int.MaxValue}.");

        var meta = new int[length];
        int next = (int)(2 * rows + 1);
        for (int mb = 0; mb < maskBatch; mb++)
            for (int mh = 0; mh < maskHeads; mh++)
                for (int r = 0; r < queryBlocks; r++)
                {
                    int at = 2 * ((mb * maskHeads + mh) * queryBlocks + r);
                    var row = problem.GetRow(mb, mh * headDiv, r);
                    meta[at] = next;
                    row.Full.CopyTo(meta.AsSpan(next));
                    next += row.Full.Length;
                    meta[at + 1] = next;
                    row.Partial.CopyTo(meta.AsSpan(next));
                    next += row.Partial.Length;
                    meta[at + 2] = next;
                }
        int queryDocuments = 0, keyDocuments = 0;
        if (documents)
        {
            var predicate = problem.Options.Predicate;
            queryDocuments = next;
            predicate.QueryDocuments.Span.CopyTo(meta.AsSpan(next));
            keyDocuments = next + predicate.QueryDocuments.Length;
            predicate.KeyDocuments.Span.CopyTo(meta.AsSpan(keyDocuments));
        }
        return new BlockSparseTable(meta, maskBatch == 1 ? 0 : maskHeads * queryBlocks, maskHeads == 1 ? 0 : queryBlocks,
            maskHeads == 1 ? 1 : headDiv, queryDocuments, keyDocuments);
    }
}
