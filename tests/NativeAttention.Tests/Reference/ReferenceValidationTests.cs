// Bad inputs to every family raise ArgumentException naming the argument, before any computation.
using Xunit;
using static NativeAttention.Tests.References.Tensors;

namespace NativeAttention.Tests.References;

public sealed class ReferenceValidationTests
{
    private static ArgumentException AssertNames(string parameter, Action call)
    {
        var ex = Assert.Throws<ArgumentException>(call);
        Assert.Equal(parameter, ex.ParamName);
        return ex;
    }

    private static NeighborhoodOptions Kernel(params int[] kernel) => new() { KernelSize = kernel };

    [Fact]
    public void Flash_WrongRank_NamesTheQuery()
    {
        var ex = AssertNames("query", () => Reference.Flash(Zeros(1, 4, 8), Zeros(1, 1, 4, 8), Zeros(1, 1, 4, 8)));
        Assert.Contains("[B, Hq, Nq, Dqk]", ex.Message);
    }

    [Fact]
    public void Flash_HeadsNotDivisible_NamesTheKey() =>
        AssertNames("key", () => Reference.Flash(Zeros(1, 3, 4, 8), Zeros(1, 2, 4, 8), Zeros(1, 2, 4, 8)));

    [Fact]
    public void Flash_OutputAliasingTheKey_NamesTheOutput()
    {
        var shared = new float[64];
        var key = TensorView.FromMemory<float>(shared, 1, 1, 8, 8);
        var output = TensorView.FromMemory<float>(shared.AsMemory(32), 1, 1, 4, 8);
        AssertNames("output", () => FlashProblem.Create(Zeros(1, 1, 4, 8), key, Zeros(1, 1, 8, 8), output, null, null));
    }

    [Fact]
    public void Neighborhood_RankOutsideOneToThreeSpatialAxes_NamesTheQuery()
    {
        AssertNames("query", () => Reference.Neighborhood(Zeros(1, 4, 8), Zeros(1, 4, 8), Zeros(1, 4, 8), Kernel(3)));
        AssertNames("query", () => Reference.Neighborhood(Zeros(1, 1, 2, 2, 2, 2, 2), Zeros(1, 1, 2, 2, 2, 2, 2), Zeros(1, 1, 2, 2, 2, 2, 2), Kernel(1, 1, 1, 1)));
    }

    [Fact]
    public void Neighborhood_KeySpatialShapeMismatch_NamesTheKey()
    {
        var ex = AssertNames("key", () => Reference.Neighborhood(Zeros(1, 1, 4, 5, 2), Zeros(1, 1, 5, 4, 2), Zeros(1, 1, 5, 4, 2), Kernel(3, 3)));
        Assert.Contains("[4, 5]", ex.Message);
    }

    [Fact]
    public void Neighborhood_HeadsNotDivisible_NamesTheKey() =>
        AssertNames("key", () => Reference.Neighborhood(Zeros(1, 3, 5, 2), Zeros(1, 2, 5, 2), Zeros(1, 2, 5, 2), Kernel(3)));

    [Fact]
    public void Neighborhood_ValueHeadsDifferFromKeys_NamesTheValue() =>
        AssertNames("value", () => Reference.Neighborhood(Zeros(1, 2, 5, 2), Zeros(1, 2, 5, 2), Zeros(1, 1, 5, 2), Kernel(3)));

    [Fact]
    public void Neighborhood_KernelLargerThanAxis_NamesKernelSize()
    {
        AssertNames("options.KernelSize", () => Reference.Neighborhood(Zeros(1, 1, 3, 2), Zeros(1, 1, 3, 2), Zeros(1, 1, 3, 2), Kernel(4)));
        // k * dilation = 3 * 2 = 6 > 5.
        AssertNames("options.KernelSize", () => Reference.Neighborhood(Zeros(1, 1, 5, 2), Zeros(1, 1, 5, 2), Zeros(1, 1, 5, 2), Kernel(3) with { Dilation = [2] }));
        AssertNames("options.KernelSize", () => Reference.Neighborhood(Zeros(1, 1, 5, 2), Zeros(1, 1, 5, 2), Zeros(1, 1, 5, 2), Kernel(0)));
    }

    [Fact]
    public void Neighborhood_DilationZero_NamesDilation() =>
        AssertNames("options.Dilation", () => Reference.Neighborhood(Zeros(1, 1, 5, 2), Zeros(1, 1, 5, 2), Zeros(1, 1, 5, 2), Kernel(3) with { Dilation = [0] }));

    [Fact]
    public void Neighborhood_StrideLargerThanKernel_NamesStride() =>
        AssertNames("options.Stride", () => Reference.Neighborhood(Zeros(1, 1, 5, 2), Zeros(1, 1, 5, 2), Zeros(1, 1, 5, 2), Kernel(3) with { Stride = [4] }));

    [Fact]
    public void Neighborhood_PerAxisArrayOfWrongLength_NamesTheArray()
    {
        AssertNames("options.KernelSize", () => Reference.Neighborhood(Zeros(1, 1, 4, 4, 2), Zeros(1, 1, 4, 4, 2), Zeros(1, 1, 4, 4, 2), Kernel(3)));
        AssertNames("options.Causal", () => Reference.Neighborhood(Zeros(1, 1, 4, 4, 2), Zeros(1, 1, 4, 4, 2), Zeros(1, 1, 4, 4, 2), Kernel(3, 3) with { Causal = [true] }));
    }

    [Fact]
    public void Neighborhood_AdditionalKeysWithoutValues_NamesTheMissingValues() =>
        AssertNames("options.AdditionalValues", () => Reference.Neighborhood(Zeros(1, 1, 5, 2), Zeros(1, 1, 5, 2), Zeros(1, 1, 5, 2),
            Kernel(3) with { AdditionalKeys = Zeros(1, 1, 2, 2) }));

    [Fact]
    public void Neighborhood_OutputAliasingTheQuery_NamesTheOutput()
    {
        var query = Zeros(1, 1, 5, 2);
        AssertNames("output", () => NeighborhoodProblem.Create(query, Zeros(1, 1, 5, 2), Zeros(1, 1, 5, 2), query, Kernel(3), null));
    }

    [Fact]
    public void Neighborhood_LogSumExpWithHeadDimension_NamesTheLse() =>
        AssertNames("logSumExp", () => NeighborhoodProblem.Create(Zeros(1, 1, 5, 2), Zeros(1, 1, 5, 2), Zeros(1, 1, 5, 2), Zeros(1, 1, 5, 2), Kernel(3), Zeros(1, 1, 5, 2)));

    private static BlockSparseOptions Sparse(BlockMask mask) => new() { Mask = mask };

    private static void SparseCall(BlockMask mask) =>
        Reference.BlockSparse(Zeros(1, 2, 8, 2), Zeros(1, 2, 8, 2), Zeros(1, 2, 8, 2), Sparse(mask));

    [Fact]
    public void BlockSparse_BlockIndexOutOfRange_NamesPartialIndicesWithRowAndValue()
    {
        // Nk = 8 in blocks of 2 gives key blocks 0..3; query block 1 lists 7.
        var mask = BlockSparseReferenceTests.Flex(2, 2, 2, partial: [[0], [7], [], []]);
        var ex = AssertNames("options.Mask.PartialIndices", () => SparseCall(mask));
        Assert.Contains("query block 1", ex.Message);
        Assert.Contains("is 7", ex.Message);
        Assert.Contains("[0, 4)", ex.Message);
    }

    [Fact]
    public void BlockSparse_BlockListedAsFullAndPartial_NamesPartialIndices()
    {
        var mask = BlockSparseReferenceTests.Flex(2, 2, 2, partial: [[0], [1], [], []], full: [[], [], [], [1]]);
        SparseCall(mask); // different rows: fine
        var duplicate = BlockSparseReferenceTests.Flex(2, 2, 2, partial: [[0], [1], [], []], full: [[], [1], [], []]);
        var ex = AssertNames("options.Mask.PartialIndices", () => SparseCall(duplicate));
        Assert.Contains("second time", ex.Message);
    }

    [Fact]
    public void BlockSparse_UnsortedRow_NamesPartialIndices()
    {
        var mask = BlockSparseReferenceTests.Flex(2, 2, 2, partial: [[1, 0], [], [], []]);
        var ex = AssertNames("options.Mask.PartialIndices", () => SparseCall(mask));
        Assert.Contains("ascending", ex.Message);
        AssertNames("options.Mask.ColumnIndices", () => SparseCall(Csr([0, 2, 3], [1, 0, 1])));
    }

    [Fact]
    public void BlockSparse_CountAboveKeyBlocks_NamesPartialCounts()
    {
        // Nk = 8 in blocks of 4 gives 2 key blocks; capacity 3 allows a count of 3.
        var mask = BlockSparseReferenceTests.Flex(4, 4, 3, partial: [[0, 1, 1], []]);
        AssertNames("options.Mask.PartialCounts", () => SparseCall(mask));
    }

    [Fact]
    public void BlockSparse_NegativePrefixOrWrongCount_NamesPrefixLengths()
    {
        var mask = BlockSparseReferenceTests.Flex(2, 2, 1, partial: [[0], [1], [2], [3]]);
        AssertNames("options.Predicate.PrefixLengths", () => Reference.BlockSparse(Zeros(1, 2, 8, 2), Zeros(1, 2, 8, 2), Zeros(1, 2, 8, 2),
            Sparse(mask) with { Predicate = ElementPredicate.PrefixLM(-1) }));
        AssertNames("options.Predicate.PrefixLengths", () => Reference.BlockSparse(Zeros(1, 2, 8, 2), Zeros(1, 2, 8, 2), Zeros(1, 2, 8, 2),
            Sparse(mask) with { Predicate = ElementPredicate.PrefixLM(1, 2) }));
    }

    [Fact]
    public void BlockSparse_CountAboveCapacity_NamesPartialCounts()
    {
        var mask = BlockSparseReferenceTests.Flex(2, 2, 1, partial: [[0], [1], [], []]) with { PartialCounts = new[] { 1, 2, 0, 0 } };
        AssertNames("options.Mask.PartialCounts", () => SparseCall(mask));
    }

    [Fact]
    public void BlockSparse_CountsOfWrongLength_NamePartialCounts()
    {
        var mask = BlockSparseReferenceTests.Flex(2, 2, 1, partial: [[0], [1], [2]]);
        AssertNames("options.Mask.PartialCounts", () => SparseCall(mask));
    }

    [Fact]
    public void BlockSparse_MaskHeadsNeitherOneNorAll_NamesMaskHeads()
    {
        var mask = BlockSparseReferenceTests.Flex(2, 2, 1, partial: [[0], [1], [2], [3]]) with { MaskHeads = 3 };
        AssertNames("options.Mask.MaskHeads", () => SparseCall(mask));
    }

    [Fact]
    public void BlockSparse_ZeroBlockSize_NamesTheBlockSize()
    {
        var mask = BlockSparseReferenceTests.Flex(2, 2, 1, partial: [[0], [1], [2], [3]]) with { KeyBlockSize = 0 };
        AssertNames("options.Mask.KeyBlockSize", () => SparseCall(mask));
    }

    private static BlockCsrMask Csr(int[] offsets, int[] columns) =>
        new() { QueryBlockSize = 4, KeyBlockSize = 4, RowOffsets = offsets, ColumnIndices = columns, ColumnCapacity = columns.Length };

    [Fact]
    public void BlockSparse_CsrOffsetsDecreasing_NamesRowOffsets()
    {
        SparseCall(Csr([0, 2, 3], [0, 1, 1]));
        var ex = AssertNames("options.Mask.RowOffsets", () => SparseCall(Csr([0, 2, 1], [0, 1, 1])));
        Assert.Contains("non-decreasing", ex.Message);
    }

    [Fact]
    public void BlockSparse_CsrOffsetsNotStartingAtZeroOrBeyondCapacity_NameRowOffsets()
    {
        AssertNames("options.Mask.RowOffsets", () => SparseCall(Csr([1, 2, 3], [0, 1, 1])));
        AssertNames("options.Mask.RowOffsets", () => SparseCall(Csr([0, 2, 4], [0, 1, 1])));
    }

    [Fact]
    public void BlockSparse_CsrColumnOutOfRange_NamesColumnIndices() =>
        AssertNames("options.Mask.ColumnIndices", () => SparseCall(Csr([0, 1, 2], [0, 2])));

    [Fact]
    public void BlockSparse_DocumentIdsOfWrongLength_NameTheIds()
    {
        var mask = BlockSparseReferenceTests.Flex(2, 2, 1, partial: [[0], [1], [2], [3]]);
        var options = Sparse(mask) with { Predicate = ElementPredicate.Documents(new int[8], new int[7]) };
        AssertNames("options.Predicate.KeyDocuments", () => Reference.BlockSparse(Zeros(1, 2, 8, 2), Zeros(1, 2, 8, 2), Zeros(1, 2, 8, 2), options));
    }

    [Fact]
    public void Linear_StateOfWrongShape_NamesTheInitialState()
    {
        var ex = AssertNames("initialState", () => Reference.LinearChunked(Zeros(1, 2, 4, 3), Zeros(1, 2, 4, 3), Zeros(1, 2, 4, 5), null, Zeros(1, 2, 3, 4)));
        Assert.Contains("[1, 2, 3, 5]", ex.Message);
        // Normalised states carry the normaliser column: [B, H, F, Dv + 1].
        AssertNames("initialState", () => Reference.LinearChunked(Zeros(1, 2, 4, 3), Zeros(1, 2, 4, 3), Zeros(1, 2, 4, 5), new LinearOptions { Normalize = true }, Zeros(1, 2, 3, 5)));
    }

    [Fact]
    public void Linear_KeyShapeDifferentFromQuery_NamesTheKey() =>
        AssertNames("key", () => Reference.LinearChunked(Zeros(1, 2, 4, 3), Zeros(1, 1, 4, 3), Zeros(1, 2, 4, 5)));

    [Fact]
    public void Linear_PositiveOrMissingHeadDecay_NamesHeadLogDecay()
    {
        AssertNames("options.HeadLogDecay", () => Reference.LinearChunked(Zeros(1, 2, 4, 3), Zeros(1, 2, 4, 3), Zeros(1, 2, 4, 5),
            new LinearOptions { Decay = DecayKind.PerHead, HeadLogDecay = new[] { -0.1f, 0.2f } }));
        AssertNames("options.HeadLogDecay", () => Reference.LinearChunked(Zeros(1, 2, 4, 3), Zeros(1, 2, 4, 3), Zeros(1, 2, 4, 5),
            new LinearOptions { Decay = DecayKind.PerHead, HeadLogDecay = new[] { -0.1f } }));
    }

    [Fact]
    public void Linear_PerTokenDecayWithoutGates_NamesLogGate() =>
        AssertNames("options.LogGate", () => Reference.LinearChunked(Zeros(1, 2, 4, 3), Zeros(1, 2, 4, 3), Zeros(1, 2, 4, 5),
            new LinearOptions { Decay = DecayKind.PerToken }));

    [Fact]
    public void Linear_NonCausalWithInitialState_NamesTheInitialState() =>
        AssertNames("initialState", () => Reference.LinearChunked(Zeros(1, 2, 4, 3), Zeros(1, 2, 4, 3), Zeros(1, 2, 4, 5),
            new LinearOptions { Causal = false }, Zeros(1, 2, 3, 5)));

    [Fact]
    public void Linear_ChunkSizeZeroOrNegativeEpsilon_NameTheOption()
    {
        AssertNames("options.ChunkSize", () => Reference.LinearChunked(Zeros(1, 2, 4, 3), Zeros(1, 2, 4, 3), Zeros(1, 2, 4, 5), new LinearOptions { ChunkSize = 0 }));
        AssertNames("options.Epsilon", () => Reference.LinearChunked(Zeros(1, 2, 4, 3), Zeros(1, 2, 4, 3), Zeros(1, 2, 4, 5), new LinearOptions { Epsilon = -1 }));
    }

    [Fact]
    public void Linear_OutputOrFinalStateAliasingAnInput_NamesTheOutput()
    {
        var value = Zeros(1, 2, 4, 5);
        AssertNames("output", () => LinearProblem.Create(Zeros(1, 2, 4, 3), Zeros(1, 2, 4, 3), value, value, null, null, null));
        var initial = Zeros(1, 2, 3, 5);
        AssertNames("finalState", () => LinearProblem.Create(Zeros(1, 2, 4, 3), Zeros(1, 2, 4, 3), value, Zeros(1, 2, 4, 5), null, initial, initial));
    }
}
