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
        "flash prefill fp32", "flash prefill bf16 causal lse", "flash decode-shaped fp32 GQA", "flash decode-shaped fp16 MHA sinks lse",
        "flash decode-shaped bf16 MQA causal window alibi", "kvcache fp32 GQA", "kvcache fp16 append rotary lse", "kvcache bf16 paged splits",
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
    /// Neighborhood and block-sparse calls still allocate per call.
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
            var q = Put(type, batch, hq, 1, d);
            var o = context.Allocate(type, batch, hq, 1, d);
            TensorView? l = lse ? context.Allocate(ElementType.Float32, batch, hq, 1) : null;
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
