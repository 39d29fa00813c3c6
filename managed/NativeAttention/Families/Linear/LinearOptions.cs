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
}

/// <summary>
/// Options of <see cref="AttentionContext.LinearChunked"/>: <c>o_t = sum_{s&lt;=t} (prod_{r=s+1..t} g_r)
/// (phi(q_t).phi(k_s)) v_s</c>, optionally divided by the same sum without v plus <see cref="Epsilon"/>.
/// </summary>
public sealed record LinearOptions
{
    /// <summary>The feature map phi.</summary>
    public FeatureMap FeatureMap { get; init; } = FeatureMap.Identity;

    /// <summary>Which decay applies.</summary>
    public DecayKind Decay { get; init; } = DecayKind.None;

    /// <summary>log g per head <c>[H]</c> for <see cref="DecayKind.PerHead"/>; every value must be &lt;= 0.</summary>
    public ReadOnlyMemory<float> HeadLogDecay { get; init; }

    /// <summary>log g_t per token <c>[B, H, N]</c> (float32) for <see cref="DecayKind.PerToken"/>; values &lt;= 0.</summary>
    public TensorView? LogGate { get; init; }

    /// <summary>Divide by the decayed sum of phi(q).phi(k) plus <see cref="Epsilon"/>.</summary>
    public bool Normalize { get; init; }

    /// <summary>Added to the normaliser.</summary>
    public float Epsilon { get; init; } = 1e-6f;

    /// <summary>Causal (default) or the non-causal <c>phi(Q)(phi(K)^T V)</c>.</summary>
    public bool Causal { get; init; } = true;

    /// <summary>A factor on phi(q).phi(k) (default 1).</summary>
    public float Scale { get; init; } = 1f;

    /// <summary>Chunk length used by kernels; the result does not depend on it.</summary>
    public int ChunkSize { get; init; } = 64;

    /// <summary>The size of phi's output for input size <paramref name="headDim"/>.</summary>
    public int FeatureSize(int headDim) => FeatureMap == FeatureMap.Taylor2 ? 1 + headDim + headDim * headDim : headDim;
}
