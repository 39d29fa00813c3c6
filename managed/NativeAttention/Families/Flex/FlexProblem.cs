// Validated description of one Flex attention call: flash shapes, the resolved scale and the optional block mask.
namespace NativeAttention;

/// <summary>
/// The sizes of a Flex attention call after validation: Q <c>[B, Hq, Nq, Dqk]</c>, K <c>[B, Hkv, Nk, Dqk]</c>, V
/// <c>[B, Hkv, Nk, Dv]</c>, O <c>[B, Hq, Nq, Dv]</c>, LSE float32 <c>[B, Hq, Nq]</c>, as <see cref="FlashProblem"/>
/// checks them, and a block mask checked as <see cref="BlockSparseProblem"/> checks one (named
/// <c>options.BlockMask</c>). Semantics: the score of query i and key j of query head h is
/// <c>Score(scale * q_i . k_j, b, h, i, j)</c>; the pair is visible when the block mask (if any) lists its block as full,
/// or as partial and <c>Visible(b, h, i, j)</c> holds; without a block mask, when <c>Visible</c> holds.
/// </summary>
internal sealed class FlexProblem
{
    private FlexProblem() { }

    public int Batch { get; private set; }
    public int QueryHeads { get; private set; }
    public int KeyValueHeads { get; private set; }
    public int QueryLength { get; private set; }
    public int KeyLength { get; private set; }
    public int HeadDim { get; private set; }
    public int ValueDim { get; private set; }
    public float Scale { get; private set; }
    public ElementType ElementType { get; private set; }
    /// <summary>The block mask, or null: every pair is evaluated with the mask modification.</summary>
    public FlexBlockMask? BlockMask { get; private set; }
    /// <summary>Query and key blocks of <see cref="BlockMask"/> (0 without one).</summary>
    public int QueryBlocks { get; private set; }
    public int KeyBlocks { get; private set; }
    public int GroupSize => QueryHeads / KeyValueHeads;

    /// <summary>Q, K, V, O and the optional LSE by name, for the context's location checks.</summary>
    public IReadOnlyList<NamedTensor> Tensors => _tensors;

    private readonly NamedTensor[] _tensors = new NamedTensor[5];

    /// <summary>This thread's problem for public calls, refilled by each (see <see cref="CreateForCall"/>).</summary>
    [ThreadStatic] private static FlexProblem? t_call;

    /// <summary>
    /// Validates a call. <paramref name="scale"/> null means <c>1 / sqrt(Dqk)</c>. Throws <see cref="ArgumentException"/>
    /// naming the tensor or option (<c>options.Scale</c>, <c>options.BlockMask...</c>).
    /// </summary>
    public static FlexProblem Create(in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp, float? scale, FlexBlockMask? blockMask) =>
        Validate(query, key, value, output, logSumExp, scale, blockMask, new FlexProblem());

    /// <summary>
    /// <see cref="Create"/> into this thread's reusable problem, for the public entry point: no allocation once warm. Valid
    /// until this thread validates its next call; release it with <see cref="ReleaseCall"/>.
    /// </summary>
    public static FlexProblem CreateForCall(in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp, float? scale, FlexBlockMask? blockMask) =>
        Validate(query, key, value, output, logSumExp, scale, blockMask, t_call ??= new FlexProblem());

    /// <summary>Drops the caller's tensors and mask, so the thread's reusable problem keeps no caller memory alive.</summary>
    public void ReleaseCall()
    {
        Array.Clear(_tensors);
        BlockMask = null;
    }

    private static FlexProblem Validate(in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp, float? scale, FlexBlockMask? blockMask,
        FlexProblem problem)
    {
        var shapes = AttentionShapes.Of(query, key, value);
        var (batch, hq, hkv, nq, nk, dqk, dv, type) = shapes;
        shapes.CheckOutputs(query, key, value, output, requireOutput: true, logSumExp);
        float resolved = scale ?? (float)(1.0 / Math.Sqrt(dqk));
        if (!float.IsFinite(resolved)) TensorChecks.Throw($"options.Scale is {resolved}; expected a finite value.", "options.Scale");
        int queryBlocks = 0, keyBlocks = 0;
        if (blockMask is not null)
        {
            BlockSparseProblem.CheckFlexMask(blockMask, batch, hq, hkv, nq, nk, "options.BlockMask");
            queryBlocks = (int)(((long)nq + blockMask.QueryBlockSize - 1) / blockMask.QueryBlockSize);
            keyBlocks = (int)(((long)nk + blockMask.KeyBlockSize - 1) / blockMask.KeyBlockSize);
        }
        (problem.Batch, problem.QueryHeads, problem.KeyValueHeads, problem.QueryLength, problem.KeyLength, problem.HeadDim, problem.ValueDim) = (batch, hq, hkv, nq, nk, dqk, dv);
        (problem.Scale, problem.ElementType, problem.BlockMask, problem.QueryBlocks, problem.KeyBlocks) = (resolved, type, blockMask, queryBlocks, keyBlocks);
        problem._tensors[0] = new(nameof(query), query);
        problem._tensors[1] = new(nameof(key), key);
        problem._tensors[2] = new(nameof(value), value);
        problem._tensors[3] = new(nameof(output), output);
        problem._tensors[4] = new(nameof(logSumExp), logSumExp);
        return problem;
    }

    /// <summary>Checks the arguments of <c>CreateBlockMask</c>: positive sizes and block sizes the kernels take.</summary>
    public static void CheckBlockMaskArguments(int batch, int heads, int queryLength, int keyLength, int queryBlockSize, int keyBlockSize)
    {
        if (batch <= 0) TensorChecks.Throw($"batch is {batch}; expected a positive batch size (1 shares the mask across the batch).", nameof(batch));
        if (heads <= 0) TensorChecks.Throw($"heads is {heads}; expected a positive head count (1 shares the mask across heads, Hkv per GQA group, Hq per head).", nameof(heads));
        if (queryLength <= 0) TensorChecks.Throw($"queryLength is {queryLength}; expected a positive Nq.", nameof(queryLength));
        if (keyLength <= 0) TensorChecks.Throw($"keyLength is {keyLength}; expected a positive Nk.", nameof(keyLength));
        foreach (var (size, name) in new[] { (queryBlockSize, nameof(queryBlockSize)), (keyBlockSize, nameof(keyBlockSize)) })
            if (size < NativeAttention.BlockMask.MinBlockSize || size > NativeAttention.BlockMask.MaxBlockSize)
                TensorChecks.Throw($"{name} is {size}; expected a block size from {NativeAttention.BlockMask.MinBlockSize} to {NativeAttention.BlockMask.MaxBlockSize}.", name);
    }

    /// <summary>
    /// Calls both modifications at the corners of the index space (first and last batch, head, query and key) before
    /// anything runs, so that the usual fault, a field read out of range because a table is too short, surfaces as a
    /// <see cref="FlexModificationException"/> naming the struct, with no output written.
    /// </summary>
    public void ProbeModifications<TScore, TMask>(TScore scoreMod, TMask maskMod)
        where TScore : struct, IScoreMod where TMask : struct, IMaskMod
    {
        Span<int> bs = [0, Batch - 1], hs = [0, QueryHeads - 1], qs = [0, QueryLength - 1], ks = [0, KeyLength - 1];
        foreach (int b in bs)
        foreach (int h in hs)
        foreach (int q in qs)
        foreach (int k in ks)
        {
            try
            {
                _ = scoreMod.Score(0f, b, h, q, k);
            }
            catch (Exception e)
            {
                throw new FlexModificationException(typeof(TScore), "score", $"at (batch {b}, head {h}, query {q}, key {k}), probed before the call ran", e);
            }
            try
            {
                _ = maskMod.Visible(b, h, q, k);
            }
            catch (Exception e)
            {
                throw new FlexModificationException(typeof(TMask), "mask", $"at (batch {b}, head {h}, query {q}, key {k}), probed before the call ran", e);
            }
        }
    }
}
