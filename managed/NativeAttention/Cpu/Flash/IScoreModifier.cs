// The hook through which score modifiers (softcap, ALiBi, dense additive bias) enter the CPU flash kernel.

namespace NativeAttention.Cpu;

/// <summary>
/// Changes a tile of scores after <c>S = Q K^T</c> and before masking. Scores arrive transposed
/// (<c>scores[key][column]</c>, a fixed number of columns per key) and in log2 units, i.e. already multiplied
/// by <c>scale * log2(e)</c>; a modifier that adds natural-log terms multiplies them by <c>log2(e)</c>. Implementations
/// are structs, so the identity modifier costs nothing once the JIT specialises the kernel.
/// </summary>
internal unsafe interface IScoreModifier
{
    /// <summary>True when the modifier does nothing and the kernel may skip every call to it.</summary>
    static abstract bool IsIdentity { get; }

    /// <summary>
    /// Records that column <paramref name="column"/> of the current item holds query <paramref name="queryIndex"/> of
    /// query head <paramref name="queryHead"/> in batch <paramref name="batch"/>; padding columns pass -1 for both.
    /// </summary>
    void SetColumn(int column, int batch, int queryHead, int queryIndex);

    /// <summary>
    /// Modifies the scores of one column group, <c>width</c> columns starting at item column
    /// <paramref name="firstColumn"/>, for keys <c>keyStart ..</c>: <paramref name="keyCount"/> rows, of which the first
    /// <paramref name="realKeys"/> are real keys and the rest padding (masked later). <paramref name="keyEnd"/> bounds
    /// the keys the group can still see (tiles at or past it never come): a modifier that reads ahead stops there.
    /// </summary>
    void Apply<TSimd, T>(float* scores, int width, int firstColumn, int keyStart, int keyCount, int realKeys, int keyEnd)
        where TSimd : struct, ISimd<T> where T : unmanaged;
}
