// The float64 reference of the flex GPU tests, written plainly here: a full score matrix per (batch, head, query), the
// test's own visibility and score functions, a two-pass softmax. It shares no code with the kernels or their masks.
namespace NativeAttention.Ilgpu.Tests.FlexOnGpu;

internal static class FlexReference
{
    /// <summary>
    /// O <c>[B, Hq, Nq, Dv]</c> and LSE <c>[B, Hq, Nq]</c> of Q <c>[B, Hq, Nq, D]</c>, K <c>[B, Hkv, Nk, D]</c>, V
    /// <c>[B, Hkv, Nk, Dv]</c>, contiguous. Rows that see no key give zeros and -inf.
    /// </summary>
    public static (double[] Output, double[] Lse) Run(float[] q, float[] k, float[] v, int batch, int headsQ, int headsKv, int nq, int nk, int d, int dv,
        double scale, Func<int, int, int, int, bool> visible, Func<double, int, int, int, int, double> score)
    {
        var output = new double[batch * headsQ * nq * dv];
        var lse = new double[batch * headsQ * nq];
        var s = new double[nk];
        for (int b = 0; b < batch; b++)
        for (int h = 0; h < headsQ; h++)
        {
            int hk = h / (headsQ / headsKv);
            for (int i = 0; i < nq; i++)
            {
                double max = double.NegativeInfinity;
                for (int j = 0; j < nk; j++)
                {
                    if (!visible(b, h, i, j))
                    {
                        s[j] = double.NegativeInfinity;
                        continue;
                    }
                    double dot = 0;
                    for (int x = 0; x < d; x++)
                        dot += (double)q[((b * headsQ + h) * nq + i) * d + x] * k[((b * headsKv + hk) * nk + j) * d + x];
                    s[j] = score(dot * scale, b, h, i, j);
                    max = Math.Max(max, s[j]);
                }
                int row = (b * headsQ + h) * nq + i;
                if (double.IsNegativeInfinity(max))
                {
                    lse[row] = double.NegativeInfinity;
                    continue;
                }
                double sum = 0;
                for (int j = 0; j < nk; j++) sum += double.IsNegativeInfinity(s[j]) ? 0 : Math.Exp(s[j] - max);
                for (int j = 0; j < nk; j++)
                {
                    if (double.IsNegativeInfinity(s[j])) continue;
                    double p = Math.Exp(s[j] - max) / sum;
                    for (int x = 0; x < dv; x++) output[row * dv + x] += p * v[((b * headsKv + hk) * nk + j) * dv + x];
                }
                lse[row] = max + Math.Log(sum);
            }
        }
        return (output, lse);
    }

    /// <summary>
    /// The block classes of a mask, plainly: 0 when no element of the block (inside the sequences) is visible, 2 when
    /// every one is, else 1; <c>[B, H, query blocks, key blocks]</c>.
    /// </summary>
    public static int[] Classes(int batch, int heads, int nq, int nk, int queryBlock, int keyBlock, Func<int, int, int, int, bool> visible)
    {
        int qb = (nq + queryBlock - 1) / queryBlock, kb = (nk + keyBlock - 1) / keyBlock;
        var classes = new int[batch * heads * qb * kb];
        for (int b = 0; b < batch; b++)
        for (int h = 0; h < heads; h++)
        for (int r = 0; r < qb; r++)
        for (int c = 0; c < kb; c++)
        {
            int seen = 0, total = 0;
            for (int i = r * queryBlock; i < Math.Min(nq, (r + 1) * queryBlock); i++)
            for (int j = c * keyBlock; j < Math.Min(nk, (c + 1) * keyBlock); j++)
            {
                total++;
                if (visible(b, h, i, j)) seen++;
            }
            classes[((b * heads + h) * qb + r) * kb + c] = seen == 0 ? 0 : seen == total ? 2 : 1;
        }
        return classes;
    }
}
