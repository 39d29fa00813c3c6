// Flash (exact) attention in float64, and the same math as a naive float32 / storage-precision implementation.
namespace NativeAttention;

public static partial class Reference
{
    private const string FlashQLayout = "[B, Hq, Nq, Dqk]";
    private const string FlashKLayout = "[B, Hkv, Nk, Dqk]";
    private const string FlashVLayout = "[B, Hkv, Nk, Dv]";

    /// <summary>
    /// Exact attention in float64 with every option of <see cref="FlashOptions"/>. Query i sits at absolute position
    /// <c>i' = i + Nk - Nq</c> (bottom-right alignment) and sees key j unless causal masking (<c>j &gt; i'</c>) or the
    /// window (<c>j &lt; i' - WindowLeft</c> or <c>j &gt; i' + WindowRight</c>) hides it; query head h reads kv head
    /// <c>h / (Hq / Hkv)</c>. For each visible key it effectively computes, in this order: <c>s = scale q.k</c> (scale
    /// defaulting to <c>1/sqrt(Dqk)</c>); softcap <c>c tanh(s / c)</c>; ALiBi <c>- slope_h |i' - j|</c>; the dense
    /// bias; the low-rank bias <c>U_i . W_j</c>. Softmax scoring then gives <c>o_i = sum_j exp(s'_j - LSE_i) v_j</c>
    /// with <c>LSE_i = log(exp(sink_h) + sum_j exp(s'_j))</c> (the sink joins the denominator only, and LSE includes
    /// it). Sigmoid scoring gives <c>o_i = sum_j sigmoid(s'_j + SigmoidBias) v_j</c>, unnormalised, and reports
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
        options ??= new FlashOptions();
        var q = Check.Rank(query, 4, nameof(query), FlashQLayout);
        var k = Check.Rank(key, 4, nameof(key), FlashKLayout);
        var v = Check.Rank(value, 4, nameof(value), FlashVLayout);
        Check.Positive(query, nameof(query), FlashQLayout);
        Check.Positive(key, nameof(key), FlashKLayout);
        Check.Positive(value, nameof(value), FlashVLayout);
        int batch = q[0], hq = q[1], nq = q[2], dqk = q[3], hkv = k[1], nk = k[2], dv = v[3];
        if (k[0] != batch) Check.Fail(nameof(key), $"key has batch {k[0]}; query has batch {batch} ({FlashKLayout}).");
        if (k[3] != dqk) Check.Fail(nameof(key), $"key has head dim {k[3]}; query has {dqk} ({FlashKLayout}).");
        if (hq % hkv != 0) Check.Fail(nameof(key), $"key has {hkv} heads, which does not divide the query's {hq} heads (GQA/MQA need Hq % Hkv == 0).");
        if (v[0] != batch || v[1] != hkv || v[2] != nk)
            Check.Fail(nameof(value), $"value has shape {Check.Text(v)}; expected [{batch}, {hkv}, {nk}, Dv] to match key {FlashVLayout}.");
        Check.HeadDims(dqk, nameof(query), dv, nameof(value));
        Check.Type(key, query.ElementType, nameof(key));
        Check.Type(value, query.ElementType, nameof(value));
        double scale = CheckFlashRowOptions(options, batch, hq, dqk);
        if (options.Bias is { } bias)
        {
            const string name = "options.Bias";
            var s = Check.Rank(bias, 4, name, "[B|1, Hq|1, Nq, Nk]");
            Check.OneOrAll(s[0], batch, name, "batch");
            Check.OneOrAll(s[1], hq, name, "head");
            if (s[2] != nq || s[3] != nk) Check.Fail(name, $"options.Bias has shape {Check.Text(s)}; expected [B|1, Hq|1, {nq}, {nk}].");
        }
        if (options.LowRankBias is { } lowRank)
        {
            const string uName = "options.LowRankBias.U", wName = "options.LowRankBias.W";
            var u = Check.Rank(lowRank.U, 4, uName, "[B|1, Hq|1, Nq, r]");
            var w = Check.Rank(lowRank.W, 4, wName, "[B|1, Hq|1, Nk, r]");
            Check.Positive(lowRank.U, uName, "[B|1, Hq|1, Nq, r]");
            Check.Positive(lowRank.W, wName, "[B|1, Hq|1, Nk, r]");
            Check.OneOrAll(u[0], batch, uName, "batch");
            Check.OneOrAll(u[1], hq, uName, "head");
            Check.OneOrAll(w[0], batch, wName, "batch");
            Check.OneOrAll(w[1], hq, wName, "head");
            if (u[2] != nq) Check.Fail(uName, $"options.LowRankBias.U has {u[2]} rows; expected Nq = {nq}.");
            if (w[2] != nk) Check.Fail(wName, $"options.LowRankBias.W has {w[2]} rows; expected Nk = {nk}.");
            if (u[3] != w[3]) Check.Fail(wName, $"options.LowRankBias has rank {u[3]} in U but {w[3]} in W.");
        }

        var call = new FlashCall(options, batch, hq, hkv, nq, nk, dqk, dv, scale)
        {
            Slopes = ReadSlopes(options, batch, hq, a),
            Sinks = options.Sinks is { } sinks ? Read(sinks, a) : null,
        };
        if (options.Bias is { } b)
            (call.Bias, call.BiasBatch, call.BiasHeads) = (Read(b, a), b.Shape[0], b.Shape[1]);
        if (options.LowRankBias is { } lr)
        {
            (call.U, call.UBatch, call.UHeads) = (Read(lr.U, a), lr.U.Shape[0], lr.U.Shape[1]);
            (call.W, call.WBatch, call.WHeads) = (Read(lr.W, a), lr.W.Shape[0], lr.W.Shape[1]);
            call.Rank = lr.U.Shape[3];
        }
        return FlashRows(call, Read(query, a), Read(key, a), Read(value, a), a);
    }

    /// <summary>
    /// Checks the flash options that do not depend on the key length (scale, window extents, softcap, sigmoid bias,
    /// ALiBi slopes <c>[Hq]</c> or <c>[B, Hq]</c>, sinks <c>[Hq]</c>) and returns the scale. The variable-length and
    /// KV-cache references check them too.
    /// </summary>
    private static double CheckFlashRowOptions(FlashOptions options, int batch, int hq, int dqk)
    {
        double scale = Check.Scale(options.Scale, dqk, nameof(options));
        if (options.WindowLeft < -1) Check.Fail(nameof(options), $"WindowLeft is {options.WindowLeft}; expected -1 (unbounded) or a non-negative extent.");
        if (options.WindowRight < -1) Check.Fail(nameof(options), $"WindowRight is {options.WindowRight}; expected -1 (unbounded) or a non-negative extent.");
        if (!(options.Softcap >= 0) || !float.IsFinite(options.Softcap)) Check.Fail(nameof(options), $"Softcap is {options.Softcap}; expected 0 (off) or a positive finite cap.");
        if (!float.IsFinite(options.SigmoidBias)) Check.Fail(nameof(options), $"SigmoidBias is {options.SigmoidBias}; expected a finite value.");
        if (options.AlibiSlopes is { } slopes)
        {
            const string name = "options.AlibiSlopes";
            Check.Shape(slopes, slopes.Rank == 1 ? [hq] : [batch, hq], name, "float32 [Hq] or [B, Hq]");
            Check.Type(slopes, ElementType.Float32, name);
        }
        if (options.Sinks is { } sinks)
        {
            Check.Shape(sinks, [hq], "options.Sinks", "float32 [Hq]");
            Check.Type(sinks, ElementType.Float32, "options.Sinks");
            if (options.ScoreFunction == ScoreFunction.Sigmoid)
                Check.Fail("options.Sinks", "Sinks join the softmax denominator and have no meaning with sigmoid scoring.");
        }
        return scale;
    }

    /// <summary>The ALiBi slopes as a row-major <c>[B, Hq]</c> array (a <c>[Hq]</c> tensor repeated per element), or null.</summary>
    private static double[]? ReadSlopes(FlashOptions options, int batch, int hq, in Arith a)
    {
        if (options.AlibiSlopes is not { } slopes) return null;
        var read = Read(slopes, a);
        if (slopes.Rank == 2) return read;
        var perElement = new double[batch * hq];
        for (int b = 0; b < batch; b++) Array.Copy(read, 0, perElement, b * hq, hq);
        return perElement;
    }

    /// <summary>
    /// One flash attention call in arrays: sizes, the scale, the masks and the score options, with every option tensor
    /// already read. The variable-length and KV-cache references build one per sequence.
    /// </summary>
    private sealed class FlashCall(FlashOptions options, int batch, int queryHeads, int keyValueHeads, int queryLength, int keyLength, int headDim, int valueDim, double scale)
    {
        public readonly FlashOptions Options = options;
        public readonly int Batch = batch, QueryHeads = queryHeads, KeyValueHeads = keyValueHeads, QueryLength = queryLength, KeyLength = keyLength;
        public readonly int HeadDim = headDim, ValueDim = valueDim;
        public readonly double Scale = scale;
        /// <summary>ALiBi slopes, row-major <c>[Batch, QueryHeads]</c>, or null.</summary>
        public double[]? Slopes;
        /// <summary>Sink logits <c>[QueryHeads]</c>, or null.</summary>
        public double[]? Sinks;
        /// <summary>Dense bias <c>[BiasBatch, BiasHeads, Nq, Nk]</c>, or null.</summary>
        public double[]? Bias;
        public int BiasBatch = 1, BiasHeads = 1;
        /// <summary>Low-rank bias factors <c>[UBatch, UHeads, Nq, Rank]</c> and <c>[WBatch, WHeads, Nk, Rank]</c>, or null.</summary>
        public double[]? U, W;
        public int Rank, UBatch = 1, UHeads = 1, WBatch = 1, WHeads = 1;
    }

    /// <summary>
    /// Whether the query at absolute position <paramref name="queryPosition"/> sees key <paramref name="key"/> under
    /// causal masking and a sliding window (DESIGN.md, "Flash"): causal hides keys after the query; the window keeps
    /// <c>i' - left &lt;= j &lt;= i' + right</c>, an extent of -1 being unbounded.
    /// </summary>
    private static bool FlashVisible(bool causal, int windowLeft, int windowRight, long queryPosition, long key)
    {
        if (causal && key > queryPosition) return false;
        if (windowLeft >= 0 && key < queryPosition - windowLeft) return false;
        if (windowRight >= 0 && key > queryPosition + windowRight) return false;
        return true;
    }

    /// <summary>
    /// The flash math on row-major <c>[B, H, N, D]</c> arrays already read (and rounded as <paramref name="a"/>
    /// stores inputs): every query against every key, skipping the keys <see cref="FlashVisible"/> hides.
    /// </summary>
    private static ReferenceResult FlashRows(FlashCall c, double[] q, double[] k, double[] v, Arith a)
    {
        var o = c.Options;
        int batch = c.Batch, hq = c.QueryHeads, hkv = c.KeyValueHeads, nq = c.QueryLength, nk = c.KeyLength, d = c.HeadDim, dv = c.ValueDim;
        int queryHeadsPerKvHead = hq / hkv;
        bool sigmoid = o.ScoreFunction == ScoreFunction.Sigmoid;
        double softcap = o.Softcap;

        var output = new double[(long)batch * hq * nq * dv];
        var lse = new double[(long)batch * hq * nq];
        var scores = new double[nk];
        var offsets = new int[nk];
        for (int b = 0; b < batch; b++)
        for (int h = 0; h < hq; h++)
        {
            int kvHead = h / queryHeadsPerKvHead;
            double slope = c.Slopes is null ? 0 : c.Slopes[b * hq + h];
            double sink = c.Sinks is null ? double.NegativeInfinity : c.Sinks[h];
            for (int i = 0; i < nq; i++)
            {
                int queryRow = (b * hq + h) * nq + i;
                long position = (long)i + nk - nq;
                int count = 0;
                for (int j = 0; j < nk; j++)
                {
                    if (!FlashVisible(o.Causal, o.WindowLeft, o.WindowRight, position, j)) continue;
                    int keyRow = (b * hkv + kvHead) * nk + j;
                    double s = a.Op(c.Scale * a.Dot(q, queryRow * d, k, keyRow * d, d));
                    if (softcap > 0) s = a.Op(softcap * a.Op(Math.Tanh(a.Op(s / softcap))));
                    if (c.Slopes is not null) s = a.Op(s - a.Op(slope * Math.Abs(position - j)));
                    if (c.Bias is not null)
                    {
                        int bb = c.BiasBatch == 1 ? 0 : b, bh = c.BiasHeads == 1 ? 0 : h;
                        s = a.Op(s + c.Bias[(((long)bb * c.BiasHeads + bh) * nq + i) * nk + j]);
                    }
                    if (c.U is not null && c.W is not null)
                    {
                        int uRow = ((c.UBatch == 1 ? 0 : b) * c.UHeads + (c.UHeads == 1 ? 0 : h)) * nq + i;
                        int wRow = ((c.WBatch == 1 ? 0 : b) * c.WHeads + (c.WHeads == 1 ? 0 : h)) * nk + j;
                        s = a.Op(s + a.Dot(c.U, uRow * c.Rank, c.W, wRow * c.Rank, c.Rank));
                    }
                    scores[count] = a.Store(s);
                    offsets[count++] = keyRow * dv;
                }
                var outRow = output.AsSpan(queryRow * dv, dv);
                lse[queryRow] = sigmoid
                    ? SigmoidRow(a, scores.AsSpan(0, count), offsets.AsSpan(0, count), v, o.SigmoidBias, outRow)
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
