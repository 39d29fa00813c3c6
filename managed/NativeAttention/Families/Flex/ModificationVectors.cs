// Optional vector forms of the Flex modifications, used by the CPU kernel when a struct offers them.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NativeAttention;

/// <summary>
/// A score modification that also offers a vector form: eight query columns at once against one key. The CPU flex
/// kernel calls it instead of <see cref="IScoreMod.Score"/> when the struct implements it (GPU kernels always use the
/// scalar form). It must compute, lane by lane, exactly what <see cref="IScoreMod.Score"/> computes.
/// </summary>
public interface IScoreModVector : IScoreMod
{
    /// <summary>
    /// Returns the modified scores of eight (query head, query) pairs against key <paramref name="key"/> of batch
    /// <paramref name="batch"/>: lane i holds query <c>query[i]</c> of query head <c>head[i]</c>. Scores are scaled and
    /// in natural-log units, as in <see cref="IScoreMod.Score"/>. Every lane holds valid indices (padding lanes repeat a
    /// real column; their results are discarded).
    /// </summary>
    Vector256<float> Score(Vector256<float> score, int batch, Vector256<int> head, Vector256<int> query, int key);
}

/// <summary>Helpers for writing the vector forms of modifications.</summary>
public static class FlexVector
{
    /// <summary>
    /// <c>table[index[i]]</c> per lane, with the same bounds check as an array read: throws
    /// <see cref="IndexOutOfRangeException"/> when any lane is outside the table. Lanes that share one index (a run of
    /// columns of one head) cost one read.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Gather(float[] table, Vector256<int> index)
    {
        int first = index.ToScalar();
        if (Vector256.EqualsAll(index, Vector256.Create(first))) return Vector256.Create(table[first]);
        return GatherLanes(table, index);
    }

    private static Vector256<float> GatherLanes(float[] table, Vector256<int> index)
    {
        if (!Vector256.LessThanAll(index.AsUInt32(), Vector256.Create((uint)table.Length)))
            throw new IndexOutOfRangeException($"FlexVector.Gather: an index of {index} is outside the table of {table.Length} elements.");
        return Vector256.Create(table[index[0]], table[index[1]], table[index[2]], table[index[3]],
            table[index[4]], table[index[5]], table[index[6]], table[index[7]]);
    }
}
