// Flex attention properties, written once against a Backend; the CPU subclass runs them (their tables are arrays, which
// only the CPU reads). FlexViewTests runs the built-in comparisons with view fields on the CPU, OpenCL and CUDA. Every built-in option written as a modification must equal the built-in path; random
// compositions must match the float64 reference; the block mask must not change results; misuse must fail early.
using FsCheck;
using FsCheck.Fluent;
using NativeAttention.Cpu;
using Xunit;

namespace NativeAttention.Ilgpu.Tests.Flex;

/// <summary>The Flex properties for one backend.</summary>
public abstract class FlexTests
{
    /// <summary>The backend the properties run on.</summary>
    protected abstract Backend Backend { get; }

    /// <summary>A context of <see cref="Backend"/>; <paramref name="vectorBits"/> (CPU only) forces a SIMD width.</summary>
    protected virtual AttentionContext CreateContext(int threads = 2, int? vectorBits = null) =>
        AttentionContext.Create(Backend, new ContextOptions { Threads = threads });

    /// <summary>The vector widths the backend can be forced to (null: its default only).</summary>
    protected virtual int?[] VectorWidths => [null];

    // ---- problems and runs

    /// <summary>Q, K, V host tensors of one problem.</summary>
    public sealed record Problem(int Batch, int QueryHeads, int KeyValueHeads, int QueryLength, int KeyLength, int HeadDim, int ValueDim, ElementType Type,
        TensorView Query, TensorView Key, TensorView Value)
    {
        public override string ToString() =>
            $"B={Batch} Hq={QueryHeads} Hkv={KeyValueHeads} Nq={QueryLength} Nk={KeyLength} D={HeadDim} Dv={ValueDim} {Type}" +
            (Query.Strides[1] == (long)HeadDim ? " token-major" : "");
    }

    /// <summary>A problem with uniform inputs in <c>[-range, range]</c>; token-major puts Q, K, V in <c>[B, N, H, D]</c> memory.</summary>
    public static Problem MakeProblem(Random random, int batch, int hq, int hkv, int nq, int nk, int d, int dv, ElementType type, double range = 1, bool tokenMajor = false)
    {
        TensorView Make(int heads, int n, int dim)
        {
            if (!tokenMajor) return Uniform(type, random, range, batch, heads, n, dim);
            return Uniform(type, random, range, batch, n, heads, dim).Permute(0, 2, 1, 3);
        }
        return new Problem(batch, hq, hkv, nq, nk, d, dv, type, Make(hq, nq, d), Make(hkv, nk, d), Make(hkv, nk, dv));
    }

    /// <summary>A contiguous host tensor of values uniform in <c>[-range, range]</c>.</summary>
    public static TensorView Uniform(ElementType type, Random random, double range, params int[] shape)
    {
        var view = NativeAttention.Gpu.TensorCopy.AllocateHost(type, shape);
        var values = new double[view.ElementCount];
        for (int i = 0; i < values.Length; i++) values[i] = (2 * random.NextDouble() - 1) * range;
        view.CopyFrom(values);
        return view;
    }

    private static TensorView Put(AttentionContext context, TensorView host) =>
        context.TensorLocation == MemoryLocation.Host ? host : context.Upload(host);

    /// <summary>Runs flex and returns (O, LSE) as doubles.</summary>
    protected internal static (double[] Output, double[] LogSumExp) RunFlex<TScore, TMask>(AttentionContext context, Problem p, TScore score, TMask mask, FlexOptions? options = null)
        where TScore : struct, IScoreMod where TMask : struct, IMaskMod
    {
        var output = context.Allocate(p.Type, p.Batch, p.QueryHeads, p.QueryLength, p.ValueDim);
        var lse = context.Allocate(ElementType.Float32, p.Batch, p.QueryHeads, p.QueryLength);
        context.Flex(Put(context, p.Query), Put(context, p.Key), Put(context, p.Value), output, score, mask, options, lse);
        return (context.Download(output).ToDoubleArray(), context.Download(lse).ToDoubleArray());
    }

    /// <summary>Runs the built-in flash path and returns (O, LSE).</summary>
    protected internal static (double[] Output, double[] LogSumExp) RunFlash(AttentionContext context, Problem p, FlashOptions options)
    {
        var output = context.Allocate(p.Type, p.Batch, p.QueryHeads, p.QueryLength, p.ValueDim);
        var lse = context.Allocate(ElementType.Float32, p.Batch, p.QueryHeads, p.QueryLength);
        context.Flash(Put(context, p.Query), Put(context, p.Key), Put(context, p.Value), output, options, lse);
        return (context.Download(output).ToDoubleArray(), context.Download(lse).ToDoubleArray());
    }

    /// <summary>Runs the built-in block-sparse path over every block (all partial) with <paramref name="predicate"/>.</summary>
    protected internal static (double[] Output, double[] LogSumExp) RunBlockSparse(AttentionContext context, Problem p, ElementPredicate predicate)
    {
        const int block = 16;
        int queryBlocks = (p.QueryLength + block - 1) / block, keyBlocks = (p.KeyLength + block - 1) / block;
        var dense = new byte[queryBlocks * keyBlocks];
        Array.Fill(dense, BlockMasks.Partial);
        var mask = BlockMasks.FromDense(new DenseBlocks(dense, 1, 1, queryBlocks, keyBlocks, block, block));
        var output = context.Allocate(p.Type, p.Batch, p.QueryHeads, p.QueryLength, p.ValueDim);
        var lse = context.Allocate(ElementType.Float32, p.Batch, p.QueryHeads, p.QueryLength);
        context.BlockSparse(Put(context, p.Query), Put(context, p.Key), Put(context, p.Value), output, new BlockSparseOptions { Mask = mask, Predicate = predicate }, lse);
        return (context.Download(output).ToDoubleArray(), context.Download(lse).ToDoubleArray());
    }

    /// <summary>Output tolerance of a storage type: a few units of its last place at magnitude 1, plus <paramref name="extra"/>.</summary>
    protected internal static double OutputTolerance(ElementType type, double extra) => type switch
    {
        ElementType.Float16 => 2e-3 + extra,
        ElementType.BFloat16 => 1.6e-2 + extra,
        _ => extra,
    };

    /// <summary>Asserts two result sets agree: outputs within <paramref name="outputTolerance"/>, LSEs within <paramref name="lseTolerance"/> (equal infinities).</summary>
    protected internal static void AssertClose((double[] Output, double[] LogSumExp) expected, (double[] Output, double[] LogSumExp) actual,
        double outputTolerance, double lseTolerance, string what)
    {
        Assert.Equal(expected.Output.Length, actual.Output.Length);
        for (int i = 0; i < expected.Output.Length; i++)
            if (!(Math.Abs(expected.Output[i] - actual.Output[i]) <= outputTolerance))
                Assert.Fail($"{what}: output element {i} is {actual.Output[i]}, expected {expected.Output[i]} (tolerance {outputTolerance}).");
        for (int i = 0; i < expected.LogSumExp.Length; i++)
        {
            double e = expected.LogSumExp[i], a = actual.LogSumExp[i];
            bool ok = double.IsNegativeInfinity(e) ? double.IsNegativeInfinity(a) : Math.Abs(e - a) <= lseTolerance;
            if (!ok) Assert.Fail($"{what}: log-sum-exp element {i} is {a}, expected {e} (tolerance {lseTolerance}).");
        }
    }

    private static FlexOptions WithBlockMask<TMask>(AttentionContext context, Problem p, TMask mask, int queryBlock = 16, int keyBlock = 32)
        where TMask : struct, IMaskMod =>
        new() { BlockMask = context.CreateBlockMask(mask, p.Batch, p.QueryHeads, p.QueryLength, p.KeyLength, queryBlock, keyBlock) };

    /// <summary>
    /// Checks flex (with and without a block mask from <see cref="FlexAttention.CreateBlockMask"/>) against the built-in
    /// result <paramref name="builtIn"/>.
    /// </summary>
    private void AssertEqualsBuiltIn<TScore, TMask>(AttentionContext context, Problem p, TScore score, TMask mask, (double[], double[]) builtIn, string what)
        where TScore : struct, IScoreMod where TMask : struct, IMaskMod
    {
        double outTol = OutputTolerance(p.Type, 3e-5), lseTol = 1e-4;
        AssertClose(builtIn, RunFlex(context, p, score, mask), outTol, lseTol, $"{what} (no block mask) {p}");
        AssertClose(builtIn, RunFlex(context, p, score, mask, WithBlockMask(context, p, mask)), outTol, lseTol, $"{what} (block mask) {p}");
    }

    private static Problem BuiltInProblem(ElementType type, int seed, double range = 1) =>
        MakeProblem(new Random(seed), batch: 2, hq: 4, hkv: 2, nq: 77, nk: 150, d: 32, dv: 24, type, range);

    // ---- every built-in option, as a modification, equals the built-in path

    [Theory]
    [InlineData(ElementType.Float32)]
    [InlineData(ElementType.Float16)]
    [InlineData(ElementType.BFloat16)]
    public void CausalEqualsBuiltIn(ElementType type)
    {
        using var context = CreateContext();
        var p = BuiltInProblem(type, 1);
        AssertEqualsBuiltIn(context, p, new NoScoreMod(), new CausalMask(p.QueryLength, p.KeyLength), RunFlash(context, p, new FlashOptions { Causal = true }), "causal");
    }

    [Theory]
    [InlineData(ElementType.Float32, 20, 5, false)]
    [InlineData(ElementType.Float32, 40, -1, true)]
    [InlineData(ElementType.BFloat16, 3, 30, false)]
    public void SlidingWindowEqualsBuiltIn(ElementType type, int left, int right, bool causal)
    {
        using var context = CreateContext();
        var p = BuiltInProblem(type, 2);
        var flash = RunFlash(context, p, new FlashOptions { WindowLeft = left, WindowRight = right, Causal = causal });
        AssertEqualsBuiltIn(context, p, new NoScoreMod(), new WindowMask(p.QueryLength, p.KeyLength, left, right, causal), flash, $"window({left},{right},{causal})");
    }

    [Theory]
    [InlineData(ElementType.Float32)]
    [InlineData(ElementType.Float16)]
    public void AlibiEqualsBuiltIn(ElementType type)
    {
        using var context = CreateContext();
        var p = BuiltInProblem(type, 3);
        float[] slopes = [0.5f, 0.25f, 0.0625f, 0.0078125f];
        var flash = RunFlash(context, p, new FlashOptions { Causal = true, AlibiSlopes = TensorView.FromMemory<float>(slopes.ToArray(), slopes.Length) });
        var mask = new CausalMask(p.QueryLength, p.KeyLength);
        AssertEqualsBuiltIn(context, p, new AlibiScore(slopes, p.QueryLength, p.KeyLength), mask, flash, "ALiBi (vector form)");
        AssertEqualsBuiltIn(context, p, new ScalarAlibiScore(slopes, p.QueryLength, p.KeyLength), mask, flash, "ALiBi (scalar form)");
    }

    [Fact]
    public void LongerCausalAlibiWithDefaultBlocksEqualsBuiltIn()
    {
        // Several items and 64-key tiles per 128 x 128 block, GQA 2:1, as the benchmark runs it (smaller).
        using var context = CreateContext();
        var p = MakeProblem(new Random(16), 1, 4, 2, 700, 700, 64, 64, ElementType.Float32);
        float[] slopes = [0.5f, 0.125f, 0.03125f, 0.0078125f];
        var flash = RunFlash(context, p, new FlashOptions { Causal = true, AlibiSlopes = TensorView.FromMemory<float>(slopes.ToArray(), slopes.Length) });
        var mask = new CausalMask(p.QueryLength, p.KeyLength);
        var options = new FlexOptions { BlockMask = context.CreateBlockMask(mask, 1, 1, p.QueryLength, p.KeyLength) };
        AssertClose(flash, RunFlex(context, p, new AlibiScore(slopes, p.QueryLength, p.KeyLength), mask, options), 3e-5, 1e-4, $"causal ALiBi, blocks 128 {p}");
    }

    [Theory]
    [InlineData(ElementType.Float32)]
    [InlineData(ElementType.BFloat16)]
    public void SoftcapEqualsBuiltIn(ElementType type)
    {
        using var context = CreateContext();
        var p = BuiltInProblem(type, 4, range: 2);
        var flash = RunFlash(context, p, new FlashOptions { Softcap = 3 });
        AssertEqualsBuiltIn(context, p, new SoftcapScore(3), new NoMask(), flash, "softcap");
        float[] slopes = [0.5f, 0.25f, 0.125f, 0.0625f];
        var both = RunFlash(context, p, new FlashOptions { Softcap = 3, AlibiSlopes = TensorView.FromMemory<float>(slopes.ToArray(), slopes.Length) });
        AssertEqualsBuiltIn(context, p, new SoftcapAlibiScore(3, slopes, p.QueryLength, p.KeyLength), new NoMask(), both, "softcap then ALiBi");
    }

    [Theory]
    [InlineData(ElementType.Float32, 2, 4)]
    [InlineData(ElementType.Float32, 1, 1)]
    [InlineData(ElementType.Float16, 1, 4)]
    public void DenseBiasEqualsBuiltIn(ElementType type, int biasBatch, int biasHeads)
    {
        using var context = CreateContext();
        var p = BuiltInProblem(type, 5);
        var random = new Random(55);
        var bias = new float[biasBatch * biasHeads * p.QueryLength * p.KeyLength];
        for (int i = 0; i < bias.Length; i++) bias[i] = (float)(3 * random.NextDouble() - 1.5);
        var biasTensor = TensorView.FromMemory<float>(bias.ToArray(), biasBatch, biasHeads, p.QueryLength, p.KeyLength);
        var flash = RunFlash(context, p, new FlashOptions { Causal = true, Bias = biasTensor });
        AssertEqualsBuiltIn(context, p, new DenseBiasScore(bias, biasBatch, biasHeads, p.QueryLength, p.KeyLength), new CausalMask(p.QueryLength, p.KeyLength), flash, "dense bias");
    }

    [Theory]
    [InlineData(ElementType.Float32)]
    [InlineData(ElementType.BFloat16)]
    public void DocumentMaskEqualsBuiltIn(ElementType type)
    {
        using var context = CreateContext();
        var p = BuiltInProblem(type, 6);
        var random = new Random(66);
        int[] Documents(int n)
        {
            var ids = new int[p.Batch * n];
            for (int b = 0; b < p.Batch; b++)
            {
                int id = 0;
                for (int i = 0; i < n; i++) { if (random.Next(20) == 0) id++; ids[b * n + i] = id; }
            }
            return ids;
        }
        int[] queryDocuments = Documents(p.QueryLength), keyDocuments = Documents(p.KeyLength);
        var builtIn = RunBlockSparse(context, p, ElementPredicate.Documents(queryDocuments, keyDocuments));
        AssertEqualsBuiltIn(context, p, new NoScoreMod(), new DocumentMask(queryDocuments, keyDocuments, p.QueryLength, p.KeyLength), builtIn, "document mask");
    }

    [Theory]
    [InlineData(ElementType.Float32)]
    [InlineData(ElementType.Float16)]
    public void PrefixLmEqualsBuiltIn(ElementType type)
    {
        using var context = CreateContext();
        var p = BuiltInProblem(type, 7);
        int[] prefixes = [30, 101];
        var builtIn = RunBlockSparse(context, p, ElementPredicate.PrefixLM(prefixes));
        AssertEqualsBuiltIn(context, p, new NoScoreMod(), new PrefixLmMask(prefixes, p.QueryLength, p.KeyLength), builtIn, "prefix-LM");
    }

    // ---- random compositions against the reference

    /// <summary>One random flex case: a problem, a score program (maybe with its vector form), a mask program, block sizes, threads and width.</summary>
    /// <remarks>
    /// <see cref="MaskBatch"/> and <see cref="MaskHeads"/> are the extents the block mask is created with (1 or B; 1, Hkv or
    /// Hq) for the reference comparison: a block mask created from batch 0 or head 0 and broadcast is a different mask
    /// from the modification's own, and the reference applies it with the same rule the kernel must.
    /// </remarks>
    public sealed record RandomCase(Problem Problem, ScoreProgram Score, bool VectorScore, MaskProgram Mask, bool UseBlockMask, int QueryBlock, int KeyBlock,
        int Threads, int? VectorBits, float? Scale, int MaskBatch, int MaskHeads)
    {
        public override string ToString() =>
            $"{Problem} score=[{Score}]{(VectorScore ? " vector" : "")} mask=[{Mask}] blockMask={(UseBlockMask ? $"{QueryBlock}x{KeyBlock} extents {MaskBatch}x{MaskHeads}" : "none")} threads={Threads} bits={VectorBits?.ToString() ?? "default"} scale={Scale?.ToString() ?? "default"}";
    }

    private RandomCase Sample(Random r)
    {
        int hkv = r.Next(1, 3), group = r.Next(1, 4);
        int nq = r.Next(4) == 0 ? r.Next(1, 9) : r.Next(1, 160), nk = r.Next(1, 220);
        int d = new[] { 8, 16, 32, 64, 128 }[r.Next(5)], dv = r.Next(3) == 0 ? d : new[] { 8, 24, 40, 64 }[r.Next(4)];
        var type = new[] { ElementType.Float32, ElementType.Float32, ElementType.Float16, ElementType.BFloat16 }[r.Next(4)];
        var p = MakeProblem(r, r.Next(1, 3), hkv * group, hkv, nq, nk, d, dv, type, range: 1 + r.NextDouble(), tokenMajor: r.Next(4) == 0);
        var steps = new ScoreStep[r.Next(0, 4)];
        for (int i = 0; i < steps.Length; i++)
        {
            var kind = (ScoreStepKind)r.Next(6);
            steps[i] = new ScoreStep(kind, kind == ScoreStepKind.Softcap ? (float)(1 + 4 * r.NextDouble()) : (float)(2 * r.NextDouble() - 0.5));
        }
        var slopes = Enumerable.Range(0, p.QueryHeads).Select(_ => (float)Math.Pow(2, -r.Next(1, 9))).ToArray();
        var bias = Enumerable.Range(0, p.Batch * p.QueryHeads * nq * nk).Select(_ => (float)(2 * r.NextDouble() - 1)).ToArray();
        var score = new ScoreProgram(steps, slopes, bias, p.QueryHeads, nq, nk);
        var clauses = new MaskClause[r.Next(0, 3)];
        for (int i = 0; i < clauses.Length; i++)
        {
            var kind = (MaskClauseKind)r.Next(7);
            clauses[i] = kind switch
            {
                MaskClauseKind.Window => new MaskClause(kind, r.Next(0, 60), r.Next(0, 60)),
                MaskClauseKind.KeyStripe => new MaskClause(kind, r.Next(2, 5), r.Next(0, 2)),
                MaskClauseKind.HiddenQueries => new MaskClause(kind, r.Next(2, 8), r.Next(0, 2)),
                _ => new MaskClause(kind, 0, 0),
            };
        }
        int[] Documents(int n) { var ids = new int[p.Batch * n]; int id = 0; for (int i = 0; i < ids.Length; i++) { if (r.Next(25) == 0) id++; ids[i] = id; } return ids; }
        var prefixes = Enumerable.Range(0, p.Batch).Select(_ => r.Next(0, nk + 1)).ToArray();
        var mask = new MaskProgram(clauses, any: r.Next(3) == 0, Documents(nq), Documents(nk), prefixes, nq, nk);
        int[] sizes = [16, 32, 64, 128];
        var widths = VectorWidths;
        return new RandomCase(p, score, r.Next(2) == 0, mask, r.Next(3) != 0, sizes[r.Next(4)], sizes[r.Next(4)], r.Next(1, 3), widths[r.Next(widths.Length)],
            r.Next(4) == 0 ? (float)(0.05 + r.NextDouble() * 0.3) : null,
            r.Next(2) == 0 ? 1 : p.Batch, new[] { 1, p.KeyValueHeads, p.QueryHeads }[r.Next(3)]);
    }

    private Arbitrary<RandomCase> RandomCases() => Arb.From(Gen.Choose(0, int.MaxValue).Select(seed => Sample(new Random(seed))));

    [Fact]
    public void RandomCompositionsMatchReference() =>
        FlexProperties.Check(RandomCases(), c =>
        {
            using var context = CreateContext(c.Threads, c.VectorBits);
            var p = c.Problem;
            var options = new FlexOptions
            {
                Scale = c.Scale,
                BlockMask = c.UseBlockMask ? context.CreateBlockMask(c.Mask, c.MaskBatch, c.MaskHeads, p.QueryLength, p.KeyLength, c.QueryBlock, c.KeyBlock) : null,
            };
            double scale = c.Scale ?? 1 / Math.Sqrt(p.HeadDim);
            var expected = FlexReference.Run(p.Query, p.Key, p.Value, scale, options.BlockMask, c.Score, c.Mask);
            var actual = c.VectorScore ? RunFlex(context, p, new VectorScoreProgram(c.Score), c.Mask, options) : RunFlex(context, p, c.Score, c.Mask, options);
            AssertClose(expected, actual, OutputTolerance(p.Type, 2e-4), 2e-4, c.ToString());
        }, count: 25);

    [Fact]
    public void BlockMaskDoesNotChangeResults() =>
        FlexProperties.Check(RandomCases(), c =>
        {
            using var context = CreateContext(c.Threads, c.VectorBits);
            var p = c.Problem;
            var without = RunFlex(context, p, c.Score, c.Mask, new FlexOptions { Scale = c.Scale });
            var blockMask = context.CreateBlockMask(c.Mask, p.Batch, p.QueryHeads, p.QueryLength, p.KeyLength, c.QueryBlock, c.KeyBlock);
            var with = RunFlex(context, p, c.Score, c.Mask, new FlexOptions { Scale = c.Scale, BlockMask = blockMask });
            AssertClose(without, with, OutputTolerance(p.Type, 1e-6), 1e-6, c.ToString());
        }, count: 10);

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 2)]
    [InlineData(1, 6)]
    [InlineData(2, 3)]
    public void BlockMaskExtentsBroadcastOverBatchAndGqaGroups(int maskBatch, int maskHeads)
    {
        // Hq = 6 over Hkv = 2 (groups of 3) or 3 (groups of 2): a head-dependent mask whose block rows differ per head.
        int hkv = maskHeads == 3 ? 3 : 2;
        var p = MakeProblem(new Random(15), 2, 6, hkv, 90, 130, 16, 16, ElementType.Float32);
        var mask = new HeadWindowMask(p.QueryLength, p.KeyLength);
        using var context = CreateContext();
        var options = new FlexOptions { BlockMask = context.CreateBlockMask(mask, maskBatch, maskHeads, p.QueryLength, p.KeyLength, 16, 16) };
        var expected = FlexReference.Run(p.Query, p.Key, p.Value, 1 / Math.Sqrt(p.HeadDim), options.BlockMask, new NoScoreMod(), mask);
        AssertClose(expected, RunFlex(context, p, new NoScoreMod(), mask, options), 2e-4, 2e-4, $"mask extents {maskBatch} x {maskHeads}");
    }

    [Fact]
    public void ResultsDoNotDependOnThreads()
    {
        var p = MakeProblem(new Random(8), 2, 6, 2, 300, 333, 64, 64, ElementType.Float32);
        float[] slopes = [0.5f, 0.25f, 0.125f, 0.0625f, 0.03125f, 0.015625f];
        var score = new AlibiScore(slopes, p.QueryLength, p.KeyLength);
        var mask = new CausalMask(p.QueryLength, p.KeyLength);
        using var one = CreateContext(1);
        using var two = CreateContext(2);
        var options = new FlexOptions { BlockMask = one.CreateBlockMask(mask, 1, 1, p.QueryLength, p.KeyLength) };
        AssertClose(RunFlex(one, p, score, mask, options), RunFlex(two, p, score, mask, options), 0, 0, "1 vs 2 threads");
    }

    [Fact]
    public void RowsThatSeeNothingWriteZerosAndNegativeInfinity()
    {
        using var context = CreateContext();
        var p = MakeProblem(new Random(9), 1, 2, 1, 40, 50, 16, 16, ElementType.Float32);
        var mask = new MaskProgram([new MaskClause(MaskClauseKind.HiddenQueries, 3, 1)], false, [], [], [], 40, 50);
        foreach (var options in new[] { null, new FlexOptions { BlockMask = context.CreateBlockMask(mask, 1, 1, 40, 50, 16, 16) } })
        {
            var (output, lse) = RunFlex(context, p, new NoScoreMod(), mask, options);
            for (int h = 0; h < 2; h++)
            for (int q = 1; q < 40; q += 3)
            {
                Assert.True(double.IsNegativeInfinity(lse[h * 40 + q]), $"LSE of hidden query {q}");
                for (int x = 0; x < 16; x++) Assert.Equal(0.0, output[(h * 40 + q) * 16 + x]);
            }
        }
    }

    [Fact]
    public void SteadyCallsAllocateNothing()
    {
        // One thread: the whole call runs on the calling thread, whose allocation count is exact whatever runs beside it.
        using var context = CreateContext(threads: 1);
        if (context.TensorLocation != MemoryLocation.Host) return;   // device backends: their own allocation tests
        var p = MakeProblem(new Random(17), 1, 4, 2, 130, 170, 32, 32, ElementType.Float32);
        float[] slopes = [0.5f, 0.25f, 0.125f, 0.0625f];
        var score = new AlibiScore(slopes, p.QueryLength, p.KeyLength);
        var mask = new CausalMask(p.QueryLength, p.KeyLength);
        var options = new FlexOptions { BlockMask = context.CreateBlockMask(mask, 1, 1, p.QueryLength, p.KeyLength, 32, 32) };
        var output = context.Allocate(ElementType.Float32, 1, 4, p.QueryLength, p.ValueDim);
        var lse = context.Allocate(ElementType.Float32, 1, 4, p.QueryLength);
        for (int i = 0; i < 20; i++) context.Flex(p.Query, p.Key, p.Value, output, score, mask, options, lse);
        // The smallest of a few windows: a genuine per-call allocation shows in every one, while a garbage collection
        // that another test's thread sets off inside a window can make one window read a few bytes (dotnet/coreclr#10207).
        long bytes = long.MaxValue;
        for (int w = 0; w < 5 && bytes > 0; w++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 50; i++) context.Flex(p.Query, p.Key, p.Value, output, score, mask, options, lse);
            bytes = Math.Min(bytes, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        Assert.Equal(0, bytes);
    }

    // ---- CreateBlockMask

    [Fact]
    public void CreateBlockMaskClassifiesCausalBlocks()
    {
        using var context = CreateContext();
        var mask = context.CreateBlockMask(new CausalMask(64, 64), 1, 1, 64, 64, 16, 16);
        Assert.Equal(16, mask.QueryBlockSize);
        for (int r = 0; r < 4; r++)
        {
            Assert.Equal(1, mask.PartialCounts.Span[r]);
            Assert.Equal(r, mask.PartialIndices.Span[r * mask.MaxBlocksPerRow]);
            int fullCount = mask.FullCounts.IsEmpty ? 0 : mask.FullCounts.Span[r];
            Assert.Equal(r, fullCount);
            for (int n = 0; n < fullCount; n++) Assert.Equal(n, mask.FullIndices.Span[r * mask.MaxBlocksPerRow + n]);
        }
        // Nq != Nk: query i sits at i + 32; short last blocks (Nq = 40 and Nk = 72, blocks 16 x 32).
        var shifted = context.CreateBlockMask(new CausalMask(40, 72), 1, 1, 40, 72, 16, 32);
        var dense = BlockMasks.ToDense(shifted, 3);
        // Query block 0 (positions 32..47) sees key block 0 fully, key block 1 (32..63) partially, key block 2 (64..71) not at all.
        Assert.Equal(new[] { BlockMasks.Full, BlockMasks.Partial, BlockMasks.Skip }, dense.Blocks[0..3]);
        // Query block 2 (queries 32..39, positions 64..71): blocks 0 and 1 full, block 2 (keys 64..71) partial.
        Assert.Equal(new[] { BlockMasks.Full, BlockMasks.Full, BlockMasks.Partial }, dense.Blocks[6..9]);
    }

    // ---- misuse

    [Fact]
    public void BadTensorsAndOptionsThrowNamedArgumentExceptions()
    {
        using var context = CreateContext();
        var p = MakeProblem(new Random(10), 1, 2, 1, 20, 30, 16, 16, ElementType.Float32);
        var output = context.Allocate(ElementType.Float32, 1, 2, 20, 16);
        var badKey = Uniform(ElementType.Float32, new Random(1), 1, 1, 1, 30, 8);
        Assert.Equal("key", Assert.ThrowsAny<ArgumentException>(() => context.Flex(p.Query, badKey, p.Value, output, new NoScoreMod(), new NoMask())).ParamName);
        var badOutput = context.Allocate(ElementType.Float32, 1, 2, 21, 16);
        Assert.Equal("output", Assert.ThrowsAny<ArgumentException>(() => context.Flex(p.Query, p.Key, p.Value, badOutput, new NoScoreMod(), new NoMask())).ParamName);
        Assert.Equal("options.Scale", Assert.ThrowsAny<ArgumentException>(() =>
            context.Flex(p.Query, p.Key, p.Value, output, new NoScoreMod(), new NoMask(), new FlexOptions { Scale = float.NaN })).ParamName);
        // A block mask made for longer keys lists blocks this call does not have.
        var tooLong = context.CreateBlockMask(new NoMask(), 1, 1, 20, 300, 16, 16);
        Assert.Equal("options.BlockMask.FullCounts", Assert.ThrowsAny<ArgumentException>(() =>
            context.Flex(p.Query, p.Key, p.Value, output, new NoScoreMod(), new NoMask(), new FlexOptions { BlockMask = tooLong })).ParamName);
        var threeHeads = context.CreateBlockMask(new NoMask(), 1, 3, 20, 30, 16, 16);
        Assert.Equal("options.BlockMask.MaskHeads", Assert.ThrowsAny<ArgumentException>(() =>
            context.Flex(p.Query, p.Key, p.Value, output, new NoScoreMod(), new NoMask(), new FlexOptions { BlockMask = threeHeads })).ParamName);
        Assert.Equal("queryBlockSize", Assert.ThrowsAny<ArgumentException>(() => context.CreateBlockMask(new NoMask(), 1, 1, 20, 30, 8, 16)).ParamName);
        Assert.Equal("keyBlockSize", Assert.ThrowsAny<ArgumentException>(() => context.CreateBlockMask(new NoMask(), 1, 1, 20, 30, 16, 256)).ParamName);
        Assert.Equal("batch", Assert.ThrowsAny<ArgumentException>(() => context.CreateBlockMask(new NoMask(), 0, 1, 20, 30)).ParamName);
        Assert.Equal("keyLength", Assert.ThrowsAny<ArgumentException>(() => context.CreateBlockMask(new NoMask(), 1, 1, 20, -1)).ParamName);
    }

    [Fact]
    public void OutOfRangeFieldReadFailsBeforeAnythingRuns()
    {
        using var context = CreateContext();
        var p = MakeProblem(new Random(11), 1, 2, 1, 20, 30, 16, 16, ElementType.Float32);
        var output = context.Allocate(ElementType.Float32, 1, 2, 20, 16);
        var sentinel = Enumerable.Repeat(7.0, 2 * 20 * 16).ToArray();
        output.CopyFrom(sentinel);
        var e = Assert.Throws<FlexModificationException>(() => context.Flex(p.Query, p.Key, p.Value, output, new ShortTableScore(new float[29]), new NoMask()));
        Assert.Equal(typeof(ShortTableScore), e.ModificationType);
        Assert.IsType<IndexOutOfRangeException>(e.InnerException);
        Assert.Contains(nameof(ShortTableScore), e.Message);
        Assert.Contains("key 29", e.Message);
        Assert.Equal(sentinel, context.Download(output).ToDoubleArray());
        // A mask table too short is caught the same way, as the mask.
        var shortDocuments = new DocumentMask(new int[20], new int[10], 20, 30);
        var m = Assert.Throws<FlexModificationException>(() => context.Flex(p.Query, p.Key, p.Value, output, new NoScoreMod(), shortDocuments));
        Assert.Equal(typeof(DocumentMask), m.ModificationType);
        Assert.Equal("mask", m.Role);
        Assert.Equal(sentinel, context.Download(output).ToDoubleArray());
    }

    [Fact]
    public void ModificationsThrowingInsideTheKernelNameTheStruct()
    {
        using var context = CreateContext();
        var p = MakeProblem(new Random(12), 1, 2, 1, 80, 60, 16, 16, ElementType.Float32);
        var output = context.Allocate(ElementType.Float32, 1, 2, 80, 16);
        var e = Assert.Throws<FlexModificationException>(() => context.Flex(p.Query, p.Key, p.Value, output, new NoScoreMod(), new ThrowingMask()));
        Assert.Equal(typeof(ThrowingMask), e.ModificationType);
        Assert.Equal("mask", e.Role);
        Assert.Contains("cursed", e.Message);
        var s = Assert.Throws<FlexModificationException>(() => context.Flex(p.Query, p.Key, p.Value, output, new ThrowingScore(), new NoMask()));
        Assert.Equal(typeof(ThrowingScore), s.ModificationType);
        Assert.Equal("score", s.Role);
        // CreateBlockMask evaluates every element up front and names the exact one.
        var c = Assert.Throws<FlexModificationException>(() => context.CreateBlockMask(new ThrowingMask(), 1, 1, 80, 60));
        Assert.Contains("query 37, key 5", c.Message);
        Assert.Equal(typeof(ThrowingMask), c.ModificationType);
    }

    [Fact]
    public void DisposedContextThrows()
    {
        var context = CreateContext();
        var p = MakeProblem(new Random(13), 1, 1, 1, 8, 8, 8, 8, ElementType.Float32);
        var output = context.Allocate(ElementType.Float32, 1, 1, 8, 8);
        context.Dispose();
        Assert.Throws<ObjectDisposedException>(() => context.Flex(p.Query, p.Key, p.Value, output, new NoScoreMod(), new NoMask()));
        Assert.Throws<ObjectDisposedException>(() => context.CreateBlockMask(new NoMask(), 1, 1, 8, 8, 16, 16));
    }
}

/// <summary>The Flex properties on the CPU backend, at every SIMD width this machine accelerates.</summary>
public sealed class CpuFlexTests : FlexTests
{
    protected override Backend Backend => Backend.Cpu;

    protected override AttentionContext CreateContext(int threads = 2, int? vectorBits = null) =>
        new CpuContext(new ContextOptions { Threads = threads }) { ForcedVectorBits = vectorBits };

    protected override int?[] VectorWidths =>
        new int?[] { null, 512, 256, 128, 0 }.Where(b => b is null or 0 || b <= CpuFeatures.VectorBits).ToArray();
}
