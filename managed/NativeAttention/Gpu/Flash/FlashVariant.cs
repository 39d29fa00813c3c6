// One compiled specialisation of the flash forward kernel: its name, its #define block and the variant set.
using System.Globalization;

namespace NativeAttention.Gpu;

/// <summary>
/// A specialisation of <c>kernels/flash/flash_fwd.h</c>. Its <see cref="Name"/> says what it is specialised for,
/// e.g. <c>flash_fwd.hd64.f16.masked.mma.w4m2n64s2</c> (head dims 64, fp16, causal/window masking, tensor cores
/// with 4 warps x 2 row tiles x 64-key tiles, double-buffered) or <c>flash_fwd.hd64.f32.evenn</c> (portable kernel, head-dim bucket
/// 64, nk a multiple of the key tile). The tensor-core kernel handles ragged tiles with zero-filling copies and
/// masks, so it has no even-tile flag. Score options add suffixes before the tile, e.g.
/// <c>flash_fwd.hd64.f32.masked.softcap.alibi</c> (see <see cref="ScoreOptions.Suffix"/>). A <see cref="Wgmma"/> variant is
/// the Hopper kernel (<c>kernels/flash/flash_fwd_wgmma.h</c>, CUDA sm_90a only), e.g.
/// <c>flash_fwd.hd128.f16.masked.wgmma.n128s2</c>: 128-row blocks of three warpgroups, 128-key tiles, two K/V stages.
/// </summary>
internal readonly record struct FlashVariant(
    ElementType ElementType, int HeadDimQk, int HeadDimV, bool Masked, bool EvenN, bool TensorCores, MmaTile Tile = default,
    ScoreOptions Options = default, bool Wgmma = false) : IKernelVariant
{
    /// <summary>Head dims of the Hopper kernel (Dqk == Dv).</summary>
    public static ReadOnlySpan<int> WgmmaHeadDims => [64, 128, 256];

    /// <summary>K/V ring depth of the Hopper kernel.</summary>
    public const int WgmmaStages = 2;

    /// <summary>Threads of a Hopper block: one producer and two consumer warpgroups.</summary>
    public const int WgmmaThreads = 384;

    /// <summary>
    /// Keys per tile of the Hopper kernel: 128, or 64 at D = 256 (O alone is 128 floats a thread) and with a dense bias
    /// (ptxas spilled 56 B at D = 128, masked, with 128-key tiles), so that a consumer fits its 240 registers.
    /// </summary>
    public static int WgmmaBlockN(int headDim, ScoreOptions options) => headDim > 128 || options.Bias ? 64 : 128;

    /// <summary>The Hopper variant for a call's type, head dim, masking and options.</summary>
    public static FlashVariant ForWgmma(ElementType type, int headDim, bool masked, ScoreOptions options) =>
        new(type, headDim, headDim, masked, false, true, default, options, Wgmma: true);

    /// <summary>
    /// Head-dim buckets of the portable kernel: the kernel zero-pads both head dims up to the bucket of the larger
    /// one, which keeps the variant count (and NVRTC/PoCL compile time) linear in the number of buckets.
    /// </summary>
    public static ReadOnlySpan<int> HeadDimBuckets => [16, 32, 64, 128, 256];

    /// <summary>Head dims the tensor-core kernel is built for (Dqk == Dv, no padding).</summary>
    public static ReadOnlySpan<int> TensorCoreHeadDims => [64, 128];

    /// <summary>The kernel's entry point (the same name in every variant).</summary>
    public const string EntryPoint = "na_flash_fwd";

    string IKernelVariant.EntryPoint => EntryPoint;

    /// <summary>Smallest bucket holding <paramref name="headDim"/>.</summary>
    public static int Bucket(int headDim)
    {
        foreach (int b in HeadDimBuckets)
            if (headDim <= b) return b;
        throw new ArgumentOutOfRangeException(nameof(headDim), headDim, $"Head dims above {FlashProblem.MaxHeadDim} are not supported.");
    }

    /// <summary>
    /// Rows per block and keys per tile. Tensor cores: <see cref="Tile"/>. Portable: one work-item per query row,
    /// 64 rows per group (a multiple of every vendor's SIMD width); key tiles of 32 floats x head dim, halved at 256
    /// so K and V tiles stay within 32 KiB of local memory.
    /// </summary>
    public (int BlockM, int BlockN) Tiles => Wgmma ? (128, WgmmaBlockN(HeadDimQk, Options)) : TensorCores
        ? (Tile.BlockM, Tile.BlockN)
        : (64, HeadDimQk > 128 ? 16 : 32);

    /// <summary>Threads (work-items) per block.</summary>
    public int Threads => Wgmma ? WgmmaThreads : TensorCores ? Tile.Warps * 32 : Tiles.BlockM;

    /// <summary>
    /// Dynamic shared memory of the tensor-core kernels in bytes: Q, K and V tiles of 16-bit elements; the Hopper kernel
    /// adds 1 KiB of slack to align its 128-byte-swizzled tiles to 1024 bytes.
    /// </summary>
    public int DynamicSharedBytes => Wgmma
        ? (Tiles.BlockM + 2 * Tiles.BlockN * WgmmaStages) * HeadDimQk * 2 + 1024
        : TensorCores ? (Tile.BlockM + 2 * Tile.BlockN * Tile.Stages) * HeadDimQk * 2 : 0;

    public string Name
    {
        get
        {
            string dims = HeadDimQk == HeadDimV ? $"hd{HeadDimQk}" : $"hd{HeadDimQk}x{HeadDimV}";
            string type = TypeName(ElementType);
            string tile = Wgmma ? $".wgmma.n{Tiles.BlockN}s{WgmmaStages}"
                : TensorCores ? $".mma.w{Tile.Warps}m{Tile.RowTiles}n{Tile.BlockN}s{Tile.Stages}" : "";
            return $"flash_fwd.{dims}.{type}{(Masked ? ".masked" : "")}{(EvenN ? ".evenn" : "")}{Options.Suffix}{tile}";
        }
    }

    /// <summary>The short name of an element type in variant names.</summary>
    public static string TypeName(ElementType type) => type switch { ElementType.Float32 => "f32", ElementType.Float16 => "f16", _ => "bf16" };

    /// <summary>The specialisation block, in a fixed order; each has an #ifndef default in the kernel.</summary>
    public IEnumerable<KeyValuePair<string, string>> Defines()
    {
        var (blockM, blockN) = Tiles;
        yield return new("NA_DTYPE", Str((int)ElementType));
        yield return new("NA_HEAD_DIM_QK", Str(HeadDimQk));
        yield return new("NA_HEAD_DIM_V", Str(HeadDimV));
        yield return new("NA_BLOCK_M", Str(blockM));
        yield return new("NA_BLOCK_N", Str(blockN));
        yield return new("NA_MASKED", Masked ? "1" : "0");
        yield return new("NA_EVEN_N", EvenN ? "1" : "0");
        yield return new("NA_FLASH_MMA", TensorCores ? "1" : "0");
        foreach (var define in Options.Defines()) yield return define;
        if (Wgmma)
        {
            yield return new("NA_FLASH_WGMMA", "1");
            yield return new("NA_WGMMA_STAGES", Str(WgmmaStages));
            yield break;
        }
        if (!TensorCores) yield break;
        yield return new("NA_WARPS", Str(Tile.Warps));
        yield return new("NA_MMA_M_TILES", Str(Tile.RowTiles));
        yield return new("NA_MMA_STAGES", Str(Tile.Stages));
    }

    /// <summary>The complete kernel source of this variant for <paramref name="api"/>.</summary>
    public string Source(KernelApi api) => KernelSource.Build(api, "flash/flash_fwd.h", Defines());

    /// <summary>
    /// Every variant without score options <paramref name="api"/> may compile (tensor-core variants on CUDA only), then
    /// each of <see cref="ScoreOptions.CompileCoverage"/> on one portable and (CUDA) two tensor-core variants: the
    /// check that all of them build.
    /// </summary>
    public static IEnumerable<IKernelVariant> AllVariants(KernelApi api)
    {
        bool tensorCores = api == KernelApi.Cuda;
        foreach (var options in ScoreOptions.CompileCoverage)
        {
            yield return new FlashVariant(ElementType.Float16, 64, 64, true, false, false, default, options);
            if (!tensorCores) continue;
            yield return new FlashVariant(ElementType.Float16, 64, 64, true, false, true, MmaTile.For(64, true, options), options);
            yield return new FlashVariant(ElementType.BFloat16, 128, 128, false, false, true, MmaTile.For(128, false, options), options);
        }
        foreach (var type in new[] { ElementType.Float32, ElementType.Float16, ElementType.BFloat16 })
            foreach (int d in HeadDimBuckets.ToArray())
                foreach (bool masked in new[] { false, true })
                    foreach (bool evenN in new[] { false, true })
                        yield return new FlashVariant(type, d, d, masked, evenN, false);
        if (!tensorCores) yield break;
        foreach (var type in new[] { ElementType.Float16, ElementType.BFloat16 })
            foreach (int d in TensorCoreHeadDims.ToArray())
                foreach (bool masked in new[] { false, true })
                    foreach (var tile in MmaTile.CandidatesFor(d, masked, default))
                        yield return new FlashVariant(type, d, d, masked, false, true, tile);
    }

    /// <summary>
    /// The Hopper variants CI compiles to sm_90a CUBINs (NVRTC 12.4): every type, head dim and masking without options,
    /// then every option set of <see cref="ScoreOptions.CompileCoverage"/> the kernel takes (<see cref="WgmmaTakes"/>) at
    /// each head dim. Not part of <see cref="AllVariants"/>: they compile for sm_90a only.
    /// </summary>
    public static IEnumerable<FlashVariant> WgmmaVariants()
    {
        foreach (var type in new[] { ElementType.Float16, ElementType.BFloat16 })
            foreach (int d in WgmmaHeadDims.ToArray())
                foreach (bool masked in new[] { false, true })
                    yield return ForWgmma(type, d, masked, default);
        foreach (var options in ScoreOptions.CompileCoverage)
            foreach (int d in WgmmaHeadDims.ToArray())
                foreach (bool masked in new[] { false, true })
                    if (WgmmaTakes(d, options))
                        yield return ForWgmma(d == 128 ? ElementType.BFloat16 : ElementType.Float16, d, masked, options);
    }

    /// <summary>
    /// True when the Hopper kernel is built for these options at this head dim: every option at D = 64 and 128; at
    /// D = 256, where O alone takes 128 registers a thread, no dense bias (ptxas spilled 8-52 B with one at 240
    /// registers; the other options fit).
    /// </summary>
    public static bool WgmmaTakes(int headDim, ScoreOptions options) => headDim <= 128 || !options.Bias;

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);
}
