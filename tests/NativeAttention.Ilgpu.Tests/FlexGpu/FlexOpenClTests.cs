// Flex attention on OpenCL (PoCL in CI): every built-in option written as a modification, compositions, block masks
// made on the device, against the float64 reference; modifications ILGPU cannot compile fail before anything runs.
// Shapes stay small: every modification type is one ILGPU compile and one PoCL build.
using NativeAttention.Ilgpu.Flex.Gpu;
using Xunit;
using static NativeAttention.Ilgpu.Tests.FlexOnGpu.FlexCheck;

namespace NativeAttention.Ilgpu.Tests.FlexOnGpu;

public sealed class FlexOpenClTests(OpenClFixture fixture) : IClassFixture<OpenClFixture>
{
    /// <summary>GQA (Hq = 2 Hkv), Nq &lt; Nk, ragged tiles, Dqk != Dv.</summary>
    private static readonly Shape Small = new(2, 4, 2, 37, 45, 32, 24);
    private const int Shift = 45 - 37;

    private static bool All(int b, int h, int q, int k) => true;
    private static double Same(double s, int b, int h, int q, int k) => s;

    private FlexBlockMask? Blocks<TMask>(bool on, TMask mask, Shape shape, int queryBlock = 16, int keyBlock = 16) where TMask : struct, IMaskMod =>
        on ? FlexGpu.CreateBlockMask(fixture.Context, mask, shape.B, shape.Hq, shape.Nq, shape.Nk, queryBlock, keyBlock) : null;

    [SkippableFact]
    public void NoModification_IsPlainAttention() =>
        Check(fixture.Context, Small, new NoScoreMod(), new NoMask(), All, Same, null);

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void Causal_BottomRightAligned(bool blockMask)
    {
        var mask = new CausalMask { Shift = Shift };
        Check(fixture.Context, Small, new NoScoreMod(), mask, (b, h, q, k) => k <= q + Shift, Same, Blocks(blockMask, mask, Small));
    }

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void SlidingWindow(bool blockMask)
    {
        var mask = new WindowMask { Left = 9, Right = 3, Shift = Shift };
        Check(fixture.Context, Small, new NoScoreMod(), mask, (b, h, q, k) => k - q - Shift >= -9 && k - q - Shift <= 3, Same,
            Blocks(blockMask, mask, Small, 32, 16));
    }

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void Alibi_WithCausal(bool blockMask)
    {
        var context = fixture.Context;
        float[] slopes = [0.5f, 0.25f, 0.125f, 0.0625f];
        var score = new AlibiScore { Slopes = Floats(context, slopes), Shift = Shift };
        var mask = new CausalMask { Shift = Shift };
        Check(context, Small, score, mask, (b, h, q, k) => k <= q + Shift, (s, b, h, q, k) => s + slopes[h] * (k - q - Shift),
            Blocks(blockMask, mask, Small));
    }

    [SkippableFact]
    public void Softcap()
    {
        var context = fixture.Context;
        var shape = Small with { D = 64, Dv = 64 };   // larger scores: the cap bites
        Check(context, shape, new SoftcapScore { Cap = 0.75f }, new NoMask(), All, (s, b, h, q, k) => 0.75 * Math.Tanh(s / 0.75), null);
    }

    [SkippableFact]
    public void MixedFieldLayout_MatchesIlgpusParameterStruct()
    {
        var context = fixture.Context;
        float[] slopes = [0.3f, -0.2f, 0.1f, 0.05f];
        var score = new MixedFieldsScore
        {
            Small = 7, Medium = -300, Large = 5_000, Tail = 3, Weight = 0.5f,
            Inner = new AlibiScore { Slopes = Floats(context, slopes), Shift = 2 },
        };
        Check(context, Small, score, new NoMask(), All,
            (s, b, h, q, k) => s * 0.5 + 0.07 - 0.3 + 0.5 + 0.3 + slopes[h] * (k - q - 2), null, tolerance: 5e-4);
    }

    [SkippableFact]
    public void DenseBias_ThroughAViewField()
    {
        var context = fixture.Context;
        var (b, hq, nq, nk) = (Small.B, Small.Hq, Small.Nq, Small.Nk);
        var bias = FlexCheck.Random(new Random(7), b * hq * nq * nk);
        var score = new BiasScore { Bias = Floats(context, bias), Heads = hq, Nq = nq, Nk = nk };
        Check(context, Small, score, new NoMask(), All, (s, bb, h, q, k) => s + bias[((bb * hq + h) * nq + q) * nk + k], null);
    }

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void DocumentMask_ThroughViewFields(bool blockMask)
    {
        var context = fixture.Context;
        var (b, nq, nk) = (Small.B, Small.Nq, Small.Nk);
        // Sample 0: three documents; sample 1: two, the keys' ids shifted so that some queries see nothing.
        var queryDocs = Enumerable.Range(0, b * nq).Select(i => i < nq ? (i % nq) / 13 : 4 + (i % nq) / 20).ToArray();
        var keyDocs = Enumerable.Range(0, b * nk).Select(i => i < nk ? (i % nk) / 16 : 5 + (i % nk) / 23).ToArray();
        var mask = new DocumentMask { QueryDocuments = Ints(context, queryDocs), KeyDocuments = Ints(context, keyDocs), Nq = nq, Nk = nk };
        Check(context, Small, new NoScoreMod(), mask, (bb, h, q, k) => queryDocs[bb * nq + q] == keyDocs[bb * nk + k], Same,
            Blocks(blockMask, mask, Small, 16, 32));
    }

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void PrefixLm_ThroughAViewField(bool blockMask)
    {
        var context = fixture.Context;
        int[] prefixes = [20, 3];
        var mask = new PrefixLmMask { Prefixes = Ints(context, prefixes), Shift = Shift };
        Check(context, Small, new NoScoreMod(), mask, (b, h, q, k) => k < prefixes[b] || k <= q + Shift, Same, Blocks(blockMask, mask, Small));
    }

    [SkippableTheory]
    [InlineData(64)]
    [InlineData(128)]
    [InlineData(256)]
    public void EveryTile_HeadDims(int headDim)
    {
        var shape = new Shape(1, 2, 1, 21, 26, headDim - 7, headDim);
        var mask = new CausalMask { Shift = 5 };
        Check(fixture.Context, shape, new DistanceScore { Rate = 0.05f }, mask, (b, h, q, k) => k <= q + 5, (s, b, h, q, k) => s - 0.05 * Math.Abs(q - k),
            Blocks(true, mask, shape, 48, 16));
    }

    [SkippableTheory]
    [InlineData(ElementType.Float16)]
    [InlineData(ElementType.BFloat16)]
    public void SixteenBitStorage_Fp32Accumulation(ElementType type)
    {
        var context = fixture.Context;
        float[] slopes = [0.5f, 0.25f, 0.125f, 0.0625f];
        var score = new AlibiScore { Slopes = Floats(context, slopes), Shift = Shift };
        var mask = new CausalMask { Shift = Shift };
        // The output's own rounding: half an ulp of fp16 (2^-11) or bf16 (2^-8), relative.
        Check(context, Small, score, mask, (b, h, q, k) => k <= q + Shift, (s, b, h, q, k) => s + slopes[h] * (k - q - Shift),
            Blocks(true, mask, Small), tolerance: type == ElementType.Float16 ? 1.5e-3 : 1e-2, type: type);
    }

    [SkippableTheory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void RandomCompositions(int seed)
    {
        var context = fixture.Context;
        var random = new Random(seed);
        int hkv = random.Next(1, 3), group = random.Next(1, 3);
        var shape = new Shape(random.Next(1, 3), hkv * group, hkv, random.Next(1, 50), random.Next(1, 60), random.Next(1, 5) * 8, random.Next(1, 5) * 8);
        int shift = shape.Nk - shape.Nq, left = random.Next(0, 20), right = random.Next(0, 6), period = random.Next(1, 9);
        float rate = (float)random.NextDouble() * 0.2f, cap = 0.5f + (float)random.NextDouble();
        var slopes = Enumerable.Range(0, shape.Hq).Select(_ => (float)random.NextDouble()).ToArray();
        var prefixes = Enumerable.Range(0, shape.B).Select(_ => random.Next(0, shape.Nk + 1)).ToArray();
        int queryBlock = random.Next(16, 65), keyBlock = random.Next(16, 65);
        bool blockMask = random.Next(2) == 0;

        // (window AND stripe) OR prefix-LM; ALiBi, then distance, then softcap.
        var mask = new OrMask<AndMask<WindowMask, StripeMask>, PrefixLmMask>
        {
            First = new() { First = new WindowMask { Left = left, Right = right, Shift = shift }, Second = new StripeMask { Period = period } },
            Second = new PrefixLmMask { Prefixes = Ints(context, prefixes), Shift = shift },
        };
        var score = new ThenScore<ThenScore<AlibiScore, DistanceScore>, SoftcapScore>
        {
            First = new() { First = new AlibiScore { Slopes = Floats(context, slopes), Shift = shift }, Second = new DistanceScore { Rate = rate } },
            Second = new SoftcapScore { Cap = cap },
        };
        bool Visible(int b, int h, int q, int k) =>
            (k - q - shift >= -left && k - q - shift <= right && (k / period + h) % 2 == 0 && q % 5 != 3) || k < prefixes[b] || k <= q + shift;
        double Score(double s, int b, int h, int q, int k) => cap * Math.Tanh((s + slopes[h] * (k - q - shift) - rate * Math.Abs(q - k)) / cap);
        Check(context, shape, score, mask, Visible, Score, Blocks(blockMask, mask, shape, queryBlock, keyBlock), seed);
    }

    [SkippableTheory]
    [InlineData(16, 16)]
    [InlineData(48, 16)]
    [InlineData(20, 37)]
    [InlineData(128, 128)]
    public void CreateBlockMask_ClassifiesEveryBlock(int queryBlock, int keyBlock)
    {
        var context = fixture.Context;
        var (b, h, nq, nk) = (2, 3, 130, 301);
        var mask = new OrMask<WindowMask, StripeMask> { First = new WindowMask { Left = 40, Right = 0, Shift = nk - nq }, Second = new StripeMask { Period = 50 } };
        bool Visible(int bb, int hh, int q, int k) => (k - q - (nk - nq) >= -40 && k - q - (nk - nq) <= 0) || ((k / 50 + hh) % 2 == 0 && q % 5 != 3);
        var blocks = FlexGpu.CreateBlockMask(context, mask, b, h, nq, nk, queryBlock, keyBlock);
        var classes = FlexReference.Classes(b, h, nq, nk, queryBlock, keyBlock, Visible);
        int queryBlocks = (nq + queryBlock - 1) / queryBlock, keyBlocks = (nk + keyBlock - 1) / keyBlock;
        Assert.Equal((b, h, keyBlocks, queryBlock, keyBlock), (blocks.MaskBatch, blocks.MaskHeads, blocks.MaxBlocksPerRow, blocks.QueryBlockSize, blocks.KeyBlockSize));
        for (int r = 0; r < b * h * queryBlocks; r++)
        {
            var row = classes.AsSpan(r * keyBlocks, keyBlocks).ToArray();
            int[] full = Enumerable.Range(0, keyBlocks).Where(c => row[c] == 2).ToArray();
            int[] partial = Enumerable.Range(0, keyBlocks).Where(c => row[c] == 1).ToArray();
            Assert.Equal(full, blocks.FullIndices.Slice(r * keyBlocks, blocks.FullCounts.Span[r]).ToArray());
            Assert.Equal(partial, blocks.PartialIndices.Slice(r * keyBlocks, blocks.PartialCounts.Span[r]).ToArray());
        }
    }

    [SkippableTheory]
    [InlineData(301, 16)]
    [InlineData(100, 64)]
    public void CreateBlockMask_RaggedLastBlock_IsFullWhenEveryKeyInsideIsVisible(int keyLength, int keyBlock)
    {
        // A padding mask at the sequence end: every block is full, the ragged last one too (keys past Nk do not count).
        var blocks = FlexGpu.CreateBlockMask(fixture.Context, new PaddingMask { Length = keyLength }, 1, 2, 40, keyLength, 16, keyBlock);
        int keyBlocks = (keyLength + keyBlock - 1) / keyBlock;
        Assert.All(blocks.FullCounts.ToArray(), count => Assert.Equal(keyBlocks, count));
        Assert.All(blocks.PartialCounts.ToArray(), count => Assert.Equal(0, count));
    }

    [SkippableFact]
    public void StridedTensors_TokenMajorLayout()
    {
        // Q, K, V, O stored [B, N, H, D] (token-major, as projections write them) and passed as [B, H, N, D] views.
        var context = fixture.Context;
        var (b, hq, hkv, nq, nk, d) = (2, 4, 2, 19, 23, 16);
        var random = new Random(5);
        float[] q = FlexCheck.Random(random, b * nq * hq * d), k = FlexCheck.Random(random, b * nk * hkv * d), v = FlexCheck.Random(random, b * nk * hkv * d);
        var qd = Upload(context, q, b, nq, hq, d).Permute(0, 2, 1, 3);
        var kd = Upload(context, k, b, nk, hkv, d).Permute(0, 2, 1, 3);
        var vd = Upload(context, v, b, nk, hkv, d).Permute(0, 2, 1, 3);
        var od = context.Allocate(ElementType.Float32, b, nq, hq, d).Permute(0, 2, 1, 3);
        var mask = new CausalMask { Shift = nk - nq };
        FlexGpu.Run(context, qd, kd, vd, od, null, 0.25f, null, new NoScoreMod(), mask);
        context.Synchronize();
        static float[] HeadMajor(float[] x, int b, int n, int h, int d)
        {
            var y = new float[x.Length];
            for (int i = 0; i < b; i++) for (int t = 0; t < n; t++) for (int j = 0; j < h; j++) for (int e = 0; e < d; e++)
                y[((i * h + j) * n + t) * d + e] = x[((i * n + t) * h + j) * d + e];
            return y;
        }
        var (expected, _) = FlexReference.Run(HeadMajor(q, b, nq, hq, d), HeadMajor(k, b, nk, hkv, d), HeadMajor(v, b, nk, hkv, d), b, hq, hkv, nq, nk, d, d,
            0.25, (bb, h, i, j) => j <= i + nk - nq, Same);
        var stored = new float[b * nq * hq * d];
        ((NativeAttention.Gpu.DeviceBuffer)od.Storage!).Read<float>(stored);
        Compare("output", expected, HeadMajor(stored, b, nq, hq, d), 2e-4);
    }

    [SkippableFact]
    public void BroadcastBlockMask_OneRowSetForEveryBatchAndHead()
    {
        // A mask made once for (batch 1, head 1) serves every (b, h): MaskBatch = MaskHeads = 1 broadcast.
        var mask = new CausalMask { Shift = Shift };
        var shared = FlexGpu.CreateBlockMask(fixture.Context, mask, 1, 1, Small.Nq, Small.Nk, 32, 16);
        Assert.Equal((1, 1), (shared.MaskBatch, shared.MaskHeads));
        Check(fixture.Context, Small, new NoScoreMod(), mask, (b, h, q, k) => k <= q + Shift, Same, shared);
    }

    [SkippableTheory]
    [InlineData(0, 1, 16, 16, "batch")]
    [InlineData(1, 0, 16, 16, "heads")]
    [InlineData(1, 1, 15, 16, "queryBlockSize")]
    [InlineData(1, 1, 16, 129, "keyBlockSize")]
    public void CreateBlockMask_RejectsBadSizes(int batch, int heads, int queryBlock, int keyBlock, string argument)
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => FlexGpu.CreateBlockMask(fixture.Context, new CausalMask(), batch, heads, 32, 32, queryBlock, keyBlock));
        Assert.Equal(argument, e.ParamName);
    }

    [SkippableFact]
    public void FullBlocks_SkipTheMask_EmptyBlocks_AreSkipped()
    {
        // A hand-made mask: row 0 lists key block 1 as full although the causal mask hides part of it, and key block 0
        // as partial; key block 2 is not listed (empty). The kernel must not evaluate the mask on block 1 and must not
        // read block 2 at all.
        var shape = new Shape(1, 1, 1, 16, 48, 16, 16);
        var mask = new CausalMask { Shift = 0 };
        var blocks = new FlexBlockMask
        {
            QueryBlockSize = 16, KeyBlockSize = 16, MaxBlocksPerRow = 3,
            FullCounts = new[] { 1 }, FullIndices = new[] { 1, 0, 0 },
            PartialCounts = new[] { 1 }, PartialIndices = new[] { 0, 0, 0 },
        };
        Check(fixture.Context, shape, new NoScoreMod(), mask, (b, h, q, k) => k < 16 ? k <= q : k < 32, Same, blocks);
    }

    [SkippableFact]
    public void ClassAllocationInAModification_FailsBeforeAnythingRuns() =>
        Rejects(new ClassAllocatingScore(), new NoMask(), "scoreMod", nameof(ClassAllocatingScore));

    [SkippableFact]
    public void ClassFieldInAModification_FailsBeforeAnythingRuns() =>
        Rejects(new NoScoreMod(), new ClassFieldMask { Keys = [1] }, "maskMod", nameof(ClassFieldMask), "class");

    [SkippableFact]
    public void BoolFieldInAModification_FailsBeforeAnythingRuns() =>
        Rejects(new NoScoreMod(), new BoolFieldMask(), "maskMod", nameof(BoolFieldMask), "Boolean");

    private void Rejects<TScore, TMask>(TScore score, TMask mask, string argument, params string[] words)
        where TScore : struct, IScoreMod where TMask : struct, IMaskMod
    {
        var context = fixture.Context;
        var q = Upload(context, new float[2 * 8], 1, 1, 2, 8);
        var o = Upload(context, Enumerable.Repeat(42f, 2 * 8).ToArray(), 1, 1, 2, 8);
        var e = Assert.Throws<ArgumentException>(() => FlexGpu.Run(context, q, q, q, o, null, 1f, null, score, mask));
        Assert.Equal(argument, e.ParamName);
        foreach (var word in words) Assert.Contains(word, e.Message, StringComparison.Ordinal);
        context.Synchronize();
        Assert.All(Read(o), x => Assert.Equal(42f, x));   // nothing ran
    }
}
