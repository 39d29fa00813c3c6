// One compiled specialisation of the block-sparse forward kernel: its name, its #define block and the variant set.
using System.Globalization;

namespace NativeAttention.Gpu;

/// <summary>
/// A specialisation of <c>kernels/blocksparse/blocksparse_fwd.h</c>. Portable variants take <see cref="BlockM"/> query
/// rows per work-group (one work-item each) and key tiles of <see cref="BlockN"/>, e.g. <c>blocksparse_fwd.hd64.f32.m32n32</c>;
/// tensor-core variants (CUDA, f16/bf16, Dqk == Dv in {64, 128}) take <see cref="Warps"/> warps of
/// <see cref="RowTiles"/> x 16 rows, e.g. <c>blocksparse_fwd.hd128.bf16.mma.w4m2n64</c>. Block sizes are runtime
/// parameters: a work-group covers part of a query block (a query block larger than its rows takes several) and walks
/// each listed key block in tiles (a key block smaller than a tile leaves the rest of the tile masked).
/// </summary>
internal readonly record struct BlockSparseVariant(
    ElementType ElementType, int HeadDimQk, int HeadDimV, int BlockM, int BlockN, bool TensorCores, int Warps = 0, int RowTiles = 0) : IKernelVariant
{
    /// <summary>The kernel's entry point (the same name in every variant).</summary>
    public const string EntryPoint = "na_blocksparse_fwd";

    string IKernelVariant.EntryPoint => EntryPoint;

    /// <summary>Rows per work-group of the portable kernel.</summary>
    private static ReadOnlySpan<int> PortableRows => [32, 64];

    /// <summary>
    /// Tensor-core row tiles (warps, row tiles per warp): 16, 32, 64 and 128 rows per work-group. At D = 128 the
    /// 128-row tile is 8 warps x 1 row tile: 4 x 2 spilled 8-16 B on sm_80 (ptxas 11.8, KernelVariantTests' CUBIN check).
    /// </summary>
    private static (int Warps, int RowTiles)[] MmaRows(int headDim) =>
        headDim <= 64 ? [(1, 1), (2, 1), (4, 1), (4, 2)] : [(1, 1), (2, 1), (4, 1), (8, 1)];

    /// <summary>Tensor-core key tiles.</summary>
    private static ReadOnlySpan<int> MmaKeys => [32, 64];

    /// <summary>Threads (work-items) per work-group.</summary>
    public int Threads => TensorCores ? Warps * 32 : BlockM;

    /// <summary>Dynamic shared memory of the tensor-core kernel in bytes: Q, K and V tiles of 16-bit elements.</summary>
    public int DynamicSharedBytes => TensorCores ? (BlockM + 2 * BlockN) * HeadDimQk * 2 : 0;

    public string Name
    {
        get
        {
            string dims = HeadDimQk == HeadDimV ? $"hd{HeadDimQk}" : $"hd{HeadDimQk}x{HeadDimV}";
            string tile = TensorCores ? $"mma.w{Warps}m{RowTiles}n{BlockN}" : $"m{BlockM}n{BlockN}";
            return $"blocksparse_fwd.{dims}.{FlashVariant.TypeName(ElementType)}.{tile}";
        }
    }

    /// <summary>The portable variant for a call: head dims padded to the flash bucket of the larger one, 32 rows for query blocks of up to 32 rows.</summary>
    public static BlockSparseVariant Portable(ElementType type, int headDim, int valueDim, int queryRows)
    {
        int bucket = FlashVariant.Bucket(Math.Max(headDim, valueDim));
        return new BlockSparseVariant(type, bucket, bucket, queryRows <= PortableRows[0] ? PortableRows[0] : PortableRows[1], PortableKeys(bucket), false);
    }

    /// <summary>
    /// The tensor-core variant for a call: the smallest row tile holding a query block (up to 128 rows; larger blocks
    /// take several work-groups), and 32-key tiles for key blocks of up to 32 keys, else 64.
    /// </summary>
    public static BlockSparseVariant Mma(ElementType type, int headDim, int queryRows, int keyBlock)
    {
        var tiles = MmaRows(headDim);
        var (warps, rowTiles) = tiles[^1];
        foreach (var rows in tiles)
            if (queryRows <= rows.Warps * 16 * rows.RowTiles)
            {
                (warps, rowTiles) = rows;
                break;
            }
        int keys = keyBlock <= MmaKeys[0] ? MmaKeys[0] : MmaKeys[1];
        return new BlockSparseVariant(type, headDim, headDim, warps * 16 * rowTiles, keys, true, warps, rowTiles);
    }

    /// <summary>Key tile of the portable kernel: 32 floats x head dim, halved above 128 so K and V tiles stay within 32 KiB.</summary>
    private static int PortableKeys(int bucket) => bucket > 128 ? 16 : 32;

    /// <summary>The specialisation block, in a fixed order; each has an #ifndef default in the kernel.</summary>
    public IEnumerable<KeyValuePair<string, string>> Defines()
    {
        yield return new("NA_DTYPE", Str((int)ElementType));
        yield return new("NA_HEAD_DIM_QK", Str(HeadDimQk));
        yield return new("NA_HEAD_DIM_V", Str(HeadDimV));
        yield return new("NA_BLOCK_M", Str(BlockM));
        yield return new("NA_BLOCK_N", Str(BlockN));
        yield return new("NA_BSP_MMA", TensorCores ? "1" : "0");
        if (!TensorCores) yield break;
        yield return new("NA_WARPS", Str(Warps));
        yield return new("NA_MMA_M_TILES", Str(RowTiles));
    }

    /// <summary>The complete kernel source of this variant for <paramref name="api"/>.</summary>
    public string Source(KernelApi api) => KernelSource.Build(api, "blocksparse/blocksparse_fwd.h", Defines());

    /// <summary>Every variant <paramref name="api"/> may compile: the portable ones, and on CUDA the tensor-core ones.</summary>
    public static IEnumerable<IKernelVariant> AllVariants(KernelApi api)
    {
        foreach (var type in new[] { ElementType.Float32, ElementType.Float16, ElementType.BFloat16 })
            foreach (int d in FlashVariant.HeadDimBuckets.ToArray())
                foreach (int rows in PortableRows.ToArray())
                    yield return new BlockSparseVariant(type, d, d, rows, PortableKeys(d), false);
        if (api != KernelApi.Cuda) yield break;
        foreach (var type in new[] { ElementType.Float16, ElementType.BFloat16 })
            foreach (int d in FlashVariant.TensorCoreHeadDims.ToArray())
                foreach (var (warps, rowTiles) in MmaRows(d))
                    foreach (int keys in MmaKeys.ToArray())
                        yield return new BlockSparseVariant(type, d, d, warps * 16 * rowTiles, keys, true, warps, rowTiles);
    }

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);
}
