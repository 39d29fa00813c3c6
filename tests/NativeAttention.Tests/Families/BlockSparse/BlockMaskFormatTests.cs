// Conversions between the Flex mask and block CSR, FlashInfer's BSR and the dense block matrix: lossless round trips,
// hand-written layouts, and bad input named.
using Xunit;

namespace NativeAttention.Tests;

public sealed class BlockMaskFormatTests
{
    /// <summary>Every row of a Flex mask as (full, partial) lists, with broadcast axes as given.</summary>
    private static (int[] Full, int[] Partial)[] Rows(FlexBlockMask mask)
    {
        int rows = mask.PartialCounts.Length;
        var result = new (int[], int[])[rows];
        for (int r = 0; r < rows; r++)
        {
            var partial = mask.PartialIndices.Slice(r * mask.MaxBlocksPerRow, mask.PartialCounts.Span[r]).ToArray();
            var full = mask.FullCounts.IsEmpty ? [] : mask.FullIndices.Slice(r * mask.MaxBlocksPerRow, mask.FullCounts.Span[r]).ToArray();
            result[r] = (full, partial);
        }
        return result;
    }

    private static void AssertSameRows(FlexBlockMask expected, FlexBlockMask actual)
    {
        Assert.Equal(expected.MaskBatch, actual.MaskBatch);
        Assert.Equal(expected.MaskHeads, actual.MaskHeads);
        Assert.Equal(expected.QueryBlockSize, actual.QueryBlockSize);
        Assert.Equal(expected.KeyBlockSize, actual.KeyBlockSize);
        var e = Rows(expected);
        var a = Rows(actual);
        Assert.Equal(e.Length, a.Length);
        for (int r = 0; r < e.Length; r++)
        {
            Assert.Equal(e[r].Full, a[r].Full);
            Assert.Equal(e[r].Partial, a[r].Partial);
        }
    }

    /// <summary>A random Flex mask: each block skipped, partial or full, rows ascending, capacity with slack (-1 filled).</summary>
    internal static FlexBlockMask RandomMask(Random random, int maskBatch, int maskHeads, int queryBlocks, int keyBlocks, bool withFull)
    {
        int rows = maskBatch * maskHeads * queryBlocks, capacity = keyBlocks + 1;
        var pc = new int[rows];
        var fc = new int[rows];
        var pi = Enumerable.Repeat(-1, rows * capacity).ToArray();
        var fi = Enumerable.Repeat(-1, rows * capacity).ToArray();
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < keyBlocks; c++)
            {
                int kind = random.Next(withFull ? 3 : 2);
                if (kind == 1) pi[r * capacity + pc[r]++] = c;
                else if (kind == 2) fi[r * capacity + fc[r]++] = c;
            }
        var mask = new FlexBlockMask
        {
            QueryBlockSize = 16, KeyBlockSize = 32, MaskBatch = maskBatch, MaskHeads = maskHeads, MaxBlocksPerRow = capacity,
            PartialCounts = pc, PartialIndices = pi,
        };
        return withFull ? mask with { FullCounts = fc, FullIndices = fi } : mask;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void RoundTrips_KeepEveryRow(int seed)
    {
        var random = new Random(seed);
        var partialOnly = RandomMask(random, 1, 3, 5, 7, withFull: false);
        AssertSameRows(partialOnly, BlockMasks.FromCsr(BlockMasks.ToCsr(partialOnly)));
        AssertSameRows(partialOnly, BlockMasks.FromBsr(BlockMasks.ToBsr(partialOnly)));
        AssertSameRows(partialOnly, BlockMasks.FromDense(BlockMasks.ToDense(partialOnly, 7)));

        var mixed = RandomMask(random, 2, 2, 4, 6, withFull: true);
        AssertSameRows(mixed, BlockMasks.FromDense(BlockMasks.ToDense(mixed, 6)));

        var fullOnly = RandomMask(random, 2, 1, 3, 5, withFull: true) with { PartialCounts = new int[6] };
        AssertSameRows(fullOnly, BlockMasks.FromBsr(BlockMasks.ToBsr(fullOnly), full: true));
    }

    [Fact]
    public void ToCsr_WritesOnnxRuntimeLayout()
    {
        // Two heads, three query blocks: rows [0], [0, 1], [2] and [], [1], [0, 2].
        var mask = BlockMasks.FromBsr(new BsrBlocks([0, 1, 3, 4, 4, 5, 7], [0, 0, 1, 2, 1, 0, 2], 16, 16, MaskHeads: 2));
        var csr = BlockMasks.ToCsr(mask);
        Assert.Equal(new[] { 0, 1, 3, 4, 0, 0, 1, 3 }, csr.RowOffsets.ToArray());
        Assert.Equal(4, csr.ColumnCapacity);
        Assert.Equal(new[] { 0, 0, 1, 2, 1, 0, 2, 0 }, csr.ColumnIndices.ToArray());
        var dense = BlockMasks.ToDense(mask, 3);
        Assert.Equal(new byte[] { 1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 1, 0, 1 }, dense.Blocks);
    }

    [Fact]
    public void ToCsr_WithFullBlocks_NeedsMergeFull()
    {
        var mask = BlockMasks.FromDense(new DenseBlocks([2, 1, 0, 1], 1, 1, 2, 2, 16, 16));
        var ex = Assert.Throws<ArgumentException>(() => BlockMasks.ToCsr(mask));
        Assert.Equal("mask.FullCounts", ex.ParamName);
        var merged = BlockMasks.ToCsr(mask, mergeFull: true);
        Assert.Equal(new[] { 0, 2, 3 }, merged.RowOffsets.ToArray());
        Assert.Equal(new[] { 0, 1, 1 }, merged.ColumnIndices.ToArray());
    }

    [Fact]
    public void BadInput_IsNamed()
    {
        Assert.Equal("bsr.Indices", Assert.Throws<ArgumentException>(() => BlockMasks.FromBsr(new BsrBlocks([0, 2], [1, 0], 16, 16))).ParamName);
        Assert.Equal("bsr.Indices", Assert.Throws<ArgumentException>(() => BlockMasks.FromBsr(new BsrBlocks([0, 2], [1, 1], 16, 16))).ParamName);
        Assert.Equal("bsr.Indptr", Assert.Throws<ArgumentException>(() => BlockMasks.FromBsr(new BsrBlocks([0, 3], [1, 2], 16, 16))).ParamName);
        Assert.Equal("bsr.Indptr", Assert.Throws<ArgumentException>(() => BlockMasks.FromBsr(new BsrBlocks([0, 1, 2], [1, 2], 16, 16, MaskHeads: 3))).ParamName);
        Assert.Equal("dense.Blocks", Assert.Throws<ArgumentException>(() => BlockMasks.FromDense(new DenseBlocks([3], 1, 1, 1, 1, 16, 16))).ParamName);
        Assert.Equal("dense.Blocks", Assert.Throws<ArgumentException>(() => BlockMasks.FromDense(new DenseBlocks([1, 1], 1, 1, 1, 1, 16, 16))).ParamName);
        var csr = new BlockCsrMask { QueryBlockSize = 16, KeyBlockSize = 16, RowOffsets = new[] { 0, 2 }, ColumnIndices = new[] { 3, 3 }, ColumnCapacity = 2 };
        Assert.Equal("mask.ColumnIndices", Assert.Throws<ArgumentException>(() => BlockMasks.FromCsr(csr)).ParamName);
        var wide = BlockMasks.FromDense(new DenseBlocks([1, 1, 1], 1, 1, 1, 3, 16, 16));
        Assert.Equal("mask.PartialIndices", Assert.Throws<ArgumentException>(() => BlockMasks.ToDense(wide, 2)).ParamName);
    }
}
