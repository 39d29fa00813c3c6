// The one place the CPU backend merges partial results through their log-sum-exps (MergeStates, split-KV decoding,
// a sink joining a row's denominator).
namespace NativeAttention.Cpu;

/// <summary>
/// Weights for combining partial attention results <c>(o_s, lse_s)</c>, each normalised over its own keys, into the
/// result over all their keys: <c>o = sum_s w_s o_s</c> with <c>w_s = exp(lse_s - lse)</c> and
/// <c>lse = log sum_s exp(lse_s)</c>, computed relative to the largest <c>lse_s</c> so that nothing overflows.
/// </summary>
internal static class LogSumExpMerge
{
    /// <summary>
    /// Replaces each natural-log LSE in <paramref name="logSumExps"/> by its partial's weight <c>exp(lse_s - lse)</c>
    /// and returns the merged <c>lse</c>. Partials with LSE -inf (no keys) get weight 0; when every partial has -inf
    /// the merged LSE is -inf and every weight 0, so the merged row is zeros, never NaN.
    /// </summary>
    public static float ToWeights(Span<float> logSumExps)
    {
        float max = float.NegativeInfinity;
        foreach (float lse in logSumExps) max = MathF.Max(max, lse);
        if (float.IsNegativeInfinity(max))
        {
            logSumExps.Clear();
            return max;
        }
        float sum = 0;
        foreach (float lse in logSumExps) sum += MathF.Exp(lse - max);
        float total = max + MathF.Log(sum);
        for (int s = 0; s < logSumExps.Length; s++) logSumExps[s] = MathF.Exp(logSumExps[s] - total);
        return total;
    }
}
