// Float64 references of every family (one partial file each) and what they share: rounding, softmax rows, comparison.
namespace NativeAttention;

/// <summary>
/// Naive float64 implementations of every attention family with exactly the options the kernels take, plus a
/// same-precision naive flash (<see cref="FlashNaive"/>) for FlashAttention's error rule. They validate their
/// inputs like the kernels (same exceptions), read host tensors of any element type and return row-major arrays.
/// They are written for clarity, not speed: O(N^2) per head, one thread.
/// </summary>
public static partial class Reference
{
    /// <summary>
    /// How intermediate values are rounded: not at all (the float64 reference), or to float32 after every operation
    /// with selected intermediates further rounded to the storage precision (the naive same-precision baseline).
    /// </summary>
    private readonly struct Arith
    {
        private readonly bool _float32;
        private readonly ElementType _storage;

        private Arith(bool float32, ElementType storage)
        {
            _float32 = float32;
            _storage = storage;
        }

        public static Arith Exact => default;

        public static Arith Naive(ElementType storage) => new(true, storage);

        /// <summary>The result of one arithmetic operation (float32 rounds; float64 does not).</summary>
        public double Op(double x) => _float32 ? (float)x : x;

        /// <summary>A value a naive implementation materialises in storage precision (scores, probabilities, output).</summary>
        public double Store(double x) => _float32 ? _storage.RoundTo(x) : x;

        public double Dot(double[] a, int aOffset, double[] b, int bOffset, int length)
        {
            double acc = 0;
            for (int d = 0; d < length; d++) acc = Op(acc + Op(a[aOffset + d] * b[bOffset + d]));
            return acc;
        }
    }

    /// <summary>
    /// Softmax over one row of scores and the weighted sum of value rows. <paramref name="scores"/> is overwritten.
    /// A row with no key, or whose scores are all -inf, yields zeros and -inf. The sink logit (-inf: none) joins the
    /// max and the denominator only. Returns the row's log-sum-exp, sink included.
    /// </summary>
    private static double SoftmaxRow(in Arith a, Span<double> scores, ReadOnlySpan<int> valueOffsets, double[] values, double sink, Span<double> output)
    {
        output.Clear();
        double rowMax = double.NegativeInfinity;
        foreach (double s in scores) rowMax = Math.Max(rowMax, s);
        if (scores.Length == 0 || double.IsNegativeInfinity(rowMax)) return double.NegativeInfinity;
        double m = Math.Max(rowMax, sink);
        double sum = 0;
        for (int j = 0; j < scores.Length; j++)
        {
            scores[j] = a.Op(Math.Exp(a.Op(scores[j] - m)));
            sum = a.Op(sum + scores[j]);
        }
        if (!double.IsNegativeInfinity(sink)) sum = a.Op(sum + a.Op(Math.Exp(a.Op(sink - m))));
        for (int j = 0; j < scores.Length; j++)
        {
            double p = a.Store(a.Op(scores[j] / sum));
            int offset = valueOffsets[j];
            for (int d = 0; d < output.Length; d++) output[d] = a.Op(output[d] + a.Op(p * values[offset + d]));
        }
        for (int d = 0; d < output.Length; d++) output[d] = a.Store(output[d]);
        return a.Op(m + a.Op(Math.Log(sum)));
    }

    /// <summary>Reads a host tensor into a row-major double array, rounding each element to <paramref name="a"/>'s storage precision.</summary>
    private static double[] Read(in TensorView view, in Arith a)
    {
        var data = view.ToDoubleArray();
        for (int n = 0; n < data.Length; n++) data[n] = a.Store(data[n]);
        return data;
    }

    /// <summary>The row-major position of <paramref name="index"/> in a tensor of <paramref name="shape"/>.</summary>
    internal static int FlatIndex(ReadOnlySpan<int> shape, ReadOnlySpan<int> index)
    {
        if (index.Length != shape.Length)
            throw new ArgumentException($"Expected {shape.Length} indices, got {index.Length}.", nameof(index));
        int flat = 0;
        for (int d = 0; d < shape.Length; d++)
        {
            if ((uint)index[d] >= (uint)shape[d])
                throw new ArgumentOutOfRangeException(nameof(index), $"Index {index[d]} is outside axis {d} of size {shape[d]}.");
            flat = flat * shape[d] + index[d];
        }
        return flat;
    }

    /// <summary>
    /// Compares a host tensor (any element type, any strides) with row-major reference values of shape
    /// <paramref name="expectedShape"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The tensor's shape differs from <paramref name="expectedShape"/>.</exception>
    public static ReferenceError Compare(TensorView actual, ReadOnlySpan<double> expected, ReadOnlySpan<int> expectedShape)
    {
        TensorChecks.Shape(actual, expectedShape, nameof(actual), "the reference's shape");
        return Compare(actual.ToDoubleArray(), expected);
    }

    /// <summary>Compares computed values with reference values element by element.</summary>
    /// <exception cref="ArgumentException">The lengths differ.</exception>
    public static ReferenceError Compare(ReadOnlySpan<double> actual, ReadOnlySpan<double> expected)
    {
        if (actual.Length != expected.Length)
            throw new ArgumentException($"{actual.Length} values computed but {expected.Length} expected.", nameof(actual));
        double maxError = 0, sumSquares = 0, maxExpected = 0;
        long worst = actual.Length > 0 ? 0 : -1;
        for (int n = 0; n < actual.Length; n++)
        {
            double e = expected[n], x = actual[n];
            if (double.IsFinite(e)) maxExpected = Math.Max(maxExpected, Math.Abs(e));
            double error = e.Equals(x) ? 0 : Math.Abs(x - e);
            if (double.IsNaN(error)) error = double.PositiveInfinity;
            sumSquares += error * error;
            if (error > maxError)
            {
                maxError = error;
                worst = n;
            }
        }
        double rms = actual.Length > 0 ? Math.Sqrt(sumSquares / actual.Length) : 0;
        return worst < 0
            ? new ReferenceError(0, 0, 0, -1, double.NaN, double.NaN, 0)
            : new ReferenceError(maxError, rms, maxExpected, worst, expected[(int)worst], actual[(int)worst], actual.Length);
    }
}
