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

    /// <summary>
    /// Tuning knob for benchmarks: "warps,rowTiles,blockN,stages", e.g. "4,2,64,1"; must be one of
    /// <see cref="CandidatesFor"/> for the call's head dim, masking and options.
    /// </summary>
    public const string Variable = "NATIVEATTENTION_FLASH_MMA_TILE";

    /// <summary>
    /// The tile table. The fast tiles use 4 warps x 2 row tiles: two row tiles per warp reuse each K/V fragment twice
    /// (shared-memory reads per flop halve) and a 128-row block halves K/V traffic from L2 (measured on an H100,
    /// bench/results/cuda.md). They sit at ptxas's 255-register ceiling, so whatever adds live values (masking,
    /// score options, a second K/V stage, D = 128 with 64-key tiles) can make them spill. CI compiles every variant
    /// to CUBINs for sm_80 (NVRTC 11.8) and sm_90a (NVRTC 12.4) and fails a tensor-core kernel that spills
    /// (KernelVariantTests); this table keeps the tiles that spilled on either off the list:
    /// <list type="bullet">
    /// <item>D = 64, no mask, no options: two stages x 64 keys (255 registers on sm_80, 243 on sm_90a);</item>
    /// <item>D = 64, masked or softcap only: one stage x 64 keys (236-240; two stages spilled 68 B on sm_80);</item>
    /// <item>D = 128, no options or softcap only: one stage x 32 keys (242-248), FlashAttention-2's own sm_80 choice
    /// at D = 128; 64-key tiles spilled 8 B unmasked on sm_90a and 40-136 B masked on sm_80;</item>
    /// <item>any other option (ALiBi, bias, low-rank bias, sinks, sigmoid): one row tile per warp, 8 warps to keep
    /// the 128-row block, 64-key tiles at D = 64 (158-206 registers) and 32-key tiles at D = 128 (211-227; 64 keys
    /// spilled 4 B with a bias on sm_80); two row tiles spilled up to 636 B.</item>
    /// </list>
    /// The D = 128 and option tiles are chosen for zero spills, not yet timed on a GPU: bench/results/cuda.md's D = 128
    /// rows were measured with 64-key tiles.
    /// </summary>
    public static MmaTile For(int headDim, bool masked, ScoreOptions options)
    {
        if (Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } text)
        {
            var tile = Parse(text);
            var allowed = CandidatesFor(headDim, masked, options);
            if (!allowed.Contains(tile))
                throw new NotSupportedException($"{Variable}={text} spills or is unknown at D = {headDim}{(masked ? ", masked" : "")}{options.Suffix}; expected one of {string.Join("; ", allowed)}.");
            return tile;
        }
        return CandidatesFor(headDim, masked, options)[0];
    }

    /// <summary>The tiles that compile without spills for a call's head dim, masking and options, preferred first.</summary>
    public static MmaTile[] CandidatesFor(int headDim, bool masked, ScoreOptions options)
    {
        bool lightOptions = options == default || options == default(ScoreOptions) with { Softcap = true };
        if (!lightOptions) return headDim <= 64 ? [new(8, 1, 64, 1), new(4, 1, 64, 1)] : [new(8, 1, 32, 1), new(4, 1, 32, 1)];
        if (headDim <= 64)
            return !masked && options == default
                ? [new(4, 2, 64, 2), new(4, 2, 64, 1), new(4, 2, 32, 1), new(8, 1, 64, 1), new(4, 1, 64, 1)]
                : [new(4, 2, 64, 1), new(4, 2, 32, 1), new(8, 1, 64, 1), new(4, 1, 64, 1)];
        return [new(4, 2, 32, 1), new(8, 1, 64, 1), new(4, 1, 64, 1)];
    }

    private static MmaTile Parse(string text)
    {
        var parts = text.Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        var tile = parts.Length == 4 ? new MmaTile(parts[0], parts[1], parts[2], parts[3]) : default;
        if (tile == default)
            throw new NotSupportedException($"{Variable}={text}: expected four integers \"warps,rowTiles,blockN,stages\".");
        return tile;
    }
}
