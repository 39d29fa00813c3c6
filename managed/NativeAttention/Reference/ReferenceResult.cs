// What a reference computation returns, and how far a kernel's tensor is from it.
namespace NativeAttention;

/// <summary>
/// The result of a <see cref="Reference"/> computation: row-major float64 arrays with their shapes. Output is
/// <c>[B, Hq, ..., Dv]</c>; LogSumExp is <c>[B, Hq, ...]</c> (null for linear attention, which has none); FinalState is
/// the linear-attention state <c>[B, H, F, C]</c> (null for the other families and for non-causal linear attention).
/// </summary>
/// <param name="Output">The attention output, row-major.</param>
/// <param name="OutputShape">The output's shape.</param>
/// <param name="LogSumExp">Per-row log-sum-exp (-inf for rows that see no key), row-major, or null.</param>
/// <param name="LogSumExpShape">The log-sum-exp's shape, or null.</param>
/// <param name="FinalState">The final linear-attention state, row-major, or null.</param>
/// <param name="FinalStateShape">The final state's shape, or null.</param>
public sealed record ReferenceResult(
    double[] Output,
    int[] OutputShape,
    double[]? LogSumExp = null,
    int[]? LogSumExpShape = null,
    double[]? FinalState = null,
    int[]? FinalStateShape = null)
{
    /// <summary>The output element at <paramref name="index"/>.</summary>
    public double OutputAt(params ReadOnlySpan<int> index) => Output[Reference.FlatIndex(OutputShape, index)];

    /// <summary>The log-sum-exp element at <paramref name="index"/>.</summary>
    /// <exception cref="InvalidOperationException">This result has no log-sum-exp.</exception>
    public double LogSumExpAt(params ReadOnlySpan<int> index) =>
        LogSumExp is null || LogSumExpShape is null
            ? throw new InvalidOperationException("This result has no log-sum-exp (linear attention).")
            : LogSumExp[Reference.FlatIndex(LogSumExpShape, index)];

    /// <summary>How far a kernel's output tensor is from <see cref="Output"/>.</summary>
    public ReferenceError CompareOutput(TensorView actual) => Reference.Compare(actual, Output, OutputShape);

    /// <summary>How far a kernel's log-sum-exp tensor is from <see cref="LogSumExp"/>.</summary>
    public ReferenceError CompareLogSumExp(TensorView actual) =>
        LogSumExp is null || LogSumExpShape is null
            ? throw new InvalidOperationException("This result has no log-sum-exp (linear attention).")
            : Reference.Compare(actual, LogSumExp, LogSumExpShape);

    /// <summary>How far a kernel's final state is from <see cref="FinalState"/>.</summary>
    public ReferenceError CompareFinalState(TensorView actual) =>
        FinalState is null || FinalStateShape is null
            ? throw new InvalidOperationException("This result has no final state.")
            : Reference.Compare(actual, FinalState, FinalStateShape);
}

/// <summary>
/// The difference between computed values and reference values. Equal infinities (e.g. -inf LSE of fully masked
/// rows on both sides) and NaN against NaN count as exact; any other non-finite mismatch makes the error infinite.
/// </summary>
/// <param name="MaxAbsoluteError">The largest <c>|actual - expected|</c>.</param>
/// <param name="RmsError">The root mean square of <c>actual - expected</c> over all elements.</param>
/// <param name="MaxAbsoluteExpected">The largest finite <c>|expected|</c>: the scale errors are judged against.</param>
/// <param name="WorstIndex">The row-major index of the worst element (-1 when there are none).</param>
/// <param name="ExpectedAtWorst">The reference value there.</param>
/// <param name="ActualAtWorst">The computed value there.</param>
/// <param name="Count">The number of elements compared.</param>
public sealed record ReferenceError(
    double MaxAbsoluteError,
    double RmsError,
    double MaxAbsoluteExpected,
    long WorstIndex,
    double ExpectedAtWorst,
    double ActualAtWorst,
    long Count)
{
    /// <summary>Describes the worst element, for assertion messages.</summary>
    public override string ToString() =>
        $"max |error| {MaxAbsoluteError:G4} (rms {RmsError:G4}, max |expected| {MaxAbsoluteExpected:G4}) at element {WorstIndex}: expected {ExpectedAtWorst:G9}, got {ActualAtWorst:G9}";
}
