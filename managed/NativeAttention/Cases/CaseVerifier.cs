// Runs an AttentionCase on a backend and checks it against the float64 reference (FlashAttention's rule).
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
public sealed record VerificationResult(AttentionCase Case, Backend Backend, double MaxError, double NaiveError, double Tolerance, double MaxLseError, bool Passed, string Detail)
{
    /// <inheritdoc/>
    public override string ToString() =>
        $"{(Passed ? "PASS" : "FAIL")} {Backend} {Case}: max error {MaxError:G3} (naive {NaiveError:G3}, tolerance {Tolerance:G3}), LSE error {MaxLseError:G3}{(Detail.Length > 0 ? "; " + Detail : "")}";
}

/// <summary>
/// Checks kernels against the float64 references. A kernel passes when its largest output error is at most twice
/// the error of a naive float32 implementation of the same case (which stores its output in the case's type) plus a
/// slack proportional to the values' magnitude and the type's unit roundoff; rows that see no key must be exactly
/// zero with LSE = -inf; no NaN anywhere.
/// </summary>
public static class CaseVerifier
{
    /// <summary>Runs <paramref name="case"/> on <paramref name="context"/> and compares with the float64 reference.</summary>
    public static VerificationResult Verify(AttentionContext context, AttentionCase @case)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(@case);
        var tensors = @case.CreateTensors();
        CaseRunner.Run(context, @case, tensors);
        return Compare(context.Backend, @case, tensors);
    }

    /// <summary>Compares outputs already computed into <paramref name="tensors"/> with the reference.</summary>
    public static VerificationResult Compare(Backend backend, AttentionCase @case, CaseTensors tensors)
    {
        var exact = Reference.Flash(tensors.Query, tensors.Key, tensors.Value, @case.Flash);
        var naive = Reference.FlashNaive(tensors.Query, tensors.Key, tensors.Value, @case.Flash, @case.ElementType);
        double[] output = tensors.Output.ToDoubleArray();
        double[] lse = tensors.LogSumExp.ToDoubleArray();

        double maxValue = MaxAbs(tensors.Value.ToDoubleArray());
        double slack = @case.ElementType == ElementType.Float32 ? 1e-5 * maxValue : 2 * @case.ElementType.UnitRoundoff() * maxValue;
        double naiveError = MaxError(naive.Output, exact.Output, out _);
        double error = MaxError(output, exact.Output, out int worst);
        double tolerance = 2 * naiveError + slack;
        double[] exactLse = exact.LogSumExp!;
        double naiveLseError = MaxError(naive.LogSumExp!, exactLse, out _);
        double lseError = 0;
        var problems = new List<string>();

        if (double.IsNaN(error) || output.Any(double.IsNaN)) problems.Add("output holds NaN");
        else if (error > tolerance) problems.Add($"output error {error:G3} at flat index {worst} (got {output[worst]:G6}, expected {exact.Output[worst]:G6})");

        int dv = @case.ValueDim;
        for (int row = 0; row < lse.Length; row++)
        {
            double expected = exactLse[row];
            if (double.IsNegativeInfinity(expected))
            {
                if (!double.IsNegativeInfinity(lse[row]))
                {
                    problems.Add($"row {row} sees no key but LSE is {lse[row]} instead of -inf");
                    break;
                }
                for (int d = 0; d < dv; d++)
                    if (output[(long)row * dv + d] != 0)
                    {
                        problems.Add($"row {row} sees no key but its output is {output[(long)row * dv + d]} instead of 0");
                        row = lse.Length;
                        break;
                    }
                continue;
            }
            double e = Math.Abs(lse[row] - expected);
            if (double.IsNaN(e)) e = double.PositiveInfinity;
            lseError = Math.Max(lseError, e);
            if (e > 2 * naiveLseError + 1e-5 * (1 + Math.Abs(expected)))
            {
                problems.Add($"LSE error {e:G3} at row {row} (got {lse[row]:G9}, expected {expected:G9})");
                break;
            }
        }
        return new VerificationResult(@case, backend, error, naiveError, tolerance, lseError, problems.Count == 0, string.Join("; ", problems));
    }

    private static double MaxAbs(double[] values)
    {
        double m = 0;
        foreach (double v in values) m = Math.Max(m, Math.Abs(v));
        return m;
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

/// <summary>Runs a case's kernel on a context, mirroring tensors to the device and back when the backend needs it.</summary>
public static class CaseRunner
{
    /// <summary>
    /// Runs <paramref name="case"/> once on <paramref name="context"/>, leaving the results in <paramref name="tensors"/>.
    /// On a device backend every tensor is mirrored with its exact layout (the whole underlying storage, same
    /// strides and offset), so strided layouts reach the kernel as they are and writes outside a view show up.
    /// </summary>
    public static void Run(AttentionContext context, AttentionCase @case, CaseTensors tensors)
    {
        if (context.TensorLocation == MemoryLocation.Host)
        {
            context.Flash(tensors.Query, tensors.Key, tensors.Value, tensors.Output, @case.Flash, tensors.LogSumExp);
            context.Synchronize();
            return;
        }
        var mirrors = new List<TensorView>();
        try
        {
            var q = Mirror(context, tensors.Query, mirrors);
            var k = Mirror(context, tensors.Key, mirrors);
            var v = Mirror(context, tensors.Value, mirrors);
            var o = Mirror(context, tensors.Output, mirrors);
            var lse = Mirror(context, tensors.LogSumExp, mirrors);
            context.Flash(q, k, v, o, @case.Flash, lse);
            CopyBack(context, o, tensors.Output);
            CopyBack(context, lse, tensors.LogSumExp);
        }
        finally
        {
            foreach (var m in mirrors) (m.Storage as IDisposable)?.Dispose();
        }
    }

    /// <summary>A device copy of a host view's whole storage, viewed with the same shape, strides and offset.</summary>
    public static TensorView Mirror(AttentionContext context, TensorView host, List<TensorView>? owned = null)
    {
        var storage = host.Storage ?? throw new ArgumentException("The view is default(TensorView).", nameof(host));
        int length = checked((int)storage.Length);
        var device = context.Allocate(host.ElementType, length);
        owned?.Add(device);
        context.Copy(new TensorView(storage, [length], [1]), device);
        return new TensorView(device.Storage!, host.Shape, host.Strides, host.Offset);
    }

    /// <summary>Copies a mirrored view's whole storage back over the host view's storage.</summary>
    public static void CopyBack(AttentionContext context, TensorView device, TensorView host)
    {
        int length = checked((int)host.Storage!.Length);
        context.Copy(new TensorView(device.Storage!, [length], [1]), new TensorView(host.Storage, [length], [1]));
    }
}
