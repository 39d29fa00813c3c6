// Named lists of cases the commands run; one place, so `demo` and `verify` agree on them.
namespace NativeAttention.Cli;

internal static class CaseCatalog
{
    /// <summary>
    /// The demo: the README's headline shape (B1 H8 N512 D64) plain and causal, the two 16-bit storage types,
    /// grouped-query attention with fewer queries than keys (bottom-right causal), a [B, N, H, D] layout, and one GQA
    /// decoding step through FlashKvCache.
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
        // One decoding step through FlashKvCache: GQA 32/8 against 4096 cached tokens (reported in GB/s).
        AttentionCase.Parse("flash f16 B1 H32/8 N1x4096 D128/128 kvcache seed=1"),
    ];

    /// <summary>
    /// The fixed cases of <c>verify</c>, a spread over what kernels get wrong: N = 1, tails around tile sizes, odd
    /// and large head dims, Dv != Dqk, Nq != Nk both ways (bottom-right causal, rows that see no key), GQA and MQA,
    /// windows, every dtype, the [B, N, H, D] layout, huge logits (amp), a custom scale, softcap and sigmoid scoring,
    /// one long sequence, and decoding through FlashKvCache (GQA, causal, softcap, sigmoid, a prefill chunk). Each checks against float64 in well under a second.
    /// </summary>
    public static IReadOnlyList<AttentionCase> Verify { get; } =
    [
        .. new[]
        {
            "flash f32 B1 H1/1 N1x1 D64/64 seed=1",
            "flash f32 B1 H2/2 N17x17 D31/31 seed=2",
            "flash f32 B2 H4/4 N64x64 D64/64 causal seed=3",
            "flash f32 B1 H8/2 N33x129 D64/64 causal seed=4",
            "flash f32 B1 H4/1 N1x257 D128/128 seed=5",
            "flash f32 B1 H2/2 N130x70 D64/64 causal seed=6",
            "flash f32 B1 H2/2 N200x200 D32/32 window(16,0) seed=7",
            "flash f32 B1 H2/1 N100x100 D16/48 window(8,8) seed=8",
            "flash f32 B1 H1/1 N129x129 D1/1 causal seed=9",
            "flash f32 B1 H1/1 N65x127 D256/256 seed=10",
            "flash f32 B2 H4/2 N48x80 D64/96 bnhd causal seed=11",
            "flash f32 B1 H2/2 N96x96 D64/64 amp=30 seed=12",
            "flash f32 B1 H2/2 N64x64 D64/64 scale=0.5 amp=4 seed=13",
            "flash f32 B1 H2/2 N64x64 D64/64 softcap=30 amp=4 seed=14",
            "flash f32 B1 H2/2 N64x64 D64/64 causal sigmoid(-4.1588831) seed=15",
            "flash f16 B1 H4/2 N65x65 D64/64 causal seed=16",
            "flash f16 B2 H4/2 N48x80 D64/96 bnhd seed=17",
            "flash f16 B1 H2/2 N1x200 D128/128 seed=18",
            "flash bf16 B1 H4/2 N65x97 D128/128 seed=19",
            "flash bf16 B1 H3/1 N31x31 D80/80 bnhd causal seed=20",
            "flash f32 B1 H2/2 N1024x1024 D64/64 causal seed=21",
            "flash f16 B2 H8/2 N1x300 D128/128 kvcache seed=22",
            "flash bf16 B1 H4/4 N3x200 D64/64 kvcache causal seed=23",
            "flash f32 B1 H4/1 N1x1000 D64/64 kvcache softcap=20 seed=24",
            "flash f32 B1 H2/2 N80x120 D64/48 bnhd kvcache causal sigmoid seed=25",
        }.Select(AttentionCase.Parse),
    ];

    /// <summary>
    /// The split-KV cases of <c>verify</c>: flash over 2 or 3 key ranges, then MergeStates, against the unsplit
    /// float64 reference (non-causal and windowless, since a split moves where those masks align).
    /// </summary>
    public static IReadOnlyList<(AttentionCase Case, int Parts)> VerifySplitKeys { get; } =
    [
        (AttentionCase.Parse("flash f32 B1 H2/2 N17x33 D31/31 seed=31"), 2),
        (AttentionCase.Parse("flash f32 B2 H8/2 N64x200 D64/64 bnhd seed=32"), 3),
        (AttentionCase.Parse("flash f32 B1 H4/1 N1x257 D128/128 seed=33"), 2),
        (AttentionCase.Parse("flash f16 B1 H4/2 N33x129 D64/64 seed=34"), 2),
        (AttentionCase.Parse("flash bf16 B1 H2/2 N16x96 D80/80 seed=35"), 3),
    ];
}
