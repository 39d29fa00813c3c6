// Named lists of cases the commands run; one place, so `demo` and `verify` agree on them. `verify`'s default list is
// every registered family's own (CaseFamilies), so a new family is verified without touching the tool.
namespace NativeAttention.Cli;

internal static class CaseCatalog
{
    /// <summary>
    /// The demo: the README's headline shape (B1 H8 N512 D64) plain and causal, the two 16-bit storage types,
    /// grouped-query attention with fewer queries than keys (bottom-right causal), a [B, N, H, D] layout, and one GQA
    /// decoding step through FlashKvCache.
    /// Each finishes its reference check in about a second.
    /// </summary>
    public static IReadOnlyList<IAttentionCase> Demo { get; } =
    [
        AttentionCase.ForFlash(1, 8, 512, 64),
        AttentionCase.ForFlash(1, 8, 512, 64, causal: true),
        AttentionCase.ForFlash(1, 8, 512, 64, type: ElementType.Float16),
        AttentionCase.ForFlash(1, 8, 512, 64, causal: true, type: ElementType.BFloat16),
        AttentionCase.ForFlash(1, 8, 512, 64, causal: true) with { KeyValueHeads = 2, QueryLength = 128 },
        AttentionCase.ForFlash(2, 8, 256, 64) with { Layout = TensorLayout.SequenceFirst },
        // One decoding step through FlashKvCache: GQA 32/8 against 4096 cached tokens (reported in GB/s).
        AttentionCaseSpec.Parse("flash f16 B1 H32/8 N1x4096 D128/128 kvcache seed=1"),
    ];

    /// <summary>
    /// The fixed cases of <c>verify</c>: every registered family's <see cref="CaseFamily.VerifySpecs"/>. For flash, a
    /// spread over what kernels get wrong: N = 1, tails around tile sizes, odd and large head dims, Dv != Dqk, Nq != Nk
    /// both ways (bottom-right causal, rows that see no key), GQA and MQA, windows, every dtype, the [B, N, H, D] layout,
    /// huge logits (amp), a custom scale, softcap and sigmoid scoring, option tensors (ALiBi, biases, sinks), one long
    /// sequence, decoding through FlashKvCache (GQA, causal, softcap, sigmoid, a prefill chunk, capacity, ragged
    /// lengths, paging, an append), split-KV + MergeStates and small binary16 keys and values with large queries; then
    /// MergeStates alone, and the reference-only families (listed as skipped until their kernels land). Each checks
    /// against float64 in well under a second.
    /// </summary>
    public static IReadOnlyList<IAttentionCase> Verify { get; } = [.. CaseFamilies.All.SelectMany(f => f.VerifyCases())];
}
