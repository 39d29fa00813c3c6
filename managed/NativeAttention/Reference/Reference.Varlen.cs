// Variable-length flash attention in float64: each packed sequence sliced out and run through the flash reference.
namespace NativeAttention;

public static partial class Reference
{
    /// <summary>
    /// Variable-length flash attention in float64, as <see cref="AttentionContext.FlashVarlen"/> defines it: for each
    /// sequence b it slices query rows <c>[CuSeqLensQ[b], CuSeqLensQ[b + 1])</c> and the sequence's first
    /// <c>SeqUsedK[b]</c> (default: all) key rows, and runs <see cref="Flash"/> on them. Sequences without keys give
    /// zeros and LSE = -inf.
    /// </summary>
    /// <returns>Output <c>[TotalQ, Hq, Dv]</c> and LSE <c>[Hq, TotalQ]</c>.</returns>
    /// <exception cref="ArgumentException">A tensor, offset array or option is invalid, as for <see cref="AttentionContext.FlashVarlen"/>.</exception>
    public static ReferenceResult FlashVarlen(TensorView query, TensorView key, TensorView value, VarlenLayout layout, FlashOptions? options = null) =>
        FlashVarlenCore(query, key, value, layout, options, Arith.Exact);

    /// <summary>
    /// <see cref="FlashVarlen"/> computed per sequence by <see cref="FlashNaive"/> in <paramref name="precision"/>: the
    /// yardstick of the error rule for variable-length kernels.
    /// </summary>
    /// <exception cref="ArgumentException">A tensor, offset array or option is invalid.</exception>
    public static ReferenceResult FlashVarlenNaive(TensorView query, TensorView key, TensorView value, VarlenLayout layout, FlashOptions? options, ElementType precision)
    {
        if (!Enum.IsDefined(precision))
            throw new ArgumentOutOfRangeException(nameof(precision), precision, "Unknown element type.");
        return FlashVarlenCore(query, key, value, layout, options, Arith.Naive(precision));
    }

    private static ReferenceResult FlashVarlenCore(in TensorView query, in TensorView key, in TensorView value, VarlenLayout layout, FlashOptions? options, Arith a)
    {
        var p = VarlenProblem.CreateForInputs(query, key, value, layout, options);
        int hq = p.QueryHeads, dv = p.ValueDim, total = p.TotalQueries;
        var output = new double[(long)total * hq * dv];
        var lse = new double[(long)hq * total];
        Array.Fill(lse, double.NegativeInfinity);
        for (int b = 0; b < p.SequenceCount; b++)
        {
            int q0 = p.QueryStart(b), nq = p.QueryLength(b), k0 = p.KeyStart(b), nk = p.KeyLength(b);
            if (nq == 0 || nk == 0) continue;
            var sequence = FlashCore(
                VarlenProblem.SequenceView(query, q0, nq), VarlenProblem.SequenceView(key, k0, nk), VarlenProblem.SequenceView(value, k0, nk),
                FlashProblem.ForBatchElement(p.Options, b), a);
            // The sequence's [1, Hq, nq, Dv] result goes back to packed rows q0.. of [TotalQ, Hq, Dv] and columns of [Hq, TotalQ].
            for (int h = 0; h < hq; h++)
                for (int i = 0; i < nq; i++)
                {
                    Array.Copy(sequence.Output, ((long)h * nq + i) * dv, output, ((long)(q0 + i) * hq + h) * dv, dv);
                    lse[(long)h * total + q0 + i] = sequence.LogSumExp![h * nq + i];
                }
        }
        return new ReferenceResult(output, [total, hq, dv], lse, [hq, total]);
    }
}
