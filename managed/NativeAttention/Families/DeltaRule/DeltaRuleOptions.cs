// Options of the delta rule (DeltaNet, Gated DeltaNet, KDA). Semantics: DESIGN.md, "Delta rule", and the remarks of
// DeltaRuleOptions below.
namespace NativeAttention;

/// <summary>Which delta-rule model: how the state decays before each update.</summary>
public enum DeltaRuleVariant
{
    /// <summary>DeltaNet: no decay, g = 1. No log gates.</summary>
    DeltaNet,
    /// <summary>Gated DeltaNet (Qwen3-Next): a scalar gate per token and head, log g <c>[B, H, N]</c>.</summary>
    GatedDeltaNet,
    /// <summary>Kimi Delta Attention (Kimi Linear): a gate per token, head and key dimension, log g <c>[B, H, N, Dk]</c>.</summary>
    Kda,
}

/// <summary>How a delta-rule state <c>S</c> (a Dk x Dv matrix per sequence and head) lies in memory.</summary>
public enum DeltaStateLayout
{
    /// <summary>K-major, <c>[.., Dk, Dv]</c>: element <c>[i, e]</c> is <c>S[i, e]</c> (fla's <c>[B, H, K, V]</c>).</summary>
    KeyMajor,
    /// <summary>V-major, <c>[.., Dv, Dk]</c>: element <c>[e, i]</c> is <c>S[i, e]</c>, the transpose (as some ONNX Runtime and vLLM kernels keep it).</summary>
    ValueMajor,
}

/// <summary>
/// Options of <see cref="AttentionContext.DeltaRuleChunked"/> and <see cref="AttentionContext.DeltaRuleDecodeStep"/>.
/// </summary>
/// <remarks>
/// <para>The recurrence, per sequence and output head, for t = 1..N, from the initial state <c>S_0</c> (zero when
/// none), with <c>S</c> a Dk x Dv matrix, <c>k_t</c>, <c>q_t</c> of size Dk and <c>v_t</c> of size Dv:</para>
/// <code>
/// S_t = (I - beta_t k_t k_t^T) G_t S_{t-1} + beta_t k_t v_t^T
/// o_t = scale S_t^T q_t
/// </code>
/// <para>where <c>G_t</c> is the identity (DeltaNet), <c>g_t I</c> with <c>g_t = exp(LogGate[b, h, t])</c> (Gated
/// DeltaNet: then <c>S_t = g_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T</c>), or
/// <c>diag(exp(LogGate[b, h, t, :]))</c> (KDA: the decay is applied first, then the delta update, as in Kimi Linear
/// and fla's <c>chunk_kda</c>). Equivalently <c>S_t = G_t S_{t-1} + k_t u_t^T</c> with the corrected value
/// <c>u_t = beta_t (v_t - (G_t S_{t-1})^T k_t)</c>.</para>
/// <para><c>beta_t</c> (<c>beta[b, h, t]</c>) must lie in [0, 2]: beta = 0 leaves the state unchanged but for the
/// decay, beta = 1 with a unit key replaces what the state holds in the k direction by v, and beta in (0, 2) keeps
/// <c>I - beta k k^T</c> a contraction for unit keys. Log gates must be finite and &lt;= 0.</para>
/// <para>With <see cref="L2NormalizeQueryKey"/> q and k are first replaced by <c>x / sqrt(|x|^2 + 1e-6)</c> (fla's
/// <c>use_qk_l2norm_in_kernel</c>), computed in float32 by the kernels.</para>
/// </remarks>
public sealed record DeltaRuleOptions
{
    /// <summary>The epsilon of the in-kernel L2 normalisation, as fla's <c>l2norm</c>: <c>x / sqrt(|x|^2 + eps)</c>.</summary>
    public const float L2NormEpsilon = 1e-6f;

    /// <summary>DeltaNet (default), Gated DeltaNet or KDA.</summary>
    public DeltaRuleVariant Variant { get; init; } = DeltaRuleVariant.DeltaNet;

    /// <summary>
    /// log g, float32: <c>[B, H, N]</c> for <see cref="DeltaRuleVariant.GatedDeltaNet"/>, <c>[B, H, N, Dk]</c> for
    /// <see cref="DeltaRuleVariant.Kda"/>, indexed by output head; null for DeltaNet. Every value must be finite and
    /// &lt;= 0; host tensors are checked before any kernel runs. Any strides (token-major memory included).
    /// </summary>
    public TensorView? LogGate { get; init; }

    /// <summary>L2-normalise q and k inside the kernel (fla's <c>use_qk_l2norm_in_kernel</c>).</summary>
    public bool L2NormalizeQueryKey { get; init; }

    /// <summary>The factor on <c>S_t^T q_t</c>; null (the default) means <c>1 / sqrt(Dk)</c>, as fla.</summary>
    public float? Scale { get; init; }

    /// <summary>The memory layout of every state tensor of the call (initial, final, decode and intermediate states).</summary>
    public DeltaStateLayout StateLayout { get; init; } = DeltaStateLayout.KeyMajor;

    /// <summary>
    /// Chunk length used by kernels; 0 (the default) lets each backend pick its own. The result does not depend on it
    /// beyond rounding. Ignored by <see cref="AttentionContext.DeltaRuleDecodeStep"/>.
    /// </summary>
    public int ChunkSize { get; init; }

    /// <summary>
    /// Varlen packing (fla's <c>cu_seqlens</c>): empty (the default) for a plain batch. Otherwise S + 1 offsets, from
    /// 0, never decreasing, ending at N: the batch size must be 1 and sequence s owns tokens
    /// <c>[CuSeqLens[s], CuSeqLens[s + 1])</c>, computed as a call of its own with states <c>[S, H, ..]</c>. Not
    /// allowed in <see cref="AttentionContext.DeltaRuleDecodeStep"/>.
    /// </summary>
    public ReadOnlyMemory<int> CuSeqLens { get; init; }
}
