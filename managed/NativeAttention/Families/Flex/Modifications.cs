// The user-written modifications of Flex attention (FlexAttention's score_mod and mask_mod), as C# structs.

namespace NativeAttention;

/// <summary>
/// A score modification: changes one attention score before the softmax, as FlexAttention's <c>score_mod</c>.
/// Implement it on a struct (fields may be scalars, or views of the caller's tensors) so that the kernel is specialised
/// for it and the call is inlined: by the .NET JIT on the CPU, by ILGPU on CUDA and OpenCL (NativeAttention.Ilgpu).
/// </summary>
public interface IScoreMod
{
    /// <summary>
    /// Returns the modified score of query <paramref name="query"/> and key <paramref name="key"/> (absolute indices,
    /// <c>[0, Nq)</c> and <c>[0, Nk)</c>) of query head <paramref name="head"/> in batch <paramref name="batch"/>.
    /// <paramref name="score"/> is already scaled: <c>scale * dot(q, k)</c>, in natural-log units.
    /// </summary>
    float Score(float score, int batch, int head, int query, int key);
}

/// <summary>
/// A mask modification: says whether a query sees a key, as FlexAttention's <c>mask_mod</c>. A query row that sees no
/// key writes zeros and a log-sum-exp of <c>-inf</c>. Implement it on a struct, as <see cref="IScoreMod"/>.
/// </summary>
public interface IMaskMod
{
    /// <summary>True when query <paramref name="query"/> of head <paramref name="head"/> in batch <paramref name="batch"/> sees key <paramref name="key"/>.</summary>
    bool Visible(int batch, int head, int query, int key);
}

/// <summary>The identity score modification.</summary>
public readonly struct NoScoreMod : IScoreMod
{
    /// <inheritdoc/>
    public float Score(float score, int batch, int head, int query, int key) => score;
}

/// <summary>The mask modification under which every query sees every key.</summary>
public readonly struct NoMask : IMaskMod
{
    /// <inheritdoc/>
    public bool Visible(int batch, int head, int query, int key) => true;
}
