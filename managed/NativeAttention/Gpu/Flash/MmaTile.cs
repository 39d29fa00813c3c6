// The block shape of the tensor-core flash kernel and its tuning table.
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
