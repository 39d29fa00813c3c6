// Block-sparse attention on the GPU backends (OpenCL on PoCL here, CUDA where a device exists), beyond the properties
// every backend shares (BlockSparseTests): cases aimed at the GPU kernels' tiles and variants, the visibility rule
// written out plainly in this file, and a mask changed between two calls on one context.
using Xunit;

namespace NativeAttention.Tests;

/// <summary>Block-sparse kernels of a GPU backend: named cases per kernel path, the plain visibility rule, mask updates.</summary>
public abstract class BlockSparseGpuTests
{
    /// <summary>The backend under test.</summary>
    protected abstract Backend Backend { get; }

    private static void AssertPassed(VerificationResult result)
    {
        if (!result.Passed) Assert.Fail(result.ToString());
    }

    /// <summary>
    /// Hand-picked cases, each aimed at one path: query blocks larger than a work-group's rows (several row tiles) and
    /// smaller, key blocks larger and smaller than a key tile, short last blocks on both sides, every head-dim bucket,
    /// the tensor-core shapes on CUDA (f16/bf16, D 64 and 128, blocks 16 to 128), empty masks, GQA with documents,
    /// and key splits merged through their LSEs (one head, few query rows).
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> NamedCases = new Dictionary<string, string>
    {
        ["f32 Bq<Bk causal short last blocks"] = "blocksparse f32 B1 H2/1 N70x90 D32/32 block=16x32 density=0.6 full=0.5 causal seed=61",
        ["f16 window causal"] = "blocksparse f16 B2 H2/2 N64x64 D16/16 block=16 density=0.4 full=0 window(10,3) wcausal seed=62",
        ["bf16 csr docs GQA group masks"] = "blocksparse bf16 B1 H4/2 N40x56 D16/16 block=16 density=0.5 full=0 csr docs=3 mask=group seed=63",
        ["f32 Bq=128 (two row tiles) Bk=16"] = "blocksparse f32 B1 H1/1 N200x150 D16/16 block=128x16 density=0.7 full=0.3 causal seed=64",
        ["f32 Bq=16 Bk=128 (key tiles) Nq<Nk"] = "blocksparse f32 B1 H2/2 N33x300 D8/8 block=16x128 density=0.8 full=0.4 causal seed=65",
        ["f32 Nq=1 bsr"] = "blocksparse f32 B2 H3/1 N1x77 D16/8 block=16x16 density=0.9 bsr seed=66",
        ["f32 empty mask"] = "blocksparse f32 B1 H2/1 N20x20 D8/8 block=16 density=0 seed=67",
        ["f32 GQA docs B2 shared mask"] = "blocksparse f32 B2 H6/2 N50x45 D24/16 block=24x20 density=0.8 full=0.2 docs=4 mask=shared seed=68",
        ["f32 D=64/48 window"] = "blocksparse f32 B1 H2/1 N90x110 D64/48 block=32x48 density=0.7 full=0.3 window(20,5) seed=69",
        ["f16 D=200/256 softcap"] = "blocksparse f16 B1 H1/1 N40x50 D200/256 block=16x24 density=0.8 full=0.5 causal softcap=3 seed=70",
        ["bf16 D=128 Bq=Bk=64 causal"] = "blocksparse bf16 B1 H2/1 N150x150 D128/128 block=64 density=0.7 full=0.5 causal seed=71",
        ["f16 D=64 Bq=Bk=128 causal tril"] = "blocksparse f16 B1 H2/2 N260x300 D64/64 block=128 density=0.8 full=0.5 tril causal seed=72",
        ["f16 D=64 Bq=16 Bk=32 docs"] = "blocksparse f16 B2 H2/1 N64x80 D64/64 block=16x32 density=0.6 full=0.3 docs=3 seed=73",
        ["bf16 D=64 Bq=32 Bk=16 window"] = "blocksparse bf16 B1 H1/1 N100x70 D64/64 block=32x16 density=0.8 full=0.3 window(12,0) seed=74",
        ["f16 D=128 Bq=100 Bk=40 csr causal"] = "blocksparse f16 B1 H2/1 N230x170 D128/128 block=100x40 density=0.6 csr causal seed=75",
        ["f32 prefix-LM B2 dense"] = "blocksparse f32 B2 H2/1 N60x90 D16/16 block=16x32 density=0.7 full=0.3 dense prefix=37 seed=76",
        ["f16 D=64 prefix-LM softcap"] = "blocksparse f16 B1 H2/2 N130x130 D64/64 block=64x32 density=0.8 full=0.4 prefix=50 softcap=2 seed=77",
        ["f32 large logits"] = "blocksparse f32 B1 H1/1 N48x64 D16/16 block=16 density=0.7 full=0.5 causal amp=6 seed=78",
        // One (batch, head) and few query rows: the rows' blocks are split over work-groups and merged (split-KV).
        ["f32 split-KV decode causal"] = "blocksparse f32 B1 H1/1 N1x2000 D32/32 block=16x32 density=0.7 full=0.5 causal seed=80",
        ["bf16 split-KV docs (empty splits)"] = "blocksparse bf16 B1 H1/1 N3x1500 D64/64 block=16x16 density=0.8 full=0.3 docs=5 seed=81",
        ["f16 split-KV D=128 prefix-LM"] = "blocksparse f16 B1 H1/1 N1x900 D128/128 block=16x64 density=0.9 full=0.5 prefix=100 seed=82",
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
    /// head) row is listed full, or listed partial and the predicate holds, with position = i + Nk - Nq (causal:
    /// j &lt;= position; window: position - left &lt;= j &lt;= position + right, and j &lt;= position when causal too;
    /// prefix-LM: j &lt; prefix[b] or j &lt;= position; documents: equal ids). With Q = 0 every visible key gets the same
    /// weight and with V one-hot per key output row i is 1/|visible| at the visible keys, LSE log |visible|. Masks are
    /// random, with batch extents 1 and B, head extents 1, Hkv and Hq, spare row capacity, and both mask formats.
    /// </summary>
    [SkippableFact]
    public void BlockSparse_VisibleKeys_FollowThePlainMaskRule()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var random = new Random(1205);
        const int batch = 2, heads = 4, kvHeads = 2;
        var shapes = new (int Nq, int Nk, int Bq, int Bk)[]
        {
            (20, 27, 16, 17), (40, 40, 16, 16), (70, 33, 64, 16), (33, 70, 16, 64), (130, 129, 128, 16), (17, 150, 16, 128),
            (1, 100, 16, 32), (100, 1, 32, 16), (65, 97, 33, 31), (150, 150, 100, 100),
        };
        string[] predicates = ["none", "causal", "window", "wcausal", "prefix", "docs"];
        foreach (var (nq, nk, bq, bk) in shapes)
            foreach (string predicate in predicates)
            {
                var m = RandomMask.Draw(random, batch, heads, kvHeads, nq, nk, bq, bk);
                var (options, sees) = m.WithPredicate(random, predicate, nq, nk);
                var q = TestTensors.Zeros(ElementType.Float32, batch, heads, nq, 8);
                var k = TestTensors.Uniform(ElementType.Float32, random, [batch, kvHeads, nk, 8]);
                var v = TestTensors.Zeros(ElementType.Float32, batch, kvHeads, nk, nk);
                for (int b = 0; b < batch; b++)
                    for (int h = 0; h < kvHeads; h++)
                        for (int j = 0; j < nk; j++) v.SetDouble(1.0, b, h, j, j);
                var (output, lse) = Run(context, q, k, v, options);
                string what = $"Nq {nq} Nk {nk} block {bq}x{bk} {predicate} {options.Mask.GetType().Name} [{m.MaskBatch}, {m.MaskHeads}]";
                for (int b = 0; b < batch; b++)
                    for (int h = 0; h < heads; h++)
                        for (int i = 0; i < nq; i++)
                        {
                            int visible = 0;
                            for (int j = 0; j < nk; j++)
                                if (sees(b, h, i, j)) visible++;
                            long row = (b * heads + h) * nq + i;
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

    /// <summary>
    /// Every block kept equals flash attention on the same inputs, in 16 bits with the head dims of the CUDA
    /// tensor-core kernels (full blocks, or partial blocks without a predicate), and the causal block pattern with the
    /// causal predicate equals causal flash (the CPU-bound properties draw float32 only).
    /// </summary>
    [SkippableTheory]
    [InlineData(ElementType.Float16, 150, 131, 64, 64, 64, false)]
    [InlineData(ElementType.BFloat16, 150, 131, 128, 128, 32, false)]
    [InlineData(ElementType.Float16, 200, 200, 64, 64, 64, true)]
    [InlineData(ElementType.BFloat16, 130, 257, 128, 128, 16, true)]
    public void BlockSparse_SixteenBitTensorCoreShapes_EqualFlash(ElementType type, int nq, int nk, int d, int bq, int bk, bool causal)
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var random = new Random(nq * 1000 + bk);
        var q = TestTensors.Uniform(type, random, [2, 4, nq, d]);
        var k = TestTensors.Uniform(type, random, [2, 2, nk, d]);
        var v = TestTensors.Uniform(type, random, [2, 2, nk, d]);
        var mask = CausalOrAll(nq, nk, bq, bk, causal, asPartial: random.Next(2) == 0);
        var (sparse, sparseLse) = Run(context, q, k, v, new BlockSparseOptions { Mask = mask, Predicate = causal ? ElementPredicate.CausalMask : ElementPredicate.All });
        var (dense, denseLse) = Run(context, q, k, v, new FlashOptions { Causal = causal });
        double tolerance = type == ElementType.Float16 ? 2e-3 : 1.6e-2;
        for (int i = 0; i < dense.Length; i++)
            if (!(Math.Abs(dense[i] - sparse[i]) <= tolerance * (1 + Math.Abs(dense[i]))))
                Assert.Fail($"output[{i}]: {sparse[i]:G6}, flash {dense[i]:G6}");
        for (int i = 0; i < denseLse.Length; i++)
            if (!(Math.Abs(denseLse[i] - sparseLse[i]) <= 1e-4 * (1 + Math.Abs(denseLse[i]))))
                Assert.Fail($"LSE[{i}]: {sparseLse[i]:G6}, flash {denseLse[i]:G6}");
    }

    /// <summary>Calls on one context with masks that change between them compute with each call's mask (the table is re-uploaded when it differs).</summary>
    [SkippableFact]
    public void BlockSparse_MaskChangedBetweenCalls_UsesTheNewMask()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var c = (BlockSparseCase)AttentionCaseSpec.Parse("blocksparse f32 B1 H2/1 N40x50 D16/16 block=16 density=0.5 full=0.5 causal seed=5");
        foreach (int seed in new[] { 5, 6, 5, 7 })
            AssertPassed(CaseVerifier.Verify(context, c with { Seed = seed }));
    }

    /// <summary>Runs block-sparse attention on the context; returns the output and the LSE as doubles.</summary>
    private static (double[] Output, double[] Lse) Run(AttentionContext context, TensorView q, TensorView k, TensorView v, BlockSparseOptions options) =>
        Run(context, q, k, v, (dq, dk, dv, o, lse) => context.BlockSparse(dq, dk, dv, o, options, lse));

    /// <summary>Runs flash attention on the context; returns the output and the LSE as doubles.</summary>
    private static (double[] Output, double[] Lse) Run(AttentionContext context, TensorView q, TensorView k, TensorView v, FlashOptions options) =>
        Run(context, q, k, v, (dq, dk, dv, o, lse) => context.Flash(dq, dk, dv, o, options, lse));

    private static (double[] Output, double[] Lse) Run(AttentionContext context, TensorView q, TensorView k, TensorView v,
        Action<TensorView, TensorView, TensorView, TensorView, TensorView> call)
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

    /// <summary>
    /// One shared row set: every key block (<paramref name="causal"/> false), or the causal block pattern, key block c
    /// kept for query block r when its first key is at most the last query's position. Blocks every query sees whole
    /// are full unless <paramref name="asPartial"/>.
    /// </summary>
    private static FlexBlockMask CausalOrAll(int nq, int nk, int bq, int bk, bool causal, bool asPartial)
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
                if (causal && firstKey > lastPosition) continue;
                (!asPartial && (!causal || lastKey <= firstPosition) ? full[r] : partial[r]).Add(c);
            }
        }
        return new RandomMask(1, 1, 1, rows, columns, bq, bk, full, partial).Flex();
    }
}

/// <summary>
/// A block mask held as lists per (mask batch, mask head, query block) row, written out as a FlexAttention mask (with
/// spare row capacity) or as block CSR. Mask head h' serves query heads h with h / (QueryHeads / MaskHeads) = h'.
/// </summary>
internal sealed record RandomMask(int MaskBatch, int MaskHeads, int QueryHeads, int QueryBlocks, int KeyBlocks, int QueryBlockSize, int KeyBlockSize,
    List<int>[] Full, List<int>[] Partial)
{
    /// <summary>
    /// Draws a mask: batch extent 1 or B, head extent 1, Hkv or Hq, density 0.3 to 0.9 per row set, each listed block
    /// full or partial with even odds; rows ascending, as the API requires.
    /// </summary>
    public static RandomMask Draw(Random random, int batch, int heads, int kvHeads, int nq, int nk, int bq, int bk)
    {
        int maskBatch = random.Next(2) == 0 ? 1 : batch;
        int maskHeads = new[] { 1, kvHeads, heads }[random.Next(3)];
        int rows = (nq + bq - 1) / bq, columns = (nk + bk - 1) / bk;
        double density = 0.3 + 0.6 * random.NextDouble();
        var full = new List<int>[maskBatch * maskHeads * rows];
        var partial = new List<int>[full.Length];
        for (int r = 0; r < full.Length; r++)
        {
            (full[r], partial[r]) = ([], []);
            for (int c = 0; c < columns; c++)
                if (random.NextDouble() < density) (random.Next(2) == 0 ? full[r] : partial[r]).Add(c);
        }
        return new RandomMask(maskBatch, maskHeads, heads, rows, columns, bq, bk, full, partial);
    }

    /// <summary>The row of (batch, query head, query block).</summary>
    public int Row(int batch, int head, int queryBlock) =>
        ((MaskBatch == 1 ? 0 : batch) * MaskHeads + head / (QueryHeads / MaskHeads)) * QueryBlocks + queryBlock;

    /// <summary>As a FlexAttention mask with two spare slots per row, filled with indices no row may hold.</summary>
    public FlexBlockMask Flex()
    {
        int capacity = KeyBlocks + 2, rows = Full.Length;
        var fullIndices = new int[rows * capacity];
        var partialIndices = new int[rows * capacity];
        Array.Fill(fullIndices, -7);
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

    /// <summary>As block CSR: only for a mask of batch extent 1, its full blocks listed as partial ones.</summary>
    public BlockCsrMask Csr()
    {
        if (MaskBatch != 1) throw new InvalidOperationException("Block CSR holds one mask batch only.");
        int capacity = QueryBlocks * KeyBlocks + 3;
        var offsets = new int[MaskHeads * (QueryBlocks + 1)];
        var columns = new int[MaskHeads * capacity];
        for (int h = 0; h < MaskHeads; h++)
        {
            int n = 0;
            for (int r = 0; r < QueryBlocks; r++)
            {
                offsets[h * (QueryBlocks + 1) + r] = n;
                foreach (int c in Full[h * QueryBlocks + r].Concat(Partial[h * QueryBlocks + r]).Order()) columns[h * capacity + n++] = c;
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
    /// Options with this mask (block CSR, every block partial, when the batch extent allows and a coin says so) and a
    /// random predicate of the named kind for batches of two samples of <paramref name="nq"/> queries and
    /// <paramref name="nk"/> keys, plus the plain visibility rule of the result: <c>sees(b, h, i, j)</c>.
    /// </summary>
    public (BlockSparseOptions Options, Func<int, int, int, int, bool> Sees) WithPredicate(Random random, string kind, int nq, int nk)
    {
        bool csr = MaskBatch == 1 && random.Next(2) == 0;
        int left = random.Next(-1, 25), right = random.Next(-1, 25), documents = random.Next(1, 5);
        int[] prefixes = random.Next(2) == 0 ? [random.Next(0, nk + 3)] : [random.Next(0, nk + 3), random.Next(0, nk + 3)];
        // Two samples with different document boundaries, ids increasing along each sequence.
        int[] queryDocs = [.. Enumerable.Range(0, 2 * nq).Select(x => x % nq * (documents + x / nq) / nq)];
        int[] keyDocs = [.. Enumerable.Range(0, 2 * nk).Select(x => x % nk * (documents + x / nk) / nk)];
        var predicate = kind switch
        {
            "causal" => ElementPredicate.CausalMask,
            "window" => ElementPredicate.SlidingWindow(left, right),
            "wcausal" => ElementPredicate.SlidingWindow(left, right, causal: true),
            "prefix" => ElementPredicate.PrefixLM(prefixes),
            "docs" => ElementPredicate.Documents(queryDocs, keyDocs),
            _ => ElementPredicate.All,
        };
        bool Sees(int b, int h, int i, int j)
        {
            int row = Row(b, h, i / QueryBlockSize), block = j / KeyBlockSize;
            if (!csr && Full[row].Contains(block)) return true;
            if (!Partial[row].Contains(block) && !(csr && Full[row].Contains(block))) return false;
            int position = i + nk - nq;
            return kind switch
            {
                "causal" => j <= position,
                "window" => (left < 0 || j >= position - left) && (right < 0 || j <= position + right),
                "wcausal" => (left < 0 || j >= position - left) && (right < 0 || j <= position + right) && j <= position,
                "prefix" => j < prefixes[prefixes.Length == 1 ? 0 : b] || j <= position,
                "docs" => queryDocs[b * nq + i] == keyDocs[b * nk + j],
                _ => true,
            };
        }
        return (new BlockSparseOptions { Mask = csr ? Csr() : Flex(), Predicate = predicate }, Sees);
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

/// <summary>The key-split choice of the GPU host side, which depends only on the sizes, the longest row and the device.</summary>
public sealed class BlockSparseSplitTests
{
    [Theory]
    [InlineData(1, 100, 8, 16)]    // one work-group, long rows: as many splits as allowed
    [InlineData(1, 100, 2, 4)]     // two per compute unit
    [InlineData(1, 9, 8, 2)]       // at least 4 blocks per split
    [InlineData(1, 3, 8, 1)]       // too few blocks to split
    [InlineData(64, 500, 8, 1)]    // enough work-groups already
    [InlineData(5, 500, 8, 4)]
    public void Splits_FillTheDevice_WithinBounds(long groups, int longestRow, int computeUnits, int expected) =>
        Assert.Equal(expected, NativeAttention.Gpu.GpuBlockSparse.Splits(groups, longestRow, computeUnits));
}
