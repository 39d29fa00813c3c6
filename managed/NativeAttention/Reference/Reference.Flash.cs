// Flash (exact) attention in float64, and the same math as a naive float32 / storage-precision implementation.
namespace NativeAttention;

public static partial class Reference
{
    /// <summary>
    /// Exact attention in float64 with every option of <see cref="FlashOptions"/>. For query i of head h (kv head
    /// <c>h / (Hq / Hkv)</c>) and each key j in the causal/window range of <see cref="FlashProblem.VisibleKeys(int)"/>
    /// it effectively computes, in this order: <c>s = scale q.k</c>; softcap <c>c tanh(s / c)</c>; ALiBi
    /// <c>- slope_h |i + Nk - Nq - j|</c>; the dense bias; the low-rank bias <c>U_i . W_j</c>. Softmax scoring then
    /// gives <c>o_i = sum_j exp(s'_j - LSE_i) v_j</c> with <c>LSE_i = log(exp(sink_h) + sum_j exp(s'_j))</c> (the
    /// sink joins the denominator only, and LSE includes it). Sigmoid scoring gives
    /// <c>o_i = sum_j sigmoid(s'_j + SigmoidBias) v_j</c>, unnormalised, and reports
    /// <c>LSE_i = log(sum_j sigmoid(s'_j + SigmoidBias))</c>, the log of the row's total weight, computed as a
    /// log-sum-exp of log-sigmoids so it never overflows or turns NaN. A row with no visible key (or whose scores
    /// are all -inf, e.g. through a -inf bias) outputs zeros and LSE = -inf, with or without a sink. The max is
    /// subtracted before exponentiation, so huge scales cannot overflow.
    /// </summary>
    /// <returns>Output <c>[B, Hq, Nq, Dv]</c> and LSE <c>[B, Hq, Nq]</c>.</returns>
    /// <exception cref="ArgumentException">A tensor or option is invalid, as for <see cref="AttentionContext.Flash"/>.</exception>
    /// <exception cref="ObjectDisposedException">A tensor's storage was released.</exception>
    /// <exception cref="InvalidOperationException">A tensor lives in device memory.</exception>
    public static ReferenceResult Flash(TensorView query, TensorView key, TensorView value, FlashOptions? options = null) =>
        FlashCore(query, key, value, options, Arith.Exact);

    /// <summary>
    /// The same math as <see cref="Flash"/>, computed the way a naive implementation in <paramref name="precision"/>
    /// would: inputs rounded to <paramref name="precision"/>; every operation (products, sums, exp, tanh, division) in
    /// float32; the materialised intermediates (the score matrix after all modifiers, the probabilities) and the
    /// output rounded to <paramref name="precision"/>. With <see cref="ElementType.Float32"/> this is a plain float32
    /// naive attention; with Float16 or BFloat16 it mirrors a PyTorch-style naive attention in that dtype (matmuls
    /// accumulating in float32, results stored in the dtype). Tests use its error as the yardstick of FlashAttention's
    /// rule: a kernel passes when its error against <see cref="Flash"/> is at most a small multiple of this one's.
    /// LSE stays float32. Like the implementation it imitates, a Float16 run overflows when scores leave the
    /// format's range (about 65504): use Float32 as the yardstick for such problems.
    /// </summary>
    /// <exception cref="ArgumentException">A tensor or option is invalid, as for <see cref="AttentionContext.Flash"/>.</exception>
    public static ReferenceResult FlashNaive(TensorView query, TensorView key, TensorView value, FlashOptions? options, ElementType precision)
    {
        if (!Enum.IsDefined(precision))
            throw new ArgumentOutOfRangeException(nameof(precision), precision, "Unknown element type.");
        return FlashCore(query, key, value, options, Arith.Naive(precision));
    }

    private static ReferenceResult FlashCore(in TensorView query, in TensorView key, in TensorView value, FlashOptions? options, Arith a)
    {
        var p = FlashProblem.CreateForInputs(query, key, value, options);
        return FlashCore(p, Read(query, a), Read(key, a), Read(value, a), a);
    }

    /// <summary>
    /// The flash math on row-major <c>[B, H, N, D]</c> arrays already read (and rounded as <paramref name="a"/>
    /// stores inputs), for callers that build their inputs in float64 (the KV-cache reference rotates them).
    /// </summary>
    private static ReferenceResult FlashCore(FlashProblem p, double[] q, double[] k, double[] v, Arith a)
    {
        var o = p.Options;
        int batch = p.Batch, hq = p.QueryHeads, hkv = p.KeyValueHeads, nq = p.QueryLength, nk = p.KeyLength, d = p.HeadDim, dv = p.ValueDim;
        double scale = p.Scale;
        double softcap = o.Softcap;
        bool sigmoid = o.ScoreFunction == ScoreFunction.Sigmoid;
        double sigmoidBias = o.SigmoidBias;

        double[]? slopes = o.AlibiSlopes is { } sl ? Read(sl, a) : null;
        bool slopesPerBatch = o.AlibiSlopes is { Rank: 2 };
        double[]? sinks = o.Sinks is { } sk ? Read(sk, a) : null;
        double[]? bias = o.Bias is { } bv ? Read(bv, a) : null;
        int biasBatch = o.Bias?.Shape[0] ?? 1, biasHeads = o.Bias?.Shape[1] ?? 1;
        double[]? u = null, w = null;
        int rank = 0, uBatch = 1, uHeads = 1, wBatch = 1, wHeads = 1;
        if (o.LowRankBias is { } lr)
        {
            u = Read(lr.U, a);
            w = Read(lr.W, a);
            rank = lr.U.Shape[3];
            (uBatch, uHeads, wBatch, wHeads) = (lr.U.Shape[0], lr.U.Shape[1], lr.W.Shape[0], lr.W.Shape[1]);
        }

        var output = new double[(long)batch * hq * nq * dv];
        var lse = new double[(long)batch * hq * nq];
        var scores = new double[nk];
        var offsets = new int[nk];
        for (int b = 0; b < batch; b++)
        for (int h = 0; h < hq; h++)
        {
            int kvh = h / p.GroupSize;
            double slope = slopes is null ? 0 : slopes[slopesPerBatch ? b * hq + h : h];
            double sink = sinks is null ? double.NegativeInfinity : sinks[h];
            for (int i = 0; i < nq; i++)
            {
                int row = (b * hq + h) * nq + i;
                var (start, end) = p.VisibleKeys(i);
                int count = Math.Max(end - start, 0);
                long aligned = (long)i + nk - nq;
                for (int n = 0; n < count; n++)
                {
                    int j = start + n;
                    int kvRow = (b * hkv + kvh) * nk + j;
                    double s = a.Op(scale * a.Dot(q, row * d, k, kvRow * d, d));
                    if (softcap > 0) s = a.Op(softcap * a.Op(Math.Tanh(a.Op(s / softcap))));
                    if (slopes is not null) s = a.Op(s - a.Op(slope * Math.Abs(aligned - j)));
                    if (bias is not null)
                    {
                        int bb = biasBatch == 1 ? 0 : b, bh = biasHeads == 1 ? 0 : h;
                        s = a.Op(s + bias[(((long)bb * biasHeads + bh) * nq + i) * nk + j]);
                    }
                    if (u is not null && w is not null)
                    {
                        int uRow = ((uBatch == 1 ? 0 : b) * uHeads + (uHeads == 1 ? 0 : h)) * nq + i;
                        int wRow = ((wBatch == 1 ? 0 : b) * wHeads + (wHeads == 1 ? 0 : h)) * nk + j;
                        s = a.Op(s + a.Dot(u, uRow * rank, w, wRow * rank, rank));
                    }
                    scores[n] = a.Store(s);
                    offsets[n] = kvRow * dv;
                }
                var outRow = output.AsSpan(row * dv, dv);
                lse[row] = sigmoid
                    ? SigmoidRow(a, scores.AsSpan(0, count), offsets.AsSpan(0, count), v, sigmoidBias, outRow)
                    : SoftmaxRow(a, scores.AsSpan(0, count), offsets.AsSpan(0, count), v, sink, outRow);
            }
        }
        return new ReferenceResult(output, [batch, hq, nq, dv], lse, [batch, hq, nq]);
    }

    /// <summary>
    /// Unnormalised sigmoid attention over one row: <c>o = sum_j sigmoid(s_j + bias) v_j</c>. Returns the log of the
    /// total weight, <c>log sum_j sigmoid(s_j + bias)</c>, -inf for an empty row.
    /// </summary>
    private static double SigmoidRow(in Arith a, Span<double> scores, ReadOnlySpan<int> valueOffsets, double[] values, double bias, Span<double> output)
    {
        output.Clear();
        if (scores.Length == 0) return double.NegativeInfinity;
        double maxLog = double.NegativeInfinity, totalWeight = 0;
        for (int j = 0; j < scores.Length; j++)
        {
            double x = a.Op(scores[j] + bias);
            // log sigmoid(x) = -log(1 + exp(-x)), written so neither branch overflows.
            double logWeight = x >= 0 ? -Math.Log(1 + Math.Exp(-x)) : x - Math.Log(1 + Math.Exp(x));
            double weight = a.Store(a.Op(Math.Exp(logWeight)));
            scores[j] = logWeight;
            maxLog = Math.Max(maxLog, logWeight);
            totalWeight = a.Op(totalWeight + weight);
            int offset = valueOffsets[j];
            for (int d = 0; d < output.Length; d++) output[d] = a.Op(output[d] + a.Op(weight * values[offset + d]));
        }
        for (int d = 0; d < output.Length; d++) output[d] = a.Store(output[d]);
        if (double.IsNegativeInfinity(maxLog)) return double.NegativeInfinity;
        double sum = 0;
        foreach (double logWeight in scores) sum += Math.Exp(logWeight - maxLog);
        return a.Op(maxLog + Math.Log(sum));
    }
}
