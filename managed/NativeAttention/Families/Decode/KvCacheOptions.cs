// Options of KV-cache decoding: cache lengths, the in-place append, paging, rotary embedding and split-KV.
namespace NativeAttention;

/// <summary>
/// What <see cref="AttentionContext.FlashKvCache"/> needs to know about the cache (FlashAttention's
/// <c>flash_attn_with_kvcache</c>). Batch element b holds <c>CacheSeqLens[b]</c> tokens; when <see cref="NewKey"/> and
/// <see cref="NewValue"/> are given their Nnew tokens are first written into the cache at positions
/// <c>CacheSeqLens[b] .. CacheSeqLens[b] + Nnew - 1</c> (in place: the caches are then also outputs), and the queries
/// attend to the first <c>L_b = CacheSeqLens[b] + Nnew</c> cached keys, causal masks and windows aligned bottom-right
/// against <c>L_b</c> (query i sits at position <c>L_b - Nq + i</c>).
/// </summary>
public sealed record KvCacheOptions
{
    /// <summary>Tokens already in the cache per batch element, <c>[B]</c>, each non-negative.</summary>
    public ReadOnlyMemory<int> CacheSeqLens { get; init; }

    /// <summary>Keys to append before attending, <c>[B, Hkv, Nnew, Dqk]</c> (with <see cref="NewValue"/>), or null.</summary>
    public TensorView? NewKey { get; init; }

    /// <summary>Values to append before attending, <c>[B, Hkv, Nnew, Dv]</c> (with <see cref="NewKey"/>), or null.</summary>
    public TensorView? NewValue { get; init; }

    /// <summary>
    /// Paging: <c>[B, BlocksPerSequence]</c> row-major physical block indices; position p of batch element b lives in
    /// block <c>BlockTable[b, p / PageSize]</c> at slot <c>p % PageSize</c>, and the caches are
    /// <c>[NumBlocks, Hkv, PageSize, D]</c>. Empty (the default): the caches are contiguous <c>[B, Hkv, Capacity, D]</c>.
    /// </summary>
    public ReadOnlyMemory<int> BlockTable { get; init; }

    /// <summary>Tokens per block of a paged cache (must equal the caches' third dimension); ignored without <see cref="BlockTable"/>.</summary>
    public int PageSize { get; init; }

    /// <summary>
    /// Rotary cosines, float32 <c>[MaxPositions, RotaryDim / 2]</c>, or null for no rotary embedding. The first
    /// RotaryDim dimensions of each new key are rotated at its position <c>CacheSeqLens[b] + t</c> before it is
    /// written, and those of query i at its position <c>L_b - Nq + i</c> (the new tokens' positions when the queries
    /// are the new tokens, as in FlashAttention's causal case).
    /// </summary>
    public TensorView? RotaryCos { get; init; }

    /// <summary>Rotary sines, float32, the shape of <see cref="RotaryCos"/>.</summary>
    public TensorView? RotarySin { get; init; }

    /// <summary>
    /// True: rotate pairs of neighbours <c>(2i, 2i + 1)</c> (GPT-J); false (default): pairs <c>(i, i + RotaryDim / 2)</c>
    /// (GPT-NeoX). Pair i turns by the angle whose cosine and sine are <c>RotaryCos[pos, i]</c>, <c>RotarySin[pos, i]</c>:
    /// <c>(x, y) -> (x cos - y sin, x sin + y cos)</c>.
    /// </summary>
    public bool RotaryInterleaved { get; init; }

    /// <summary>
    /// Number of pieces the key axis is split into (split-KV), merged exactly through their log-sum-exps; null
    /// chooses from the problem size and the backend's thread count or device only (never from timing), so equal
    /// calls on equal contexts give bit-identical results. At most <see cref="KvCacheProblem.MaxSplits"/>.
    /// </summary>
    public int? Splits { get; init; }
}
