// The block-sparse reference: a hand-listed causal mask, and equality with flash attention over the same visible set.
using Xunit;
using static NativeAttention.Tests.References.Tensors;

namespace NativeAttention.Tests.References;

public sealed class BlockSparseReferenceTests
{
    /// <summary>A Flex mask broadcast over batch and heads; unused slots hold -1 to show they are never read.</summary>
    internal static FlexBlockMask Flex(int queryBlock, int keyBlock, int capacity, int[][] partial, int[][]? full = null, int maskHeads = 1)
    {
        static (int[] Counts, int[] Indices) Pack(int[][] rows, int capacity)
        {
            var counts = rows.Select(r => r.Length).ToArray();
            var indices = Enumerable.Repeat(-1, rows.Length * capacity).ToArray();
            for (int r = 0; r < rows.Length; r++) rows[r].CopyTo(indices, r * capacity);
            return (counts, indices);
        }
        var (pc, pi) = Pack(partial, capacity);
        var mask = new FlexBlockMask
        {
            QueryBlockSize = queryBlock, KeyBlockSize = keyBlock, MaxBlocksPerRow = capacity, MaskHeads = maskHeads,
            PartialCounts = pc, PartialIndices = pi,
        };
        if (full is null) return mask;
        var (fc, fi) = Pack(full, capacity);
        return mask with { FullCounts = fc, FullIndices = fi };
    }

    [Fact]
    public void BlockSparse_OnePartialCausalBlock_SeesExactlyTheHandListedKeys()
    {
        // Nq = Nk = 4 in blocks of 2. Query block 0 lists key block 0 as partial (causal predicate): query 0 sees
        // {0}, query 1 sees {0, 1}. Query block 1 lists key block 0 as full and key block 1 as partial: query 2
        // sees {0, 1} + {2}, query 3 sees {0, 1} + {2, 3}. Zero queries make the weights uniform over the set and
        // one-hot values expose it: row 2 = [1/3, 1/3, 1/3, 0].
        var mask = Flex(2, 2, 2, partial: [[0], [1]], full: [[], [0]]);
        var options = new BlockSparseOptions { Mask = mask, Predicate = ElementPredicate.CausalMask };
        var r = Reference.BlockSparse(Zeros(1, 1, 4, 1), Zeros(1, 1, 4, 1), OneHotValues(1, 1, 4), options);
        Assert.Equal(new[] { 0 }, VisibleKeys(r, 0, 4));
        Assert.Equal(new[] { 0, 1 }, VisibleKeys(r, 1, 4));
        Assert.Equal(new[] { 0, 1, 2 }, VisibleKeys(r, 2, 4));
        Assert.Equal(new[] { 0, 1, 2, 3 }, VisibleKeys(r, 3, 4));
        AssertClose([1.0 / 3, 1.0 / 3, 1.0 / 3, 0], r.Output.AsSpan(8, 4), 1e-15);
        AssertClose([0, Math.Log(2), Math.Log(3), Math.Log(4)], r.LogSumExp, 1e-15);

        // Without the full block, query block 1 keeps only its own causal block: query 2 sees {2}, query 3 {2, 3}.
        var diagonal = Reference.BlockSparse(Zeros(1, 1, 4, 1), Zeros(1, 1, 4, 1), OneHotValues(1, 1, 4),
            options with { Mask = Flex(2, 2, 2, partial: [[0], [1]]) });
        Assert.Equal(new[] { 2 }, VisibleKeys(diagonal, 2, 4));
        Assert.Equal(new[] { 2, 3 }, VisibleKeys(diagonal, 3, 4));
    }

    [Fact]
    public void BlockSparse_EveryBlockFull_EqualsFlash()
    {
        // Nq = 7, Nk = 9 with blocks 3 x 4: short last blocks on both axes; GQA 2 query heads on 1 kv head.
        var q = Random(50, 1, 2, 2, 7, 4);
        var k = Random(51, 1, 2, 1, 9, 4);
        var v = Random(52, 1, 2, 1, 9, 3);
        var all = new[] { 0, 1, 2 };
        var mask = Flex(3, 4, 3, partial: [[], [], []], full: [all, all, all]);
        var sparse = Reference.BlockSparse(q, k, v, new BlockSparseOptions { Mask = mask, Predicate = ElementPredicate.CausalMask });
        var flash = Reference.Flash(q, k, v);
        AssertClose(flash.Output, sparse.Output, 1e-12);
        AssertClose(flash.LogSumExp, sparse.LogSumExp, 1e-12);
    }

    [Fact]
    public void BlockSparse_PartialBlocksWithCausalPredicate_EqualCausalFlash()
    {
        // Nq = 6 against Nk = 10 (bottom-right causal); blocks 4 x 4; only blocks touching the causal triangle are
        // listed: query block 0 (aligned positions 4..7) needs key blocks 0, 1; query block 1 (8..9) needs 0, 1, 2.
        var q = Random(53, 1, 1, 2, 6, 4);
        var k = Random(54, 1, 1, 2, 10, 4);
        var v = Random(55, 1, 1, 2, 10, 3);
        var mask = Flex(4, 4, 3, partial: [[1], [2]], full: [[0], [0, 1]]);
        var sparse = Reference.BlockSparse(q, k, v, new BlockSparseOptions { Mask = mask, Predicate = ElementPredicate.CausalMask, Scale = 0.3f });
        var flash = Reference.Flash(q, k, v, new FlashOptions { Causal = true, Scale = 0.3f });
        AssertClose(flash.Output, sparse.Output, 1e-12);
        AssertClose(flash.LogSumExp, sparse.LogSumExp, 1e-12);
    }

    [Fact]
    public void BlockSparse_WindowPredicateOnEveryBlock_EqualsFlashWindow()
    {
        var q = Random(56, 1, 1, 1, 9, 4);
        var k = Random(57, 1, 1, 1, 9, 4);
        var v = Random(58, 1, 1, 1, 9, 2);
        var all = new[] { 0, 1, 2 };
        var mask = Flex(4, 4, 3, partial: [all, all, all]);
        var sparse = Reference.BlockSparse(q, k, v, new BlockSparseOptions { Mask = mask, Predicate = ElementPredicate.SlidingWindow(2, 1) });
        var flash = Reference.Flash(q, k, v, new FlashOptions { WindowLeft = 2, WindowRight = 1 });
        AssertClose(flash.Output, sparse.Output, 1e-12);
    }

    [Fact]
    public void BlockSparse_DocumentPredicate_EqualsFlashWithMinusInfinityBiasAcrossDocuments()
    {
        int[] docs = [0, 0, 0, 1, 1, 2, 2, 2, 0, 1, 1, 1, 1, 1, 2, 2];
        var q = Random(59, 1, 2, 1, 8, 4);
        var k = Random(60, 1, 2, 1, 8, 4);
        var v = Random(61, 1, 2, 1, 8, 2);
        var bias = new double[2 * 8 * 8];
        for (int b = 0; b < 2; b++)
        for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++)
            bias[(b * 8 + i) * 8 + j] = docs[b * 8 + i] == docs[b * 8 + j] ? 0 : double.NegativeInfinity;
        var all = new[] { 0, 1, 2, 3 };
        var mask = Flex(2, 2, 4, partial: [all, all, all, all]);
        var sparse = Reference.BlockSparse(q, k, v, new BlockSparseOptions { Mask = mask, Predicate = ElementPredicate.Documents(docs, docs) });
        var flash = Reference.Flash(q, k, v, new FlashOptions { Bias = Of(bias, 2, 1, 8, 8) });
        AssertClose(flash.Output, sparse.Output, 1e-12);
    }

    [Fact]
    public void BlockSparse_CsrFormat_EqualsFlexFormatListingTheSameBlocks()
    {
        // Two heads with their own rows; head 1's query block 1 lists nothing and must give zeros and -inf.
        int[][] head0 = [[0], [0, 1], [1, 3], [2]];
        int[][] head1 = [[3], [], [0, 2, 3], [1, 2]];
        var flex = Flex(2, 2, 3, partial: [.. head0, .. head1], maskHeads: 2);
        int[] offsets = [0, 1, 3, 5, 6, 0, 1, 1, 4, 6];
        int[] columns = [0, 0, 1, 1, 3, 2, -1, 3, 0, 2, 3, 1, 2, -1];
        var csr = new BlockCsrMask { QueryBlockSize = 2, KeyBlockSize = 2, MaskHeads = 2, RowOffsets = offsets, ColumnIndices = columns, ColumnCapacity = 7 };
        var q = Random(62, 1, 1, 2, 8, 4);
        var k = Random(63, 1, 1, 2, 8, 4);
        var v = Random(64, 1, 1, 2, 8, 3);
        var predicate = ElementPredicate.SlidingWindow(3, 2);
        var fromFlex = Reference.BlockSparse(q, k, v, new BlockSparseOptions { Mask = flex, Predicate = predicate });
        var fromCsr = Reference.BlockSparse(q, k, v, new BlockSparseOptions { Mask = csr, Predicate = predicate });
        Assert.Equal(fromFlex.Output, fromCsr.Output);
        Assert.Equal(fromFlex.LogSumExp, fromCsr.LogSumExp);
        Assert.Equal(0, fromCsr.OutputAt(0, 1, 2, 0));
        Assert.Equal(double.NegativeInfinity, fromCsr.LogSumExpAt(0, 1, 3));
    }

    [Fact]
    public void BlockSparse_GetRow_ResolvesBroadcastAndCountsComputedPairs()
    {
        // Nq = Nk = 24 in blocks of 16: two query blocks (16 and 8 rows), two key blocks (16 and 8 keys).
        var mask = Flex(16, 16, 2, partial: [[0], [1]], full: [[], [0]]);
        var options = new BlockSparseOptions { Mask = mask, Predicate = ElementPredicate.CausalMask };
        var p = BlockSparseProblem.Create(Zeros(2, 3, 24, 1), Zeros(2, 3, 24, 1), Zeros(2, 3, 24, 1), Zeros(2, 3, 24, 1), options, null);
        var row = p.GetRow(1, 2, 1);
        Assert.Equal(new[] { 0 }, row.Full.ToArray());
        Assert.Equal(new[] { 1 }, row.Partial.ToArray());
        Assert.Equal(2, p.KeyBlocks);
        // Query block 0 (16 rows) x key block 0 (16 keys) + query block 1 (8 rows) x (16 + 8 keys).
        Assert.Equal(16 * 16 + 8 * 24, p.ComputedPairs(0, 0));
    }

    [Fact]
    public void BlockSparse_MaskPerGqaGroup_GivesEachGroupItsOwnRows()
    {
        // Hq = 4 on Hkv = 2: mask head 0 serves query heads 0, 1 and mask head 1 query heads 2, 3. Nq = Nk = 4 in
        // blocks of 2; mask head 0 lists only key block 0, mask head 1 only key block 1, both for both query blocks.
        var mask = Flex(2, 2, 1, partial: [[0], [0], [1], [1]], maskHeads: 2);
        var r = Reference.BlockSparse(Zeros(1, 4, 4, 1), Zeros(1, 2, 4, 1), OneHotValues(1, 2, 4), new BlockSparseOptions { Mask = mask });
        for (int h = 0; h < 4; h++)
            for (int i = 0; i < 4; i++)
                Assert.Equal(h < 2 ? new[] { 0, 1 } : new[] { 2, 3 }, VisibleKeys(r, h * 4 + i, 4));
        // The same as spelling the rows out per query head.
        var perHead = Flex(2, 2, 1, partial: [[0], [0], [0], [0], [1], [1], [1], [1]], maskHeads: 4);
        var spelled = Reference.BlockSparse(Zeros(1, 4, 4, 1), Zeros(1, 2, 4, 1), OneHotValues(1, 2, 4), new BlockSparseOptions { Mask = perHead });
        Assert.Equal(spelled.Output, r.Output);
    }

    [Fact]
    public void BlockSparse_PrefixLM_SeesThePrefixAndThenCausally()
    {
        // Nq = Nk = 5, one partial block of 8 covering everything; sample 0 has prefix 3, sample 1 prefix 0 (plain causal).
        var mask = Flex(8, 8, 1, partial: [[0]]);
        var options = new BlockSparseOptions { Mask = mask, Predicate = ElementPredicate.PrefixLM(3, 0) };
        var r = Reference.BlockSparse(Zeros(2, 1, 5, 1), Zeros(2, 1, 5, 1), OneHotValues(2, 1, 5), options);
        Assert.Equal(new[] { 0, 1, 2 }, VisibleKeys(r, 0, 5));
        Assert.Equal(new[] { 0, 1, 2 }, VisibleKeys(r, 2, 5));
        Assert.Equal(new[] { 0, 1, 2, 3 }, VisibleKeys(r, 3, 5));
        Assert.Equal(new[] { 0 }, VisibleKeys(r, 5, 5));
        Assert.Equal(new[] { 0, 1, 2 }, VisibleKeys(r, 7, 5));
    }

    [Fact]
    public void BlockSparse_CausalWindow_HidesKeysAfterTheQuery()
    {
        // Nq = 2 against Nk = 6: the queries sit at 4 and 5. Window (2, 1): query 4 sees 2..5; causal too: 2..4.
        var mask = Flex(8, 8, 1, partial: [[0]]);
        var open = Reference.BlockSparse(Zeros(1, 1, 2, 1), Zeros(1, 1, 6, 1), OneHotValues(1, 1, 6),
            new BlockSparseOptions { Mask = mask, Predicate = ElementPredicate.SlidingWindow(2, 1) });
        var causal = Reference.BlockSparse(Zeros(1, 1, 2, 1), Zeros(1, 1, 6, 1), OneHotValues(1, 1, 6),
            new BlockSparseOptions { Mask = mask, Predicate = ElementPredicate.SlidingWindow(2, 1, causal: true) });
        Assert.Equal(new[] { 2, 3, 4, 5 }, VisibleKeys(open, 0, 6));
        Assert.Equal(new[] { 2, 3, 4 }, VisibleKeys(causal, 0, 6));
        Assert.Equal(new[] { 3, 4, 5 }, VisibleKeys(causal, 1, 6));
    }

    [Fact]
    public void BlockSparse_Softcap_EqualsFlashSoftcap()
    {
        var q = Random(65, 3, 1, 2, 7, 4);
        var k = Random(66, 3, 1, 2, 7, 4);
        var v = Random(67, 1, 1, 2, 7, 3);
        var mask = Flex(4, 4, 2, partial: [[], []], full: [[0, 1], [0, 1]]);
        var sparse = Reference.BlockSparse(q, k, v, new BlockSparseOptions { Mask = mask, Softcap = 1.5f });
        var flash = Reference.Flash(q, k, v, new FlashOptions { Softcap = 1.5f });
        AssertClose(flash.Output, sparse.Output, 1e-12);
        AssertClose(flash.LogSumExp, sparse.LogSumExp, 1e-12);
    }
}
