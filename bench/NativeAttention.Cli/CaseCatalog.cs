// Named lists of cases the commands run; one place, so `demo`, and later `bench` and `verify`, agree on them.
namespace NativeAttention.Cli;

internal static class CaseCatalog
{
    /// <summary>
    /// The demo: the README's headline shape (B1 H8 N512 D64) plain and causal, the two 16-bit storage types,
    /// grouped-query attention with fewer queries than keys (bottom-right causal), and a [B, N, H, D] layout.
    /// Each finishes its reference check in about a second.
    /// </summary>
    public static IReadOnlyList<AttentionCase> Demo { get; } =
    [
        AttentionCase.ForFlash(1, 8, 512, 64),
        AttentionCase.ForFlash(1, 8, 512, 64, causal: true),
        AttentionCase.ForFlash(1, 8, 512, 64, type: ElementType.Float16),
        AttentionCase.ForFlash(1, 8, 512, 64, causal: true, type: ElementType.BFloat16),
        AttentionCase.ForFlash(1, 8, 512, 64, causal: true) with { KeyValueHeads = 2, QueryLength = 128 },
        AttentionCase.ForFlash(2, 8, 256, 64) with { Layout = TensorLayout.SequenceFirst },
    ];
}
