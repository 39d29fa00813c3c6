// Neighborhood attention (NATTEN semantics) in float64: softmax over each query's window product plus extra keys.
namespace NativeAttention;

public static partial class Reference
{
    /// <summary>
    /// Neighborhood attention in float64. Each query at spatial multi-index x sees the keys in the product over axes
    /// of <see cref="NeighborhoodProblem.WindowOnAxis(int, int)"/> (NATTEN's rule: centred window shifted inward at
    /// borders, dilation groups, causal axes, stride tiles sharing their leader's window) and every additional key;
    /// <c>o_x = softmax_j(scale q_x . k_j) v_j</c> over that set and <c>LSE_x = log sum_j exp(scale q_x . k_j)</c>.
    /// </summary>
    /// <returns>Output <c>[B, Hq, X.., Dv]</c> and LSE <c>[B, Hq, X..]</c>.</returns>
    /// <exception cref="ArgumentException">A tensor or option is invalid, as for <see cref="AttentionContext.Neighborhood"/>.</exception>
    /// <exception cref="ObjectDisposedException">A tensor's storage was released.</exception>
    public static ReferenceResult Neighborhood(TensorView query, TensorView key, TensorView value, NeighborhoodOptions options)
    {
        var p = NeighborhoodProblem.CreateForInputs(query, key, value, options);
        var a = Arith.Exact;
        int batch = p.Batch, hq = p.QueryHeads, hkv = p.KeyValueHeads, d = p.HeadDim, dv = p.ValueDim;
        int tokens = p.TokenCount, extra = p.AdditionalKeyCount, axes = p.SpatialRank;
        int keysPerHead = tokens + extra;
        var q = Read(query, a);
        // Keys and values of one kv head: the grid's tokens, then the additional tokens.
        var k = Concatenate(Read(key, a), options.AdditionalKeys is { } ek ? Read(ek, a) : null, batch * hkv, tokens * d, extra * d);
        var v = Concatenate(Read(value, a), options.AdditionalValues is { } ev ? Read(ev, a) : null, batch * hkv, tokens * dv, extra * dv);

        var shape = p.SpatialShape.ToArray();
        var axisStride = new int[axes];
        for (int ax = axes - 1, s = 1; ax >= 0; s *= shape[ax], ax--) axisStride[ax] = s;

        int maxKeys = 1;
        foreach (int ks in p.KernelSize) maxKeys *= ks;
        maxKeys += extra;
        var scores = new double[maxKeys];
        var offsets = new int[maxKeys];
        var windows = new AxisWindow[axes];
        var position = new int[axes];
        var step = new int[axes];
        var output = new double[(long)batch * hq * tokens * dv];
        var lse = new double[(long)batch * hq * tokens];
        for (int b = 0; b < batch; b++)
        for (int h = 0; h < hq; h++)
        {
            int kvBase = (b * hkv + h / p.GroupSize) * keysPerHead;
            for (int t = 0; t < tokens; t++)
            {
                for (int ax = 0; ax < axes; ax++) position[ax] = t / axisStride[ax] % shape[ax];
                p.VisibleKeys(position, windows);
                int row = (b * hq + h) * tokens + t;
                int count = 0;
                // Walk the product of the per-axis windows like an odometer.
                Array.Clear(step);
                while (true)
                {
                    int keyToken = 0;
                    for (int ax = 0; ax < axes; ax++) keyToken += windows[ax].KeyAt(step[ax]) * axisStride[ax];
                    offsets[count] = (kvBase + keyToken) * dv;
                    scores[count++] = p.Scale * a.Dot(q, row * d, k, (kvBase + keyToken) * d, d);
                    int axis = axes - 1;
                    while (axis >= 0 && ++step[axis] == windows[axis].Count) step[axis--] = 0;
                    if (axis < 0) break;
                }
                for (int e = 0; e < extra; e++)
                {
                    int keyRow = kvBase + tokens + e;
                    offsets[count] = keyRow * dv;
                    scores[count++] = p.Scale * a.Dot(q, row * d, k, keyRow * d, d);
                }
                lse[row] = SoftmaxRow(a, scores.AsSpan(0, count), offsets.AsSpan(0, count), v, double.NegativeInfinity, output.AsSpan(row * dv, dv));
            }
        }
        int[] outShape = [batch, hq, .. shape, dv];
        int[] lseShape = [batch, hq, .. shape];
        return new ReferenceResult(output, outShape, lse, lseShape);
    }

    /// <summary>Interleaves <paramref name="heads"/> blocks of <paramref name="main"/> and <paramref name="extra"/>: per head, main then extra.</summary>
    private static double[] Concatenate(double[] main, double[]? extra, int heads, int mainBlock, int extraBlock)
    {
        if (extra is null || extraBlock == 0) return main;
        var result = new double[(long)heads * (mainBlock + extraBlock)];
        for (int h = 0; h < heads; h++)
        {
            Array.Copy(main, (long)h * mainBlock, result, (long)h * (mainBlock + extraBlock), mainBlock);
            Array.Copy(extra, (long)h * extraBlock, result, (long)h * (mainBlock + extraBlock) + mainBlock, extraBlock);
        }
        return result;
    }
}
