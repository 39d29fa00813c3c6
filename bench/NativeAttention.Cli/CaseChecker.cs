// Runs a case on a context and checks it against the float64 reference, the one way `verify`, `fuzz` and `demo`
// check kernels: through CaseRun (which places tensors where the backend reads them) and the planted fault, if any.
using NativeAttention.Bench;

namespace NativeAttention.Cli;

/// <summary>How one case fared on one backend.</summary>
/// <param name="Backend">Where it ran.</param>
/// <param name="Case">The case.</param>
/// <param name="Result">The comparison with the reference, when the kernel ran.</param>
/// <param name="Unsupported">Why the backend declined the case (an option it does not implement yet), or null.</param>
/// <param name="Error">What the kernel threw otherwise, or null.</param>
/// <param name="SplitKeys">Above 1 when the case ran as split-KV flash over that many key ranges plus MergeStates.</param>
internal sealed record CaseOutcome(Backend Backend, AttentionCase Case, VerificationResult? Result, string? Unsupported, Exception? Error, int SplitKeys = 0)
{
    /// <summary>The kernels that ran, e.g. <c>flash</c> or <c>flash x3 + merge</c>.</summary>
    public string Kernel => SplitKeys > 1 ? $"flash x{SplitKeys} + merge" : "flash";

    public bool Passed => Result is { Passed: true };

    /// <summary>True when the kernel gave a wrong answer or threw: not when it declined an unsupported option.</summary>
    public bool Failed => Unsupported is null && !Passed;

    /// <summary>What went wrong, or why it was skipped; empty when it passed.</summary>
    public string Detail => Unsupported ?? (Error is { } e ? $"threw {e.GetType().Name}: {e.Message}" : Result?.Detail ?? "");
}

internal static class CaseChecker
{
    /// <summary>
    /// Runs <paramref name="case"/> once on <paramref name="context"/> (as split-KV flash plus MergeStates when
    /// <paramref name="splitKeys"/> is above 1), applies <paramref name="fault"/> to its output and compares with the
    /// reference. Exceptions from the kernel propagate.
    /// </summary>
    public static VerificationResult Check(AttentionContext context, AttentionCase @case, KernelFault? fault, int splitKeys = 0)
    {
        using var run = CaseRun.Prepare(context, @case);
        if (splitKeys > 1) run.RunSplitKeys(splitKeys);
        else run.Run();
        var tensors = run.Results();
        fault?.Apply(@case, tensors.Output);
        return CaseVerifier.Compare(context.Backend, @case, tensors);
    }

    /// <summary>
    /// Like <see cref="Check"/>, but a <see cref="NotSupportedException"/> (an option or family the backend does not
    /// implement yet) makes a skipped outcome and any other exception a failed one, so one bad kernel never hides the rest.
    /// </summary>
    public static CaseOutcome Outcome(AttentionContext context, AttentionCase @case, KernelFault? fault, int splitKeys = 0)
    {
        try
        {
            return new CaseOutcome(context.Backend, @case, Check(context, @case, fault, splitKeys), null, null, splitKeys);
        }
        catch (NotSupportedException e)
        {
            return new CaseOutcome(context.Backend, @case, null, e.Message, null, splitKeys);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return new CaseOutcome(context.Backend, @case, null, null, e, splitKeys);
        }
    }
}
