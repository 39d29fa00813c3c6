// Steady-state calls allocate nothing: after a warm-up, repeating a call with the same shapes must not allocate managed
// memory, neither on the calling thread nor on any other (the CPU backend's workers).
using Xunit;
using Xunit.Abstractions;

namespace NativeAttention.Tests;

/// <summary>Allocation tests run alone: the process-wide count would otherwise see other tests' allocations.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AllocationCollection
{
    public const string Name = "Allocation (not parallel)";
}

/// <summary>
/// Calls with the same shapes, repeated after a warm-up, allocate 0 bytes: measured with
/// <see cref="GC.GetAllocatedBytesForCurrentThread"/> on the calling thread and on every CPU pool thread
/// (<see cref="AllocationMeter"/>). A decode loop of thousands of steps per second must never
/// wake the GC.
/// </summary>
public abstract class AllocationTests(ITestOutputHelper output)
{
    private const int Warmup = 30, Calls = 200, Windows = 5;

    protected abstract Backend Backend { get; }

    /// <summary>One call shape: a name for messages, the call, run on the context's own tensors.</summary>
    public static TheoryData<string> Shapes() =>
    [
        "flash prefill fp32", "flash prefill bf16 causal lse", "flash prefill fp32 causal alibi softcap", "flash prefill fp16 bias sinks lse", "flash decode-shaped fp32 GQA", "flash decode-shaped fp16 MHA sinks lse",
        "flash decode-shaped bf16 MQA causal window alibi", "kvcache fp32 GQA", "kvcache fp16 append rotary lse", "kvcache bf16 paged splits", "kvcache fp16 prefill-shaped GQA causal lse",
    ];

    [SkippableTheory]
    [MemberData(nameof(Shapes))]
    public void SteadyStateCall_AllocatesNothing(string shape)
    {
        using var context = TestBackend.CreateOrSkip(Backend, threads: 2);
        AssertAllocatesNothing(context, Build(context, shape), shape);
    }

    /// <summary>
    /// Runs <paramref name="call"/> <see cref="Warmup"/> times, then measures windows of <see cref="Calls"/> calls
    /// (<see cref="AllocationMeter"/>): 0 bytes on the calling thread and on the CPU pool threads, or the test fails.
    /// </summary>
    protected void AssertAllocatesNothing(AttentionContext context, Action call, string shape)
    {
        for (int i = 0; i < Warmup; i++) call();
        context.Synchronize();
        var bytes = AllocationMeter.Measure(call, Calls, Windows, context.Synchronize);
        output.WriteLine($"{Backend} {shape}: {AllocationMeter.Describe(bytes, Calls)}");
        AllocationMeter.AssertNothing(bytes, Calls, shape);
    }

    /// <summary>
    /// Linear-attention decode steps (a decode loop too) and chunked calls: validation into the thread's reusable problem,
    /// the CPU kernel's reusable plan, and on GPUs the cached kernel name and source and the meta data on the stack.
    /// </summary>
    public static TheoryData<string> LinearShapes() =>
        ["linear decode fp32", "linear decode bf16 per-head decay normalize", "linear decode fp32 per-token gate", "linear verify fp32", "linear chunked fp32 per-token gate", "linear chunked bf16 per-head decay normalize"];

    [SkippableTheory]
    [MemberData(nameof(LinearShapes))]
    public void SteadyStateLinearDecode_AllocatesNothing(string shape)
    {
        using var context = TestBackend.CreateOrSkip(Backend, threads: 2);
        var random = new Random(shape.Length);
        ElementType type = shape.Contains("bf16") ? ElementType.BFloat16 : ElementType.Float32;
        int batch = 2, heads = 4, tokens = shape.Contains("verify") ? 4 : 1, d = 32;
        TensorView Put(ElementType t, double range, params int[] dims) => context.Upload(TestTensors.Uniform(t, random, range, dims));
        var options = new LinearOptions { Normalize = shape.Contains("normalize") };
        if (shape.Contains("per-head")) options = options with { Decay = DecayKind.PerHead, HeadLogDecay = new[] { -0.1f, -0.2f, -0.3f, -0.4f } };
        if (shape.Contains("per-token"))
            options = options with { Decay = DecayKind.PerToken, LogGate = context.Upload(TestTensors.Of(ElementType.Float32, [batch, heads, tokens], Enumerable.Repeat(-0.25, batch * heads * tokens).ToArray())) };
        int columns = d + (options.Normalize ? 1 : 0);
        var (q, k, v) = (Put(type, 1.0, batch, heads, tokens, d), Put(type, 1.0, batch, heads, tokens, d), Put(type, 1.0, batch, heads, tokens, d));
        var o = context.Allocate(type, batch, heads, tokens, d);
        var state = context.Upload(TestTensors.Uniform(ElementType.Float32, random, 0.01, [batch, heads, d, columns]));
        TensorView? intermediate = tokens > 1 ? context.Allocate(ElementType.Float32, batch, tokens, heads, d, columns) : null;
        if (shape.Contains("chunked"))
        {
            var (qc, kc, vc) = (Put(type, 1.0, batch, heads, 48, d), Put(type, 1.0, batch, heads, 48, d), Put(type, 1.0, batch, heads, 48, d));
            var oc = context.Allocate(type, batch, heads, 48, d);
            var final = context.Allocate(ElementType.Float32, batch, heads, d, columns);
            if (options.LogGate.HasValue)
                options = options with { LogGate = context.Upload(TestTensors.Of(ElementType.Float32, [batch, heads, 48], Enumerable.Repeat(-0.25, batch * heads * 48).ToArray())) };
            var chunked = options with { ChunkSize = 16 };
            AssertAllocatesNothing(context, () => context.LinearChunked(qc, kc, vc, oc, chunked, state, final), shape);
            return;
        }
        AssertAllocatesNothing(context, () => context.LinearDecodeStep(q, k, v, o, state, options, intermediate), shape);
    }

    /// <summary>Delta-rule decode steps, as <see cref="SteadyStateLinearDecode_AllocatesNothing"/>.</summary>
    public static TheoryData<string> DeltaShapes() =>
        ["delta decode DeltaNet fp32", "delta decode GatedDeltaNet bf16 l2norm value-major", "delta decode Kda fp32", "delta verify GatedDeltaNet fp32", "delta chunked GatedDeltaNet fp32", "delta chunked Kda bf16 value-major"];

    [SkippableTheory]
    [MemberData(nameof(DeltaShapes))]
    public void SteadyStateDeltaRuleDecode_AllocatesNothing(string shape)
    {
        using var context = TestBackend.CreateOrSkip(Backend, threads: 2);
        var random = new Random(shape.Length);
        ElementType type = shape.Contains("bf16") ? ElementType.BFloat16 : ElementType.Float32;
        int batch = 2, heads = 4, tokens = shape.Contains("verify") ? 4 : shape.Contains("chunked") ? 48 : 1, d = 32;
        TensorView Put(ElementType t, params int[] dims) => context.Upload(TestTensors.Uniform(t, random, 0.5, dims));
        TensorView Constant(double x, params int[] dims) => context.Upload(TestTensors.Of(ElementType.Float32, dims, Enumerable.Repeat(x, dims.Aggregate(1, (a, b) => a * b)).ToArray()));
        var variant = shape.Contains("Kda") ? DeltaRuleVariant.Kda : shape.Contains("Gated") ? DeltaRuleVariant.GatedDeltaNet : DeltaRuleVariant.DeltaNet;
        var options = new DeltaRuleOptions
        {
            Variant = variant, L2NormalizeQueryKey = shape.Contains("l2norm"),
            StateLayout = shape.Contains("value-major") ? DeltaStateLayout.ValueMajor : DeltaStateLayout.KeyMajor,
            LogGate = variant == DeltaRuleVariant.Kda ? Constant(-0.1, batch, heads, tokens, d) : variant == DeltaRuleVariant.GatedDeltaNet ? Constant(-0.2, batch, heads, tokens) : null,
        };
        var (q, k, v) = (Put(type, batch, heads, tokens, d), Put(type, batch, heads, tokens, d), Put(type, batch, heads, tokens, d));
        var beta = Constant(0.5, batch, heads, tokens);
        var o = context.Allocate(type, batch, heads, tokens, d);
        var state = context.Upload(TestTensors.Uniform(ElementType.Float32, random, 0.01, [batch, heads, d, d]));
        TensorView? intermediate = shape.Contains("verify") ? context.Allocate(ElementType.Float32, batch, tokens, heads, d, d) : null;
        if (shape.Contains("chunked"))
        {
            var final = context.Allocate(ElementType.Float32, batch, heads, d, d);
            var chunked = options with { ChunkSize = 16 };
            AssertAllocatesNothing(context, () => context.DeltaRuleChunked(q, k, v, beta, o, chunked, state, final), shape);
            return;
        }
        AssertAllocatesNothing(context, () => context.DeltaRuleDecodeStep(q, k, v, beta, o, state, options, intermediate), shape);
    }

    /// <summary>
    /// Neighborhood (1-D, 2-D, 3-D; extra keys, relative-position bias, padding extents; float32 and 16-bit), block-sparse
    /// (every mask format, the predicates, the split-KV path of decode-shaped calls), packed varlen and merge calls: the
    /// thread's reusable problem, the CPU kernels' reusable plans, and on GPUs the cached kernel names and sources. The
    /// options object is built once, as a caller's loop would.
    /// </summary>
    public static TheoryData<string> FamilyShapes() =>
    [
        "nbh 1d fp32 k 7", "nbh 1d fp16 k 9 dilation 2 causal extra rpb", "nbh 2d fp32 k 5x5 rpb lse", "nbh 2d bf16 k 3x5 stride 2 padded extra",
        "nbh 3d fp32 k 3x3x3 lse", "nbh 3d fp16 k 3x3x3 dilation 2 padded rpb",
        "blocksparse flex fp32 causal", "blocksparse csr fp32 window lse", "blocksparse bsr bf16 documents", "blocksparse dense fp16 prefix GQA",
        "blocksparse flex decode fp32", "blocksparse csr decode fp16 GQA lse",
        "varlen fp32 causal", "varlen bf16 decode-shaped GQA lse", "varlen fp16 used-k window",
        "varlen fp32 alibi per-sequence", "varlen bf16 decode-shaped causal alibi per-sequence lse", "varlen fp16 empty-keys GQA lse",
        "nbh 2d fp32 whole-grid lse", "nbh 1d bf16 whole-grid causal", "nbh 3d fp16 whole-grid GQA",
        "merge fp32 lse", "merge fp16 into fp32",
    ];

    [SkippableTheory]
    [MemberData(nameof(FamilyShapes))]
    public void SteadyStateFamilyCall_AllocatesNothing(string shape)
    {
        using var context = TestBackend.CreateOrSkip(Backend, threads: 2);
        if (FamilyCase(shape) is { } c)
        {
            using var prepared = CaseRunner.Prepare(context, c);
            AssertAllocatesNothing(context, FamilyCall(context, c, prepared.Placed, shape), shape);
            return;
        }
        var random = new Random(shape.Length);
        ElementType type = TypeOf(shape);
        bool decode = shape.Contains("decode");
        int hq = 8, hkv = shape.Contains("GQA") ? 2 : 8, d = 64;
        int[] queryLengths = decode ? [1, 1, 0, 1] : [37, 0, 64, 9], keyLengths = shape.Contains("empty-keys") ? [150, 97, 0, 64] : [150, 97, 20, 64];
        var layout = VarlenLayout.FromLengths(queryLengths, keyLengths);
        if (shape.Contains("used-k")) layout = layout with { SeqUsedK = new[] { 120, 97, 5, 40 } };
        int totalQ = queryLengths.Sum(), totalK = keyLengths.Sum();
        TensorView Put(ElementType t, params int[] dims) => context.Upload(TestTensors.Uniform(t, random, dims));
        var options = new FlashOptions { Causal = shape.Contains("causal"), WindowLeft = shape.Contains("window") ? 30 : -1 };
        if (shape.Contains("alibi"))
            options = options with { AlibiSlopes = shape.Contains("per-sequence") ? Put(ElementType.Float32, queryLengths.Length, hq) : Put(ElementType.Float32, hq) };
        var (q, k, v) = (Put(type, totalQ, hq, d), Put(type, totalK, hkv, d), Put(type, totalK, hkv, d));
        var o = context.Allocate(type, totalQ, hq, d);
        TensorView? l = shape.Contains("lse") ? context.Allocate(ElementType.Float32, hq, totalQ) : null;
        AssertAllocatesNothing(context, () => context.FlashVarlen(q, k, v, o, layout, options, l), shape);
    }

    /// <summary>
    /// Calls that reuse the thread's problem and the kernel's kept plan (same shapes, same buffers, same options object)
    /// compute from the inputs as they are now: the inputs (a relative-position bias too) are overwritten in place between
    /// calls, and the last result must match the reference of the new inputs. Host tensors live in native memory, so the
    /// CPU kernels see the same addresses on every call (their plans are kept).
    /// </summary>
    public static TheoryData<string> ReuseShapes() =>
        ["nbh 2d fp32 k 5x5 rpb lse", "nbh 3d fp16 k 3x3x3 dilation 2 padded rpb", "blocksparse csr decode fp16 GQA lse", "blocksparse bsr bf16 documents", "merge fp32 lse"];

    [SkippableTheory]
    [MemberData(nameof(ReuseShapes))]
    public void SteadyStateCall_ReadsChangedInputs(string shape)
    {
        using var context = TestBackend.CreateOrSkip(Backend, threads: 2);
        var c = FamilyCase(shape)!;
        using var prepared = CaseRunner.Prepare(context, c, alignHostMemory: true);
        var call = FamilyCall(context, c, prepared.Placed, shape, withLse: true);   // the check compares the log-sum-exps too
        for (int i = 0; i < 3; i++) call();
        context.Synchronize();
        // New inputs of the same shapes (the case drawn with the next seed), written over the old ones in place.
        IAttentionCase next = c switch
        {
            NativeAttention.NeighborhoodCase n => n with { Seed = n.Seed + 1 },
            BlockSparseCase b => b with { Seed = b.Seed + 1 },
            MergeCase m => m with { Seed = m.Seed + 1 },
            _ => throw new InvalidOperationException(shape),
        };
        foreach (var t in next.CreateTensors().All)
        {
            if (t.Role == CaseTensorRole.Output) continue;
            context.Copy(t.View, prepared.Host[t.Name]);
            if (!ReferenceEquals(prepared.Placed, prepared.Host)) context.Copy(t.View, prepared.Placed[t.Name]);
        }
        call();
        var check = c.Check(prepared.Results());
        Assert.True(check.Passed, $"{Backend} {shape}: the call after the inputs changed in place: {check.Detail}");
    }

    /// <summary>
    /// Whole-grid neighborhoods (run as dense flash through this thread's kept flattened views, problem and options) one
    /// after another on the same thread, each with a different grid or mask than the call before: every
    /// result matches its own reference, so nothing kept from the previous call (views, strides, causal flag) survives.
    /// </summary>
    [SkippableFact]
    public void SteadyWholeGridNeighborhood_FollowsTheNextCall()
    {
        using var context = TestBackend.CreateOrSkip(Backend, threads: 2);
        foreach (var shape in new[] { "nbh 1d fp32 whole-grid", "nbh 1d fp32 whole-grid causal", "nbh 2d fp32 whole-grid", "nbh 3d fp16 whole-grid", "nbh 1d fp32 whole-grid" })
        {
            var c = FamilyCase(shape)!;
            using var prepared = CaseRunner.Prepare(context, c, alignHostMemory: true);
            FamilyCall(context, c, prepared.Placed, shape, withLse: true)();   // the check compares the log-sum-exps too
            var check = c.Check(prepared.Results());
            Assert.True(check.Passed, $"{Backend} {shape} after the previous whole-grid call: {check.Detail}");
        }
    }

    /// <summary>
    /// The rows of a varlen sequence without keys are written in place (zeros, -inf LSE): on the host by the CPU, by
    /// device fills of the rows' contiguous runs on GPUs; no host tensor is allocated.
    /// </summary>
    [SkippableFact]
    public void SteadyVarlenWithASequenceWithoutKeys_AllocatesNothing()
    {
        using var context = TestBackend.CreateOrSkip(Backend, threads: 2);
        var random = new Random(3);
        int hq = 4, d = 32;
        var layout = VarlenLayout.FromLengths([20, 7, 9], [30, 0, 12]);
        TensorView Put(params int[] dims) => context.Upload(TestTensors.Uniform(ElementType.Float32, random, dims));
        var (q, k, v) = (Put(36, hq, d), Put(42, hq, d), Put(42, hq, d));
        var o = context.Allocate(ElementType.Float32, 36, hq, d);
        var l = context.Allocate(ElementType.Float32, hq, 36);
        AssertAllocatesNothing(context, () => context.FlashVarlen(q, k, v, o, layout, null, l), "varlen fp32 with a sequence without keys, lse");
    }

    private static ElementType TypeOf(string shape) =>
        shape.Contains("fp16") ? ElementType.Float16 : shape.Contains("bf16") ? ElementType.BFloat16 : ElementType.Float32;

    /// <summary>The case of a neighborhood, block-sparse or merge shape of <see cref="FamilyShapes"/>; null for varlen shapes.</summary>
    private static IAttentionCase? FamilyCase(string shape)
    {
        ElementType type = TypeOf(shape);
        if (shape.StartsWith("nbh"))
        {
            int axes = shape.Contains("3d") ? 3 : shape.Contains("2d") ? 2 : 1;
            // Small 3-D grids: slow calls (PoCL) would give the test host's own background allocations time to show in the
            // process-wide count. Dilation applies to the last axis.
            int[] grid = axes switch { 1 => [40], 2 => [12, 10], _ => [4, 5, 8] };
            int[] kernel = shape.Contains("whole-grid") ? grid : shape.Contains("k 7") ? [7] : shape.Contains("k 9") ? [9] : shape.Contains("5x5") ? [5, 5] : shape.Contains("3x5") ? [3, 5] : [3, 3, 3];
            int dilation = shape.Contains("dilation 2") ? 2 : 1;
            int[] dilations = [.. Enumerable.Range(0, axes).Select(a => a == axes - 1 ? dilation : 1)];
            return new NativeAttention.NeighborhoodCase
            {
                ElementType = type, Batch = axes == 3 && !shape.Contains("padded") ? 1 : 2, QueryHeads = axes == 3 ? 2 : 4, KeyValueHeads = axes == 3 ? 1 : 2,
                Grid = grid, KernelSize = kernel, Dilation = dilation > 1 ? dilations : null,
                Stride = shape.Contains("stride 2") ? [.. Enumerable.Repeat(2, axes)] : null,
                Causal = shape.Contains("causal") ? [.. Enumerable.Repeat(true, axes)] : null,
                HeadDim = 32, ValueDim = 32, AdditionalKeys = shape.Contains("extra") ? 3 : 0, RelativePositionBias = shape.Contains("rpb"),
                ValidExtent = shape.Contains("padded") ? [.. grid.Select((g, a) => Math.Max(g - 1, kernel[a] * dilations[a]))] : null,
                Seed = shape.Length,
            };
        }
        if (shape.StartsWith("blocksparse"))
        {
            bool decode = shape.Contains("decode");
            return new BlockSparseCase
            {
                // Decode-shaped: one batch element and kv head, so the CPU splits the key blocks (its split-KV path).
                ElementType = type, Batch = decode ? 1 : 2, QueryHeads = 4, KeyValueHeads = decode ? 1 : shape.Contains("GQA") ? 2 : 4,
                // Decode rows list every key block: 32 blocks of 32 keys, two CPU splits of 512 keys.
                QueryLength = decode ? 1 : 160, KeyLength = decode ? 1024 : 160, HeadDim = 32, ValueDim = 32, QueryBlock = decode ? 16 : 32, KeyBlock = 32,
                Density = decode ? 1.0 : 0.6,
                Format = shape.Contains("csr") ? BlockSparseCase.MaskFormat.Csr : shape.Contains("bsr") ? BlockSparseCase.MaskFormat.Bsr
                    : shape.Contains("dense") ? BlockSparseCase.MaskFormat.Dense : BlockSparseCase.MaskFormat.Flex,
                Predicate = shape.Contains("causal") ? ElementPredicateKind.Causal : shape.Contains("window") ? ElementPredicateKind.Window
                    : shape.Contains("documents") ? ElementPredicateKind.Document : shape.Contains("prefix") ? ElementPredicateKind.PrefixLM : ElementPredicateKind.None,
                WindowLeft = shape.Contains("window") ? 40 : -1, WindowRight = shape.Contains("window") ? 8 : -1,
                Documents = shape.Contains("documents") ? 2 : 1, Prefix = shape.Contains("prefix") ? 50 : 0,
                Seed = shape.Length,
            };
        }
        if (shape.StartsWith("merge"))
            return new MergeCase { ElementType = type, OutputType = shape.Contains("into fp32") ? ElementType.Float32 : null, Parts = 3, Batch = 2, Heads = 4, Rows = 70, ValueDim = 64, Seed = shape.Length };
        return null;
    }

    /// <summary>The call of <paramref name="c"/> on <paramref name="t"/>, its options object built once (as a caller's loop would).</summary>
    private static Action FamilyCall(AttentionContext context, IAttentionCase c, CaseTensors t, string shape, bool withLse = false)
    {
        TensorView? l = withLse || shape.Contains("lse") ? t.LogSumExp : null;
        switch (c)
        {
            case NativeAttention.NeighborhoodCase n:
            {
                var options = n.OptionsFor(t);
                return () => context.Neighborhood(t.Query, t.Key, t.Value, t.Output, options, l);
            }
            case BlockSparseCase b:
            {
                var options = b.Options();
                return () => context.BlockSparse(t.Query, t.Key, t.Value, t.Output, options, l);
            }
            default:
            {
                var (po, pl) = (t[MergeCase.PartialOutputsName], t[MergeCase.PartialLogSumExpName]);
                return () => context.MergeStates(po, pl, t.Output, l);
            }
        }
    }

    /// <summary>The call named <paramref name="shape"/> with every tensor allocated on <paramref name="context"/> once.</summary>
    private static Action Build(AttentionContext context, string shape)
    {
        var random = new Random(shape.Length);
        ElementType type = shape.Contains("fp16") ? ElementType.Float16 : shape.Contains("bf16") ? ElementType.BFloat16 : ElementType.Float32;
        TensorView Put(ElementType t, params int[] dims) => context.Upload(TestTensors.Uniform(t, random, dims));
        bool lse = shape.Contains("lse");
        var options = new FlashOptions { Causal = shape.Contains("causal"), WindowLeft = shape.Contains("window") ? 100 : -1 };
        if (shape.StartsWith("flash"))
        {
            bool decode = shape.Contains("decode");
            int hq = 8, hkv = shape.Contains("MQA") ? 1 : shape.Contains("GQA") ? 2 : 8, nq = decode ? 1 : 48, nk = decode ? 700 : 64, d = 64;
            if (shape.Contains("sinks")) options = options with { Sinks = Put(ElementType.Float32, hq) };
            if (shape.Contains("alibi")) options = options with { AlibiSlopes = Put(ElementType.Float32, hq) };
            if (shape.Contains("softcap")) options = options with { Softcap = 30 };
            if (shape.Contains("bias")) options = options with { Bias = Put(type, 1, hq, nq, nk) };
            var (q, k, v) = (Put(type, 1, hq, nq, d), Put(type, 1, hkv, nk, d), Put(type, 1, hkv, nk, d));
            var o = context.Allocate(type, 1, hq, nq, d);
            TensorView? l = lse ? context.Allocate(ElementType.Float32, 1, hq, nq) : null;
            return () => context.Flash(q, k, v, o, options, l);
        }
        {
            int batch = 2, hq = 8, hkv = shape.Contains("GQA") ? 2 : 4, capacity = 256, d = 64, page = 32;
            bool paged = shape.Contains("paged"), append = shape.Contains("append");
            int[] lengths = [150, 97];
            var cache = new KvCacheOptions { CacheSeqLens = lengths, Splits = shape.Contains("splits") ? 3 : null };
            TensorView keyCache, valueCache;
            if (paged)
            {
                int perSequence = capacity / page;
                cache = cache with { BlockTable = Enumerable.Range(0, batch * perSequence).Reverse().ToArray(), PageSize = page };
                (keyCache, valueCache) = (Put(type, batch * perSequence, hkv, page, d), Put(type, batch * perSequence, hkv, page, d));
            }
            else (keyCache, valueCache) = (Put(type, batch, hkv, capacity, d), Put(type, batch, hkv, capacity, d));
            if (append)
            {
                int positions = capacity + 4, half = d / 4;
                cache = cache with
                {
                    NewKey = Put(type, batch, hkv, 1, d), NewValue = Put(type, batch, hkv, 1, d),
                    RotaryCos = Put(ElementType.Float32, positions, half), RotarySin = Put(ElementType.Float32, positions, half),
                };
            }
            // Prefill-shaped: more query rows per kv head than the GPU decode kernel takes (GpuDecode.PrefersFlash), so GPUs run
            // flash per batch element over its cached keys.
            int nq = shape.Contains("prefill-shaped") ? 20 : 1;
            var q = Put(type, batch, hq, nq, d);
            var o = context.Allocate(type, batch, hq, nq, d);
            TensorView? l = lse ? context.Allocate(ElementType.Float32, batch, hq, nq) : null;
            return () => context.FlashKvCache(q, keyCache, valueCache, o, cache, options, l);
        }
    }
}

[Collection(AllocationCollection.Name)]
[Trait("Backend", "Cpu")]
public sealed class CpuAllocationTests(ITestOutputHelper output) : AllocationTests(output)
{
    protected override Backend Backend => Backend.Cpu;
}

[Collection(AllocationCollection.Name)]
[Trait("Backend", "OpenCl")]
public sealed class OpenClAllocationTests(ITestOutputHelper output) : AllocationTests(output)
{
    protected override Backend Backend => Backend.OpenCl;
}
