// The references' own argument checks: plain, and apart from the validation layer, so that a bug there cannot move
// the references' view of what is valid along with the kernels'.
using System.Diagnostics.CodeAnalysis;

namespace NativeAttention;

public static partial class Reference
{
    /// <summary>
    /// Checks of the references' arguments. Each failure is an <see cref="ArgumentException"/> whose ParamName is
    /// the argument (or option, e.g. <c>options.Bias</c>) at fault and whose message says what was expected.
    /// </summary>
    private static class Check
    {
        /// <summary>The largest head dimension the library accepts (<c>query</c>/<c>key</c> and <c>value</c>).</summary>
        public const int MaxHeadDim = 256;

        /// <summary>Throws the ArgumentException naming <paramref name="name"/>.</summary>
        [DoesNotReturn]
        public static void Fail(string name, string message) => throw new ArgumentException(message, name);

        /// <summary>Formats sizes as <c>[a, b, c]</c>.</summary>
        public static string Text(ReadOnlySpan<int> sizes)
        {
            var parts = new string[sizes.Length];
            for (int i = 0; i < sizes.Length; i++) parts[i] = sizes[i].ToString(System.Globalization.CultureInfo.InvariantCulture);
            return "[" + string.Join(", ", parts) + "]";
        }

        /// <summary>A tensor is given, alive and of rank <paramref name="rank"/>; returns its shape.</summary>
        public static int[] Rank(in TensorView view, int rank, string name, string layout)
        {
            if (view.IsDefault) Fail(name, $"{name} is default(TensorView); expected a tensor {layout}.");
            view.Storage!.ThrowIfDisposed();
            if (view.Rank != rank) Fail(name, $"{name} has rank {view.Rank} {Text(view.Shape)}; expected rank {rank}, {layout}.");
            return view.Shape.ToArray();
        }

        /// <summary>Every dimension of the tensor is at least 1.</summary>
        public static void Positive(in TensorView view, string name, string layout)
        {
            for (int axis = 0; axis < view.Rank; axis++)
                if (view.Shape[axis] < 1)
                    Fail(name, $"{name} has shape {Text(view.Shape)}: dimension {axis} must be positive ({layout}).");
        }

        /// <summary>The tensor has exactly the shape <paramref name="expected"/>.</summary>
        public static void Shape(in TensorView view, int[] expected, string name, string layout)
        {
            var shape = Rank(view, expected.Length, name, layout);
            for (int axis = 0; axis < expected.Length; axis++)
                if (shape[axis] != expected[axis])
                    Fail(name, $"{name} has shape {Text(shape)}; expected {Text(expected)} ({layout}).");
        }

        /// <summary>The tensor stores <paramref name="expected"/>.</summary>
        public static void Type(in TensorView view, ElementType expected, string name)
        {
            if (view.ElementType != expected) Fail(name, $"{name} has element type {view.ElementType}; expected {expected}.");
        }

        /// <summary>A broadcastable size is 1 or the full size.</summary>
        public static void OneOrAll(int actual, int full, string name, string axis)
        {
            if (actual != 1 && actual != full) Fail(name, $"{name} has {axis} size {actual}; expected 1 (broadcast) or {full}.");
        }

        /// <summary>An array holds exactly <paramref name="expected"/> elements.</summary>
        public static void Length(int actual, long expected, string name, string shape)
        {
            if (actual != expected) Fail(name, $"{name} has {actual} elements; expected {expected} for shape {shape}.");
        }

        /// <summary>Head dimensions are within <see cref="MaxHeadDim"/>.</summary>
        public static void HeadDims(int dqk, string queryName, int dv, string valueName)
        {
            if (dqk > MaxHeadDim) Fail(queryName, $"{queryName} has head dim {dqk}; at most {MaxHeadDim} is supported.");
            if (dv > MaxHeadDim) Fail(valueName, $"{valueName} has head dim {dv}; at most {MaxHeadDim} is supported.");
        }

        /// <summary>A score scale: the given one, or <c>1 / sqrt(Dqk)</c>; a float32 either way, as the option's type.</summary>
        public static double Scale(float? scale, int dqk, string name)
        {
            float value = scale ?? (float)(1.0 / Math.Sqrt(dqk));
            if (!float.IsFinite(value)) Fail(name, $"Scale is {value}; expected a finite value.");
            return value;
        }
    }
}
