// Options and mask formats of block-sparse attention. Semantics: DESIGN.md, "Block-sparse".
namespace NativeAttention;

/// <summary>The element-level predicate applied inside partial blocks.</summary>
public enum ElementPredicateKind
{
    /// <summary>Every element of a partial block is visible (partial == full).</summary>
    None,
    /// <summary>Bottom-right-aligned causal, as in flash attention.</summary>
    Causal,
    /// <summary>Sliding window (left, right) around the aligned query position, optionally also causal.</summary>
    Window,
    /// <summary>Query and key must carry the same document id.</summary>
    Document,
}

/// <summary>
/// The predicate that decides, inside partial blocks, which (query, key) pairs are visible. Full blocks
/// ignore it.
/// </summary>
public sealed record ElementPredicate
{
    /// <summary>Which predicate.</summary>
    public ElementPredicateKind Kind { get; init; }

    /// <summary>Window left extent (-1 unbounded), for <see cref="ElementPredicateKind.Window"/>.</summary>
    public int WindowLeft { get; init; } = -1;

    /// <summary>Window right extent (-1 unbounded), for <see cref="ElementPredicateKind.Window"/>.</summary>
    public int WindowRight { get; init; } = -1;

    /// <summary>Document id per query token <c>[B, Nq]</c>, for <see cref="ElementPredicateKind.Document"/>.</summary>
    public ReadOnlyMemory<int> QueryDocuments { get; init; }

    /// <summary>Document id per key token <c>[B, Nk]</c>, for <see cref="ElementPredicateKind.Document"/>.</summary>
    public ReadOnlyMemory<int> KeyDocuments { get; init; }

    /// <summary>No predicate: partial blocks are fully visible.</summary>
    public static ElementPredicate All { get; } = new();

    /// <summary>Causal masking inside partial blocks.</summary>
    public static ElementPredicate CausalMask { get; } = new() { Kind = ElementPredicateKind.Causal };

    /// <summary>A sliding window (left, right); -1 is unbounded.</summary>
    public static ElementPredicate SlidingWindow(int left, int right) => new() { Kind = ElementPredicateKind.Window, WindowLeft = left, WindowRight = right };

    /// <summary>Document masking from per-token ids.</summary>
    public static ElementPredicate Documents(ReadOnlyMemory<int> queryDocuments, ReadOnlyMemory<int> keyDocuments) =>
        new() { Kind = ElementPredicateKind.Document, QueryDocuments = queryDocuments, KeyDocuments = keyDocuments };
}

/// <summary>A block mask: which key blocks each (batch, head, query block) computes.</summary>
public abstract record BlockMask
{
    /// <summary>Query block size Bq.</summary>
    public required int QueryBlockSize { get; init; }

    /// <summary>Key block size Bk.</summary>
    public required int KeyBlockSize { get; init; }
}

/// <summary>
/// FlexAttention-style mask. For each (b, h, query block) row: <see cref="PartialCounts"/> and
/// <see cref="PartialIndices"/> list the key blocks where <see cref="BlockSparseOptions.Predicate"/> applies,
/// <see cref="FullCounts"/> and <see cref="FullIndices"/> the blocks computed without any predicate.
/// Counts are <c>[MaskBatch, MaskHeads, QueryBlocks]</c> and indices <c>[MaskBatch, MaskHeads, QueryBlocks,
/// MaxBlocksPerRow]</c>, row-major; MaskBatch and MaskHeads may be 1 to broadcast.
/// </summary>
public sealed record FlexBlockMask : BlockMask
{
    /// <summary>Batch extent of the mask arrays (1 broadcasts).</summary>
    public int MaskBatch { get; init; } = 1;
    /// <summary>Head extent of the mask arrays (1 broadcasts).</summary>
    public int MaskHeads { get; init; } = 1;
    /// <summary>Row capacity of the index arrays.</summary>
    public required int MaxBlocksPerRow { get; init; }
    /// <summary>Number of partial key blocks per row.</summary>
    public required ReadOnlyMemory<int> PartialCounts { get; init; }
    /// <summary>Partial key block indices per row.</summary>
    public required ReadOnlyMemory<int> PartialIndices { get; init; }
    /// <summary>Number of full key blocks per row (empty: none).</summary>
    public ReadOnlyMemory<int> FullCounts { get; init; }
    /// <summary>Full key block indices per row (empty: none).</summary>
    public ReadOnlyMemory<int> FullIndices { get; init; }
}

/// <summary>
/// Block CSR mask (ONNX Runtime SparseAttention): per mask head, <see cref="RowOffsets"/>
/// <c>[MaskHeads, QueryBlocks + 1]</c> and <see cref="ColumnIndices"/> <c>[MaskHeads, nnz capacity]</c>;
/// the key blocks of query block r are <c>ColumnIndices[h, RowOffsets[h, r] .. RowOffsets[h, r + 1])</c>.
/// Every listed block is partial (the predicate applies); MaskHeads 1 broadcasts.
/// </summary>
public sealed record BlockCsrMask : BlockMask
{
    /// <summary>Head extent of the mask arrays (1 broadcasts).</summary>
    public int MaskHeads { get; init; } = 1;
    /// <summary>Row offsets per mask head.</summary>
    public required ReadOnlyMemory<int> RowOffsets { get; init; }
    /// <summary>Column (key block) indices per mask head.</summary>
    public required ReadOnlyMemory<int> ColumnIndices { get; init; }
    /// <summary>Row stride of <see cref="ColumnIndices"/> between heads.</summary>
    public required int ColumnCapacity { get; init; }
}

/// <summary>Options of <see cref="AttentionContext.BlockSparse"/>.</summary>
public sealed record BlockSparseOptions
{
    /// <summary>Which blocks are computed.</summary>
    public required BlockMask Mask { get; init; }

    /// <summary>The element predicate applied in partial blocks.</summary>
    public ElementPredicate Predicate { get; init; } = ElementPredicate.All;

    /// <summary>Score scale; null means <c>1 / sqrt(Dqk)</c>.</summary>
    public float? Scale { get; init; }
}
