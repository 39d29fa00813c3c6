// Checks a case's outputs against the float64 reference (FlashAttention's rule): the rule itself
// (CompareToReference), and running a case through CaseRunner then checking it (Verify, Compare).
namespace NativeAttention;

/// <summary>The outcome of checking one case on one backend.</summary>
/// <param name="Case">The case.</param>
/// <param name="Backend">Where it ran.</param>
/// <param name="MaxError">Largest absolute output error against the float64 reference.</param>
/// <param name="NaiveError">The same error for a naive implementation that computes in float32 and stores in the case's type.</param>
/// <param name="Tolerance">The output error allowed: <c>2 x NaiveError + slack</c>.</param>
/// <param name="MaxLseError">Largest absolute log-sum-exp error over rows that see a key.</param>
/// <param name="Passed">True when every check held.</param>
/// <param name="Detail">What failed, or empty.</param>
public sealed record VerificationResult(IAttentionCase Case, Backend Backend, double MaxError, double NaiveError, double Tolerance, double MaxLseError, bool Passed, string Detail)
{
    /// <inheritdoc/>
    public override string ToString() =>
        $"{(Passed ? "PASS" : "FAIL")} {Backend} {Case}: max error {MaxError:G3} (naive {NaiveError:G3}, tolerance {Tolerance:G3}), LSE error {MaxLseError:G3}{(Detail.Length > 0 ? "; " + Detail : "")}";
}

/// <summary>The outcome of <see cref="CaseVerifier.CompareToReference"/>.</summary>
/// <param name="MaxError">Largest absolute output error against the float64 reference.</param>
/// <param name="NaiveError">The same error for the naive same-precision result.</param>
/// <param name="Tolerance">The output error allowed: <c>2 x NaiveError + slack</c>.</param>
/// <param name="MaxLseError">Largest absolute log-sum-exp error over rows that see a key.</param>
/// <param name="Passed">True when every check held.</param>
/// <param name="Detail">What failed, or empty.</param>
public sealed record ReferenceCheck(double MaxError, double NaiveError, double Tolerance, double MaxLseError, bool Passed, string Detail)
{
    /// <inheritdoc/>
    public override string ToString() =>
        $"{(Passed ? "PASS" : "FAIL")}: max error {MaxError:G3} (naive {NaiveError:G3}, tolerance {Tolerance:G3}), LSE error {MaxLseError:G3}{(Detail.Length > 0 ? "; " + Detail : "")}";
}

/// <summary>
/// Checks kernels against the float64 references. A kernel passes when its largest output error is at most twice
/// the error of a naive float32 implementation of the same case (which stores its output in the case's type) plus a
/// slack proportional to the values' magnitude and the type's unit roundoff; rows that see no key must be exactly
/// zero with LSE = -inf; no NaN anywhere.
/// </summary>
public static class CaseVerifier
{
    /// <summary>Runs <paramref name="case"/> on <paramref name="context"/> through <see cref="CaseRunner"/> and compares with the float64 reference.</summary>
    public static VerificationResult Verify(AttentionContext context, IAttentionCase @case)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(@case);
        var tensors = @case.CreateTensors();
        CaseRunner.Run(context, @case, tensors);
        return Compare(context.Backend, @case, tensors);
    }

    /// <summary>Compares outputs already computed into <paramref name="tensors"/> with the references (<see cref="IAttentionCase.Check"/>).</summary>
    public static VerificationResult Compare(Backend backend, IAttentionCase @case, CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(@case);
        ArgumentNullException.ThrowIfNull(tensors);
        var check = @case.Check(tensors);
        return new VerificationResult(@case, backend, check.MaxError, check.NaiveError, check.Tolerance, check.MaxLseError, check.Passed, check.Detail);
    }

    /// <summary>
    /// The error rule on its own, for entry points that are not an <see cref="AttentionCase"/> (variable-length
    /// batches, KV caches): <paramref name="output"/> passes when its largest error against <paramref name="exact"/> is
    /// at most <c>2 x</c> the error of <paramref name="naive"/> (the same-precision naive result) plus a slack of
    /// <c>1e-5 x valueScale</c> (float32) or <c>u x max |exact output|</c> (16-bit, u the unit roundoff); rows whose reference
    /// LSE is -inf must be exactly zero (and -inf in <paramref name="logSumExp"/>); other LSEs must be within
    /// <c>2 x</c> the naive LSE error plus <c>1e-5 (1 + |LSE|)</c>; no NaN anywhere. The LSE's row-major order must
    /// match the output's rows of <c>Dv</c> elements.
    /// </summary>
    /// <param name="exact">The float64 reference.</param>
    /// <param name="naive">The naive same-precision reference of the same problem.</param>
    /// <param name="output">The kernel's output, in the reference's shape.</param>
    /// <param name="logSumExp">The kernel's log-sum-exp, or null when it was not computed.</param>
    /// <param name="type">The storage type of the inputs and output.</param>
    /// <param name="valueScale">The largest magnitude of the values V.</param>
    public static ReferenceCheck CompareToReference(ReferenceResult exact, ReferenceResult naive, TensorView output, TensorView? logSumExp, ElementType type, double valueScale)
    {
        ArgumentNullException.ThrowIfNull(exact);
        ArgumentNullException.ThrowIfNull(naive);
        double[] actual = output.ToDoubleArray();
        double[]? lse = logSumExp?.ToDoubleArray();
        // The floor under 2 x naive: float32 1e-5 x the value scale; 16-bit one unit roundoff of the largest exact
        // output (the size of the output's own final rounding), so that the naive comparison, not the floor, decides.
        double slack = type == ElementType.Float32 ? 1e-5 * valueScale : type.UnitRoundoff() * exact.Output.Select(Math.Abs).DefaultIfEmpty(0).Max();
        double naiveError = MaxError(naive.Output, exact.Output, out _);
        double error = MaxError(actual, exact.Output, out int worst);
        double tolerance = 2 * naiveError + slack;
        double[] exactLse = exact.LogSumExp ?? throw new ArgumentException("The reference has no log-sum-exp.", nameof(exact));
        double naiveLseError = MaxError(naive.LogSumExp!, exactLse, out _);
        double lseError = 0;
        var problems = new List<string>();

        if (double.IsNaN(error) || actual.Any(double.IsNaN)) problems.Add("output holds NaN");
        else if (error > tolerance) problems.Add($"output error {error:G3} at flat index {worst} (got {actual[worst]:G6}, expected {exact.Output[worst]:G6})");

        int dv = exact.OutputShape[^1];
        for (int row = 0; row < exactLse.Length; row++)
        {
            double expected = exactLse[row];
            if (double.IsNegativeInfinity(expected))
            {
                if (lse is not null && !double.IsNegativeInfinity(lse[row]))
                {
                    problems.Add($"row {row} sees no key but LSE is {lse[row]} instead of -inf");
                    break;
                }
                for (int d = 0; d < dv; d++)
                    if (actual[(long)row * dv + d] != 0)
                    {
                        problems.Add($"row {row} sees no key but its output is {actual[(long)row * dv + d]} instead of 0");
                        row = exactLse.Length;
                        break;
                    }
                continue;
            }
            if (lse is null) continue;
            double e = Math.Abs(lse[row] - expected);
            if (double.IsNaN(e)) e = double.PositiveInfinity;
            lseError = Math.Max(lseError, e);
            if (e > 2 * naiveLseError + 1e-5 * (1 + Math.Abs(expected)))
            {
                problems.Add($"LSE error {e:G3} at row {row} (got {lse[row]:G9}, expected {expected:G9})");
                break;
            }
        }
        return new ReferenceCheck(error, naiveError, tolerance, lseError, problems.Count == 0, string.Join("; ", problems));
    }

    private static double MaxError(double[] actual, double[] expected, out int worst)
    {
        double max = 0;
        worst = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double a = actual[i], b = expected[i];
            if (double.IsNegativeInfinity(b) && double.IsNegativeInfinity(a)) continue;
            double e = Math.Abs(a - b);
            if (double.IsNaN(e)) return double.NaN;
            if (e > max) (max, worst) = (e, i);
        }
        return max;
    }
}
