// Block-sparse attention in float64: flash attention restricted to the elements a block mask makes visible.
namespace NativeAttention;

public static partial class Reference
{
    /// <summary>
    /// Block-sparse attention in float64, for both mask formats. Query i (in query block <c>i / Bq</c>) sees key j
    /// when j's key block is listed for that row as full, or as partial and
    /// <see cref="BlockSparseProblem.PredicateAllows"/> holds; blocks not listed are invisible. Over that set it is
    /// exactly flash attention: <c>o_i = softmax_j(scale q_i . k_j) v_j</c>. Rows that see nothing output zeros and
    /// LSE = -inf.
    /// </summary>
    /// <returns>Output <c>[B, Hq, Nq, Dv]</c> and LSE <c>[B, Hq, Nq]</c>.</returns>
    /// <exception cref="ArgumentException">A tensor, the mask or an option is invalid, as for <see cref="AttentionContext.BlockSparse"/>.</exception>
    /// <exception cref="ObjectDisposedException">A tensor's storage was released.</exception>
    public static ReferenceResult BlockSparse(TensorView query, TensorView key, TensorView value, BlockSparseOptions options)
    {
        var p = BlockSparseProblem.CreateForInputs(query, key, value, options);
        var a = Arith.Exact;
        int batch = p.Batch, hq = p.QueryHeads, hkv = p.KeyValueHeads, nq = p.QueryLength, nk = p.KeyLength, d = p.HeadDim, dv = p.ValueDim;
        var q = Read(query, a);
        var k = Read(key, a);
        var v = Read(value, a);
        var output = new double[(long)batch * hq * nq * dv];
        var lse = new double[(long)batch * hq * nq];
        var scores = new double[nk];
        var offsets = new int[nk];
        for (int b = 0; b < batch; b++)
        for (int h = 0; h < hq; h++)
        {
            int kvBase = (b * hkv + h / p.GroupSize) * nk;
            for (int i = 0; i < nq; i++)
            {
                int row = (b * hq + h) * nq + i;
                var blocks = p.GetRow(b, h, i / p.QueryBlockSize);
                int count = 0;
                foreach (int block in blocks.Full)
                    for (int j = block * p.KeyBlockSize; j < Math.Min((block + 1) * p.KeyBlockSize, nk); j++)
                    {
                        offsets[count] = (kvBase + j) * dv;
                        scores[count++] = p.Scale * a.Dot(q, row * d, k, (kvBase + j) * d, d);
                    }
                foreach (int block in blocks.Partial)
                    for (int j = block * p.KeyBlockSize; j < Math.Min((block + 1) * p.KeyBlockSize, nk); j++)
                    {
                        if (!p.PredicateAllows(b, i, j)) continue;
                        offsets[count] = (kvBase + j) * dv;
                        scores[count++] = p.Scale * a.Dot(q, row * d, k, (kvBase + j) * d, d);
                    }
                lse[row] = SoftmaxRow(a, scores.AsSpan(0, count), offsets.AsSpan(0, count), v, double.NegativeInfinity, output.AsSpan(row * dv, dv));
            }
        }
        return new ReferenceResult(output, [batch, hq, nq, dv], lse, [batch, hq, nq]);
    }
}
