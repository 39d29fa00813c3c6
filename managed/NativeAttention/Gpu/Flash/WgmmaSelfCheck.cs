// The once-per-context check of the Hopper kernel, which has not run on a GPU before this code shipped: a small
// causal GQA problem with ragged tails runs through the wgmma kernel and through the kernel the call would otherwise
// use (mma.sync, or the portable kernel at D = 256); a mismatch disables wgmma for the context. The comparison and the
// bookkeeping are pure and unit-tested; CudaContext runs the kernels.
using System.Diagnostics;

namespace NativeAttention.Gpu;

internal static class WgmmaSelfCheck
{
    /// <summary>The check's problem: B = 1, Hq = 4, Hkv = 2 (GQA), Nq = 200 and Nk = 333 (tails in both), causal, with LSE.</summary>
    public const int Batch = 1, QueryHeads = 4, KeyValueHeads = 2, QueryLength = 200, KeyLength = 333;

    /// <summary>Largest |O_wgmma - O_reference| accepted: a few units in the last place of the storage type for O in [-1, 1].</summary>
    public static float OutputTolerance(ElementType type) => type == ElementType.BFloat16 ? 3e-2f : 1e-2f;

    /// <summary>Largest |LSE_wgmma - LSE_reference| accepted (both are float32 from float accumulators).</summary>
    public const float LseTolerance = 1e-2f;

    /// <summary>
    /// Null when the wgmma results match the reference kernel's, else a description of the first mismatch and how
    /// many elements differ: any non-finite output, an output off by more than <see cref="OutputTolerance"/>, an LSE off
    /// by more than <see cref="LseTolerance"/> or infinite on one side only, or lengths that differ.
    /// </summary>
    public static string? Compare(ReadOnlySpan<float> reference, ReadOnlySpan<float> wgmma, ReadOnlySpan<float> referenceLse,
        ReadOnlySpan<float> wgmmaLse, ElementType type)
    {
        if (reference.Length != wgmma.Length || referenceLse.Length != wgmmaLse.Length)
            return $"result lengths differ ({wgmma.Length} vs {reference.Length} outputs, {wgmmaLse.Length} vs {referenceLse.Length} LSEs)";
        float tolerance = OutputTolerance(type);
        int bad = 0, first = -1;
        for (int i = 0; i < reference.Length; i++)
            if (!float.IsFinite(wgmma[i]) || !(Math.Abs(wgmma[i] - reference[i]) <= tolerance))
            {
                bad++;
                if (first < 0) first = i;
            }
        if (bad > 0)
            return $"O[{first}] = {wgmma[first]:G5} on wgmma, {reference[first]:G5} on the reference kernel; {bad} of {reference.Length} outputs differ by more than {tolerance:G3}";
        for (int i = 0; i < referenceLse.Length; i++)
        {
            float a = wgmmaLse[i], b = referenceLse[i];
            bool same = float.IsNegativeInfinity(a) && float.IsNegativeInfinity(b) || float.IsFinite(a) && float.IsFinite(b) && Math.Abs(a - b) <= LseTolerance;
            if (!same) return $"LSE[{i}] = {a:G5} on wgmma, {b:G5} on the reference kernel";
        }
        return null;
    }
}

/// <summary>
/// One context's self-check record: which (type, head dim) pairs were checked and whether wgmma is disabled. The first
/// failure disables wgmma for the context for good (with a <see cref="Trace"/> warning naming the mismatch); passes are
/// remembered so that no pair is checked twice. Thread-safe.
/// </summary>
internal sealed class WgmmaSelfCheckState
{
    private readonly object _gate = new();
    private readonly HashSet<(ElementType, int)> _passed = [];

    /// <summary>Why wgmma was disabled for this context, or null.</summary>
    public string? Failure { get; private set; }

    /// <summary>True when (type, D = 64) and (type, <paramref name="headDim"/>) still need checking before wgmma is used.</summary>
    public bool Needs(ElementType type, int headDim)
    {
        lock (_gate) return Failure is null && (!_passed.Contains((type, 64)) || !_passed.Contains((type, headDim)));
    }

    /// <summary>
    /// Runs <paramref name="check"/> for (type, 64) then (type, <paramref name="headDim"/>) where not done yet, each returning
    /// null on a match or the mismatch; records the outcome and returns <see cref="Failure"/>. An exception from a check
    /// (a launch or load error) counts as a mismatch. Checks run one at a time.
    /// </summary>
    public string? Run(ElementType type, int headDim, Func<ElementType, int, string?> check)
    {
        lock (_gate)
        {
            foreach (int d in headDim == 64 ? [64] : new[] { 64, headDim })
            {
                if (Failure is not null) break;
                if (_passed.Contains((type, d))) continue;
                string? mismatch;
                try
                {
                    mismatch = check(type, d);
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    mismatch = $"{e.GetType().Name}: {e.Message}";
                }
                if (mismatch is null)
                {
                    _passed.Add((type, d));
                    continue;
                }
                Failure = $"{type} D = {d}: {mismatch}";
                Trace.TraceWarning($"NativeAttention: the CUDA wgmma flash kernel disagreed with the reference kernel in its self-check ({Failure}); this context uses the mma.sync kernel instead.");
            }
            return Failure;
        }
    }
}
