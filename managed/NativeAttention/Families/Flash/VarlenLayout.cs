// How a variable-length batch is packed: cumulative sequence offsets, as FlashAttention's varlen API takes them.
namespace NativeAttention;

/// <summary>
/// The packing of a variable-length batch of B sequences for <see cref="AttentionContext.FlashVarlen"/>. Sequence b
/// owns query rows <c>[CuSeqLensQ[b], CuSeqLensQ[b + 1])</c> and key rows <c>[CuSeqLensK[b], CuSeqLensK[b + 1])</c>
/// of the packed tensors. Both arrays have B + 1 entries, start at 0, never decrease, and end at the packed totals.
/// </summary>
/// <param name="CuSeqLensQ">Cumulative query lengths, <c>[B + 1]</c>.</param>
/// <param name="CuSeqLensK">Cumulative key lengths, <c>[B + 1]</c>.</param>
/// <param name="SeqUsedK">
/// Optional <c>[B]</c>: sequence b attends only to its first <c>SeqUsedK[b]</c> keys (at most its key length), as if
/// its key length were that; empty (the default) uses every key.
/// </param>
public sealed record VarlenLayout(ReadOnlyMemory<int> CuSeqLensQ, ReadOnlyMemory<int> CuSeqLensK, ReadOnlyMemory<int> SeqUsedK = default)
{
    /// <summary>The number of sequences B (one less than the length of <see cref="CuSeqLensQ"/>).</summary>
    public int SequenceCount => Math.Max(CuSeqLensQ.Length - 1, 0);

    /// <summary>A layout from per-sequence query and key lengths (their running sums become the offsets).</summary>
    /// <exception cref="ArgumentException">The spans differ in length or hold a negative length.</exception>
    public static VarlenLayout FromLengths(ReadOnlySpan<int> queryLengths, ReadOnlySpan<int> keyLengths)
    {
        if (queryLengths.Length != keyLengths.Length)
            throw new ArgumentException($"{queryLengths.Length} query lengths but {keyLengths.Length} key lengths.", nameof(keyLengths));
        return new VarlenLayout(Cumulative(queryLengths, nameof(queryLengths)), Cumulative(keyLengths, nameof(keyLengths)));
    }

    private static int[] Cumulative(ReadOnlySpan<int> lengths, string name)
    {
        var offsets = new int[lengths.Length + 1];
        for (int b = 0; b < lengths.Length; b++)
        {
            if (lengths[b] < 0) throw new ArgumentException($"{name}[{b}] is {lengths[b]}; lengths must be non-negative.", name);
            offsets[b + 1] = checked(offsets[b] + lengths[b]);
        }
        return offsets;
    }
}
