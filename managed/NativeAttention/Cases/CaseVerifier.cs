// Runs an AttentionCase on a backend and checks it against the float64 reference (FlashAttention's rule).
namespace NativeAttention;

/// <summary>The outcome of checking one case on one backend.</summary>
/// <param name="Case">The case.</param>
/// <param name="Backend">Where it ran.</param>
/// <param name="MaxError">Largest absolute output error against the float64 reference.</param>
/// <param name="NaiveError">The same error for a naive implementation in the storage precision.</param>
/// <param name="Tolerance">The error allowed.</param>
/// <param name="MaxLseError">Largest absolute log-sum-exp error (finite rows).</param>
/// <param name="Passed">True when every check held.</param>
/// <param name="Detail">What failed, or empty.</param>
public sealed record VerificationResult(AttentionCase Case, Backend Backend, double MaxError, double NaiveError, double Tolerance, double MaxLseError, bool Passed, string Detail);

/// <summary>Checks kernels against the float64 references.</summary>
public static class CaseVerifier
{
    /// <summary>Runs <paramref name="case"/> on <paramref name="context"/> and compares with the float64 reference.</summary>
    public static VerificationResult Verify(AttentionContext context, AttentionCase @case) =>
        throw new NotSupportedException("pending: needs Reference");
}
