// Float64 references of every family (one partial file each) and what they share: rounding, softmax rows, reading
// tensors, comparison. Nothing here calls the validation layer or a kernel (ReferenceIndependenceTests checks it).
namespace NativeAttention;

/// <summary>
/// Naive float64 implementations of every attention family with exactly the options the kernels take, plus a
/// same-precision naive flash (<see cref="FlashNaive"/>) for FlashAttention's error rule. They reject invalid inputs
/// like the kernels (ArgumentException naming the argument), read host tensors of any element type and return
/// row-major arrays. They are written for clarity, not speed: every (query, key) pair is visited, one thread.
/// </summary>
/// <remarks>
/// The references share no masking, scaling, indexing, position or argument-checking code with the kernels or with
/// the validation layer (DESIGN.md, "Testing"): each computes visibility, the default scale, the GQA head mapping and
/// positions itself from DESIGN.md's "Semantics", so a bug in shared code cannot move the expected value along with
/// the actual one.
/// </remarks>
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
        public double Store(double x) => _float32 ? RoundToType(_storage, x) : x;

        public double Dot(double[] a, int aOffset, double[] b, int bOffset, int length)
        {
            double acc = 0;
            for (int d = 0; d < length; d++) acc = Op(acc + Op(a[aOffset + d] * b[bOffset + d]));
            return acc;
        }
    }

    /// <summary>
    /// Rounds <paramref name="x"/> to the nearest value of <paramref name="type"/>, ties to even, overflowing to
    /// infinity. Float32 is the hardware conversion; float16 (11 significant bits) and bfloat16 (8, float32's exponent
    /// range) are rounded here from the formats' definitions, subnormals included, rather than through the conversion
    /// operators the kernels store with.
    /// </summary>
    private static double RoundToType(ElementType type, double x)
    {
        if (type == ElementType.Float32) return (float)x;
        // (significant bits, smallest normal exponent, largest finite value)
        var (bits, minExponent, max) = type switch
        {
            ElementType.Float16 => (11, -14, 65504.0),
            ElementType.BFloat16 => (8, -126, (2 - Math.Pow(2, -7)) * Math.Pow(2, 127)),
            _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown element type."),
        };
        if (double.IsNaN(x) || double.IsInfinity(x) || x == 0) return x;
        double magnitude = Math.Abs(x);
        int exponent = Math.Max(Math.ILogB(magnitude), minExponent);
        // The spacing of representable values around x; below the smallest normal it stays that of the subnormals.
        double spacing = Math.ScaleB(1.0, exponent - (bits - 1));
        double rounded = Math.Round(magnitude / spacing, MidpointRounding.ToEven) * spacing;
        if (rounded > max) rounded = double.PositiveInfinity;
        return Math.CopySign(rounded, x);
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
        var data = ReadHost(view);
        for (int n = 0; n < data.Length; n++) data[n] = a.Store(data[n]);
        return data;
    }

    /// <summary>
    /// Copies a host tensor into a new row-major array: element <c>(i0, i1, ...)</c> sits at
    /// <c>Offset + i0 stride0 + i1 stride1 + ...</c> of the storage. Decodes float32, float16 and bfloat16 (the top
    /// 16 bits of a float32) itself.
    /// </summary>
    /// <exception cref="InvalidOperationException">The tensor lives in device memory.</exception>
    /// <exception cref="ObjectDisposedException">The tensor's storage was released.</exception>
    private static unsafe double[] ReadHost(in TensorView view)
    {
        if (view.IsDefault) throw new InvalidOperationException("The tensor view is default(TensorView) and views nothing.");
        var storage = view.Storage!;
        if (storage.Location != MemoryLocation.Host)
            throw new InvalidOperationException("The references read host tensors; download device tensors first.");
        storage.ThrowIfDisposed();
        int rank = view.Rank;
        var shape = view.Shape.ToArray();
        var strides = view.Strides.ToArray();
        long count = 1;
        foreach (int s in shape) count *= s;
        var result = new double[count];
        if (count == 0) return result;
        var type = view.ElementType;
        using var pin = storage.Pin();
        byte* start = (byte*)pin.Pointer;
        var index = new int[rank];
        for (long n = 0; n < count; n++)
        {
            long element = view.Offset;
            for (int axis = 0; axis < rank; axis++) element += index[axis] * strides[axis];
            result[n] = type switch
            {
                ElementType.Float32 => ((float*)start)[element],
                ElementType.Float16 => (double)((Half*)start)[element],
                _ => BitConverter.UInt32BitsToSingle((uint)((ushort*)start)[element] << 16),
            };
            // Advance the row-major index: the last axis fastest.
            for (int axis = rank - 1; axis >= 0; axis--)
            {
                if (++index[axis] < shape[axis]) break;
                index[axis] = 0;
            }
        }
        return result;
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
        Check.Shape(actual, expectedShape.ToArray(), nameof(actual), "the reference's shape");
        return Compare(ReadHost(actual), expected);
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
