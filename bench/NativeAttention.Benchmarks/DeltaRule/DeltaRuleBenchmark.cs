// The delta rule, the shapes issue 14 targets: H = 8, D = 128, fp32, N in {2048, 8192, 16384} chunked prefill
// (Gated DeltaNet, plus DeltaNet and KDA), and the decode step at D = 128. FLOPs as fla's delta-rule benchmark counts
// them: 2 N H Dk (6 Dv + 8 * 64) (DeltaRuleCase.Flops).
using BenchmarkDotNet.Attributes;

namespace NativeAttention.Benchmarks;

/// <summary>Times one synchronised <see cref="AttentionContext.DeltaRuleChunked"/> call of a <see cref="DeltaRuleCase"/> with its final state.</summary>
public abstract class DeltaRuleChunkedBenchmark : CaseForwardBenchmark
{
    /// <summary>Sequence length N.</summary>
    [Params(2048, 8192, 16384)]
    public int Length { get; set; } = 2048;

    /// <summary>deltanet, gated (Gated DeltaNet) or kda.</summary>
    [Params("gated", "deltanet", "kda")]
    public string Variant { get; set; } = "gated";

    public override IAttentionCase Case => new DeltaRuleCase
    {
        Batch = 1, Heads = 8, Length = Length, KeyDim = 128, ValueDim = 128, L2Norm = true, Seed = 14,
        Variant = Variant switch { "deltanet" => DeltaRuleVariant.DeltaNet, "kda" => DeltaRuleVariant.Kda, _ => DeltaRuleVariant.GatedDeltaNet },
    };
}

/// <summary>The managed SIMD kernel on 2 threads (the figures issue 14 targets).</summary>
public class CpuDeltaRuleChunked : DeltaRuleChunkedBenchmark
{
    public override Backend Backend => Backend.Cpu;

    public override ContextOptions ContextOptions => new() { Threads = 2 };
}

/// <summary>
/// One in-place <see cref="AttentionContext.DeltaRuleDecodeStep"/> (one token) of Gated DeltaNet at D = 128 over
/// B x H states of 64 KiB each, K- or V-major: a pass over the state, judged against memory bandwidth.
/// </summary>
public abstract class DeltaRuleDecodeBenchmark : CaseForwardBenchmark
{
    /// <summary>Batch B (H = 32): 4 MiB of state at B = 2, 64 MiB at B = 32 (past the last-level cache).</summary>
    [Params(2, 32)]
    public int Batch { get; set; } = 32;

    /// <summary>The state layout.</summary>
    [Params(false, true)]
    public bool ValueMajor { get; set; }

    public override IAttentionCase Case => new DeltaRuleCase
    {
        Batch = Batch, Heads = 32, Length = 1, KeyDim = 128, ValueDim = 128, L2Norm = true, Decode = true, ValueMajor = ValueMajor,
        Variant = DeltaRuleVariant.GatedDeltaNet, Seed = 14,
    };
}

/// <summary>The decode step on 2 threads.</summary>
public class CpuDeltaRuleDecode : DeltaRuleDecodeBenchmark
{
    public override Backend Backend => Backend.Cpu;

    public override ContextOptions ContextOptions => new() { Threads = 2 };
}
