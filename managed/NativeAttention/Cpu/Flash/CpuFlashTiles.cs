// Tile and register-block sizes of the CPU flash kernel, in one place, each with its reason.
namespace NativeAttention.Cpu;

/// <summary>
/// Sizes the CPU flash kernel is built around. Register blocks are 4 x 4 vectors: 16 accumulators plus 4 operands
/// and a broadcast fit the 32 registers of AVX-512 (and Arm64) and keep 16 independent FMA chains in flight, enough
/// to cover FMA latency on two pipes. Where the JIT has only 16 registers (AVX2 without AVX-512) the kernels run the
/// same blocks two keys or rows at a time (8 accumulators), which avoids spills. Measured on a 2-core Zen 5 (48 KiB L1d, 1 MiB L2): see bench/results/cpu-kernel-notes.md.
/// </summary>
internal static class CpuFlashTiles
{
    /// <summary>
    /// Vectors of query columns per column group (64 columns at 512 bits): the width of the score kernel's register
    /// block, and so of every per-column array the softmax works on.
    /// </summary>
    public const int GroupVectors = 4;

    /// <summary>
    /// Items with at most this many vectors of columns (decoding: one query per head) use one-vector column groups,
    /// so that they do not compute three vectors of padding; their 4 x 1 register block runs at about half the FMA
    /// rate of the 4 x 4 block, which such calls, bound by reading K and V, do not notice.
    /// </summary>
    public const int NarrowGroupMaxVectors = 2;

    /// <summary>
    /// One-vector groups with at most this many real columns form scores as dot products over the head dimension
    /// (two keys at a time, a horizontal sum each) instead of the column-blocked kernel, whose cost is the same for
    /// 1 column as for 16. At 512 bits, Nk = 4096, the dot form measured faster up to 4 columns (0.18 against 0.31 ms at 1, 0.27 against 0.31 at 4).
    /// </summary>
    public const int DotProductMaxColumns = 4;

    /// <summary>Keys per register block of the score kernel (4 broadcast keys x 4 query vectors); key tiles are padded to it.</summary>
    public const int KeyBlock = 4;

    /// <summary>Query rows per register block of the P V kernel (4 broadcast probabilities x up to 4 value vectors).</summary>
    public const int RowBlock = 4;

    /// <summary>
    /// Keys per packed K/V tile. At head dim 64 the K and V tiles (32 KiB) and a group's score tile (16 KiB) fit the
    /// 48 KiB L1 together; larger tiles spill to L2 and smaller ones pay the per-tile softmax bookkeeping more often.
    /// </summary>
    public const int KeyTile = 64;

    /// <summary>
    /// Query columns (query heads of a group x queries) a work item aims for: four column groups at 512 bits, so each
    /// K/V tile serves 256 columns. Against 128 this measured 3-5% faster on every benchmark shape (tile packing and
    /// per-item setup are amortised twice as far); N = 512 with 8 heads still gives 16 items to balance over the workers.
    /// </summary>
    public const int ColumnsPerItem = 256;

    /// <summary>
    /// How a call's query columns (GQA group x queries) are cut into work items, for vectors of
    /// <paramref name="vectorWidth"/> floats: <see cref="ColumnsPerItem"/> columns per item, one-vector column groups for
    /// narrow items (<see cref="NarrowGroupMaxVectors"/>), and the columns an item holds rounded up to whole groups.
    /// Shared by the flash kernel and the kernels built on it, so they tile alike.
    /// </summary>
    public static ItemTiling Tiling(int queryLength, int groupSize, int vectorWidth)
    {
        int queriesPerItem = Math.Min(queryLength, Math.Max(1, ColumnsPerItem / groupSize));
        bool narrow = vectorWidth >= RowBlock && groupSize * queriesPerItem <= NarrowGroupMaxVectors * vectorWidth;
        int groupVectors = narrow ? 1 : GroupVectors;
        int groupWidth = groupVectors * vectorWidth;
        return new ItemTiling(queriesPerItem, groupVectors, groupWidth, (queryLength + queriesPerItem - 1) / queriesPerItem,
            (groupSize * queriesPerItem + groupWidth - 1) / groupWidth * groupWidth);
    }
}

/// <summary>The work-item tiling of <see cref="CpuFlashTiles.Tiling"/>.</summary>
/// <param name="QueriesPerItem">Queries per work item (each with every query head of its GQA group).</param>
/// <param name="GroupVectors">Vectors per column group (1 for narrow items).</param>
/// <param name="GroupWidth">Columns per column group.</param>
/// <param name="QueryTiles">Work items per (batch, kv head).</param>
/// <param name="MaxColumns">Columns of the widest item, rounded up to whole column groups.</param>
internal readonly record struct ItemTiling(int QueriesPerItem, int GroupVectors, int GroupWidth, int QueryTiles, int MaxColumns);
