// One compiled specialisation of the flash forward kernel, its name, its #define block and the tile table.
namespace NativeAttention.Gpu;

/// <summary>
/// A specialisation of <c>kernels/flash/flash_fwd.h</c>. Its <see cref="Name"/> says what it is specialised for,
/// e.g. <c>flash_fwd.hd128.f16.masked.mma</c> (head dims 128, fp16, causal/window masking, tensor cores) or
/// <c>flash_fwd.hd64x32.f32.evenn</c> (Dqk bucket 64, Dv bucket 32, nk a multiple of the key tile). The
/// tensor-core kernel handles ragged tiles with zero-filling copies and masks, so it has no even-tile flag.
/// </summary>
internal readonly record struct FlashVariant(
    ElementType ElementType, int HeadDimQk, int HeadDimV, bool Masked, bool EvenN, bool TensorCores, int Warps = FlashVariant.DefaultWarps)
{
    /// <summary>Warps per block of the tensor-core kernel (16 query rows each) unless tuned otherwise.</summary>
    public const int DefaultWarps = 4;

    /// <summary>Tuning knob for benchmarks: warps per tensor-core block (4 or 8).</summary>
    public const string WarpsVariable = "NATIVEATTENTION_FLASH_MMA_WARPS";

    /// <summary>The warps per tensor-core block: <see cref="WarpsVariable"/> when set to 4 or 8, else the default.</summary>
    public static int ConfiguredWarps =>
        Environment.GetEnvironmentVariable(WarpsVariable) is "8" ? 8 : Environment.GetEnvironmentVariable(WarpsVariable) is "4" ? 4 : DefaultWarps;

    /// <summary>
    /// Head-dim buckets of the portable kernel: the kernel zero-pads both head dims up to the bucket of the larger
    /// one, which keeps the variant count (and NVRTC/PoCL compile time) linear in the number of buckets.
    /// </summary>
    public static ReadOnlySpan<int> HeadDimBuckets => [16, 32, 64, 128, 256];

    /// <summary>Head dims the tensor-core kernel is built for (Dqk == Dv, no padding).</summary>
    public static ReadOnlySpan<int> TensorCoreHeadDims => [64, 128];

    /// <summary>The kernel's entry point (the same name in every variant).</summary>
    public const string EntryPoint = "na_flash_fwd";

    /// <summary>Smallest bucket holding <paramref name="headDim"/>.</summary>
    public static int Bucket(int headDim)
    {
        foreach (int b in HeadDimBuckets)
            if (headDim <= b) return b;
        throw new ArgumentOutOfRangeException(nameof(headDim), headDim, $"Head dims above {FlashProblem.MaxHeadDim} are not supported.");
    }

    /// <summary>
    /// Tile sizes, one row per case:
    /// tensor cores: <see cref="Warps"/> x 16 rows; 64-key tiles keep Q, K and V tiles within 48 KiB of shared
    /// memory at head dim 128 with 4 warps, so two blocks fit per SM and each hides the other's barriers; 8 warps
    /// halve the K/V traffic from L2 per query row.
    /// portable: one work-item per query row, 64 rows per group (a multiple of every vendor's SIMD width);
    /// key tiles of 32 floats x head dim, halved at 256 so K and V tiles stay within 32 KiB of local memory.
    /// </summary>
    public (int BlockM, int BlockN, int Warps) Tiles => TensorCores
        ? (16 * Warps, 64, Warps)
        : (64, Math.Max(HeadDimQk, HeadDimV) > 128 ? 16 : 32, 0);

    /// <summary>Threads (work-items) per block.</summary>
    public int Threads => TensorCores ? Tiles.Warps * 32 : Tiles.BlockM;

    /// <summary>Dynamic shared memory the tensor-core kernel needs, in bytes (the portable kernel uses static memory).</summary>
    public int DynamicSharedBytes => TensorCores ? (Tiles.BlockM + 2 * Tiles.BlockN) * HeadDimQk * 2 : 0;

    public string Name
    {
        get
        {
            string dims = HeadDimQk == HeadDimV ? $"hd{HeadDimQk}" : $"hd{HeadDimQk}x{HeadDimV}";
            string type = ElementType switch { ElementType.Float32 => "f32", ElementType.Float16 => "f16", _ => "bf16" };
            return $"flash_fwd.{dims}.{type}{(Masked ? ".masked" : "")}{(EvenN ? ".evenn" : "")}{(TensorCores ? ".mma" : "")}{(TensorCores && Warps != DefaultWarps ? $".w{Warps}" : "")}";
        }
    }

    /// <summary>The specialisation block, in a fixed order; each has an #ifndef default in the kernel.</summary>
    public IEnumerable<KeyValuePair<string, string>> Defines()
    {
        var (blockM, blockN, warps) = Tiles;
        yield return new("NA_DTYPE", ((int)ElementType).ToString(System.Globalization.CultureInfo.InvariantCulture));
        yield return new("NA_HEAD_DIM_QK", Str(HeadDimQk));
        yield return new("NA_HEAD_DIM_V", Str(HeadDimV));
        yield return new("NA_BLOCK_M", Str(blockM));
        yield return new("NA_BLOCK_N", Str(blockN));
        yield return new("NA_MASKED", Masked ? "1" : "0");
        yield return new("NA_EVEN_N", EvenN ? "1" : "0");
        yield return new("NA_FLASH_MMA", TensorCores ? "1" : "0");
        if (TensorCores) yield return new("NA_WARPS", Str(warps));
    }

    /// <summary>The complete kernel source of this variant for <paramref name="api"/>.</summary>
    public string Source(KernelApi api) => KernelSource.Build(api, "flash/flash_fwd.h", Defines());

    /// <summary>Every variant a backend may compile; used to check that all of them build.</summary>
    public static IEnumerable<FlashVariant> All(bool tensorCores)
    {
        foreach (var type in new[] { ElementType.Float32, ElementType.Float16, ElementType.BFloat16 })
            foreach (int d in HeadDimBuckets.ToArray())
                foreach (bool masked in new[] { false, true })
                    foreach (bool evenN in new[] { false, true })
                        yield return new FlashVariant(type, d, d, masked, evenN, false);
        if (!tensorCores) yield break;
        foreach (var type in new[] { ElementType.Float16, ElementType.BFloat16 })
            foreach (int d in TensorCoreHeadDims.ToArray())
                foreach (bool masked in new[] { false, true })
                    foreach (int warps in new[] { 4, 8 })
                        yield return new FlashVariant(type, d, d, masked, false, true, warps);
    }

    private static string Str(int value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
