// Block-sparse attention kernels against the float64 reference and metamorphic properties, written once per backend.
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace NativeAttention.Tests;

/// <summary>
/// Block-sparse attention on one backend: random problems over every option (mask formats, per-head/per-group/shared
/// masks, every predicate, softcap, GQA, LSE, dtypes, decode splits) against <see cref="Reference.BlockSparse"/>, the
/// family's metamorphic properties against the backend's own flash attention, and bad input named.
/// </summary>
public abstract class BlockSparseTests
{
    /// <summary>The backend under test.</summary>
    protected abstract Backend Backend { get; }

    private static readonly Gen<BlockSparseCase> Cases = Gen.Choose(0, int.MaxValue).Select(seed => (BlockSparseCase)BlockSparseCase.SampleCase(new Random(seed)));

    /// <summary>A context on the backend, or a skip while the backend has no block-sparse kernels yet.</summary>
    private AttentionContext Context(int? vectorBits = null)
    {
        var context = vectorBits is int bits && Backend == Backend.Cpu
            ? new Cpu.CpuContext(new ContextOptions { Threads = 2 }) { ForcedVectorBits = bits }
            : TestBackend.CreateOrSkip(Backend, threads: 2);
        try
        {
            CaseRunner.Run(context, Tiny, Tiny.CreateTensors());
        }
        catch (NotSupportedException e)
        {
            context.Dispose();
            Skip.If(true, $"{Backend} has no block-sparse kernels yet: {e.Message}");
        }
        return context;
    }

    private static readonly BlockSparseCase Tiny = new() { QueryLength = 16, KeyLength = 16, HeadDim = 8, ValueDim = 8, QueryBlock = 16, KeyBlock = 16, Density = 1 };

    private static void AssertPassed(VerificationResult result)
    {
        if (!result.Passed) Assert.Fail(result.ToString());
    }

    private void CheckCases(Gen<BlockSparseCase> cases, int count, int? vectorBits = null)
    {
        using var context = Context(vectorBits);
        Properties.Check(Arb.From(cases), c => AssertPassed(CaseVerifier.Verify(context, c)), count);
    }

    [SkippableFact]
    public void BlockSparse_RandomProblems_MatchReference() => CheckCases(Cases, count: 60);

    /// <summary>Random block-sparse cases at small magnitudes (small keys and values, large queries), mostly binary16.</summary>
    [SkippableFact]
    public void BlockSparse_SmallInputs_MatchReference()
    {
        using var context = Context();
        SmallInputs.Check(context, BlockSparseCase.Registration, count: 12);
    }

    [SkippableFact]
    public void BlockSparse_EveryVectorWidth_MatchesReference()
    {
        Skip.If(Backend != Backend.Cpu, "Vector widths are a CPU notion.");
        foreach (int bits in new[] { 0, 128, 256, 512 }.Where(b => b <= Cpu.CpuFeatures.VectorBits))
            CheckCases(Cases, count: 8, vectorBits: bits);
    }

    [SkippableFact]
    public void BlockSparse_WideGroupsAndPerHeadMasks_MatchReference() =>
        // Many query heads per kv head: head chunks, several column groups per item, and per-head rows that differ
        // inside one column group (the per-column kinds path).
        CheckCases(from c in Cases
                   from g in Gen.Elements(4, 5, 8)
                   from sharing in Gen.Elements(BlockSparseCase.MaskSharing.PerHead, BlockSparseCase.MaskSharing.PerGroup)
                   select c with { KeyValueHeads = 1, QueryHeads = g, Batch = 1, Sharing = sharing, QueryLength = Math.Min(c.QueryLength, 70) }, count: 12);

    [SkippableFact]
    public void BlockSparse_DecodeOverLongRows_SplitsAndMatchesReference() =>
        // One query per sequence against a long key range and a single kv head: few items, so the key blocks are split
        // and the partial results merged.
        CheckCases(from c in Cases
                   from nk in Gen.Choose(1200, 3000)
                   from groupSize in Gen.Elements(1, 4)
                   select c with { QueryLength = 1, KeyLength = nk, Batch = 1, KeyValueHeads = 1, QueryHeads = groupSize, Tril = false, Density = 0.5 }, count: 8);

    [SkippableFact]
    public void BlockSparse_OneQueryPerKvHead_MatchesReference() =>
        // Decoding with one query head per kv head: every item holds one query column (the CPU's single-column row
        // kernel), under every predicate, softcap, type and mask format the sampler draws.
        CheckCases(from c in Cases select c with { QueryLength = 1, QueryHeads = c.KeyValueHeads, Tril = false }, count: 30);

    // ---- Metamorphic properties against the backend's own flash attention ----

    private static double[] Output(AttentionContext context, BlockSparseCase c, out double[] lse)
    {
        var tensors = c.CreateTensors();
        CaseRunner.Run(context, c, tensors);
        lse = tensors.LogSumExp.ToDoubleArray();
        return tensors.Output.ToDoubleArray();
    }

    private static double[] FlashOutput(AttentionContext context, BlockSparseCase c, FlashOptions options, out double[] lse)
    {
        var tensors = c.CreateTensors();
        using var on = new OnContext(context);
        var o = on.Put(tensors.Output);
        var l = on.Put(tensors.LogSumExp);
        context.Flash(on.Put(tensors.Query), on.Put(tensors.Key), on.Put(tensors.Value), o, options with { Scale = c.Scale, Softcap = c.Softcap }, l);
        on.Back(o, tensors.Output);
        on.Back(l, tensors.LogSumExp);
        lse = tensors.LogSumExp.ToDoubleArray();
        return tensors.Output.ToDoubleArray();
    }

    private static void AssertNear(double[] expected, double[] actual, string what, double tolerance = 2e-5)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Where(double.IsFinite).Select(Math.Abs).DefaultIfEmpty(0).Max();
        for (int i = 0; i < expected.Length; i++)
        {
            if (expected[i] == actual[i]) continue;
            if (!(Math.Abs(expected[i] - actual[i]) <= tolerance * (1 + scale)))
                Assert.Fail($"{what}: element {i} is {actual[i]}, expected {expected[i]}");
        }
    }

    private static readonly Gen<BlockSparseCase> Float32Cases = Cases.Select(c => c with { ElementType = ElementType.Float32 });

    [SkippableFact]
    public void BlockSparse_AllBlocksKept_EqualsFlash()
    {
        using var context = Context();
        // Every block listed, as full blocks under any predicate or as partial blocks under none: plain attention.
        var cases = from c in Float32Cases
                    from full in Gen.Elements(true, false)
                    select c with
                    {
                        Density = 1, Tril = false, FullFraction = full ? 1 : 0, Format = full ? BlockSparseCase.MaskFormat.Flex : c.Format,
                        Predicate = full ? c.Predicate : ElementPredicateKind.None,
                    };
        Properties.Check(Arb.From(cases), c =>
        {
            var sparse = Output(context, c, out var sparseLse);
            var flash = FlashOutput(context, c, new FlashOptions(), out var flashLse);
            AssertNear(flash, sparse, c.ToString());
            AssertNear(flashLse, sparseLse, c + " (LSE)");
        }, 20);
    }

    [SkippableFact]
    public void BlockSparse_CausalBlocksWithCausalPredicate_EqualsCausalFlash()
    {
        using var context = Context();
        var cases = from c in Float32Cases
                    from full in Gen.Elements(0.0, 0.5, 1.0)
                    select c with { Density = 1, Tril = true, FullFraction = full, Predicate = ElementPredicateKind.Causal };
        Properties.Check(Arb.From(cases), c =>
        {
            var sparse = Output(context, c, out var sparseLse);
            var flash = FlashOutput(context, c, new FlashOptions { Causal = true }, out var flashLse);
            AssertNear(flash, sparse, c.ToString());
            AssertNear(flashLse, sparseLse, c + " (LSE)");
        }, 20);
    }

    [SkippableFact]
    public void BlockSparse_FlexCsrBsrDense_GiveIdenticalResults()
    {
        using var context = Context();
        // Partial blocks only, so that every format holds the same mask.
        Properties.Check(Arb.From(Cases.Select(c => c with { FullFraction = 0 })), c =>
        {
            var flex = Output(context, c with { Format = BlockSparseCase.MaskFormat.Flex }, out var flexLse);
            foreach (var format in new[] { BlockSparseCase.MaskFormat.Csr, BlockSparseCase.MaskFormat.Bsr, BlockSparseCase.MaskFormat.Dense })
            {
                var other = Output(context, c with { Format = format }, out var otherLse);
                Assert.Equal(flex, other);
                Assert.Equal(flexLse, otherLse);
            }
        }, 12);
    }

    [SkippableFact]
    public void BlockSparse_FullBlockSkipping_ChangesNothing()
    {
        using var context = Context();
        // The blocks strictly below the causal diagonal see every element under the causal predicate: listing them as
        // full (predicate skipped) or partial (predicate applied) must give the same result.
        Properties.Check(Arb.From(Float32Cases.Select(c => c with { Tril = true, Predicate = ElementPredicateKind.Causal, QueryLength = c.KeyLength })), c =>
        {
            var full = Output(context, c with { FullFraction = 1 }, out var fullLse);
            var partial = Output(context, c with { FullFraction = 0 }, out var partialLse);
            AssertNear(partial, full, c.ToString(), 1e-6);
            AssertNear(partialLse, fullLse, c + " (LSE)", 1e-6);
        }, 16);
    }

    [SkippableFact]
    public void BlockSparse_SharedMaskSpelledOutPerHead_GivesIdenticalResults()
    {
        using var context = Context();
        Properties.Check(Arb.From(Cases.Select(c => c with { Sharing = BlockSparseCase.MaskSharing.Shared, Format = BlockSparseCase.MaskFormat.Flex })), c =>
        {
            var shared = Output(context, c, out var sharedLse);
            var tensors = c.CreateTensors();
            var options = c.Options();
            var mask = (FlexBlockMask)options.Mask;
            int heads = c.QueryHeads, rows = mask.PartialCounts.Length;
            int[] Repeat(ReadOnlyMemory<int> values, int block) =>
                Enumerable.Range(0, heads).SelectMany(_ => values.ToArray().Take(block)).ToArray();
            var perHead = mask with
            {
                MaskHeads = heads,
                PartialCounts = Repeat(mask.PartialCounts, rows), PartialIndices = Repeat(mask.PartialIndices, rows * mask.MaxBlocksPerRow),
                FullCounts = Repeat(mask.FullCounts, rows), FullIndices = Repeat(mask.FullIndices, rows * mask.MaxBlocksPerRow),
            };
            using var on = new OnContext(context);
            var o = on.Put(tensors.Output);
            var l = on.Put(tensors.LogSumExp);
            context.BlockSparse(on.Put(tensors.Query), on.Put(tensors.Key), on.Put(tensors.Value), o, options with { Mask = perHead }, l);
            on.Back(o, tensors.Output);
            on.Back(l, tensors.LogSumExp);
            Assert.Equal(shared, tensors.Output.ToDoubleArray());
            Assert.Equal(sharedLse, tensors.LogSumExp.ToDoubleArray());
        }, 12);
    }

    [SkippableFact]
    public void BlockSparse_HeadsMajorLayout_EqualsContiguous()
    {
        using var context = Context();
        // Q, K, V and O as [B, N, H, D] in memory (strided heads), LSE contiguous: the same numbers as contiguous tensors.
        Properties.Check(Arb.From(Cases), c =>
        {
            var expected = Output(context, c, out var expectedLse);
            var tensors = c.CreateTensors();
            TensorView HeadsMajor(TensorView t)
            {
                var shape = t.Shape.ToArray();
                var storage = TestTensors.Zeros(t.ElementType, shape[0], shape[2], shape[1], shape[3]).Permute(0, 2, 1, 3);
                storage.CopyFrom(t.ToDoubleArray());
                return storage;
            }
            var (q, k, v, o) = (HeadsMajor(tensors.Query), HeadsMajor(tensors.Key), HeadsMajor(tensors.Value), HeadsMajor(tensors.Output));
            using var on = new OnContext(context);
            var placedO = on.Put(o);
            var placedL = on.Put(tensors.LogSumExp);
            context.BlockSparse(on.Put(q), on.Put(k), on.Put(v), placedO, c.Options(), placedL);
            on.Back(placedO, o);
            on.Back(placedL, tensors.LogSumExp);
            Assert.Equal(expected, o.ToDoubleArray());
            Assert.Equal(expectedLse, tensors.LogSumExp.ToDoubleArray());
        }, 10);
    }

    // ---- Bad input: an ArgumentException naming the field, before any kernel runs ----

    private static FlexBlockMask Mask(int[][] partial, int capacity, int block = 16, int maskHeads = 1) =>
        References.BlockSparseReferenceTests.Flex(block, block, capacity, partial, maskHeads: maskHeads);

    private void AssertRejected(string name, BlockSparseOptions options, int heads = 2, int kvHeads = 2)
    {
        using var context = Context();
        // Nq = Nk = 48 in blocks of 16: three query blocks, three key blocks.
        var q = TestTensors.Zeros(ElementType.Float32, 1, heads, 48, 8);
        var k = TestTensors.Zeros(ElementType.Float32, 1, kvHeads, 48, 8);
        var v = TestTensors.Zeros(ElementType.Float32, 1, kvHeads, 48, 8);
        var o = TestTensors.Zeros(ElementType.Float32, 1, heads, 48, 8);
        using var on = new OnContext(context);
        var ex = Assert.ThrowsAny<ArgumentException>(() => context.BlockSparse(on.Put(q), on.Put(k), on.Put(v), on.Put(o), options));
        Assert.Equal(name, ex.ParamName);
    }

    [SkippableFact]
    public void BlockSparse_IndexOutOfRange_NamesPartialIndices() =>
        AssertRejected("options.Mask.PartialIndices", new BlockSparseOptions { Mask = Mask([[0], [3], [2]], 1) });

    [SkippableFact]
    public void BlockSparse_UnsortedIndices_NamesPartialIndices() =>
        AssertRejected("options.Mask.PartialIndices", new BlockSparseOptions { Mask = Mask([[0], [1, 0], [2]], 2) });

    [SkippableFact]
    public void BlockSparse_DuplicateIndices_NamesTheIndices()
    {
        AssertRejected("options.Mask.PartialIndices", new BlockSparseOptions { Mask = Mask([[0], [1, 1], [2]], 2) });
        var csr = new BlockCsrMask { QueryBlockSize = 16, KeyBlockSize = 16, RowOffsets = new[] { 0, 1, 3, 4 }, ColumnIndices = new[] { 0, 1, 1, 2 }, ColumnCapacity = 4 };
        AssertRejected("options.Mask.ColumnIndices", new BlockSparseOptions { Mask = csr });
    }

    [SkippableFact]
    public void BlockSparse_CountAboveKeyBlocks_NamesPartialCounts() =>
        AssertRejected("options.Mask.PartialCounts", new BlockSparseOptions { Mask = Mask([[0], [0, 1, 2, 2], [2]], 4) });

    [SkippableFact]
    public void BlockSparse_MaskForTheWrongShape_NamesTheArrayOrExtent()
    {
        AssertRejected("options.Mask.PartialCounts", new BlockSparseOptions { Mask = Mask([[0], [1]], 1) });
        AssertRejected("options.Mask.MaskHeads", new BlockSparseOptions { Mask = Mask([[0], [1], [2], [0], [1], [2], [0], [1], [2]], 1, maskHeads: 3) }, heads: 4, kvHeads: 2);
        AssertRejected("options.Mask.KeyBlockSize", new BlockSparseOptions { Mask = Mask([[0], [1], [2]], 1) with { KeyBlockSize = 8 } });
        AssertRejected("options.Mask.QueryBlockSize", new BlockSparseOptions { Mask = Mask([[0], [1], [2]], 1) with { QueryBlockSize = 256 } });
    }

    [SkippableFact]
    public void BlockSparse_BadPredicateOrSoftcap_NamesTheOption()
    {
        var mask = Mask([[0], [1], [2]], 1);
        AssertRejected("options.Predicate.PrefixLengths", new BlockSparseOptions { Mask = mask, Predicate = ElementPredicate.PrefixLM(-3) });
        AssertRejected("options.Predicate.KeyDocuments", new BlockSparseOptions { Mask = mask, Predicate = ElementPredicate.Documents(new int[48], new int[47]) });
        AssertRejected("options.Softcap", new BlockSparseOptions { Mask = mask, Softcap = -1 });
    }

    [SkippableFact]
    public void BlockSparse_MaskPerGqaGroup_IsAccepted()
    {
        using var context = Context();
        AssertPassed(CaseVerifier.Verify(context, new BlockSparseCase
        {
            QueryHeads = 4, KeyValueHeads = 2, QueryLength = 50, KeyLength = 50, HeadDim = 16, ValueDim = 16, QueryBlock = 16, KeyBlock = 16,
            Sharing = BlockSparseCase.MaskSharing.PerGroup, Density = 0.6, Predicate = ElementPredicateKind.Causal, Seed = 5,
        }));
    }
}

[Trait("Backend", "Cpu")]
public sealed class CpuBlockSparseTests : BlockSparseTests
{
    protected override Backend Backend => Backend.Cpu;
}

[Trait("Backend", "OpenCl")]
public sealed class OpenClBlockSparseTests : BlockSparseTests
{
    protected override Backend Backend => Backend.OpenCl;
}

[Trait("Backend", "Cuda")]
public sealed class CudaBlockSparseTests : BlockSparseTests
{
    protected override Backend Backend => Backend.Cuda;
}
