// An independent float64 reference of Flex attention, written plainly: it shares no masking, scaling, block or
// indexing code with the kernels or their validation. It calls the modifications (they ARE the definition).
namespace NativeAttention.Ilgpu.Tests.Flex;

/// <summary>
/// <c>O[b,h,i] = sum_j p_j V[b, h / (Hq/Hkv), j]</c> with <c>p = softmax_j over visible j of Score(scale * q_i . k_j, b, h, i, j)</c>,
/// in float64 (the modifications themselves are float32 functions); rows with no visible key give zeros and LSE -inf.
/// </summary>
public static class FlexReference
{
    /// <summary>Output <c>[B, Hq, Nq, Dv]</c> and natural-log LSE <c>[B, Hq, Nq]</c>, row-major.</summary>
    public static (double[] Output, double[] LogSumExp) Run<TScore, TMask>(TensorView query, TensorView key, TensorView value, double scale,
        FlexBlockMask? blockMask, TScore scoreMod, TMask maskMod) where TScore : struct, IScoreMod where TMask : struct, IMaskMod
    {
        int batch = query.Shape[0], hq = query.Shape[1], nq = query.Shape[2], d = query.Shape[3];
        int hkv = key.Shape[1], nk = key.Shape[2], dv = value.Shape[3];
        if (key.Shape[0] != batch || key.Shape[3] != d || value.Shape[1] != hkv || value.Shape[2] != nk || hq % hkv != 0)
            throw new ArgumentException("FlexReference: inconsistent shapes.");
        double[] q = query.ToDoubleArray(), k = key.ToDoubleArray(), v = value.ToDoubleArray();
        var output = new double[(long)batch * hq * nq * dv];
        var lse = new double[(long)batch * hq * nq];
        var scores = new double[nk];
        var seen = new bool[nk];
        for (int b = 0; b < batch; b++)
        for (int h = 0; h < hq; h++)
        {
            int g = h / (hq / hkv);
            for (int i = 0; i < nq; i++)
            {
                double max = double.NegativeInfinity;
                for (int j = 0; j < nk; j++)
                {
                    seen[j] = IsVisible(blockMask, maskMod, batch, hq, nq, nk, b, h, i, j);
                    if (!seen[j]) continue;
                    double dot = 0;
                    for (int x = 0; x < d; x++)
                        dot += q[(((long)b * hq + h) * nq + i) * d + x] * k[(((long)b * hkv + g) * nk + j) * d + x];
                    scores[j] = scoreMod.Score((float)(scale * dot), b, h, i, j);
                    max = Math.Max(max, scores[j]);
                }
                long row = ((long)b * hq + h) * nq + i;
                if (double.IsNegativeInfinity(max))
                {
                    lse[row] = double.NegativeInfinity;
                    continue;
                }
                double sum = 0;
                for (int j = 0; j < nk; j++)
                    if (seen[j]) sum += Math.Exp(scores[j] - max);
                for (int j = 0; j < nk; j++)
                {
                    if (!seen[j]) continue;
                    double p = Math.Exp(scores[j] - max) / sum;
                    for (int x = 0; x < dv; x++)
                        output[row * dv + x] += p * v[(((long)b * hkv + g) * nk + j) * dv + x];
                }
                lse[row] = max + Math.Log(sum);
            }
        }
        return (output, lse);
    }

    /// <summary>Visible: without a block mask, the mask says so; with one, the pair's block is listed full, or partial and the mask says so.</summary>
    private static bool IsVisible<TMask>(FlexBlockMask? m, TMask maskMod, int batch, int hq, int nq, int nk, int b, int h, int i, int j) where TMask : struct, IMaskMod
    {
        if (m is null) return maskMod.Visible(b, h, i, j);
        int queryBlocks = (nq + m.QueryBlockSize - 1) / m.QueryBlockSize;
        int mb = m.MaskBatch == 1 ? 0 : b;
        int mh = m.MaskHeads == 1 ? 0 : m.MaskHeads == hq ? h : h / (hq / m.MaskHeads);
        int r = (mb * m.MaskHeads + mh) * queryBlocks + i / m.QueryBlockSize;
        int block = j / m.KeyBlockSize;
        if (!m.FullCounts.IsEmpty)
            for (int n = 0; n < m.FullCounts.Span[r]; n++)
                if (m.FullIndices.Span[r * m.MaxBlocksPerRow + n] == block) return true;
        for (int n = 0; n < m.PartialCounts.Span[r]; n++)
            if (m.PartialIndices.Span[r * m.MaxBlocksPerRow + n] == block) return maskMod.Visible(b, h, i, j);
        return false;
    }
}
