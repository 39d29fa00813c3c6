// Pattern and content builders of block masks, and mask updates between steps.
using Xunit;

namespace NativeAttention.Tests;

public sealed class BlockMaskBuilderTests
{
    private static int[] Partial(FlexBlockMask mask, int row) => mask.PartialIndices.Slice(row * mask.MaxBlocksPerRow, mask.PartialCounts.Span[row]).ToArray();

    private static int[] Full(FlexBlockMask mask, int row) =>
        mask.FullCounts.IsEmpty ? [] : mask.FullIndices.Slice(row * mask.MaxBlocksPerRow, mask.FullCounts.Span[row]).ToArray();

    private static int[] All(FlexBlockMask mask, int row) => [.. Partial(mask, row).Concat(Full(mask, row)).Order()];

    [Fact]
    public void Causal_WithCausalPredicate_EqualsCausalReference()
    {
        // Nq = 40 against Nk = 70, blocks 16 x 32: the frontier blocks are partial, the ones before full.
        var grid = new BlockGrid(40, 70, 16, 32);
        var mask = BlockMasks.Causal(grid);
        var q = TestTensors.Uniform(ElementType.Float32, 1, 1.0, [1, 2, 40, 8]);
        var k = TestTensors.Uniform(ElementType.Float32, 2, 1.0, [1, 2, 70, 8]);
        var v = TestTensors.Uniform(ElementType.Float32, 3, 1.0, [1, 2, 70, 8]);
        var sparse = Reference.BlockSparse(q, k, v, new BlockSparseOptions { Mask = mask, Predicate = ElementPredicate.CausalMask });
        var flash = Reference.Flash(q, k, v, new FlashOptions { Causal = true });
        References.Tensors.AssertClose(flash.Output, sparse.Output, 1e-12);
        // Query block 0 sits at positions 30..45: key block 0 (0..31) crosses, block 1 (32..63) too.
        Assert.Equal(new[] { 0, 1 }, Partial(mask, 0));
        Assert.Empty(Full(mask, 0));
        // Query block 2 (positions 62..69): block 0 whole, blocks 1 and 2 cross.
        Assert.Equal(new[] { 0 }, Full(mask, 2));
        Assert.Equal(new[] { 1, 2 }, Partial(mask, 2));
    }

    [Fact]
    public void LocalSinksPowerAndVerticalSlash_ListTheHandWorkedBlocks()
    {
        var grid = new BlockGrid(160, 160, 16, 16); // 10 x 10 blocks, diagonal at block r
        Assert.Equal(new[] { 5, 6, 7 }, All(BlockMasks.Local(grid, 2), 7));
        Assert.Equal(new[] { 0, 1 }, All(BlockMasks.Sinks(grid, 2), 7));
        Assert.Equal(new[] { 0 }, All(BlockMasks.Sinks(grid, 2), 0));
        Assert.Equal(new[] { 1, 5, 7, 8, 9 }, All(BlockMasks.PowerStrided(grid), 9));
        Assert.Equal(new[] { 2, 5, 6 }, All(BlockMasks.VerticalSlash(grid, [2, 9], [0, 1]), 6));
        // Non-causal local: blocks before the diagonal only, all full.
        var open = BlockMasks.Local(grid, 1, causal: false);
        Assert.Equal(new[] { 3, 4 }, Full(open, 4));
        Assert.Empty(Partial(open, 4));
    }

    [Fact]
    public void UnionAndIntersection_CombineKinds()
    {
        var grid = new BlockGrid(64, 64, 16, 16);
        var local = BlockMasks.Local(grid, 1);
        var sinks = BlockMasks.Sinks(grid, 1);
        var union = BlockMasks.Union(local, sinks);
        Assert.Equal(new[] { 0, 2, 3 }, All(union, 3));
        Assert.Equal(new[] { 3 }, Partial(union, 3));
        var intersection = BlockMasks.Intersection(local, BlockMasks.Causal(grid));
        Assert.Equal(All(local, 3), All(intersection, 3));
        Assert.Equal(Partial(local, 3), Partial(intersection, 3));
        var other = BlockMasks.Causal(new BlockGrid(64, 64, 32, 16));
        Assert.Equal("second", Assert.Throws<ArgumentException>(() => BlockMasks.Union(local, other)).ParamName);
    }

    [Fact]
    public void AppendQueryBlockAndSetRow_ChangeOnlyThatRow()
    {
        var grid = new BlockGrid(48, 64, 16, 16);
        var mask = BlockMasks.Causal(grid);
        var appended = BlockMasks.AppendQueryBlock(mask, [3], [0, 1]);
        Assert.Equal(mask.PartialCounts.Length + 1, appended.PartialCounts.Length);
        for (int r = 0; r < 3; r++) Assert.Equal(All(mask, r), All(appended, r));
        Assert.Equal(new[] { 3 }, Partial(appended, 3));
        Assert.Equal(new[] { 0, 1 }, Full(appended, 3));

        var changed = BlockMasks.SetRow(mask, 0, 0, 1, [2], [0]);
        Assert.Equal(new[] { 2 }, Partial(changed, 1));
        Assert.Equal(new[] { 0 }, Full(changed, 1));
        Assert.Equal(All(mask, 0), All(changed, 0));
        Assert.Equal(All(mask, 2), All(changed, 2));
        var grown = BlockMasks.SetRow(mask, 0, 0, 0, [0, 1, 2, 3]);
        Assert.Equal(new[] { 0, 1, 2, 3 }, Partial(grown, 0));
        Assert.Equal(All(mask, 2), All(grown, 2));
        Assert.Equal("partial", Assert.Throws<ArgumentException>(() => BlockMasks.SetRow(mask, 0, 0, 0, [2, 1])).ParamName);
    }

    private static (TensorView Q, TensorView K) Inputs(int seed, int hq = 4, int hkv = 2, int n = 300) =>
        (TestTensors.Uniform(ElementType.Float32, seed, 2.0, [2, hq, n, 16]), TestTensors.Uniform(ElementType.Float32, seed + 1, 2.0, [2, hkv, n, 16]));

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Content_GammaOne_KeepsEveryCandidate(bool causal)
    {
        var (q, k) = Inputs(1);
        var result = BlockMasks.FromContent(q, k, new ContentMaskOptions { QueryBlockSize = 32, KeyBlockSize = 16, Gamma = 1.0, Causal = causal });
        Assert.Equal(1.0, result.Density);
        var grid = new BlockGrid(300, 300, 32, 16);
        var expected = causal ? BlockMasks.Causal(grid) : BlockMasks.Local(grid, grid.KeyBlocks, causal: false);
        int rows = grid.QueryBlocks;
        for (int row = 0; row < result.Mask.PartialCounts.Length; row++)
        {
            Assert.Equal(Partial(expected, row % rows), Partial(result.Mask, row));
            if (causal) Assert.Equal(Full(expected, row % rows), Full(result.Mask, row));
            else Assert.Equal(Enumerable.Range(0, grid.KeyBlocks), Full(result.Mask, row));
        }
    }

    [Fact]
    public void Content_TopK_KeepsExactlyKPlusTheForcedBlocks()
    {
        var (q, k) = Inputs(3);
        var grid = new BlockGrid(300, 300, 16, 16);
        const int topK = 3, sinks = 2;
        var result = BlockMasks.FromContent(q, k, new ContentMaskOptions { QueryBlockSize = 16, KeyBlockSize = 16, TopK = topK, SinkBlocks = sinks });
        long kept = 0;
        for (int row = 0; row < result.Mask.PartialCounts.Length; row++)
        {
            int qb = row % grid.QueryBlocks;
            var (seen, frontier) = grid.Causal(qb);
            var forced = Enumerable.Range(0, seen).Where(c => c < sinks || c >= frontier).ToHashSet();
            var all = All(result.Mask, row);
            Assert.Subset(all.ToHashSet(), forced);
            Assert.Equal(forced.Count + Math.Min(topK, seen - forced.Count), all.Length);
            kept += all.Length;
        }
        Assert.Equal(kept, result.KeptBlocks);
        Assert.True(result.Density is > 0 and < 1, $"density {result.Density}");
    }

    [Fact]
    public void Content_TopKPicksTheHighestPooledScores()
    {
        // One query block, three key blocks: the key blocks' means are e1, e2 and -e1; the query mean is e1. Top-1 with
        // no forced blocks picks block 0, not the orthogonal block 1 or the opposite block 2.
        var q = TestTensors.Zeros(ElementType.Float32, 1, 1, 16, 2);
        var k = TestTensors.Zeros(ElementType.Float32, 1, 1, 48, 2);
        var qv = new double[32];
        var kv = new double[96];
        for (int i = 0; i < 16; i++) qv[2 * i] = 1;
        for (int j = 0; j < 16; j++) { kv[2 * j] = 1; kv[2 * (16 + j) + 1] = 1; kv[2 * (32 + j)] = -1; }
        q.CopyFrom(qv);
        k.CopyFrom(kv);
        var result = BlockMasks.FromContent(q, k, new ContentMaskOptions
        {
            QueryBlockSize = 16, KeyBlockSize = 16, TopK = 1, SinkBlocks = 0, KeepDiagonal = false, Causal = false, Scale = 4,
        });
        Assert.Equal(new[] { 0 }, All(result.Mask, 0));
    }

    [Fact]
    public void Content_SimilarityGate_KeepsDissimilarKeyBlocks()
    {
        // Key block 1 alternates between e1 and -e1 (mean zero, cosine similarity 0): the gate keeps it although its
        // pooled score is the lowest; coherent blocks are left to top-k.
        var q = TestTensors.Zeros(ElementType.Float32, 1, 1, 16, 2);
        var k = TestTensors.Zeros(ElementType.Float32, 1, 1, 48, 2);
        var qv = new double[32];
        var kv = new double[96];
        for (int i = 0; i < 16; i++) qv[2 * i] = 1;
        for (int j = 0; j < 16; j++) { kv[2 * j] = 1; kv[2 * (16 + j)] = j % 2 == 0 ? 1 : -1; kv[2 * (32 + j) + 1] = 1; }
        q.CopyFrom(qv);
        k.CopyFrom(kv);
        var options = new ContentMaskOptions { QueryBlockSize = 16, KeyBlockSize = 16, TopK = 1, SinkBlocks = 0, KeepDiagonal = false, Causal = false };
        Assert.Equal(new[] { 0 }, All(BlockMasks.FromContent(q, k, options).Mask, 0));
        Assert.Equal(new[] { 0, 1 }, All(BlockMasks.FromContent(q, k, options with { SimilarityThreshold = 0.5 }).Mask, 0));
    }

    [Fact]
    public void Content_BadOptions_AreNamed()
    {
        var (q, k) = Inputs(5);
        var options = new ContentMaskOptions { QueryBlockSize = 16, KeyBlockSize = 16, TopK = 1 };
        Assert.Equal("options.TopK", Assert.Throws<ArgumentException>(() => BlockMasks.FromContent(q, k, options with { Gamma = 0.5 })).ParamName);
        Assert.Equal("options.Gamma", Assert.Throws<ArgumentException>(() => BlockMasks.FromContent(q, k, options with { TopK = null, Gamma = 1.5 })).ParamName);
        Assert.Equal("options.KeyBlockSize", Assert.Throws<ArgumentException>(() => BlockMasks.FromContent(q, k, options with { KeyBlockSize = 8 })).ParamName);
        var (_, k3) = Inputs(5, hkv: 3);
        Assert.Equal("key", Assert.Throws<ArgumentException>(() => BlockMasks.FromContent(q, k3, options)).ParamName);
    }
}
