// The Q/K/V/O/LSE checks every flash-shaped family shares (flash, block-sparse): one place, one set of messages.
namespace NativeAttention;

/// <summary>Validated sizes of Q <c>[B, Hq, Nq, Dqk]</c>, K <c>[B, Hkv, Nk, Dqk]</c> and V <c>[B, Hkv, Nk, Dv]</c>.</summary>
internal readonly record struct AttentionShapes(int Batch, int QueryHeads, int KeyValueHeads, int QueryLength, int KeyLength, int HeadDim, int ValueDim, ElementType ElementType)
{
    public const string QLayout = "[B, Hq, Nq, Dqk]";
    public const string KLayout = "[B, Hkv, Nk, Dqk]";
    public const string VLayout = "[B, Hkv, Nk, Dv]";

    /// <summary>Checks ranks, positive sizes, matching batch/heads/lengths/dims, GQA divisibility, head-dim limits and one element type.</summary>
    public static AttentionShapes Of(in TensorView query, in TensorView key, in TensorView value)
    {
        var q = TensorChecks.Rank(query, 4, nameof(query), QLayout);
        var k = TensorChecks.Rank(key, 4, nameof(key), KLayout);
        var v = TensorChecks.Rank(value, 4, nameof(value), VLayout);
        TensorChecks.Positive(query, QLayout, key, nameof(key), KLayout, value, nameof(value), VLayout);
        int batch = q[0], hq = q[1], nq = q[2], dqk = q[3];
        int hkv = k[1], nk = k[2], dv = v[3];
        if (k[0] != batch) TensorChecks.Throw($"key has batch {k[0]}; query has batch {batch} ({KLayout}).", nameof(key));
        if (k[3] != dqk) TensorChecks.Throw($"key has head dim {k[3]}; query has {dqk} ({KLayout}).", nameof(key));
        if (hq % hkv != 0) TensorChecks.Throw($"key has {hkv} heads, which does not divide the query's {hq} heads (GQA/MQA need Hq % Hkv == 0).", nameof(key));
        if (v[0] != batch || v[1] != hkv || v[2] != nk)
            TensorChecks.Throw($"value has shape {TensorView.Format(v)}; expected [{batch}, {hkv}, {nk}, Dv] to match key {VLayout}.", nameof(value));
        var type = TensorChecks.HeadDimsAndType(query, dqk, key, nameof(key), value, nameof(value), dv);
        return new AttentionShapes(batch, hq, hkv, nq, nk, dqk, dv, type);
    }

    /// <summary>
    /// Checks the output <c>[B, Hq, Nq, Dv]</c> (when <paramref name="requireOutput"/>) and the optional float32 LSE
    /// <c>[B, Hq, Nq]</c>: shapes, types, distinct elements, and no overlap with each other or the inputs.
    /// </summary>
    public void CheckOutputs(in TensorView query, in TensorView key, in TensorView value, in TensorView output, bool requireOutput, in TensorView? logSumExp)
    {
        if (requireOutput)
        {
            TensorChecks.Written(output, [Batch, QueryHeads, QueryLength, ValueDim], ElementType, nameof(output), "[B, Hq, Nq, Dv]");
            TensorChecks.NoAlias(output, nameof(output), query, nameof(query), key, nameof(key), value, nameof(value));
        }
        if (logSumExp is { } lse)
        {
            TensorChecks.Written(lse, [Batch, QueryHeads, QueryLength], ElementType.Float32, nameof(logSumExp), "float32 [B, Hq, Nq]");
            TensorChecks.NoAlias(lse, nameof(logSumExp), output, nameof(output));
            TensorChecks.NoAlias(lse, nameof(logSumExp), query, nameof(query), key, nameof(key), value, nameof(value));
        }
    }
}
