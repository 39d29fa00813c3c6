// What the recurrent families (chunked linear attention and the delta rule) validate alike: Q, K, V with grouped
// heads, packed sequences (cu_seqlens), and host log gates.
using System.Runtime.Intrinsics;

namespace NativeAttention;

/// <summary>
/// Shared checks of <see cref="LinearProblem"/> and <see cref="DeltaRuleProblem"/>: Q <c>[B, Hq, N, Dk]</c>, K
/// <c>[B, Hk, N, Dk]</c>, V <c>[B, Hv, N, Dv]</c> with each head count dividing <c>H = max(Hq, Hk, Hv)</c>; varlen
/// offsets; log gates finite and &lt;= 0.
/// </summary>
internal static class RecurrentInputs
{
    private const string QLayout = "[B, Hq, N, Dk]", KLayout = "[B, Hk, N, Dk]", VLayout = "[B, Hv, N, Dv]";

    /// <summary>Checks Q, K and V and returns their sizes, H and the storage type.</summary>
    public static (int Batch, int QueryHeads, int KeyHeads, int ValueHeads, int Heads, int Length, int KeyDim, int ValueDim, ElementType Type) Check(
        in TensorView query, in TensorView key, in TensorView value)
    {
        var q = TensorChecks.Rank(query, 4, nameof(query), QLayout);
        var k = TensorChecks.Rank(key, 4, nameof(key), KLayout);
        var v = TensorChecks.Rank(value, 4, nameof(value), VLayout);
        TensorChecks.Positive(query, QLayout, key, nameof(key), KLayout, value, nameof(value), VLayout);
        int batch = q[0], queryHeads = q[1], n = q[2], dk = q[3], keyHeads = k[1], valueHeads = v[1], dv = v[3];
        if (k[0] != batch || k[2] != n || k[3] != dk)
            TensorChecks.Throw($"key has shape {TensorView.Format(k)}; expected [{batch}, Hk, {n}, {dk}] {KLayout} (the query's B, N and Dk).", nameof(key));
        if (v[0] != batch || v[2] != n)
            TensorChecks.Throw($"value has shape {TensorView.Format(v)}; expected [{batch}, Hv, {n}, Dv] {VLayout}.", nameof(value));
        int heads = Math.Max(queryHeads, Math.Max(keyHeads, valueHeads));
        if (heads % queryHeads != 0) TensorChecks.Throw($"query has {queryHeads} heads, which does not divide H = {heads} (the most heads of query, key and value).", nameof(query));
        if (heads % keyHeads != 0) TensorChecks.Throw($"key has {keyHeads} heads, which does not divide H = {heads} (the most heads of query, key and value).", nameof(key));
        if (heads % valueHeads != 0) TensorChecks.Throw($"value has {valueHeads} heads, which does not divide H = {heads} (the most heads of query, key and value).", nameof(value));
        var type = TensorChecks.HeadDimsAndType(query, dk, key, nameof(key), value, nameof(value), dv);
        return (batch, queryHeads, keyHeads, valueHeads, heads, n, dk, dv, type);
    }

    /// <summary>
    /// The packed sequences' offsets (empty without packing): S + 1 offsets from 0, never decreasing, ending at N, with
    /// B = 1; refused for decode calls.
    /// </summary>
    public static int[] Offsets(ReadOnlyMemory<int> cuSeqLens, bool decode, int batch, int n)
    {
        if (cuSeqLens.IsEmpty) return [];
        if (decode) TensorChecks.Throw("options.CuSeqLens is set; a decode step takes one token run per batch element, not packed sequences.", "options.CuSeqLens");
        var offsets = cuSeqLens.ToArray();
        if (offsets.Length < 2) TensorChecks.Throw($"options.CuSeqLens has {offsets.Length} entries; expected S + 1 >= 2 offsets.", "options.CuSeqLens");
        if (batch != 1) TensorChecks.Throw($"query has batch {batch}; packed sequences (options.CuSeqLens) need B = 1 with the sequences along N.", "query");
        if (offsets[0] != 0) TensorChecks.Throw($"options.CuSeqLens[0] is {offsets[0]}; expected 0.", "options.CuSeqLens");
        for (int s = 1; s < offsets.Length; s++)
            if (offsets[s] < offsets[s - 1]) TensorChecks.Throw($"options.CuSeqLens[{s}] is {offsets[s]}, below the previous offset {offsets[s - 1]}; offsets never decrease.", "options.CuSeqLens");
        if (offsets[^1] != n) TensorChecks.Throw($"options.CuSeqLens ends at {offsets[^1]}; expected the packed length N = {n}.", "options.CuSeqLens");
        return offsets;
    }

    /// <summary>Every log gate of a host float32 tensor is finite and &lt;= 0; the first that is not is named with its index.</summary>
    public static void CheckLogGateValues(in TensorView gate)
    {
        // A vectorised scan first (a delegate call per element cost a third of a GLA call's time at N 2048, H 8, D 64);
        // the element-by-element check below runs only when it finds a bad value or the tensor is not float32, and
        // names the first bad element as before.
        if (AllFiniteNonPositive(gate)) return;
        CheckHostValues(gate, x => x <= 0 && !float.IsNegativeInfinity(x), "options.LogGate", "a finite log gate <= 0 (a gate in (0, 1])");
    }

    /// <summary>True when <paramref name="tensor"/> is float32 and every element x has -inf &lt; x &lt;= 0 (NaN fails).</summary>
    private static unsafe bool AllFiniteNonPositive(in TensorView tensor)
    {
        if (tensor.ElementType != ElementType.Float32) return false;
        var shape = tensor.Shape;
        var strides = tensor.Strides;
        using var pin = tensor.Storage!.Pin();
        float* base0 = (float*)pin.Pointer + tensor.Offset;
        int rank = shape.Length;
        int last = shape[rank - 1];
        long lastStride = strides[rank - 1];
        long rows = tensor.ElementCount / Math.Max(last, 1);
        Span<int> index = stackalloc int[rank];
        var low = Vector256.Create(float.NegativeInfinity);
        for (long row = 0; row < rows; row++)
        {
            long element = 0;
            for (int a = 0; a < rank - 1; a++) element += index[a] * strides[a];
            float* x = base0 + element;
            int i = 0;
            if (lastStride == 1)
                for (; i + 8 <= last; i += 8)
                {
                    var v = Vector256.Load(x + i);
                    if (!Vector256.GreaterThanAll(v, low) || !Vector256.LessThanOrEqualAll(v, Vector256<float>.Zero)) return false;
                }
            for (; i < last; i++)
            {
                float y = x[i * lastStride];
                if (!(y <= 0 && y > float.NegativeInfinity)) return false;
            }
            for (int a = rank - 2; a >= 0; a--)
            {
                if (++index[a] < shape[a]) break;
                index[a] = 0;
            }
        }
        return true;
    }

    /// <summary>
    /// Every element of a host tensor (float32, float16 or bfloat16, any strides) satisfies <paramref name="valid"/>;
    /// the first that does not is named with its index under <paramref name="name"/>.
    /// </summary>
    public static unsafe void CheckHostValues(in TensorView tensor, Func<float, bool> valid, string name, string expected)
    {
        var shape = tensor.Shape;
        var strides = tensor.Strides;
        var type = tensor.ElementType;
        using var pin = tensor.Storage!.Pin();
        byte* base0 = (byte*)pin.Pointer + tensor.Offset * type.SizeOf();
        int rank = shape.Length;
        int last = shape[rank - 1];
        long lastStride = strides[rank - 1];
        long rows = tensor.ElementCount / Math.Max(last, 1);
        Span<int> index = stackalloc int[rank];
        for (long row = 0; row < rows; row++)
        {
            long element = 0;
            for (int a = 0; a < rank - 1; a++) element += index[a] * strides[a];
            for (int i = 0; i < last; i++)
            {
                long at = element + i * lastStride;
                float x = type switch
                {
                    ElementType.Float32 => ((float*)base0)[at],
                    ElementType.Float16 => (float)((Half*)base0)[at],
                    _ => (float)((BFloat16*)base0)[at],
                };
                if (!valid(x))
                {
                    index[rank - 1] = i;
                    TensorChecks.Throw($"{name}{TensorView.Format(index)} is {x}; expected {expected}.", name);
                }
            }
            for (int a = rank - 2; a >= 0; a--)
            {
                if (++index[a] < shape[a]) break;
                index[a] = 0;
            }
        }
    }
}
