// One compiled specialisation of the neighborhood forward kernel: its name, its #define block and the variant set.
using System.Globalization;

namespace NativeAttention.Gpu;

/// <summary>
/// A specialisation of <c>kernels/neighborhood/neighborhood_fwd.h</c>, e.g. <c>neighborhood_fwd.hd64.f32</c> (portable
/// kernel, both head dims padded to the bucket 64) or <c>neighborhood_fwd.hd64.f16.mma.w4m1n64</c> (tensor cores, 4 warps
/// x 1 row tile of 16 queries, 64-key tiles). Grid shape, kernel, dilation, stride, causality, the query tile and the
/// additional keys are kernel arguments, so one variant serves every problem of its type and head dims. A portable
/// variant with <see cref="SmallTile"/> (e.g. <c>neighborhood_fwd.hd128.f32.n16</c>) stages half as many keys per tile:
/// the one for devices whose local memory is smaller than the plain variant's <see cref="LocalBytes"/> (OpenCL
/// guarantees 32 KB; the plain variant declares about 33 KB at head dims 128 and 256).
/// </summary>
internal readonly record struct NeighborhoodVariant(ElementType ElementType, int HeadDim, bool TensorCores, MmaTile Tile = default, bool SmallTile = false) : IKernelVariant
{
    /// <summary>The kernel's entry point (the same name in every variant).</summary>
    public const string EntryPoint = "na_neighborhood_fwd";

    string IKernelVariant.EntryPoint => EntryPoint;

    /// <summary>Head dims the tensor-core kernel is built for (Dqk == Dv, no padding).</summary>
    public static ReadOnlySpan<int> TensorCoreHeadDims => [64, 128];

    /// <summary>
    /// The tensor-core block: 4 warps x 1 row tile (64 queries), 64-key tiles, one K/V stage, at both head dims. Two row
    /// tiles at D = 64 spilled 28 B on sm_90a (ptxas 12.4, KernelVariantTests' CUBIN check). Not measured yet (no GPU
    /// was at hand when it was written).
    /// </summary>
    public static MmaTile TileFor(int headDim) => new MmaTile(4, 1, 64, 1);

    /// <summary>Queries per work-group (the most a query tile holds) and keys per shared-memory tile (half with <see cref="SmallTile"/>).</summary>
    public (int BlockM, int BlockN) Tiles => TensorCores ? (Tile.BlockM, Tile.BlockN) : (64, (HeadDim > 128 ? 16 : 32) / (SmallTile ? 2 : 1));

    /// <summary>
    /// The local (shared) memory the portable kernel declares, in bytes, as neighborhood_fwd.h lays it out: K and V
    /// tiles of float, three int coordinates and two 64-bit row offsets per key (the tensor-core kernel: its dynamic
    /// shared memory). OpenClNeighborhoodTests.NeighborhoodKernels_DeclareTheLocalMemoryTheHostAssumes_AndTheSmallTileOnesFit32K
    /// checks it against what OpenCL reports for every portable variant.
    /// </summary>
    public int LocalBytes => TensorCores ? DynamicSharedBytes : Tiles.BlockN * (2 * HeadDim * sizeof(float) + 3 * sizeof(int) + 2 * sizeof(long));

    /// <summary>
    /// The portable variant for <paramref name="headDim"/> (a bucket) on a device with <paramref name="localMemoryBytes"/>
    /// of local memory: the plain one where its <see cref="LocalBytes"/> fit, else the <see cref="SmallTile"/> one.
    /// </summary>
    public static NeighborhoodVariant Portable(ElementType type, int headDim, long localMemoryBytes)
    {
        var plain = new NeighborhoodVariant(type, headDim, false);
        return plain.LocalBytes <= localMemoryBytes ? plain : plain with { SmallTile = true };
    }

    /// <summary>Threads (work-items) per work-group.</summary>
    public int Threads => TensorCores ? Tile.Warps * 32 : Tiles.BlockM;

    /// <summary>Dynamic shared memory of the tensor-core kernel: Q, K and V tiles of 16-bit elements, then three int coordinates per key.</summary>
    public int DynamicSharedBytes => TensorCores ? (Tile.BlockM + 2 * Tile.BlockN) * HeadDim * 2 + 3 * Tile.BlockN * 4 : 0;

    public string Name => $"neighborhood_fwd.hd{HeadDim}.{FlashVariant.TypeName(ElementType)}" +
        (TensorCores ? $".mma.w{Tile.Warps}m{Tile.RowTiles}n{Tile.BlockN}" : SmallTile ? $".n{Tiles.BlockN}" : "");

    public IEnumerable<KeyValuePair<string, string>> Defines()
    {
        var (blockM, blockN) = Tiles;
        yield return new("NA_DTYPE", Str((int)ElementType));
        yield return new("NA_HEAD_DIM_QK", Str(HeadDim));
        yield return new("NA_HEAD_DIM_V", Str(HeadDim));
        yield return new("NA_BLOCK_M", Str(blockM));
        yield return new("NA_BLOCK_N", Str(blockN));
        yield return new("NA_NBH_MMA", TensorCores ? "1" : "0");
        if (!TensorCores) yield break;
        yield return new("NA_WARPS", Str(Tile.Warps));
        yield return new("NA_MMA_M_TILES", Str(Tile.RowTiles));
    }

    public string Source(KernelApi api) => KernelSource.Build(api, "neighborhood/neighborhood_fwd.h", Defines());

    /// <summary>
    /// Every variant <paramref name="api"/> may compile: each type and head-dim bucket, on OpenCL the <see cref="SmallTile"/>
    /// ones of those that do not fit OpenCL's guaranteed 32 KB, and on CUDA the tensor-core ones (CUDA's 48 KB of static
    /// shared memory holds every plain variant).
    /// </summary>
    public static IEnumerable<IKernelVariant> AllVariants(KernelApi api)
    {
        foreach (var type in new[] { ElementType.Float32, ElementType.Float16, ElementType.BFloat16 })
            foreach (int d in FlashVariant.HeadDimBuckets.ToArray())
            {
                var plain = new NeighborhoodVariant(type, d, false);
                yield return plain;
                if (api == KernelApi.OpenCl && plain.LocalBytes > DecodeVariant.MinimumLocalBytes) yield return plain with { SmallTile = true };
            }
        if (api != KernelApi.Cuda) yield break;
        foreach (var type in new[] { ElementType.Float16, ElementType.BFloat16 })
            foreach (int d in TensorCoreHeadDims.ToArray())
                yield return new NeighborhoodVariant(type, d, true, TileFor(d));
    }

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);
}
