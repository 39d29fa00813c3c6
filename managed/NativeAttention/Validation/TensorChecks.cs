// Boundary checks shared by every family: each failure names the argument and what was expected.
using System.Diagnostics.CodeAnalysis;

namespace NativeAttention;

internal static class TensorChecks
{
    /// <summary>Checks rank and that the view is usable; returns the shape.</summary>
    public static ReadOnlySpan<int> Rank(in TensorView view, int rank, string name, string layout)
    {
        if (view.IsDefault)
            Throw($"{name} is default(TensorView); expected a tensor {layout}.", name);
        view.Storage!.ThrowIfDisposed();
        if (view.Rank != rank)
            Throw($"{name} has rank {view.Rank} ({TensorView.Format(view.Shape)}); expected rank {rank}, {layout}.", name);
        return view.Shape;
    }

    /// <summary>Checks that every dimension is positive.</summary>
    public static void Positive(in TensorView view, string name, string layout)
    {
        for (int i = 0; i < view.Rank; i++)
            if (view.Shape[i] <= 0)
                Throw($"{name} has shape {TensorView.Format(view.Shape)}: dimension {i} must be positive ({layout}).", name);
    }

    /// <summary>Checks that every dimension of the query, then the key, then the value is positive.</summary>
    public static void Positive(in TensorView query, string queryLayout, in TensorView key, string keyName, string keyLayout, in TensorView value, string valueName, string valueLayout)
    {
        Positive(query, nameof(query), queryLayout);
        Positive(key, keyName, keyLayout);
        Positive(value, valueName, valueLayout);
    }

    /// <summary>Checks an exact shape.</summary>
    public static void Shape(in TensorView view, ReadOnlySpan<int> expected, string name, string layout)
    {
        Rank(view, expected.Length, name, layout);
        if (!view.Shape.SequenceEqual(expected))
            Throw($"{name} has shape {TensorView.Format(view.Shape)}; expected {TensorView.Format(expected)} ({layout}).", name);
    }

    /// <summary>Checks the element type.</summary>
    public static void Type(in TensorView view, ElementType expected, string name)
    {
        if (view.ElementType != expected)
            Throw($"{name} has element type {view.ElementType}; expected {expected}.", name);
    }

    /// <summary>Checks the memory location required by the backend.</summary>
    public static void Location(in TensorView view, MemoryLocation expected, string name, Backend backend)
    {
        // The backend is named only in the message: formatting it on every call would allocate.
        if (view.Location != expected)
            Throw($"{name} lives in {view.Location} memory; the {backend} backend needs {expected} memory.", name);
    }

    /// <summary>Checks that an output tensor has no two indices on the same element.</summary>
    public static void Writable(in TensorView view, string name)
    {
        if (!view.HasNonOverlappingElements)
            Throw($"{name} has strides {TensorView.Format(view.Strides)} for shape {TensorView.Format(view.Shape)}, which make elements overlap; an output needs distinct elements.", name);
    }

    /// <summary>
    /// Checks the head-dim limits (the query's <paramref name="headDim"/>, the value's <paramref name="valueDim"/>, each at
    /// most <see cref="FlashProblem.MaxHeadDim"/>), then that the key and value share the query's element type; returns it.
    /// </summary>
    public static ElementType HeadDimsAndType(in TensorView query, int headDim, in TensorView key, string keyName, in TensorView value, string valueName, int valueDim)
    {
        if (headDim > FlashProblem.MaxHeadDim) Throw($"query has head dim {headDim}; at most {FlashProblem.MaxHeadDim} is supported.", nameof(query));
        if (valueDim > FlashProblem.MaxHeadDim) Throw($"{valueName} has head dim {valueDim}; at most {FlashProblem.MaxHeadDim} is supported.", valueName);
        var type = query.ElementType;
        Type(key, type, keyName);
        Type(value, type, valueName);
        return type;
    }

    /// <summary>Checks a tensor the call writes: exact shape, then element type, then distinct elements.</summary>
    public static void Written(in TensorView view, ReadOnlySpan<int> shape, ElementType type, string name, string layout)
    {
        Shape(view, shape, name, layout);
        Type(view, type, name);
        Writable(view, name);
    }

    /// <summary>Checks that a written tensor overlaps none of three inputs, in the order given.</summary>
    public static void NoAlias(in TensorView output, string outputName, in TensorView first, string firstName, in TensorView second, string secondName, in TensorView third, string thirdName)
    {
        NoAlias(output, outputName, first, firstName);
        NoAlias(output, outputName, second, secondName);
        NoAlias(output, outputName, third, thirdName);
    }

    /// <summary>Checks that the output's memory does not overlap an input's.</summary>
    public static void NoAlias(in TensorView output, string outputName, in TensorView input, string inputName)
    {
        if (output.IsDefault || input.IsDefault) return;
        var (a, aStart, aEnd) = ByteRange(output);
        var (b, bStart, bEnd) = ByteRange(input);
        if (ReferenceEquals(a, b) && aStart < bEnd && bStart < aEnd)
            Throw($"{outputName} overlaps {inputName} in memory; outputs must not alias inputs.", outputName);
    }

    private static (object Allocation, long Start, long End) ByteRange(in TensorView view)
    {
        var (allocation, baseOffset) = view.Storage!.Identity;
        int size = view.ElementType.SizeOf();
        long last = view.Offset;
        for (int i = 0; i < view.Rank; i++)
            if (view.Shape[i] > 0) last += (long)(view.Shape[i] - 1) * view.Strides[i];
        return (allocation, baseOffset + view.Offset * size, baseOffset + (last + 1) * size);
    }

    /// <summary>Checks that a broadcastable dimension is 1 or the full size.</summary>
    public static void Broadcast(int actual, int full, string name, string axis)
    {
        if (actual != 1 && actual != full)
            Throw($"{name} has {axis} size {actual}; expected 1 (broadcast) or {full}.", name);
    }

    [DoesNotReturn]
    public static void Throw(string message, string name) => throw new ArgumentException(message, name);
}
