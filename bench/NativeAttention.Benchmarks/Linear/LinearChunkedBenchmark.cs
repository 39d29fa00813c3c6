// Chunked linear attention prefill, the shapes issue 13 targets: H = 8, D = 64, fp32, N in {2048, 8192, 16384}, with
// no decay (identity features), a per-head decay (retention) and a per-token gate (gated), and the decode step at
// D = 128. FLOPs: 4 N Dk Dv per head.
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

/// <summary>
/// One in-place <see cref="AttentionContext.LinearDecodeStep"/> (one token) at D = 128 over B x H states of 64 KiB
/// each, with no decay or a per-token gate: a pass over the state, judged against memory bandwidth (issue 13).
/// </summary>
public abstract class LinearDecodeBenchmark : CaseForwardBenchmark
{
    /// <summary>Batch B (H = 16): 2 MiB of state at B = 2, 64 MiB at B = 64 (past the last-level cache).</summary>
    [Params(2, 64)]
    public int Batch { get; set; } = 64;

    /// <summary>identity (no decay) or gated (per-token log gates).</summary>
    [Params("identity", "gated")]
    public string Variant { get; set; } = "identity";

    public override IAttentionCase Case => new LinearCase
    {
        Batch = Batch, Heads = 16, Length = 1, KeyDim = 128, ValueDim = 128, Decode = true, Seed = 13,
        Decay = Variant == "gated" ? DecayKind.PerToken : DecayKind.None,
    };
}

/// <summary>The decode step on 2 threads.</summary>
public class CpuLinearDecode : LinearDecodeBenchmark
{
    public override Backend Backend => Backend.Cpu;

    public override ContextOptions ContextOptions => new() { Threads = 2 };
}
