// Options and mask formats of block-sparse attention. Semantics: DESIGN.md, "Block-sparse".
namespace NativeAttention;

/// <summary>The element-level predicate applied inside partial blocks.</summary>
public enum ElementPredicateKind
{
    /// <summary>Every element of a partial block is visible (partial == full).</summary>
    None,
    /// <summary>Bottom-right-aligned causal, as in flash attention.</summary>
    Causal,
    /// <summary>
    /// Sliding window (left, right) around the aligned query position; also causal when
    /// <see cref="ElementPredicate.WindowCausal"/> is set.
    /// </summary>
    Window,
    /// <summary>Query and key must carry the same document id.</summary>
    Document,
    /// <summary>
    /// Prefix-LM: keys before the sample's prefix length are visible to every query, the rest causally
    /// (bottom-right aligned): <c>j &lt; prefix[b] || j &lt;= i + Nk - Nq</c>.
    /// </summary>
    PrefixLM,
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

    /// <summary>
    /// For <see cref="ElementPredicateKind.Window"/>: the window is also causal, keys after the aligned query position
    /// <c>i + Nk - Nq</c> are hidden (the same as a right extent of 0 when <see cref="WindowRight"/> is larger or unbounded).
    /// </summary>
    public bool WindowCausal { get; init; }

    /// <summary>
    /// Prefix length per sample for <see cref="ElementPredicateKind.PrefixLM"/>: <c>[B]</c>, or one value shared by the
    /// batch; each non-negative. Keys <c>j &lt; prefix[b]</c> are visible to every query of sample b.
    /// </summary>
    public ReadOnlyMemory<int> PrefixLengths { get; init; }

    /// <summary>Document id per query token <c>[B, Nq]</c>, for <see cref="ElementPredicateKind.Document"/>.</summary>
    public ReadOnlyMemory<int> QueryDocuments { get; init; }

    /// <summary>Document id per key token <c>[B, Nk]</c>, for <see cref="ElementPredicateKind.Document"/>.</summary>
    public ReadOnlyMemory<int> KeyDocuments { get; init; }

    /// <summary>No predicate: partial blocks are fully visible.</summary>
    public static ElementPredicate All { get; } = new();

    /// <summary>Causal masking inside partial blocks.</summary>
    public static ElementPredicate CausalMask { get; } = new() { Kind = ElementPredicateKind.Causal };

    /// <summary>A sliding window (left, right); -1 is unbounded; <paramref name="causal"/> also hides keys after the query.</summary>
    public static ElementPredicate SlidingWindow(int left, int right, bool causal = false) =>
        new() { Kind = ElementPredicateKind.Window, WindowLeft = left, WindowRight = right, WindowCausal = causal };

    /// <summary>Prefix-LM masking: a bidirectional prefix of <paramref name="prefixLengths"/> keys (one per sample, or one for all), causal after it.</summary>
    public static ElementPredicate PrefixLM(params int[] prefixLengths) => new() { Kind = ElementPredicateKind.PrefixLM, PrefixLengths = prefixLengths };

    /// <summary>Document masking from per-token ids.</summary>
    public static ElementPredicate Documents(ReadOnlyMemory<int> queryDocuments, ReadOnlyMemory<int> keyDocuments) =>
        new() { Kind = ElementPredicateKind.Document, QueryDocuments = queryDocuments, KeyDocuments = keyDocuments };
}

/// <summary>
/// A block mask: which key blocks each (batch, head, query block) computes. Block sizes are
/// <see cref="MinBlockSize"/> to <see cref="MaxBlockSize"/> tokens, and the query and key block sizes may differ.
/// Mask arrays with a head extent (<c>MaskHeads</c>) of 1 are shared by every query head, of Hkv by the query heads of
/// each GQA group (query head h uses mask head <c>h / (Hq / Hkv)</c>), of Hq give each query head its own rows. Within
/// a row, block indices are strictly increasing. <see cref="BlockMasks"/> converts other layouts (block CSR, FlashInfer's
/// BSR, a dense block matrix) to and from <see cref="FlexBlockMask"/>.
/// </summary>
public abstract record BlockMask
{
    /// <summary>The smallest query or key block size the kernels take.</summary>
    public const int MinBlockSize = 16;

    /// <summary>The largest query or key block size the kernels take.</summary>
    public const int MaxBlockSize = 128;

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
/// MaxBlocksPerRow]</c>, row-major; MaskBatch may be 1 to broadcast, MaskHeads 1 (shared), Hkv (per GQA group) or Hq.
/// Each row lists its full and its partial blocks in ascending order, no block twice (full and partial together).
/// </summary>
public sealed record FlexBlockMask : BlockMask
{
    /// <summary>Batch extent of the mask arrays (1 broadcasts).</summary>
    public int MaskBatch { get; init; } = 1;
    /// <summary>Head extent of the mask arrays: 1 (shared by every head), Hkv (shared by a GQA group) or Hq.</summary>
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
/// Every listed block is partial (the predicate applies); MaskHeads is 1 (shared), Hkv (per GQA group) or Hq; each row
/// lists its blocks in ascending order.
/// </summary>
public sealed record BlockCsrMask : BlockMask
{
    /// <summary>Head extent of the mask arrays: 1 (shared by every head), Hkv (shared by a GQA group) or Hq.</summary>
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

    /// <summary>Softcap c: scores become <c>c * tanh(s / c)</c>, as in <see cref="FlashOptions.Softcap"/>; 0 disables it.</summary>
    public float Softcap { get; init; }
}
