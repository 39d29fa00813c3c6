// Copies between tensor views of equal shape and element type, host or device, with any strides.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

internal static class TensorCopy
{
    /// <summary>A zero-filled contiguous host tensor whose first element starts a 64-byte cache line.</summary>
    public static TensorView AllocateHost(ElementType type, ReadOnlySpan<int> shape)
    {
        long count = 1;
        foreach (int s in shape) count = checked(count * s);
        int length = checked((int)count);
        return type switch
        {
            ElementType.Float32 => TensorView.FromMemory(LineAligned<float>(length), shape),
            ElementType.Float16 => TensorView.FromMemory(LineAligned<Half>(length), shape),
            _ => TensorView.FromMemory(LineAligned<BFloat16>(length), shape),
        };
    }

    /// <summary>
    /// <paramref name="length"/> zero elements of an array on the pinned object heap (it never moves), starting on a
    /// 64-byte line. A managed array's data start 16 bytes past a line, so every row of a contiguous tensor would
    /// straddle one more line than it needs: the CPU kernels ran 1.03-1.5x slower on such rows (neighborhood 2-D 7x7
    /// and 1-D, bench/results/cpu.md, stop 15).
    /// </summary>
    private static unsafe Memory<T> LineAligned<T>(int length) where T : unmanaged
    {
        int pad = 64 / sizeof(T);
        var array = GC.AllocateArray<T>(checked(length + pad), pinned: true);
        nint address = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(array));
        int start = (int)((64 - (address & 63)) & 63) / sizeof(T);
        return new Memory<T>(array, start, length);
    }

    /// <summary>Copies <paramref name="source"/> into <paramref name="destination"/>.</summary>
    /// <exception cref="ArgumentException">Shapes or element types differ, or the destination has overlapping elements.</exception>
    public static void Copy(in TensorView source, in TensorView destination)
    {
        source.ThrowIfDefault();
        destination.ThrowIfDefault();
        source.Storage!.ThrowIfDisposed();
        destination.Storage!.ThrowIfDisposed();
        if (!source.Shape.SequenceEqual(destination.Shape))
            throw new ArgumentException($"destination has shape {TensorView.Format(destination.Shape)}; source has {TensorView.Format(source.Shape)}.", nameof(destination));
        if (source.ElementType != destination.ElementType)
            throw new ArgumentException($"destination stores {destination.ElementType}; source stores {source.ElementType}.", nameof(destination));
        if (!destination.HasNonOverlappingElements)
            throw new ArgumentException("destination has overlapping elements.", nameof(destination));
        if (source.ElementCount == 0) return;

        if (source.IsContiguous && destination.IsContiguous)
        {
            int size = source.ElementType.SizeOf();
            var bytes = new byte[source.ElementCount * size];
            ReadRange(source, source.Offset, bytes);
            WriteRange(destination, destination.Offset, bytes);
            return;
        }
        // Strided: bring both spans to the host, copy element by element there, write the destination span back.
        var src = HostImage(source);
        var dst = HostImage(destination);
        dst.Image.CopyFrom(src.Image.ToDoubleArray());
        if (destination.Location == MemoryLocation.Device)
            WriteRange(destination, dst.First, dst.Bytes());
    }

    /// <summary>A host view with the same shape and strides over a copy of the device elements the view spans.</summary>
    private static (TensorView Image, long First, Func<byte[]> Bytes) HostImage(in TensorView view)
    {
        if (view.Location == MemoryLocation.Host) return (view, 0, () => []);
        var (first, last) = Span(view);
        var bytes = new byte[(last - first + 1) * view.ElementType.SizeOf()];
        ReadRange(view, first, bytes);
        return view.ElementType switch
        {
            ElementType.Float32 => Image<float>(view, first, bytes),
            ElementType.Float16 => Image<Half>(view, first, bytes),
            _ => Image<BFloat16>(view, first, bytes),
        };
    }

    private static (TensorView, long, Func<byte[]>) Image<T>(in TensorView view, long first, byte[] bytes) where T : unmanaged
    {
        var elements = MemoryMarshal.Cast<byte, T>(bytes).ToArray();
        var image = TensorView.FromMemory<T>(elements, view.Shape, view.Strides, view.Offset - first);
        return (image, first, () => MemoryMarshal.AsBytes(elements.AsSpan()).ToArray());
    }

    private static (long First, long Last) Span(in TensorView view)
    {
        long last = view.Offset;
        for (int i = 0; i < view.Rank; i++) last += (long)(view.Shape[i] - 1) * view.Strides[i];
        return (view.Offset, last);
    }

    private static unsafe void ReadRange(in TensorView view, long firstElement, Span<byte> destination)
    {
        int size = view.ElementType.SizeOf();
        if (view.Storage is DeviceBuffer buffer)
        {
            buffer.ReadBytesAt(buffer.ByteOffset + firstElement * size, destination);
            return;
        }
        using var pin = view.Storage!.Pin();
        new ReadOnlySpan<byte>((byte*)pin.Pointer + firstElement * size, destination.Length).CopyTo(destination);
    }

    private static unsafe void WriteRange(in TensorView view, long firstElement, ReadOnlySpan<byte> source)
    {
        int size = view.ElementType.SizeOf();
        if (view.Storage is DeviceBuffer buffer)
        {
            buffer.WriteBytesAt(buffer.ByteOffset + firstElement * size, source);
            return;
        }
        using var pin = view.Storage!.Pin();
        source.CopyTo(new Span<byte>((byte*)pin.Pointer + firstElement * size, source.Length));
    }
}
