// Flash and FlashVarlen hand decode-shaped calls (few rows per KV head) to the split-KV decode kernels: every option
// those kernels support against the reference on every backend, the options they lack falling back to the flash kernel,
// and proof that the routing happens (bit-for-bit the FlashKvCache result).
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace NativeAttention.Tests;

/// <summary>Decode-shaped calls through <see cref="AttentionContext.Flash"/> and <see cref="AttentionContext.FlashVarlen"/>.</summary>
public abstract class DecodeRoutingTests
{
    /// <summary>The most rows per KV head the rule routes (8 on GPUs above head dim 128; the cases stay within both).</summary>
    private const int DecodeRows = 16;

    protected abstract Backend Backend { get; }

    /// <summary>
    /// A random decode-shaped case: G x Nq &lt;= 16 rows per KV head, any type and layout, key lengths from 1 to past the
    /// split threshold, every option the decode kernels support (scale, causal, window, softcap, ALiBi [Hq] or [B, Hq],
    /// sinks, sigmoid); with <paramref name="bias"/> a dense or low-rank bias on top, which the decode kernels lack.
    /// </summary>
    private static AttentionCase DecodeShaped(int seed, bool bias)
    {
        var random = new Random(seed);
        var types = new[] { ElementType.Float32, ElementType.Float16, ElementType.BFloat16 };
        int group = new[] { 1, 1, 2, 4, 8, 16 }[random.Next(6)];
        int nq = random.Next(3) == 0 ? random.Next(1, DecodeRows / group + 1) : 1;
        int d = new[] { 8, 13, 40, 64, 128, 256 }[random.Next(6)];
        int dv = random.Next(4) == 0 ? new[] { 8, 24, 64 }[random.Next(3)] : d;
        int kvHeads = random.Next(1, 3);
        var c = new AttentionCase
        {
            ElementType = types[random.Next(3)], Layout = random.Next(2) == 0 ? TensorLayout.HeadsFirst : TensorLayout.SequenceFirst,
            Batch = random.Next(1, 4), KeyValueHeads = kvHeads, QueryHeads = kvHeads * group, QueryLength = nq,
            KeyLength = new[] { 1, 7, 40, 300, 700, 1100 }[random.Next(6)], HeadDim = d, ValueDim = dv, Seed = random.Next(1, 1000),
        };
        var options = new FlashOptions
        {
            Scale = random.Next(4) == 0 ? 0.3f : null,
            Causal = random.Next(2) == 0,
            WindowLeft = random.Next(4) == 0 ? random.Next(0, 60) : -1,
            WindowRight = random.Next(6) == 0 ? random.Next(0, 3) : -1,
            Softcap = random.Next(5) == 0 ? 10f : 0f,
        };
        if (random.Next(5) == 0) options = options with { ScoreFunction = ScoreFunction.Sigmoid, SigmoidBias = -2f };
        c = c with { Flash = options };
        if (bias || random.Next(2) == 0)
        {
            var spec = CaseSampler.OptionTensors(random, c, biases: bias);
            if (bias && !spec.DenseBias && spec.LowRank == 0) spec = spec with { DenseBias = true };
            c = c with { OptionTensors = spec };
        }
        return c;
    }

    private static Arbitrary<int> Seeds => Gen.Choose(0, int.MaxValue).ToArbitrary();

    [SkippableFact]
    public void Flash_DecodeShapedCalls_MatchTheReference()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        Properties.Check(Seeds, seed =>
        {
            var c = DecodeShaped(seed, bias: false);
            var result = CaseVerifier.Verify(context, c);
            Assert.True(result.Passed, result.ToString());
        }, count: 40);
    }

    /// <summary>
    /// A dense or low-rank bias keeps a decode-shaped call on the flash kernel: the decode kernels would ignore it and
    /// miss the reference.
    /// </summary>
    [SkippableFact]
    public void Flash_DecodeShapedCallsWithABias_FallBackAndMatchTheReference()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        Properties.Check(Seeds, seed =>
        {
            var c = DecodeShaped(seed, bias: true);
            var result = CaseVerifier.Verify(context, c);
            Assert.True(result.Passed, result.ToString());
        }, count: 20);
    }

    /// <summary>
    /// A decode-shaped Flash call is the FlashKvCache call over the same K and V as a full cache, bit for bit: the same
    /// kernel runs both. On the CPU the routed call splits as if it had <see cref="Cpu.CpuDecode.FlashCallThreads"/>
    /// threads, so the comparison uses a context of that many; a call one row past the rule runs the flash kernel instead and only agrees within tolerance.
    /// </summary>
    [SkippableFact]
    public void Flash_DecodeShapedCall_IsTheKvCacheCallBitForBit()
    {
        using var context = TestBackend.CreateOrSkip(Backend, threads: Cpu.CpuDecode.FlashCallThreads);
        Properties.Check(Seeds, seed =>
        {
            var c = DecodeShaped(seed, bias: false) with { OptionTensors = null, Layout = TensorLayout.HeadsFirst };
            if (c.HeadDim > 128 || c.ValueDim > 128) c = c with { HeadDim = 64, ValueDim = 64 };   // GPUs route 8 rows there
            var flash = c.CreateTensors();
            CaseRunner.Run(context, c, flash);
            var cached = c with { KvCache = true };
            var kv = cached.CreateTensors();
            CaseRunner.Run(context, cached, kv);
            Assert.Equal(kv.Output.ToDoubleArray(), flash.Output.ToDoubleArray());
            Assert.Equal(kv.LogSumExp.ToDoubleArray(), flash.LogSumExp.ToDoubleArray());
        }, count: 15);
    }

    /// <summary>Each sequence of a packed batch is routed on its own: decode-shaped ones and longer ones mix in one call.</summary>
    [SkippableFact]
    public void FlashVarlen_MixOfDecodeAndPrefillSequences_MatchesTheReference()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        foreach (var type in new[] { ElementType.Float32, ElementType.Float16, ElementType.BFloat16 })
            foreach (bool causal in new[] { false, true })
            {
                int hq = 8, hkv = 2, d = 64;
                int[] queries = [1, 40, 2, 0, 1], keys = [300, 40, 700, 5, 0];
                var layout = VarlenLayout.FromLengths(queries, keys);
                var random = new Random(queries.Length + (causal ? 1 : 0) + (int)type);
                var q = TestTensors.Uniform(type, random, queries.Sum(), hq, d);
                var k = TestTensors.Uniform(type, random, keys.Sum(), hkv, d);
                var v = TestTensors.Uniform(type, random, keys.Sum(), hkv, d);
                var slopes = TestTensors.Uniform(ElementType.Float32, random, 0.25, [hq]);
                var sinks = TestTensors.Uniform(ElementType.Float32, random, 2.0, [hq]);
                var options = new FlashOptions { Causal = causal, Softcap = causal ? 0f : 20f };
                var hostOutput = TestTensors.Zeros(type, queries.Sum(), hq, d);
                var hostLse = TestTensors.Zeros(ElementType.Float32, hq, queries.Sum());
                using (var on = new OnContext(context))
                {
                    var (o, lse) = (on.Put(hostOutput), on.Put(hostLse));
                    context.FlashVarlen(on.Put(q), on.Put(k), on.Put(v), o, layout,
                        options with { AlibiSlopes = on.Put(slopes), Sinks = on.Put(sinks) }, lse);
                    on.Back(o, hostOutput);
                    on.Back(lse, hostLse);
                }
                var full = options with { AlibiSlopes = slopes, Sinks = sinks };
                var exact = LseByOutputRow(Reference.FlashVarlen(q, k, v, layout, full));
                var naive = LseByOutputRow(Reference.FlashVarlenNaive(q, k, v, layout, full, type));
                double valueScale = v.ToDoubleArray().Select(Math.Abs).Max();
                var check = CaseVerifier.CompareToReference(exact, naive, hostOutput, hostLse.Permute(1, 0), type, valueScale);
                Assert.True(check.Passed, $"varlen {type} causal={causal}: {check}");
            }
    }

    /// <summary>The reference's <c>[Hq, TotalQ]</c> log-sum-exp reordered as <c>[TotalQ, Hq]</c>, the output's row order.</summary>
    private static ReferenceResult LseByOutputRow(ReferenceResult r)
    {
        int hq = r.LogSumExpShape![0], total = r.LogSumExpShape[1];
        var lse = new double[r.LogSumExp!.Length];
        for (int h = 0; h < hq; h++)
            for (int t = 0; t < total; t++) lse[t * hq + h] = r.LogSumExp[h * total + t];
        return r with { LogSumExp = lse, LogSumExpShape = [total, hq] };
    }
}

[Trait("Backend", "Cpu")]
public sealed class CpuDecodeRoutingTests : DecodeRoutingTests
{
    protected override Backend Backend => Backend.Cpu;

    /// <summary>The routed call's split count depends on its sizes only, so its result does not depend on the thread count.</summary>
    [Fact]
    public void Flash_DecodeShapedResults_DoNotDependOnThreadCount()
    {
        var c = new AttentionCase { QueryLength = 1, KeyLength = 5000, HeadDim = 64, ValueDim = 64, QueryHeads = 8, KeyValueHeads = 1, Batch = 1, Flash = new FlashOptions { Causal = true } };
        using var one = AttentionContext.Create(Backend.Cpu, new ContextOptions { Threads = 1 });
        using var three = AttentionContext.Create(Backend.Cpu, new ContextOptions { Threads = 3 });
        var a = c.CreateTensors();
        CaseRunner.Run(one, c, a);
        var b = c.CreateTensors();
        CaseRunner.Run(three, c, b);
        Assert.Equal(a.Output.ToDoubleArray(), b.Output.ToDoubleArray());
        Assert.Equal(a.LogSumExp.ToDoubleArray(), b.LogSumExp.ToDoubleArray());
    }
}

[Trait("Backend", "OpenCl")]
public sealed class OpenClDecodeRoutingTests : DecodeRoutingTests
{
    protected override Backend Backend => Backend.OpenCl;
}

[Trait("Backend", "Cuda")]
public sealed class CudaDecodeRoutingTests : DecodeRoutingTests
{
    protected override Backend Backend => Backend.Cuda;
}
