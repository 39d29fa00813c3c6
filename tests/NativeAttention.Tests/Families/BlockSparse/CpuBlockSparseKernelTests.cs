// The CPU block-sparse kernel's own paths, forced by the shapes that take them: items that join adjacent query blocks
// (one block's columns fill whole column groups) and masked range tiles computed vector by vector (causal diagonals).
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace NativeAttention.Tests;

/// <summary>
/// <see cref="Cpu.CpuBlockSparse"/> against <see cref="Reference.BlockSparse"/> on shapes the random family cases
/// reach only now and then: query blocks of 16 to 64 with several blocks per sequence, so that items join blocks at
/// every vector width (a short last block, GQA groups, per-head rows that differ between the joined blocks), and
/// causal/window predicates in partial blocks whose key blocks are smaller, equal or larger than the query blocks.
/// </summary>
[Trait("Backend", "Cpu")]
public sealed class CpuBlockSparseKernelTests
{
    private static readonly Gen<BlockSparseCase> JoinedBlockCases =
        from seed in Gen.Choose(0, int.MaxValue)
        from bq in Gen.Elements(16, 32, 64)
        from blocks in Gen.Choose(2, 6)
        from shortBy in Gen.Elements(0, 0, 1, 13)
        from bk in Gen.Elements(16, 32, 64, 128)
        from tril in Gen.Elements(false, true)
        let sampled = (BlockSparseCase)BlockSparseCase.SampleCase(new Random(seed))
        let nq = Math.Max(bq + 1, blocks * bq - shortBy)
        select sampled with
        {
            QueryBlock = bq, KeyBlock = bk, QueryLength = nq, KeyLength = nq, Tril = tril || sampled.Tril, Batch = 1,
            Prefix = Math.Min(sampled.Prefix, nq), HeadDim = Math.Min(sampled.HeadDim, 32), ValueDim = Math.Min(sampled.ValueDim, 32),
        };

    private static readonly Gen<BlockSparseCase> CausalDiagonalCases =
        from c in JoinedBlockCases
        from predicate in Gen.Elements(ElementPredicateKind.Causal, ElementPredicateKind.Causal, ElementPredicateKind.Window)
        select c with
        {
            Predicate = predicate, Tril = true, Density = 0.5, FullFraction = 1,
            WindowLeft = predicate == ElementPredicateKind.Window ? 20 : -1, WindowRight = predicate == ElementPredicateKind.Window ? 0 : -1,
            WindowCausal = predicate == ElementPredicateKind.Window, Documents = 1, Prefix = 0,
        };

    private static void Check(Gen<BlockSparseCase> cases, int count)
    {
        foreach (int bits in new[] { 0, 128, 256, 512 }.Where(b => b <= Cpu.CpuFeatures.VectorBits))
        {
            using var context = new Cpu.CpuContext(new ContextOptions { Threads = 2 }) { ForcedVectorBits = bits };
            Properties.Check(Arb.From(cases), c =>
            {
                var result = CaseVerifier.Verify(context, c);
                if (!result.Passed) Assert.Fail($"{bits}-bit vectors: {result}");
            }, count);
        }
    }

    [Fact]
    public void JoinedQueryBlocks_MatchReference() => Check(JoinedBlockCases, count: 10);

    [Fact]
    public void CausalDiagonalTiles_MatchReference() => Check(CausalDiagonalCases, count: 8);

    [Fact]
    public void JoinedQueryBlocks_WithPerHeadRowsInGqaGroups_MatchReference() =>
        Check(from c in JoinedBlockCases
              from g in Gen.Elements(2, 4)
              from sharing in Gen.Elements(BlockSparseCase.MaskSharing.PerHead, BlockSparseCase.MaskSharing.PerGroup)
              select c with { KeyValueHeads = 1, QueryHeads = g, Sharing = sharing }, count: 6);

    [Fact]
    public void BenchmarkShape_EveryBlockListed_EqualsCausalFlashBitwise()
    {
        // Bq = 64 at N = 512 joins four query blocks per item, as flash's items hold 256 queries; with every causal block
        // listed (diagonals partial) the block-sparse kernel runs flash's tiles in flash's order, and the terms the
        // diagonal tiles skip are exact zeros, so the results agree to the last bit.
        var c = (BlockSparseCase)AttentionCaseSpec.Parse("blocksparse f32 B1 H2 N512 D64 block=64 density=1 full=1 tril causal seed=3");
        using var context = new Cpu.CpuContext(new ContextOptions { Threads = 2 });
        var sparse = c.CreateTensors();
        CaseRunner.Run(context, c, sparse);
        var dense = c.CreateTensors();
        context.Flash(dense.Query, dense.Key, dense.Value, dense.Output, new FlashOptions { Causal = true }, dense.LogSumExp);
        var expected = dense.Output.ToDoubleArray();
        var actual = sparse.Output.ToDoubleArray();
        for (int i = 0; i < expected.Length; i++)
            Assert.True(expected[i] == actual[i], $"element {i}: {actual[i]} against flash's {expected[i]}");
        AssertPassed(CaseVerifier.Verify(context, c));
    }

    private static void AssertPassed(VerificationResult result)
    {
        if (!result.Passed) Assert.Fail(result.ToString());
    }
}
