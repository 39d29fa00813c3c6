// Chunked linear attention prefill, the shapes issue 13 targets: H = 8, D = 64, fp32, N in {2048, 8192, 16384}, with
// no decay (identity features), a per-head decay (retention) and a per-token gate (gated). FLOPs: 4 N Dk Dv per head.
using BenchmarkDotNet.Attributes;

namespace NativeAttention.Benchmarks;

/// <summary>Times one synchronised <see cref="AttentionContext.LinearChunked"/> call of a <see cref="LinearCase"/> with its final state.</summary>
public abstract class LinearChunkedBenchmark : CaseForwardBenchmark
{
    /// <summary>Sequence length N.</summary>
    [Params(2048, 8192, 16384)]
    public int Length { get; set; } = 2048;

    /// <summary>identity (no decay), retention (per-head decay) or gated (per-token log gates).</summary>
    [Params("identity", "retention", "gated")]
    public string Variant { get; set; } = "identity";

    public override IAttentionCase Case => new LinearCase
    {
        Batch = 1, Heads = 8, Length = Length, KeyDim = 64, ValueDim = 64, Seed = 13,
        Decay = Variant switch { "retention" => DecayKind.PerHead, "gated" => DecayKind.PerToken, _ => DecayKind.None },
    };
}

/// <summary>The managed SIMD kernel on 2 threads (the figures issue 13 targets).</summary>
public class CpuLinearChunked : LinearChunkedBenchmark
{
    public override Backend Backend => Backend.Cpu;

    public override ContextOptions ContextOptions => new() { Threads = 2 };
}
