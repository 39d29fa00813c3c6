// Visible key sets listed by hand for the masks the references now compute themselves (flash windows and causal with
// Nq != Nk, varlen bounds, KV-cache paging, block-sparse predicates), and the references' own 16-bit rounding.
using Xunit;
using static NativeAttention.Tests.References.Tensors;

namespace NativeAttention.Tests.References;

public sealed class ReferenceVisibilityTests
{
    /// <summary>Zero queries make a row's weights uniform over its visible keys; one-hot values expose the set.</summary>
    private static int[][] FlashSets(int nq, int nk, FlashOptions options)
    {
        var r = Reference.Flash(Zeros(1, 1, nq, 1), Zeros(1, 1, nk, 1), OneHotValues(1, 1, nk), options);
        return Enumerable.Range(0, nq).Select(i => VisibleKeys(r, i, nk)).ToArray();
    }

    [Fact]
    public void Flash_WindowWithFewerQueriesThanKeys_CountsFromTheAlignedPosition()
    {
        // Nq = 2, Nk = 5: query i sits at i' = i + 3. Window (1, 0) keeps i' - 1 <= j <= i'.
        Assert.Equal([[2, 3], [3, 4]], FlashSets(2, 5, new FlashOptions { WindowLeft = 1, WindowRight = 0 }));
        // Window (0, 1) keeps i' <= j <= i' + 1, cut at the last key.
        Assert.Equal([[3, 4], [4]], FlashSets(2, 5, new FlashOptions { WindowLeft = 0, WindowRight = 1 }));
        // Left only: j >= i' - 2, everything to the right.
        Assert.Equal([[1, 2, 3, 4], [2, 3, 4]], FlashSets(2, 5, new FlashOptions { WindowLeft = 2 }));
    }

    [Fact]
    public void Flash_CausalWithMoreQueriesThanKeys_LeavesTheFirstRowsEmpty()
    {
        // Nq = 4, Nk = 2: i' = i - 2, so rows 0 and 1 see nothing (zeros, LSE -inf), row 2 sees {0}, row 3 {0, 1}.
        var options = new FlashOptions { Causal = true };
        Assert.Equal([[], [], [0], [0, 1]], FlashSets(4, 2, options));
        var r = Reference.Flash(Zeros(1, 1, 4, 1), Zeros(1, 1, 2, 1), OneHotValues(1, 1, 2), options);
        Assert.Equal([double.NegativeInfinity, double.NegativeInfinity, 0, Math.Log(2)], r.LogSumExp!);
    }

    [Fact]
    public void Flash_CausalWithFewerQueriesThanKeys_EndsAtTheAlignedPosition()
    {
        // Nq = 2, Nk = 4: i' = i + 2, so row 0 sees keys 0..2 and row 1 sees 0..3. Window (1, -1) with causal: 1..2, 2..3.
        Assert.Equal([[0, 1, 2], [0, 1, 2, 3]], FlashSets(2, 4, new FlashOptions { Causal = true }));
        Assert.Equal([[1, 2], [2, 3]], FlashSets(2, 4, new FlashOptions { Causal = true, WindowLeft = 1 }));
    }

    [Fact]
    public void FlashVarlen_EachSequenceAlignsAgainstItsOwnUsedKeys()
    {
        // Sequence 0: 2 queries, keys rows 0..2 (3 used). Sequence 1: 1 query, key rows 3..6 of which 2 used.
        // Causal: sequence 0 rows sit at 1, 2 -> {0, 1}, {0, 1, 2}; sequence 1's query sits at 1 -> packed keys {3, 4}.
        var layout = new VarlenLayout(new[] { 0, 2, 3 }, new[] { 0, 3, 7 }, new[] { 3, 2 });
        var values = OneHotValues(1, 1, 7).Reshape(7, 1, 7);
        var r = Reference.FlashVarlen(Zeros(3, 1, 1), Zeros(7, 1, 1), values, layout, new FlashOptions { Causal = true });
        Assert.Equal([0, 1], VisibleKeys(r, 0, 7));
        Assert.Equal([0, 1, 2], VisibleKeys(r, 1, 7));
        Assert.Equal([3, 4], VisibleKeys(r, 2, 7));
    }

    [Fact]
    public void FlashKvCache_PagedPositionsAreReadThroughTheBlockTable()
    {
        // Page size 2, four blocks. Element 0 has 3 tokens in blocks [3, 1]: positions 0, 1 -> block 3 slots 0, 1
        // (physical rows 6, 7), position 2 -> block 1 slot 0 (row 2). Element 1 has 2 tokens in blocks [0, 2]: rows 0, 1.
        // Values one-hot on the physical row (block * 2 + slot) expose which rows each query reads.
        var values = OneHotValues(1, 1, 8).Reshape(4, 1, 2, 8);
        var cache = new KvCacheOptions { CacheSeqLens = new[] { 3, 2 }, BlockTable = new[] { 3, 1, 0, 2 }, PageSize = 2 };
        var r = Reference.FlashKvCache(Zeros(2, 1, 2, 1), Zeros(4, 1, 2, 1), values, cache, new FlashOptions { Causal = true });
        // Element 0, Nq = 2 against L = 3: query 0 sits at position 1 (rows 6, 7), query 1 at position 2 (rows 2, 6, 7).
        Assert.Equal([6, 7], VisibleKeys(r, 0, 8));
        Assert.Equal([2, 6, 7], VisibleKeys(r, 1, 8));
        // Element 1, L = 2: query 0 at position 0 (row 0), query 1 at position 1 (rows 0, 1).
        Assert.Equal([0], VisibleKeys(r, 2, 8));
        Assert.Equal([0, 1], VisibleKeys(r, 3, 8));
    }

    [Fact]
    public void BlockSparse_WindowPredicateWithFewerQueriesThanKeys_AlignsBottomRight()
    {
        // Nq = 2, Nk = 6, one query block listing key blocks 0..2 as partial; window (1, 0) around i' = i + 4.
        var mask = BlockSparseReferenceTests.Flex(2, 2, 3, partial: [[0, 1, 2]]);
        var options = new BlockSparseOptions { Mask = mask, Predicate = ElementPredicate.SlidingWindow(1, 0) };
        var r = Reference.BlockSparse(Zeros(1, 1, 2, 1), Zeros(1, 1, 6, 1), OneHotValues(1, 1, 6), options);
        Assert.Equal([3, 4], VisibleKeys(r, 0, 6));
        Assert.Equal([4, 5], VisibleKeys(r, 1, 6));
        // Causal predicate: keys up to i'; block 2 listed as full instead keeps all of it.
        var causal = Reference.BlockSparse(Zeros(1, 1, 2, 1), Zeros(1, 1, 6, 1), OneHotValues(1, 1, 6),
            options with { Predicate = ElementPredicate.CausalMask, Mask = BlockSparseReferenceTests.Flex(2, 2, 3, partial: [[0, 1]], full: [[2]]) });
        Assert.Equal([0, 1, 2, 3, 4, 5], VisibleKeys(causal, 0, 6));
    }

    /// <summary>FlashNaive of one key with score 0: the output is the value rounded to <paramref name="type"/>.</summary>
    private static double NaiveStore(double x, ElementType type) =>
        Reference.FlashNaive(Zeros(1, 1, 1, 1), Zeros(1, 1, 1, 1), Of([x], 1, 1, 1, 1), null, type).Output[0];

    [Fact]
    public void FlashNaive_Rounds16BitValuesToNearestEven()
    {
        // bfloat16 keeps 8 significant bits: spacing 2^-7 above 1.
        Assert.Equal(1 + Math.Pow(2, -7), NaiveStore(1 + 3 * Math.Pow(2, -9), ElementType.BFloat16));      // nearest, not truncated
        Assert.Equal(1 + 2 * Math.Pow(2, -7), NaiveStore(1 + 3 * Math.Pow(2, -8), ElementType.BFloat16));  // tie to even
        Assert.Equal(1.0, NaiveStore(1 + Math.Pow(2, -8), ElementType.BFloat16));                           // tie to even
        Assert.Equal(-(1 + Math.Pow(2, -7)), NaiveStore(-(1 + 3 * Math.Pow(2, -9)), ElementType.BFloat16));
        // float16 keeps 11: spacing 2^-10 above 1, subnormals 2^-24 apart, 65520 overflows.
        Assert.Equal(1 + Math.Pow(2, -10), NaiveStore(1 + 3 * Math.Pow(2, -12), ElementType.Float16));
        Assert.Equal(Math.Pow(2, -24), NaiveStore(3 * Math.Pow(2, -26), ElementType.Float16));
        Assert.Equal(65504, NaiveStore(65504, ElementType.Float16));
        Assert.Equal(double.PositiveInfinity, NaiveStore(65520, ElementType.Float16));
    }
}
