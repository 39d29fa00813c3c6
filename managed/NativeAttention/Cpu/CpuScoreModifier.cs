// The hook through which score modifiers (softcap, ALiBi, additive bias) will enter the CPU flash kernel.
namespace NativeAttention.Cpu;

/// <summary>
/// Changes a tile of scores after <c>S = Q K^T</c> and before masking. Scores arrive transposed
/// (<c>scores[key][column]</c>, a fixed number of columns per key) and in log2 units, i.e. already multiplied
/// by <c>scale * log2(e)</c>; a modifier that adds natural-log terms multiplies them by <c>log2(e)</c>. Implementations
/// are structs, so the identity modifier costs nothing once the JIT specialises the kernel.
/// </summary>
internal unsafe interface IScoreModifier
{
    /// <summary>True when <see cref="Apply"/> does nothing and the kernel may skip the call.</summary>
    static abstract bool IsIdentity { get; }

    /// <summary>
    /// Modifies <paramref name="keyCount"/> rows of scores for keys <c>keyStart..</c>; column c belongs to query
    /// <paramref name="queryIndex"/>[c] of query head <paramref name="queryHead"/>[c] (padding columns have index -1).
    /// </summary>
    void Apply(float* scores, int width, int keyStart, int keyCount, int batch, int* queryIndex, int* queryHead);
}

/// <summary>Plain scaled dot-product scores.</summary>
internal struct NoScoreModifier : IScoreModifier
{
    public static bool IsIdentity => true;

    public readonly unsafe void Apply(float* scores, int width, int keyStart, int keyCount, int batch, int* queryIndex, int* queryHead) { }
}
