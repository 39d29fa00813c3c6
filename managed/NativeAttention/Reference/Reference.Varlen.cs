// Variable-length flash attention in float64: each packed sequence cut out and run through the flash rows.
namespace NativeAttention;

public static partial class Reference
{
    /// <summary>
    /// Variable-length flash attention in float64, as <see cref="AttentionContext.FlashVarlen"/> defines it: sequence
    /// b owns query rows <c>[CuSeqLensQ[b], CuSeqLensQ[b + 1])</c> and key rows from <c>CuSeqLensK[b]</c>, of which it
    /// uses the first <c>SeqUsedK[b]</c> (default: all, up to <c>CuSeqLensK[b + 1]</c>); each sequence is flash
    /// attention on its own, masks aligned bottom-right against its own lengths, with ALiBi slopes row b when they
    /// are <c>[B, Hq]</c>. Sequences without keys give zeros and LSE = -inf.
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
        const string qLayout = "[TotalQ, Hq, Dqk]", kLayout = "[TotalK, Hkv, Dqk]", vLayout = "[TotalK, Hkv, Dv]";
        ArgumentNullException.ThrowIfNull(layout);
        options ??= new FlashOptions();
        var qs = Check.Rank(query, 3, nameof(query), qLayout);
        var ks = Check.Rank(key, 3, nameof(key), kLayout);
        var vs = Check.Rank(value, 3, nameof(value), vLayout);
        Check.Positive(query, nameof(query), qLayout);
        Check.Positive(key, nameof(key), kLayout);
        Check.Positive(value, nameof(value), vLayout);
        int totalQ = qs[0], hq = qs[1], d = qs[2], totalK = ks[0], hkv = ks[1], dv = vs[2];
        if (ks[2] != d) Check.Fail(nameof(key), $"key has head dim {ks[2]}; query has {d} ({kLayout}).");
        if (hq % hkv != 0) Check.Fail(nameof(key), $"key has {hkv} heads, which does not divide the query's {hq} heads (GQA/MQA need Hq % Hkv == 0).");
        if (vs[0] != totalK || vs[1] != hkv) Check.Fail(nameof(value), $"value has shape {Check.Text(vs)}; expected [{totalK}, {hkv}, Dv] to match key {vLayout}.");
        Check.HeadDims(d, nameof(query), dv, nameof(value));
        Check.Type(key, query.ElementType, nameof(key));
        Check.Type(value, query.ElementType, nameof(value));

        var cuQ = layout.CuSeqLensQ.ToArray();
        var cuK = layout.CuSeqLensK.ToArray();
        var used = layout.SeqUsedK.ToArray();
        if (cuQ.Length < 2) Check.Fail("layout.CuSeqLensQ", $"layout.CuSeqLensQ has {cuQ.Length} entries; expected B + 1 >= 2 cumulative offsets starting at 0.");
        int sequences = cuQ.Length - 1;
        if (cuK.Length != cuQ.Length) Check.Fail("layout.CuSeqLensK", $"layout.CuSeqLensK has {cuK.Length} entries; layout.CuSeqLensQ has {cuQ.Length} (both B + 1).");
        CheckCumulative(cuQ, totalQ, "layout.CuSeqLensQ", "query");
        CheckCumulative(cuK, totalK, "layout.CuSeqLensK", "key");
        if (used.Length != 0 && used.Length != sequences)
            Check.Fail("layout.SeqUsedK", $"layout.SeqUsedK has {used.Length} entries; expected one per sequence ({sequences}).");
        for (int b = 0; b < used.Length; b++)
        {
            int keys = cuK[b + 1] - cuK[b];
            if (used[b] < 0 || used[b] > keys)
                Check.Fail("layout.SeqUsedK", $"layout.SeqUsedK[{b}] is {used[b]}; sequence {b} has {keys} keys, so expected 0..{keys}.");
        }
        if (options.Bias is not null)
            Check.Fail("options.Bias", "A dense bias [B, Hq, Nq, Nk] has no packed form for variable-length batches; use ALiBi, or call Flash per sequence.");
        if (options.LowRankBias is not null)
            Check.Fail("options.LowRankBias", "A low-rank bias has no packed form for variable-length batches; call Flash per sequence.");
        double scale = CheckFlashRowOptions(options, sequences, hq, d);

        var packedQ = Read(query, a);
        var packedK = Read(key, a);
        var packedV = Read(value, a);
        var slopes = ReadSlopes(options, sequences, hq, a);
        var sinks = options.Sinks is { } sk ? Read(sk, a) : null;
        var output = new double[(long)totalQ * hq * dv];
        var lse = new double[(long)hq * totalQ];
        for (int b = 0; b < sequences; b++)
        {
            int q0 = cuQ[b], nq = cuQ[b + 1] - cuQ[b];
            int k0 = cuK[b], nk = used.Length != 0 ? used[b] : cuK[b + 1] - cuK[b];
            var call = new FlashCall(options, 1, hq, hkv, nq, nk, d, dv, scale)
            {
                Slopes = slopes?.AsSpan(b * hq, hq).ToArray(),
                Sinks = sinks,
            };
            var sequence = FlashRows(call, Unpack(packedQ, q0, nq, hq, d), Unpack(packedK, k0, nk, hkv, d), Unpack(packedV, k0, nk, hkv, dv), a);
            // The sequence's [1, Hq, nq, Dv] result goes back to packed rows q0.. of [TotalQ, Hq, Dv] and columns of [Hq, TotalQ].
            for (int h = 0; h < hq; h++)
                for (int i = 0; i < nq; i++)
                {
                    Array.Copy(sequence.Output, ((long)h * nq + i) * dv, output, ((long)(q0 + i) * hq + h) * dv, dv);
                    lse[(long)h * totalQ + q0 + i] = sequence.LogSumExp![h * nq + i];
                }
        }
        return new ReferenceResult(output, [totalQ, hq, dv], lse, [hq, totalQ]);
    }

    /// <summary>Cumulative offsets start at 0, never decrease and end at the packed total.</summary>
    private static void CheckCumulative(int[] offsets, int total, string name, string tensor)
    {
        if (offsets[0] != 0) Check.Fail(name, $"{name}[0] is {offsets[0]}; cumulative offsets start at 0.");
        for (int b = 1; b < offsets.Length; b++)
            if (offsets[b] < offsets[b - 1])
                Check.Fail(name, $"{name} decreases from {offsets[b - 1]} to {offsets[b]} at entry {b}; cumulative offsets must not decrease.");
        if (offsets[^1] != total)
            Check.Fail(name, $"{name} ends at {offsets[^1]}, but {tensor} has {total} rows; the last offset must equal the packed total.");
    }

    /// <summary>Rows <c>[start, start + length)</c> of a row-major packed <c>[Total, H, D]</c> array, as a row-major <c>[1, H, length, D]</c> array.</summary>
    private static double[] Unpack(double[] packed, int start, int length, int heads, int dim)
    {
        var result = new double[(long)heads * length * dim];
        for (int h = 0; h < heads; h++)
            for (int n = 0; n < length; n++)
                Array.Copy(packed, ((long)(start + n) * heads + h) * dim, result, ((long)h * length + n) * dim, dim);
        return result;
    }
}
