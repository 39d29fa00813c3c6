// Runs a case on a context and checks it against the float64 reference, the one way `verify`, `fuzz` and `demo`
// check kernels: through CaseRunner (which places tensors where the backend reads them) and the planted fault, if any.
namespace NativeAttention.Cli;

/// <summary>How one case fared on one backend.</summary>
/// <param name="Backend">Where it ran.</param>
/// <param name="Case">The case.</param>
/// <param name="Result">The comparison with the reference, when the kernel ran.</param>
/// <param name="Unsupported">Why the backend declined the case (a family or option it does not implement yet), or null.</param>
/// <param name="Error">What the kernel threw otherwise, or null.</param>
internal sealed record CaseOutcome(Backend Backend, IAttentionCase Case, VerificationResult? Result, string? Unsupported, Exception? Error)
{
    /// <summary>The kernels that ran, e.g. <c>flash</c>, <c>flash kvcache</c> or <c>flash x3 + merge</c>.</summary>
    public string Kernel => Case.KernelName;

    /// <summary>Above 1 when the case ran as split-KV flash over that many key ranges plus MergeStates.</summary>
    public int SplitKeys => Case is SplitKeysCase split ? split.Parts : 0;

    public bool Passed => Result is { Passed: true };

    /// <summary>True when the kernel gave a wrong answer or threw: not when it declined an unsupported option.</summary>
    public bool Failed => Unsupported is null && !Passed;

    /// <summary>What went wrong, or why it was skipped; empty when it passed.</summary>
    public string Detail => Unsupported ?? (Error is { } e ? $"threw {e.GetType().Name}: {e.Message}" : Result?.Detail ?? "");
}

internal static class CaseChecker
{
    /// <summary>
    /// Runs <paramref name="case"/> once on <paramref name="context"/>, applies <paramref name="fault"/> to its output
    /// and compares with the reference. Exceptions from the kernel propagate.
    /// </summary>
    public static VerificationResult Check(AttentionContext context, IAttentionCase @case, KernelFault? fault)
    {
        using var run = CaseRunner.Prepare(context, @case);
        run.Run();
        var tensors = run.Results();
        fault?.Apply(@case, tensors);
        return CaseVerifier.Compare(context.Backend, @case, tensors);
    }

    /// <summary>
    /// Like <see cref="Check"/>, but a <see cref="NotSupportedException"/> (an option or family the backend does not
    /// implement yet) makes a skipped outcome and any other exception a failed one, so one bad kernel never hides the rest.
    /// </summary>
    public static CaseOutcome Outcome(AttentionContext context, IAttentionCase @case, KernelFault? fault)
    {
        try
        {
            return new CaseOutcome(context.Backend, @case, Check(context, @case, fault), null, null);
        }
        catch (NotSupportedException e)
        {
            return new CaseOutcome(context.Backend, @case, null, e.Message, null);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return new CaseOutcome(context.Backend, @case, null, null, e);
        }
    }
}
