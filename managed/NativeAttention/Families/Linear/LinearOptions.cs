// Options of chunked linear attention. Semantics: DESIGN.md, "Chunked linear".
namespace NativeAttention;

/// <summary>The feature map phi applied to queries and keys.</summary>
public enum FeatureMap
{
    /// <summary>phi(x) = x.</summary>
    Identity,
    /// <summary>phi(x) = elu(x) + 1.</summary>
    EluPlusOne,
    /// <summary>phi(x) = max(x, 0).</summary>
    Relu,
    /// <summary>
    /// Second-order Taylor map (Based): phi(x) = [1, x, vec(x x^T) / sqrt(2)], so that
    /// phi(q).phi(k) = 1 + q.k + (q.k)^2 / 2. Feature size 1 + D + D^2.
    /// </summary>
    Taylor2,
    /// <summary>The caller passes features already computed: phi(x) = x, documented as such.</summary>
    Precomputed,
}

/// <summary>How the state decays between tokens.</summary>
public enum DecayKind
{
    /// <summary>No decay (g = 1).</summary>
    None,
    /// <summary>A constant per head (RetNet retention, Lightning attention), given as log g.</summary>
    PerHead,
    /// <summary>A per-token, per-head gate given as log g_t (GLA-style scalar gates, Mamba-2).</summary>
    PerToken,
    /// <summary>
    /// A per-token gate per key dimension (GLA), given as log g_t <c>[B, H, N, Dk]</c>: row i of the state decays by
    /// <c>g_t[i]</c>, <c>S_t = diag(g_t) S_{t-1} + phi(k_t) v_t^T</c>. Not defined for <see cref="FeatureMap.Taylor2"/>,
    /// whose features are not key dimensions.
    /// </summary>
    PerTokenPerKey,
}

/// <summary>
/// Options of <see cref="AttentionContext.LinearChunked"/> and <see cref="AttentionContext.LinearDecodeStep"/>:
/// <c>o_t = scale sum_{s&lt;=t} (prod_{r=s+1..t} g_r) (phi(q_t).phi(k_s)) v_s</c>, optionally divided by
/// <c>scale</c> times the same sum without v plus <see cref="Epsilon"/>. With a per-key gate the product is taken per
/// key dimension inside the dot product: <c>sum_i phi(q_t)_i phi(k_s)_i prod_r g_r[i]</c>.
/// </summary>
public sealed record LinearOptions
{
    /// <summary>The feature map phi.</summary>
    public FeatureMap FeatureMap { get; init; } = FeatureMap.Identity;

    /// <summary>Which decay applies.</summary>
    public DecayKind Decay { get; init; } = DecayKind.None;

    /// <summary>log g per head <c>[H]</c> for <see cref="DecayKind.PerHead"/>; every value must be &lt;= 0.</summary>
    public ReadOnlyMemory<float> HeadLogDecay { get; init; }

    /// <summary>
    /// log g_t, float32: <c>[B, H, N]</c> for <see cref="DecayKind.PerToken"/>, <c>[B, H, N, Dk]</c> for
    /// <see cref="DecayKind.PerTokenPerKey"/>, indexed by output head H. Every value must be finite and &lt;= 0 (a gate
    /// in (0, 1]); host tensors are checked before any kernel runs, device tensors are the caller's responsibility.
    /// Any strides (token-major <c>[B, N, H]</c> memory included).
    /// </summary>
    public TensorView? LogGate { get; init; }

    /// <summary>Divide by the decayed sum of phi(q).phi(k) plus <see cref="Epsilon"/>.</summary>
    public bool Normalize { get; init; }

    /// <summary>Added to the normaliser.</summary>
    public float Epsilon { get; init; } = 1e-6f;

    /// <summary>Causal (default) or the non-causal <c>phi(Q)(phi(K)^T V)</c>.</summary>
    public bool Causal { get; init; } = true;

    /// <summary>A factor on phi(q).phi(k) (default 1).</summary>
    public float Scale { get; init; } = 1f;

    /// <summary>
    /// Chunk length used by kernels; 0 (the default) lets each backend pick its own. The result does not depend on it
    /// beyond rounding. Ignored by <see cref="AttentionContext.LinearDecodeStep"/>.
    /// </summary>
    public int ChunkSize { get; init; }

    /// <summary>
    /// Varlen packing (fla's <c>cu_seqlens</c>): empty (the default) for a plain batch. Otherwise S + 1 offsets, from
    /// 0, never decreasing, ending at N: the batch size must be 1 and sequence s owns tokens
    /// <c>[CuSeqLens[s], CuSeqLens[s + 1])</c> of the packed axis N, computed as a call of its own. States are then
    /// per sequence, <c>[S, H, F, C]</c>, and sequence s starts from initial state s and leaves final state s (an
    /// empty sequence leaves its initial state, or zeros). Not allowed in <see cref="AttentionContext.LinearDecodeStep"/>.
    /// </summary>
    public ReadOnlyMemory<int> CuSeqLens { get; init; }

    /// <summary>The size of phi's output for input size <paramref name="headDim"/>.</summary>
    public int FeatureSize(int headDim) => FeatureMap == FeatureMap.Taylor2 ? 1 + headDim + headDim * headDim : headDim;
}
