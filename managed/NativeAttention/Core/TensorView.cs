// A strided view of a tensor: element type, shape and element strides over host or device storage.
using System.Runtime.InteropServices;
using System.Text;

namespace NativeAttention;

/// <summary>
/// A view of an n-dimensional tensor: element type, shape and strides (in elements, not bytes) over
/// some <see cref="TensorStorage"/>. Views are cheap to create and never copy; permuting axes lets a
/// <c>[B, N, H, D]</c> tensor from another library be passed where <c>[B, H, N, D]</c> is expected.
/// Every element a view can address is checked to lie inside its storage when the view is made.
/// </summary>
public readonly struct TensorView
{
    private readonly int[]? _shape;
    private readonly long[]? _strides;

    /// <summary>Creates a view after checking that every addressable element lies inside <paramref name="storage"/>.</summary>
    /// <exception cref="ArgumentException">A size or stride is negative, or the view reaches outside the storage.</exception>
    public TensorView(TensorStorage storage, ReadOnlySpan<int> shape, ReadOnlySpan<long> strides, long offset = 0)
    {
        ArgumentNullException.ThrowIfNull(storage);
        if (shape.Length != strides.Length)
            throw new ArgumentException($"Shape has {shape.Length} dimensions but strides has {strides.Length}.", nameof(strides));
        if (offset < 0)
            throw new ArgumentOutOfRangeException(nameof(offset), offset, "The element offset must be non-negative.");
        long last = offset;
        bool empty = false;
        for (int i = 0; i < shape.Length; i++)
        {
            if (shape[i] < 0)
                throw new ArgumentException($"Dimension {i} has negative size {shape[i]}.", nameof(shape));
            if (strides[i] < 0)
                throw new ArgumentException($"Dimension {i} has negative stride {strides[i]}; strides must be non-negative.", nameof(strides));
            if (shape[i] == 0) empty = true;
            else last = checked(last + (shape[i] - 1) * strides[i]);
        }
        if (!empty && last >= storage.Length)
            throw new ArgumentException(
                $"A view of shape {Format(shape)} with strides {Format(strides)} at offset {offset} reaches element {last}, but the storage holds {storage.Length}.",
                nameof(shape));
        Storage = storage;
        Offset = offset;
        _shape = shape.ToArray();
        _strides = strides.ToArray();
    }

    /// <summary>
    /// A view over <paramref name="shape"/> and <paramref name="strides"/> themselves, neither copied nor checked: for
    /// callers that derived them from a valid view and refill the arrays only after every use of the view (the
    /// per-sequence views of a varlen call, which then allocate nothing).
    /// </summary>
    internal TensorView(TensorStorage storage, int[] shape, long[] strides, long offset, bool adopt)
    {
        System.Diagnostics.Debug.Assert(adopt && shape.Length == strides.Length);
        Storage = storage;
        Offset = offset;
        _shape = shape;
        _strides = strides;
    }

    /// <summary>The storage viewed, or null for a default (empty) view.</summary>
    public TensorStorage? Storage { get; }

    /// <summary>The element offset of index (0, ..., 0) within the storage.</summary>
    public long Offset { get; }

    /// <summary>The element type.</summary>
    public ElementType ElementType => Storage?.ElementType ?? ElementType.Float32;

    /// <summary>Host or device.</summary>
    public MemoryLocation Location => Storage?.Location ?? MemoryLocation.Host;

    /// <summary>True for <c>default(TensorView)</c>, which views nothing.</summary>
    public bool IsDefault => Storage is null;

    /// <summary>The number of dimensions.</summary>
    public int Rank => _shape?.Length ?? 0;

    /// <summary>The size of each dimension.</summary>
    public ReadOnlySpan<int> Shape => _shape;

    /// <summary>The distance, in elements, between neighbours along each dimension.</summary>
    public ReadOnlySpan<long> Strides => _strides;

    /// <summary>The number of elements in the view.</summary>
    public long ElementCount
    {
        get
        {
            if (_shape is null) return 0;
            long n = 1;
            foreach (int s in _shape) n *= s;
            return n;
        }
    }

    /// <summary>Row-major contiguous strides for <paramref name="shape"/>.</summary>
    public static long[] ContiguousStrides(ReadOnlySpan<int> shape)
    {
        var strides = new long[shape.Length];
        long s = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            strides[i] = s;
            s *= Math.Max(shape[i], 1);
        }
        return strides;
    }

    /// <summary>A row-major contiguous view over managed memory of float, Half or BFloat16.</summary>
    public static TensorView FromMemory<T>(Memory<T> memory, params ReadOnlySpan<int> shape) where T : unmanaged =>
        new(new ManagedStorage<T>(memory), shape, ContiguousStrides(shape));

    /// <summary>A strided view over managed memory of float, Half or BFloat16.</summary>
    public static TensorView FromMemory<T>(Memory<T> memory, ReadOnlySpan<int> shape, ReadOnlySpan<long> strides, long offset = 0) where T : unmanaged =>
        new(new ManagedStorage<T>(memory), shape, strides, offset);

    /// <summary>
    /// A strided view over native host memory that the caller owns and keeps alive for as long as the
    /// view is used. <paramref name="elementCount"/> bounds what the view may address.
    /// </summary>
    public static unsafe TensorView FromPointer(IntPtr pointer, long elementCount, ElementType type, ReadOnlySpan<int> shape, ReadOnlySpan<long> strides, long offset = 0)
    {
        if (pointer == IntPtr.Zero) throw new ArgumentNullException(nameof(pointer));
        if (elementCount < 0) throw new ArgumentOutOfRangeException(nameof(elementCount), elementCount, "Must be non-negative.");
        return new(new PointerStorage((void*)pointer, elementCount, type), shape, strides, offset);
    }

    /// <summary>The same elements with the axes reordered: axis i of the result is axis <paramref name="order"/>[i] of this view.</summary>
    public TensorView Permute(params ReadOnlySpan<int> order)
    {
        ThrowIfDefault();
        if (order.Length != Rank)
            throw new ArgumentException($"Permutation has {order.Length} axes; the view has {Rank}.", nameof(order));
        var seen = new bool[Rank];
        var shape = new int[Rank];
        var strides = new long[Rank];
        for (int i = 0; i < Rank; i++)
        {
            int a = order[i];
            if ((uint)a >= (uint)Rank || seen[a])
                throw new ArgumentException($"{Format(order)} is not a permutation of 0..{Rank - 1}.", nameof(order));
            seen[a] = true;
            shape[i] = _shape![a];
            strides[i] = _strides![a];
        }
        return new TensorView(Storage!, shape, strides, Offset);
    }

    /// <summary>The view with the given shape, for a contiguous view (no copy).</summary>
    public TensorView Reshape(params ReadOnlySpan<int> shape)
    {
        ThrowIfDefault();
        if (!IsContiguous)
            throw new InvalidOperationException("Only a contiguous view can be reshaped.");
        long n = 1;
        foreach (int s in shape) n *= s;
        if (n != ElementCount)
            throw new ArgumentException($"Cannot reshape {ElementCount} elements to {Format(shape)}.", nameof(shape));
        return new TensorView(Storage!, shape, ContiguousStrides(shape), Offset);
    }

    /// <summary>Elements [start, start + length) along <paramref name="axis"/>.</summary>
    public TensorView Slice(int axis, int start, int length)
    {
        ThrowIfDefault();
        if ((uint)axis >= (uint)Rank) throw new ArgumentOutOfRangeException(nameof(axis), axis, $"The view has {Rank} axes.");
        if (start < 0 || length < 0 || start + length > _shape![axis])
            throw new ArgumentOutOfRangeException(nameof(start), $"[{start}, {start + length}) is outside axis {axis} of size {_shape![axis]}.");
        var shape = (int[])_shape!.Clone();
        shape[axis] = length;
        long offset = length == 0 ? Offset : Offset + start * _strides![axis];
        return new TensorView(Storage!, shape, _strides, offset);
    }

    /// <summary>True when the elements are laid out row-major without gaps.</summary>
    public bool IsContiguous
    {
        get
        {
            if (_shape is null) return true;
            long expected = 1;
            for (int i = _shape.Length - 1; i >= 0; i--)
            {
                if (_shape[i] != 1 && _strides![i] != expected) return false;
                expected *= _shape[i];
            }
            return true;
        }
    }

    /// <summary>
    /// True when no two indices address the same element (required of outputs). Checked by sorting
    /// axes by stride: each stride must step over everything the smaller axes span.
    /// </summary>
    public bool HasNonOverlappingElements
    {
        get
        {
            if (_shape is null || ElementCount <= 1) return true;
            int[] shape = _shape;
            long[] strides = _strides!;
            // The axes longer than 1 by increasing stride (a stable insertion sort: ranks are small, and a check that
            // runs on every call allocates nothing).
            Span<int> axes = stackalloc int[shape.Length];
            int count = 0;
            for (int a = 0; a < shape.Length; a++)
            {
                if (shape[a] <= 1) continue;
                int at = count++;
                while (at > 0 && strides[axes[at - 1]] > strides[a])
                {
                    axes[at] = axes[at - 1];
                    at--;
                }
                axes[at] = a;
            }
            long span = 1;
            foreach (int a in axes[..count])
            {
                if (strides[a] < span) return false;
                span = strides[a] * (shape[a] - 1) + span;
            }
            return true;
        }
    }

    /// <summary>Element offset of <paramref name="index"/> within the storage.</summary>
    public long OffsetOf(ReadOnlySpan<int> index)
    {
        long o = Offset;
        for (int i = 0; i < index.Length; i++) o += index[i] * _strides![i];
        return o;
    }

    /// <summary>Reads one element of a host view as double.</summary>
    public unsafe double GetDouble(params ReadOnlySpan<int> index)
    {
        CheckHostIndex(index);
        using var pin = Storage!.Pin();
        return ReadElement(pin.Pointer, ElementType, OffsetOf(index));
    }

    /// <summary>Rounds <paramref name="value"/> to the element type and stores it in a host view.</summary>
    public unsafe void SetDouble(double value, params ReadOnlySpan<int> index)
    {
        CheckHostIndex(index);
        using var pin = Storage!.Pin();
        WriteElement(pin.Pointer, ElementType, OffsetOf(index), value);
    }

    /// <summary>Copies a host view into a new row-major array of doubles.</summary>
    public unsafe double[] ToDoubleArray()
    {
        ThrowIfDefault();
        RequireHost();
        var result = new double[ElementCount];
        if (result.Length == 0) return result;
        using var pin = Storage!.Pin();
        var index = new int[Rank];
        for (long n = 0; n < result.Length; n++)
        {
            result[n] = ReadElement(pin.Pointer, ElementType, OffsetOf(index));
            Increment(index);
        }
        return result;
    }

    /// <summary>Stores row-major <paramref name="values"/> into a host view, rounding to the element type.</summary>
    public unsafe void CopyFrom(ReadOnlySpan<double> values)
    {
        ThrowIfDefault();
        RequireHost();
        if (values.Length != ElementCount)
            throw new ArgumentException($"Expected {ElementCount} values, got {values.Length}.", nameof(values));
        if (values.Length == 0) return;
        using var pin = Storage!.Pin();
        var index = new int[Rank];
        for (int n = 0; n < values.Length; n++)
        {
            WriteElement(pin.Pointer, ElementType, OffsetOf(index), values[n]);
            Increment(index);
        }
    }

    /// <summary>Describes the view, e.g. <c>Float32[2, 8, 128, 64] strides [65536, 8192, 64, 1]</c>.</summary>
    public override string ToString() =>
        IsDefault ? "(none)" : $"{ElementType}{Format(Shape)} strides {Format(Strides)} at {Offset} ({Location})";

    internal void ThrowIfDefault()
    {
        if (IsDefault) throw new InvalidOperationException("The tensor view is default(TensorView) and views nothing.");
    }

    private void RequireHost()
    {
        if (Location != MemoryLocation.Host)
            throw new InvalidOperationException("Element access needs a host view; download device tensors first.");
        Storage!.ThrowIfDisposed();
    }

    private void CheckHostIndex(ReadOnlySpan<int> index)
    {
        ThrowIfDefault();
        RequireHost();
        if (index.Length != Rank) throw new ArgumentException($"Expected {Rank} indices, got {index.Length}.", nameof(index));
        for (int i = 0; i < Rank; i++)
            if ((uint)index[i] >= (uint)_shape![i])
                throw new ArgumentOutOfRangeException(nameof(index), $"Index {index[i]} is outside axis {i} of size {_shape[i]}.");
    }

    private void Increment(int[] index)
    {
        for (int d = Rank - 1; d >= 0; d--)
        {
            if (++index[d] < _shape![d]) return;
            index[d] = 0;
        }
    }

    internal static unsafe double ReadElement(void* basePointer, ElementType type, long offset) => type switch
    {
        ElementType.Float32 => ((float*)basePointer)[offset],
        ElementType.Float16 => (double)((Half*)basePointer)[offset],
        _ => (float)((BFloat16*)basePointer)[offset],
    };

    internal static unsafe void WriteElement(void* basePointer, ElementType type, long offset, double value)
    {
        switch (type)
        {
            case ElementType.Float32: ((float*)basePointer)[offset] = (float)value; break;
            case ElementType.Float16: ((Half*)basePointer)[offset] = (Half)value; break;
            default: ((BFloat16*)basePointer)[offset] = (BFloat16)(float)value; break;
        }
    }

    internal static string Format<T>(ReadOnlySpan<T> values)
    {
        var sb = new StringBuilder("[");
        for (int i = 0; i < values.Length; i++)
        {
            if (i > 0) sb.Append(", ");
            sb.Append(values[i]);
        }
        return sb.Append(']').ToString();
    }
}
