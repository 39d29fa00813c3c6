// Block-sparse attention on the GPU backends (OpenCL on PoCL here, CUDA where a device exists) against the float64
// reference, a visibility rule written out plainly in this file, and flash attention (metamorphic properties).
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace NativeAttention.Tests;

/// <summary>Block-sparse kernels of a GPU backend: random and named problems, the plain visibility rule, flash equalities.</summary>
public abstract class BlockSparseGpuTests
{
    /// <summary>The backend under test.</summary>
    protected abstract Backend Backend { get; }

    private static void AssertPassed(VerificationResult result)
    {
        if (!result.Passed) Assert.Fail(result.ToString());
    }

    /// <summary>
    /// A random valid case: any storage type, GQA, Nq != Nk, block sizes 8 to 130 on each side (equal or not, larger or
    /// smaller than the kernels' tiles), short last blocks, FlexAttention or CSR masks, every predicate. Head dims stay
    /// in the two smallest buckets so that PoCL compiles few variants; the named cases cover the rest.
    /// </summary>
    public static BlockSparseCase Sample(Random random)
    {
        int[] blocks = [8, 16, 24, 32, 40, 64, 100, 128, 130];
        int[] dims = [4, 8, 16, 24, 32];
        var types = new[] { ElementType.Float32, ElementType.Float32, ElementType.Float16, ElementType.BFloat16 };
        int kv = random.Next(1, 3);
        var c = new BlockSparseCase
        {
            ElementType = types[random.Next(types.Length)],
            Batch = random.Next(1, 3), KeyValueHeads = kv, QueryHeads = kv * random.Next(1, 4),
            QueryLength = random.Next(4) == 0 ? random.Next(1, 9) : random.Next(1, 160),
            KeyLength = random.Next(4) == 0 ? random.Next(1, 9) : random.Next(1, 160),
            HeadDim = dims[random.Next(dims.Length)], ValueDim = dims[random.Next(dims.Length)],
            QueryBlock = blocks[random.Next(blocks.Length)], KeyBlock = blocks[random.Next(blocks.Length)],
            Density = 0.2 + 0.8 * random.NextDouble(), FullFraction = random.NextDouble(),
            Csr = random.Next(5) == 0,
            Scale = random.Next(3) == 0 ? (float)(0.05 + random.NextDouble()) : null,
            Seed = random.Next(1, 1_000_000),
        };
        return random.Next(4) switch
        {
            0 => c,
            1 => c with { Predicate = ElementPredicateKind.Causal },
            2 => c with { Predicate = ElementPredicateKind.Window, WindowLeft = random.Next(-1, 40), WindowRight = random.Next(-1, 40) },
            _ => c with { Predicate = ElementPredicateKind.Document, Documents = random.Next(1, 5) },
        };
    }

    [SkippableFact]
    public void BlockSparse_MatchesReference_OnRandomProblems()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var cases = Gen.Choose(0, int.MaxValue).Select(seed => (IAttentionCase)Sample(new Random(seed)));
        Properties.Check(Arb.From(cases, c => c.Shrink()), c => AssertPassed(CaseVerifier.Verify(context, c)), count: 16);
    }

    /// <summary>
    /// Hand-picked cases, each aimed at one path: query blocks larger than a work-group's rows (several row tiles) and
    /// smaller, key blocks larger and smaller than a key tile, short last blocks on both sides, every head-dim bucket,
    /// the tensor-core shapes on CUDA (f16/bf16, D 64 and 128, blocks 16 to 128), empty masks, GQA with documents.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> NamedCases = new Dictionary<string, string>
    {
        ["f32 Bq<Bk causal short last blocks"] = "blocksparse f32 B1 H2/1 N70x90 D32/32 block=16x32 density=0.6 full=0.5 causal seed=61",
        ["f16 block 8 window"] = "blocksparse f16 B2 H2/2 N64x64 D16/16 block=8 density=0.4 full=0 window(10,3) seed=62",
        ["bf16 csr docs GQA"] = "blocksparse bf16 B1 H4/2 N40x56 D16/16 block=16 density=0.5 full=0 csr docs=3 seed=63",
        ["f32 Bq=128 (two row tiles) Bk=16"] = "blocksparse f32 B1 H1/1 N200x150 D16/16 block=128x16 density=0.7 full=0.3 causal seed=64",
        ["f32 Bq=16 Bk=128 (key tiles) Nq<Nk"] = "blocksparse f32 B1 H2/2 N33x300 D8/8 block=16x128 density=0.8 full=0.4 causal seed=65",
        ["f32 Nq=1"] = "blocksparse f32 B2 H3/1 N1x77 D16/8 block=16x16 density=0.9 full=0.5 seed=66",
        ["f32 empty mask"] = "blocksparse f32 B1 H2/1 N20x20 D8/8 block=16 density=0 seed=67",
        ["f32 GQA docs B2"] = "blocksparse f32 B2 H6/2 N50x45 D24/16 block=24x20 density=0.8 full=0.2 docs=4 seed=68",
        ["f32 D=64/48 window"] = "blocksparse f32 B1 H2/1 N90x110 D64/48 block=32x48 density=0.7 full=0.3 window(20,5) seed=69",
        ["f16 D=200/256"] = "blocksparse f16 B1 H1/1 N40x50 D200/256 block=16x24 density=0.8 full=0.5 causal seed=70",
        ["bf16 D=128 Bq=Bk=64 causal"] = "blocksparse bf16 B1 H2/1 N150x150 D128/128 block=64 density=0.7 full=0.5 causal seed=71",
        ["f16 D=64 Bq=128 Bk=128 causal"] = "blocksparse f16 B1 H2/2 N260x300 D64/64 block=128 density=0.8 full=0.5 causal seed=72",
        ["f16 D=64 Bq=16 Bk=32 docs"] = "blocksparse f16 B2 H2/1 N64x80 D64/64 block=16x32 density=0.6 full=0.3 docs=3 seed=73",
        ["bf16 D=64 Bq=32 Bk=16 window"] = "blocksparse bf16 B1 H1/1 N100x70 D64/64 block=32x16 density=0.8 full=0.3 window(12,0) seed=74",
        ["f16 D=128 Bq=100 Bk=40 csr causal"] = "blocksparse f16 B1 H2/1 N230x170 D128/128 block=100x40 density=0.6 csr causal seed=75",
        ["f32 large logits"] = "blocksparse f32 B1 H1/1 N48x64 D16/16 block=16 density=0.7 full=0.5 causal amp=6 seed=76",
    };

    /// <summary>The names of <see cref="NamedCases"/>, for xunit.</summary>
    public static TheoryData<string> NamedCaseNames => new(NamedCases.Keys);

    [SkippableTheory]
    [MemberData(nameof(NamedCaseNames))]
    public void BlockSparse_NamedCase_MatchesReference(string name)
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        AssertPassed(CaseVerifier.Verify(context, AttentionCaseSpec.Parse(NamedCases[name])));
    }

    /// <summary>
    /// Which keys each query sees, against the block-sparse rule written out here in its plainest form, independent of
    /// the library's masking code and of the reference: query i sees key j when block (i / Bq, j / Bk) of its (batch,
    /// head) row is listed full, or listed partial and the predicate holds (causal: j &lt;= i + Nk - Nq; window:
    /// position - left &lt;= j &lt;= position + right; documents: equal ids). With Q = 0 every visible key gets the
    /// same weight and with V one-hot per key output row i is 1/|visible| at the visible keys. Masks are random, with
    /// unsorted rows, broadcast and per-(batch, head) extents, spare row capacity, and both mask formats.
    /// </summary>
    [SkippableFact]
    public void BlockSparse_VisibleKeys_FollowThePlainMaskRule()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var random = new Random(1205);
        var shapes = new (int Nq, int Nk, int Bq, int Bk)[]
        {
            (9, 13, 4, 5), (40, 40, 16, 16), (70, 33, 64, 8), (33, 70, 8, 64), (130, 129, 128, 16), (17, 150, 16, 128),
            (1, 100, 16, 32), (100, 1, 32, 16), (65, 97, 33, 31), (150, 150, 100, 100),
        };
        string[] predicates = ["none", "causal", "window", "docs"];
        foreach (var (nq, nk, bq, bk) in shapes)
            foreach (string predicate in predicates)
                foreach (bool csr in new[] { false, true })
                {
                    var m = RandomMask.Draw(random, 2, 2, nq, nk, bq, bk, csr, allPartial: csr);
                    var (options, sees) = m.WithPredicate(random, predicate, nq, nk);
                    var q = TestTensors.Zeros(ElementType.Float32, 2, 2, nq, 8);
                    var k = TestTensors.Uniform(ElementType.Float32, random, [2, 1, nk, 8]);
                    var v = TestTensors.Zeros(ElementType.Float32, 2, 1, nk, nk);
                    for (int b = 0; b < 2; b++)
                        for (int j = 0; j < nk; j++) v.SetDouble(1.0, b, 0, j, j);
                    var (output, lse) = RunBlockSparse(context, q, k, v, options);
                    string what = $"Nq {nq} Nk {nk} block {bq}x{bk} {predicate} {options.Mask.GetType().Name} [{m.MaskBatch}, {m.MaskHeads}]";
                    for (int b = 0; b < 2; b++)
                        for (int h = 0; h < 2; h++)
                            for (int i = 0; i < nq; i++)
                            {
                                int visible = 0;
                                for (int j = 0; j < nk; j++)
                                    if (sees(b, h, i, j)) visible++;
                                long row = (b * 2 + h) * nq + i;
                                double expectedLse = visible == 0 ? double.NegativeInfinity : Math.Log(visible);
                                if (!(visible == 0 ? double.IsNegativeInfinity(lse[row]) : Math.Abs(lse[row] - expectedLse) <= 1e-5))
                                    Assert.Fail($"{what}: b {b} h {h} query {i}: LSE {lse[row]:G6}, expected log {visible} = {expectedLse:G6}");
                                for (int j = 0; j < nk; j++)
                                {
                                    double expected = sees(b, h, i, j) ? 1.0 / visible : 0.0, actual = output[row * nk + j];
                                    if (!(Math.Abs(actual - expected) <= 1e-6))
                                        Assert.Fail($"{what}: b {b} h {h} query {i} key {j}: weight {actual:G6}, expected {expected:G6}");
                                }
                            }
                }
    }

    /// <summary>Every block listed full (or partial without a predicate) equals flash attention on the same inputs.</summary>
    [SkippableTheory]
    [InlineData(ElementType.Float32, 16, 16, false)]
    [InlineData(ElementType.Float32, 24, 40, true)]
    [InlineData(ElementType.Float16, 64, 64, false)]
    [InlineData(ElementType.BFloat16, 128, 32, true)]
    public void BlockSparse_AllBlocksKept_EqualsFlash(ElementType type, int bq, int bk, bool asPartial)
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var random = new Random(bq * 1000 + bk);
        int batch = 2, hq = 4, hkv = 2, nq = 150, nk = 131, d = 64;
        var (q, k, v) = Inputs(random, type, batch, hq, hkv, nq, nk, d, d);
        var all = RandomMask.Draw(random, 1, 1, nq, nk, bq, bk, csr: false, allPartial: asPartial, density: 1.0, fullFraction: 1.0);
        var (sparse, sparseLse) = RunBlockSparse(context, q, k, v, new BlockSparseOptions { Mask = all.Flex() });
        var (dense, denseLse) = RunFlash(context, q, k, v, new FlashOptions());
        AssertClose(dense, sparse, type, "output");
        AssertClose(denseLse, sparseLse, ElementType.Float32, "LSE");
    }

    /// <summary>
    /// The causal block pattern (every key block that holds a key some query of the block may see; blocks wholly below
    /// the diagonal full, diagonal blocks partial) with the causal predicate equals causal flash, Nq != Nk included.
    /// Listing the below-diagonal blocks as partial instead (full-block skipping off) changes nothing.
    /// </summary>
    [SkippableTheory]
    [InlineData(ElementType.Float32, 100, 140, 16, 32)]
    [InlineData(ElementType.Float32, 140, 100, 40, 24)]
    [InlineData(ElementType.Float16, 200, 200, 64, 64)]
    [InlineData(ElementType.BFloat16, 130, 257, 128, 16)]
    public void BlockSparse_CausalBlocksWithCausalPredicate_EqualCausalFlash(ElementType type, int nq, int nk, int bq, int bk)
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var random = new Random(nq * 7 + nk);
        int batch = 1, hq = 3, hkv = 1, d = 64;
        var (q, k, v) = Inputs(random, type, batch, hq, hkv, nq, nk, d, d);
        var (dense, denseLse) = RunFlash(context, q, k, v, new FlashOptions { Causal = true });
        foreach (bool skipFull in new[] { true, false })
        {
            var options = new BlockSparseOptions { Mask = CausalMask(nq, nk, bq, bk, skipFull), Predicate = ElementPredicate.CausalMask };
            var (sparse, sparseLse) = RunBlockSparse(context, q, k, v, options);
            AssertClose(dense, sparse, type, $"output (full blocks {(skipFull ? "skip the predicate" : "listed as partial")})");
            AssertClose(denseLse, sparseLse, ElementType.Float32, "LSE");
        }
    }

    /// <summary>The same blocks as block CSR and as a FlexAttention mask (all partial), and a broadcast mask and its expansion, give identical results.</summary>
    [SkippableFact]
    public void BlockSparse_MaskFormatsAndBroadcasts_GiveIdenticalResults()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var random = new Random(77);
        int batch = 2, hq = 4, hkv = 2, nq = 90, nk = 110, bq = 24, bk = 16;
        var (q, k, v) = Inputs(random, ElementType.Float16, batch, hq, hkv, nq, nk, 32, 32);
        var shared = RandomMask.Draw(random, 1, hq, nq, nk, bq, bk, csr: true, allPartial: true);
        var predicate = ElementPredicate.SlidingWindow(30, 4);
        var (fromCsr, csrLse) = RunBlockSparse(context, q, k, v, new BlockSparseOptions { Mask = shared.Csr(), Predicate = predicate });
        var (fromFlex, flexLse) = RunBlockSparse(context, q, k, v, new BlockSparseOptions { Mask = shared.Flex(), Predicate = predicate });
        var (expanded, expandedLse) = RunBlockSparse(context, q, k, v, new BlockSparseOptions { Mask = shared.Expanded(batch).Flex(), Predicate = predicate });
        Assert.Equal(fromFlex, fromCsr);
        Assert.Equal(flexLse, csrLse);
        Assert.Equal(fromFlex, expanded);
        Assert.Equal(flexLse, expandedLse);

        var one = RandomMask.Draw(random, 1, 1, nq, nk, bq, bk, csr: false, allPartial: false);
        var (broadcast, broadcastLse) = RunBlockSparse(context, q, k, v, new BlockSparseOptions { Mask = one.Flex(), Predicate = ElementPredicate.CausalMask });
        var (full, fullLse) = RunBlockSparse(context, q, k, v, new BlockSparseOptions { Mask = one.Expanded(batch, hq).Flex(), Predicate = ElementPredicate.CausalMask });
        Assert.Equal(broadcast, full);
        Assert.Equal(broadcastLse, fullLse);
    }

    /// <summary>A second call on the same context with a different mask of the same shape computes with the new mask (the table is re-uploaded).</summary>
    [SkippableFact]
    public void BlockSparse_MaskChangedBetweenCalls_UsesTheNewMask()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var c = (BlockSparseCase)AttentionCaseSpec.Parse("blocksparse f32 B1 H2/1 N40x50 D16/16 block=16 density=0.5 full=0.5 causal seed=5");
        foreach (int seed in new[] { 5, 6, 5, 7 })
            AssertPassed(CaseVerifier.Verify(context, c with { Seed = seed }));
    }

    /// <summary>Bad masks are refused with an <see cref="ArgumentException"/> naming the mask array before any kernel runs, on device tensors too.</summary>
    [SkippableFact]
    public void BlockSparse_BadMask_IsRefusedBeforeAnyKernel()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var (q, k, v) = Inputs(new Random(1), ElementType.Float32, 1, 1, 1, 32, 32, 8, 8);
        var good = new FlexBlockMask
        {
            QueryBlockSize = 16, KeyBlockSize = 16, MaxBlocksPerRow = 2,
            PartialCounts = new[] { 1, 2 }, PartialIndices = new[] { 0, 0, 0, 1 },
        };
        using var on = new OnContext(context);
        var output = on.Put(TestTensors.Zeros(ElementType.Float32, 1, 1, 32, 8));
        var (dq, dk, dv) = (on.Put(q), on.Put(k), on.Put(v));
        foreach (var (mask, name) in new (FlexBlockMask, string)[]
        {
            (good with { PartialIndices = new[] { 0, 0, 0, 2 } }, "options.Mask.PartialIndices"),
            (good with { PartialIndices = new[] { 0, 0, 1, 1 } }, "options.Mask.PartialIndices"),
            (good with { PartialCounts = new[] { 1, 3 } }, "options.Mask.PartialCounts"),
            (good with { PartialCounts = new[] { 1 } }, "options.Mask.PartialCounts"),
        })
        {
            var e = Assert.ThrowsAny<ArgumentException>(() => context.BlockSparse(dq, dk, dv, output, new BlockSparseOptions { Mask = mask }));
            Assert.Equal(name, e.ParamName);
        }
        context.BlockSparse(dq, dk, dv, output, new BlockSparseOptions { Mask = good });
    }

    /// <summary>Random Q, K, V of a storage type, uniform in [-1, 1].</summary>
    private static (TensorView Q, TensorView K, TensorView V) Inputs(Random random, ElementType type, int batch, int hq, int hkv, int nq, int nk, int d, int dv) =>
        (TestTensors.Uniform(type, random, [batch, hq, nq, d]), TestTensors.Uniform(type, random, [batch, hkv, nk, d]),
         TestTensors.Uniform(type, random, [batch, hkv, nk, dv]));

    /// <summary>Runs block-sparse attention on the context; returns the output and the LSE as doubles.</summary>
    private static (double[] Output, double[] Lse) RunBlockSparse(AttentionContext context, TensorView q, TensorView k, TensorView v, BlockSparseOptions options) =>
        Run(context, q, v, (dq, dk, dv, o, lse) => context.BlockSparse(dq, dk, dv, o, options, lse), k);

    /// <summary>Runs flash attention on the context; returns the output and the LSE as doubles.</summary>
    private static (double[] Output, double[] Lse) RunFlash(AttentionContext context, TensorView q, TensorView k, TensorView v, FlashOptions options) =>
        Run(context, q, v, (dq, dk, dv, o, lse) => context.Flash(dq, dk, dv, o, options, lse), k);

    private static (double[] Output, double[] Lse) Run(AttentionContext context, TensorView q, TensorView v, Action<TensorView, TensorView, TensorView, TensorView, TensorView> call, TensorView k)
    {
        int batch = q.Shape[0], hq = q.Shape[1], nq = q.Shape[2], dv = v.Shape[3];
        var o = TestTensors.Zeros(q.ElementType, batch, hq, nq, dv);
        var lse = TestTensors.Zeros(ElementType.Float32, batch, hq, nq);
        using var on = new OnContext(context);
        var (placedO, placedLse) = (on.Put(o), on.Put(lse));
        call(on.Put(q), on.Put(k), on.Put(v), placedO, placedLse);
        on.Back(placedO, o);
        on.Back(placedLse, lse);
        return (o.ToDoubleArray(), lse.ToDoubleArray());
    }

    /// <summary>Two kernels' results on the same inputs agree within a few rounding steps of the storage type.</summary>
    private static void AssertClose(double[] expected, double[] actual, ElementType type, string what)
    {
        double tolerance = type switch { ElementType.Float32 => 2e-5, ElementType.Float16 => 2e-3, _ => 1.6e-2 };
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            if (double.IsNegativeInfinity(expected[i]) && double.IsNegativeInfinity(actual[i])) continue;
            if (!(Math.Abs(expected[i] - actual[i]) <= tolerance * (1 + Math.Abs(expected[i]))))
                Assert.Fail($"{what}[{i}]: {actual[i]:G6}, expected {expected[i]:G6} (tolerance {tolerance:G3})");
        }
    }

    /// <summary>
    /// The causal block mask (one row set, broadcast): key block c is kept for query block r when some query of r may
    /// see some key of c (its first key is at most the last query's position); full when every query of r sees every
    /// key of c, if <paramref name="skipFull"/>, else partial.
    /// </summary>
    private static FlexBlockMask CausalMask(int nq, int nk, int bq, int bk, bool skipFull)
    {
        int rows = (nq + bq - 1) / bq, columns = (nk + bk - 1) / bk;
        var full = new List<int>[rows];
        var partial = new List<int>[rows];
        for (int r = 0; r < rows; r++)
        {
            (full[r], partial[r]) = ([], []);
            int firstPosition = r * bq + nk - nq, lastPosition = Math.Min(nq, (r + 1) * bq) - 1 + nk - nq;
            for (int c = 0; c < columns; c++)
            {
                int firstKey = c * bk, lastKey = Math.Min(nk, (c + 1) * bk) - 1;
                if (firstKey > lastPosition) continue;
                (skipFull && lastKey <= firstPosition ? full[r] : partial[r]).Add(c);
            }
        }
        return new RandomMask(1, 1, rows, columns, bq, bk, full, partial).Flex();
    }
}

/// <summary>
/// A block mask held as lists per (mask batch, mask head, query block) row, written out as a FlexAttention mask (with
/// spare row capacity, rows in the drawn, unsorted order) or as block CSR.
/// </summary>
internal sealed record RandomMask(int MaskBatch, int MaskHeads, int QueryBlocks, int KeyBlocks, int QueryBlockSize, int KeyBlockSize, List<int>[] Full, List<int>[] Partial)
{
    /// <summary>
    /// Draws a mask: each (row, key block) listed with probability <paramref name="density"/> (random when null), full
    /// with probability <paramref name="fullFraction"/> unless <paramref name="allPartial"/>; extents 1 or full on each
    /// axis at random, unless <paramref name="csr"/> (batch extent 1, as block CSR has).
    /// </summary>
    public static RandomMask Draw(Random random, int batch, int heads, int nq, int nk, int bq, int bk, bool csr, bool allPartial,
        double? density = null, double fullFraction = 0.5)
    {
        int maskBatch = csr || random.Next(2) == 0 ? 1 : batch, maskHeads = random.Next(2) == 0 ? 1 : heads;
        int rows = (nq + bq - 1) / bq, columns = (nk + bk - 1) / bk;
        double p = density ?? 0.3 + 0.6 * random.NextDouble();
        var full = new List<int>[maskBatch * maskHeads * rows];
        var partial = new List<int>[full.Length];
        for (int r = 0; r < full.Length; r++)
        {
            (full[r], partial[r]) = ([], []);
            foreach (int c in Enumerable.Range(0, columns).OrderBy(_ => random.Next()))
            {
                if (random.NextDouble() >= p) continue;
                (!allPartial && random.NextDouble() < fullFraction ? full[r] : partial[r]).Add(c);
            }
        }
        return new RandomMask(maskBatch, maskHeads, rows, columns, bq, bk, full, partial);
    }

    /// <summary>The same mask with every broadcast axis written out to <paramref name="batch"/> and <paramref name="heads"/>.</summary>
    public RandomMask Expanded(int batch, int? heads = null)
    {
        int h = heads ?? MaskHeads;
        var full = new List<int>[batch * h * QueryBlocks];
        var partial = new List<int>[full.Length];
        for (int b = 0; b < batch; b++)
            for (int head = 0; head < h; head++)
                for (int r = 0; r < QueryBlocks; r++)
                {
                    int from = Row(b, head, r), to = (b * h + head) * QueryBlocks + r;
                    (full[to], partial[to]) = ([.. Full[from]], [.. Partial[from]]);
                }
        return new RandomMask(batch, h, QueryBlocks, KeyBlocks, QueryBlockSize, KeyBlockSize, full, partial);
    }

    /// <summary>The row of (batch, head, query block), broadcast axes resolved.</summary>
    public int Row(int batch, int head, int queryBlock) =>
        ((MaskBatch == 1 ? 0 : batch) * MaskHeads + (MaskHeads == 1 ? 0 : head)) * QueryBlocks + queryBlock;

    /// <summary>As a FlexAttention mask with two spare slots per row.</summary>
    public FlexBlockMask Flex()
    {
        int capacity = KeyBlocks + 2, rows = Full.Length;
        var fullIndices = new int[rows * capacity];
        var partialIndices = new int[rows * capacity];
        Array.Fill(fullIndices, -7);   // slots past a row's count are never read
        Array.Fill(partialIndices, 1 << 30);
        for (int r = 0; r < rows; r++)
        {
            Full[r].CopyTo(fullIndices, r * capacity);
            Partial[r].CopyTo(partialIndices, r * capacity);
        }
        return new FlexBlockMask
        {
            QueryBlockSize = QueryBlockSize, KeyBlockSize = KeyBlockSize, MaskBatch = MaskBatch, MaskHeads = MaskHeads, MaxBlocksPerRow = capacity,
            FullCounts = Full.Select(f => f.Count).ToArray(), FullIndices = fullIndices,
            PartialCounts = Partial.Select(p => p.Count).ToArray(), PartialIndices = partialIndices,
        };
    }

    /// <summary>As block CSR (every block partial; only for masks without full blocks and batch extent 1).</summary>
    public BlockCsrMask Csr()
    {
        if (MaskBatch != 1 || Full.Any(f => f.Count > 0)) throw new InvalidOperationException("Block CSR holds partial blocks of one mask batch only.");
        int capacity = QueryBlocks * KeyBlocks + 3;
        var offsets = new int[MaskHeads * (QueryBlocks + 1)];
        var columns = new int[MaskHeads * capacity];
        for (int h = 0; h < MaskHeads; h++)
        {
            int n = 0;
            for (int r = 0; r < QueryBlocks; r++)
            {
                offsets[h * (QueryBlocks + 1) + r] = n;
                foreach (int c in Partial[h * QueryBlocks + r]) columns[h * capacity + n++] = c;
            }
            offsets[h * (QueryBlocks + 1) + QueryBlocks] = n;
        }
        return new BlockCsrMask
        {
            QueryBlockSize = QueryBlockSize, KeyBlockSize = KeyBlockSize, MaskHeads = MaskHeads,
            RowOffsets = offsets, ColumnIndices = columns, ColumnCapacity = capacity,
        };
    }

    /// <summary>
    /// Options with this mask (block CSR when it qualifies and a coin says so) and a random predicate of the named kind
    /// for two batch elements of <paramref name="nq"/> queries and <paramref name="nk"/> keys, plus the plain
    /// visibility rule of the result: <c>sees(b, h, i, j)</c>.
    /// </summary>
    public (BlockSparseOptions Options, Func<int, int, int, int, bool> Sees) WithPredicate(Random random, string kind, int nq, int nk)
    {
        BlockMask mask = MaskBatch == 1 && Full.All(f => f.Count == 0) && random.Next(2) == 0 ? Csr() : Flex();
        int left = random.Next(-1, 25), right = random.Next(-1, 25), documents = random.Next(1, 5);
        // Two batch elements with different document boundaries, ids increasing along each sequence.
        int[] queryDocs = [.. Enumerable.Range(0, 2 * nq).Select(x => x % nq * (documents + x / nq) / nq)];
        int[] keyDocs = [.. Enumerable.Range(0, 2 * nk).Select(x => x % nk * (documents + x / nk) / nk)];
        var predicate = kind switch
        {
            "causal" => ElementPredicate.CausalMask,
            "window" => ElementPredicate.SlidingWindow(left, right),
            "docs" => ElementPredicate.Documents(queryDocs, keyDocs),
            _ => ElementPredicate.All,
        };
        bool Sees(int b, int h, int i, int j)
        {
            int row = Row(b, h, i / QueryBlockSize);
            if (Full[row].Contains(j / KeyBlockSize)) return true;
            if (!Partial[row].Contains(j / KeyBlockSize)) return false;
            int position = i + nk - nq;
            return kind switch
            {
                "causal" => j <= position,
                "window" => (left < 0 || j >= position - left) && (right < 0 || j <= position + right),
                "docs" => queryDocs[b * nq + i] == keyDocs[b * nk + j],
                _ => true,
            };
        }
        return (new BlockSparseOptions { Mask = mask, Predicate = predicate }, Sees);
    }
}

[Trait("Backend", "OpenCl")]
public sealed class OpenClBlockSparseGpuTests : BlockSparseGpuTests
{
    protected override Backend Backend => Backend.OpenCl;
}

[Trait("Backend", "Cuda")]
public sealed class CudaBlockSparseGpuTests : BlockSparseGpuTests
{
    protected override Backend Backend => Backend.Cuda;
}
