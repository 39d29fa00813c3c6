// Options of exact (flash) attention. Semantics: ../../../DESIGN.md, "Flash (exact attention)".
namespace NativeAttention;

/// <summary>How attention probabilities are formed from scores.</summary>
public enum ScoreFunction
{
    /// <summary>The normalised softmax over visible keys.</summary>
    Softmax,
    /// <summary><c>sigmoid(s + b)</c> per pair, unnormalised (FlashSigmoid).</summary>
    Sigmoid,
}

/// <summary>
/// A low-rank additive bias <c>U W^T</c>: <see cref="U"/> is <c>[B|1, H|1, Nq, r]</c> and <see cref="W"/> is
/// <c>[B|1, H|1, Nk, r]</c>. Kernels compute it per tile, never as an Nq x Nk matrix (FlashBias).
/// </summary>
public sealed record LowRankBias(TensorView U, TensorView W);

/// <summary>
/// Options of <see cref="AttentionContext.Flash"/>. Scores <c>s = scale * q.k</c> are modified, in this order,
/// by softcap, ALiBi and additive bias, then masked (causal, window), then turned into probabilities.
/// </summary>
public sealed record FlashOptions
{
    /// <summary>Score scale; null means <c>1 / sqrt(Dqk)</c>.</summary>
    public float? Scale { get; init; }

    /// <summary>
    /// Causal masking, aligned bottom-right: query i sits at absolute position <c>i + Nk - Nq</c> and sees keys
    /// at or before it.
    /// </summary>
    public bool Causal { get; init; }

    /// <summary>Sliding window: keys with <c>i' - WindowLeft &lt;= j</c> stay visible; -1 means unbounded.</summary>
    public int WindowLeft { get; init; } = -1;

    /// <summary>Sliding window: keys with <c>j &lt;= i' + WindowRight</c> stay visible; -1 means unbounded.</summary>
    public int WindowRight { get; init; } = -1;

    /// <summary>Softcap c: scores become <c>c * tanh(s / c)</c>; 0 disables it.</summary>
    public float Softcap { get; init; }

    /// <summary>ALiBi slopes, float32 <c>[Hq]</c> or <c>[B, Hq]</c>: <c>-slope * |i' - j|</c> is added to each score.</summary>
    public TensorView? AlibiSlopes { get; init; }

    /// <summary>Dense additive bias <c>[B|1, Hq|1, Nq, Nk]</c>, broadcast over size-1 batch and head axes.</summary>
    public TensorView? Bias { get; init; }

    /// <summary>Low-rank additive bias, computed inside the kernel.</summary>
    public LowRankBias? LowRankBias { get; init; }

    /// <summary>Attention sinks, float32 <c>[Hq]</c>: a logit per head that joins the softmax denominator only.</summary>
    public TensorView? Sinks { get; init; }

    /// <summary>Softmax (default) or sigmoid scoring.</summary>
    public ScoreFunction ScoreFunction { get; init; } = ScoreFunction.Softmax;

    /// <summary>The bias b of sigmoid scoring, <c>sigmoid(s + b)</c>; typically <c>-log(Nk)</c>.</summary>
    public float SigmoidBias { get; init; }

    /// <summary>The default options: plain non-causal softmax attention with scale <c>1/sqrt(Dqk)</c>.</summary>
    public static FlashOptions Default { get; } = new();
}
