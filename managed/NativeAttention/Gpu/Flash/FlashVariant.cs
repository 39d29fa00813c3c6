// One compiled specialisation of the flash forward kernel, its name, its #define block and the tile table.
using System.Globalization;

namespace NativeAttention.Gpu;

/// <summary>
/// Block shape of the tensor-core kernel: <see cref="Warps"/> warps, each owning <see cref="RowTiles"/> x 16 query
/// rows, over key tiles of <see cref="BlockN"/> keys, with <see cref="Stages"/> K/V buffers (2: double-buffered).
/// </summary>
internal readonly record struct MmaTile(int Warps, int RowTiles, int BlockN, int Stages)
{
    /// <summary>Query rows per block.</summary>
    public int BlockM => Warps * 16 * RowTiles;

    /// <summary>Tuning knob for benchmarks: "warps,rowTiles,blockN,stages", e.g. "4,2,64,1"; must be one of <see cref="Candidates"/>.</summary>
    public const string Variable = "NATIVEATTENTION_FLASH_MMA_TILE";

    /// <summary>
    /// The tile table, by head dim (measured on an H100, bench/results/cuda.md). Both use 4 warps x 2 row tiles x
    /// 64 keys: two row tiles per warp reuse each K/V fragment twice (shared-memory reads per flop halve) and a
    /// 128-row block halves K/V traffic from L2, while the registers still allow two blocks per SM.
    /// D = 64: two stages (K/V double-buffered, loaded a whole tile ahead): +3-6% over one stage.
    /// D = 128: one stage: the second buffer's addressing pushes ptxas past 255 registers (small spills) and
    /// measured 1-4% slower.
    /// </summary>
    public static MmaTile For(int headDim) => Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } text
        ? Parse(text)
        : headDim <= 64 ? new MmaTile(4, 2, 64, 2) : new MmaTile(4, 2, 64, 1);

    /// <summary>Every tile a benchmark may select; the NVRTC test compiles each.</summary>
    public static MmaTile[] Candidates =>
        [new(4, 1, 64, 1), new(4, 2, 64, 1), new(4, 2, 32, 1), new(8, 1, 64, 1), new(4, 2, 64, 2)];

    private static MmaTile Parse(string text)
    {
        var parts = text.Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        var tile = parts.Length == 4 ? new MmaTile(parts[0], parts[1], parts[2], parts[3]) : default;
        if (!Candidates.Contains(tile))
            throw new NotSupportedException($"{Variable}={text} is not one of {string.Join("; ", Candidates)}.");
        return tile;
    }
}

/// <summary>
/// The score options a variant is specialised for (<c>kernels/common/score_mod.h</c>). Option tensors keep their
/// own element type (<see cref="BiasType"/>, <see cref="UType"/>, <see cref="WType"/>), so the kernel reads them
/// without a conversion pass. The default is plain softmax attention, whose kernels carry no option code at all.
/// </summary>
internal readonly record struct ScoreOptions(
    bool Softcap, bool Alibi, bool Bias, bool LowRank, bool Sinks, bool Sigmoid,
    ElementType BiasType = ElementType.Float32, ElementType UType = ElementType.Float32, ElementType WType = ElementType.Float32)
{
    /// <summary>The options of a validated call.</summary>
    public static ScoreOptions Of(FlashOptions o) => new(
        o.Softcap != 0, o.AlibiSlopes is not null, o.Bias is not null, o.LowRankBias is not null, o.Sinks is not null,
        o.ScoreFunction == ScoreFunction.Sigmoid,
        o.Bias?.ElementType ?? ElementType.Float32,
        o.LowRankBias?.U.ElementType ?? ElementType.Float32, o.LowRankBias?.W.ElementType ?? ElementType.Float32);

    /// <summary>The name suffix, e.g. <c>.softcap.bias.f16.sinks</c>; empty without options. Non-f32 option tensor types are named.</summary>
    public string Suffix =>
        (Softcap ? ".softcap" : "") + (Alibi ? ".alibi" : "") +
        (Bias ? ".bias" + TypeSuffix(BiasType) : "") +
        (LowRank ? ".lowrank" + (UType == ElementType.Float32 && WType == ElementType.Float32 ? "" : TypeSuffix(UType, always: true) + TypeSuffix(WType, always: true)) : "") +
        (Sinks ? ".sinks" : "") + (Sigmoid ? ".sigmoid" : "");

    /// <summary>The option defines (only those set: the kernel defaults every one to off).</summary>
    public IEnumerable<KeyValuePair<string, string>> Defines()
    {
        if (Softcap) yield return new("NA_SOFTCAP", "1");
        if (Alibi) yield return new("NA_ALIBI", "1");
        if (Bias)
        {
            yield return new("NA_BIAS", "1");
            yield return new("NA_BIAS_DTYPE", ((int)BiasType).ToString(CultureInfo.InvariantCulture));
        }
        if (LowRank)
        {
            yield return new("NA_LOWRANK", "1");
            yield return new("NA_U_DTYPE", ((int)UType).ToString(CultureInfo.InvariantCulture));
            yield return new("NA_W_DTYPE", ((int)WType).ToString(CultureInfo.InvariantCulture));
        }
        if (Sinks) yield return new("NA_SINKS", "1");
        if (Sigmoid) yield return new("NA_SIGMOID", "1");
    }

    /// <summary>
    /// Option sets the NVRTC test compiles for each kernel: every option alone, then everything a softmax call can
    /// combine (softcap, ALiBi, a bf16 dense bias, an f16/f32 low-rank bias, sinks) and sigmoid with every modifier.
    /// </summary>
    public static ScoreOptions[] CompileCoverage =>
    [
        new(true, false, false, false, false, false),
        new(false, true, false, false, false, false),
        new(false, false, true, false, false, false),
        new(false, false, false, true, false, false),
        new(false, false, false, false, true, false),
        new(false, false, false, false, false, true),
        new(true, true, true, true, true, false, ElementType.BFloat16, ElementType.Float16, ElementType.Float32),
        new(true, true, true, true, false, true, ElementType.Float16, ElementType.BFloat16, ElementType.BFloat16),
    ];

    private static string TypeSuffix(ElementType type, bool always = false) =>
        type == ElementType.Float32 && !always ? "" : "." + FlashVariant.TypeName(type);
}

/// <summary>
/// A specialisation of <c>kernels/flash/flash_fwd.h</c>. Its <see cref="Name"/> says what it is specialised for,
/// e.g. <c>flash_fwd.hd64.f16.masked.mma.w4m2n64s2</c> (head dims 64, fp16, causal/window masking, tensor cores
/// with 4 warps x 2 row tiles x 64-key tiles, double-buffered) or <c>flash_fwd.hd64.f32.evenn</c> (portable kernel, head-dim bucket
/// 64, nk a multiple of the key tile). The tensor-core kernel handles ragged tiles with zero-filling copies and
/// masks, so it has no even-tile flag. Score options add suffixes before the tile, e.g.
/// <c>flash_fwd.hd64.f32.masked.softcap.alibi</c> (see <see cref="ScoreOptions.Suffix"/>).
/// </summary>
internal readonly record struct FlashVariant(
    ElementType ElementType, int HeadDimQk, int HeadDimV, bool Masked, bool EvenN, bool TensorCores, MmaTile Tile = default,
    ScoreOptions Options = default)
{
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
    /// Rows per block and keys per tile. Tensor cores: <see cref="Tile"/>. Portable: one work-item per query row,
    /// 64 rows per group (a multiple of every vendor's SIMD width); key tiles of 32 floats x head dim, halved at 256
    /// so K and V tiles stay within 32 KiB of local memory.
    /// </summary>
    public (int BlockM, int BlockN) Tiles => TensorCores
        ? (Tile.BlockM, Tile.BlockN)
        : (64, HeadDimQk > 128 ? 16 : 32);

    /// <summary>Threads (work-items) per block.</summary>
    public int Threads => TensorCores ? Tile.Warps * 32 : Tiles.BlockM;

    /// <summary>Dynamic shared memory of the tensor-core kernel in bytes: Q, K and V tiles of 16-bit elements.</summary>
    public int DynamicSharedBytes => TensorCores ? (Tile.BlockM + 2 * Tile.BlockN * Tile.Stages) * HeadDimQk * 2 : 0;

    public string Name
    {
        get
        {
            string dims = HeadDimQk == HeadDimV ? $"hd{HeadDimQk}" : $"hd{HeadDimQk}x{HeadDimV}";
            string type = TypeName(ElementType);
            string tile = TensorCores ? $".mma.w{Tile.Warps}m{Tile.RowTiles}n{Tile.BlockN}s{Tile.Stages}" : "";
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
        if (!TensorCores) yield break;
        yield return new("NA_WARPS", Str(Tile.Warps));
        yield return new("NA_MMA_M_TILES", Str(Tile.RowTiles));
        yield return new("NA_MMA_STAGES", Str(Tile.Stages));
    }

    /// <summary>The complete kernel source of this variant for <paramref name="api"/>.</summary>
    public string Source(KernelApi api) => KernelSource.Build(api, "flash/flash_fwd.h", Defines());

    /// <summary>
    /// Every variant without score options a backend may compile, then each of <see cref="ScoreOptions.CompileCoverage"/>
    /// on one portable and (with <paramref name="tensorCores"/>) one tensor-core variant: the check that all of them build.
    /// </summary>
    public static IEnumerable<FlashVariant> All(bool tensorCores)
    {
        foreach (var options in ScoreOptions.CompileCoverage)
        {
            yield return new FlashVariant(ElementType.Float16, 64, 64, true, false, false, default, options);
            if (!tensorCores) continue;
            yield return new FlashVariant(ElementType.Float16, 64, 64, true, false, true, new MmaTile(4, 2, 64, 2), options);
            yield return new FlashVariant(ElementType.BFloat16, 128, 128, false, false, true, new MmaTile(4, 2, 64, 1), options);
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
                    foreach (var tile in MmaTile.Candidates)
                        yield return new FlashVariant(type, d, d, masked, false, true, tile);
    }

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);
}
