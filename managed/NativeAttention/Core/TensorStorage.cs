// What a tensor view points into: host memory (managed or native) or a device buffer.
using System.Buffers;
using System.Runtime.InteropServices;

namespace NativeAttention;

/// <summary>Where a tensor's elements live.</summary>
public enum MemoryLocation
{
    /// <summary>Ordinary host memory, readable by the CPU backend.</summary>
    Host,
    /// <summary>Memory of an OpenCL or CUDA device.</summary>
    Device,
}

/// <summary>
/// A run of elements a <see cref="TensorView"/> addresses. Host storage wraps a <see cref="Memory{T}"/>
/// or a native pointer; device storage is a buffer of a GPU backend.
/// </summary>
public abstract class TensorStorage
{
    /// <summary>The element type stored.</summary>
    public abstract ElementType ElementType { get; }

    /// <summary>Number of addressable elements.</summary>
    public abstract long Length { get; }

    /// <summary>Host or device.</summary>
    public abstract MemoryLocation Location { get; }

    /// <summary>
    /// Identifies the allocation this storage belongs to, and its byte offset inside it, so that two
    /// views can be checked for overlap (an output must not alias an input).
    /// </summary>
    internal abstract (object Allocation, long ByteOffset) Identity { get; }

    /// <summary>Throws <see cref="ObjectDisposedException"/> if the storage was released.</summary>
    internal virtual void ThrowIfDisposed() { }

    /// <summary>Pins host storage and returns its address; device storage throws.</summary>
    internal virtual MemoryHandle Pin() =>
        throw new InvalidOperationException("Device storage cannot be pinned on the host.");
}

/// <summary>Host storage over a <see cref="Memory{T}"/>.</summary>
internal sealed class ManagedStorage<T> : TensorStorage where T : unmanaged
{
    private readonly Memory<T> _memory;
    private readonly object _allocation;
    private readonly long _byteOffset;

    public ManagedStorage(Memory<T> memory)
    {
        _memory = memory;
        ElementType = ElementTypes.Of<T>();
        int size = ElementType.SizeOf();
        if (MemoryMarshal.TryGetArray<T>(memory, out var segment) && segment.Array is not null)
            (_allocation, _byteOffset) = (segment.Array, (long)segment.Offset * size);
        else if (MemoryMarshal.TryGetMemoryManager<T, MemoryManager<T>>(memory, out var manager, out int start, out _))
            (_allocation, _byteOffset) = (manager, (long)start * size);
        else
            (_allocation, _byteOffset) = (new object(), 0);
    }

    public override ElementType ElementType { get; }
    public override long Length => _memory.Length;
    public override MemoryLocation Location => MemoryLocation.Host;
    internal override (object Allocation, long ByteOffset) Identity => (_allocation, _byteOffset);
    internal override MemoryHandle Pin() => _memory.Pin();
}

/// <summary>Host storage over native memory the caller owns and keeps alive.</summary>
internal sealed unsafe class PointerStorage : TensorStorage
{
    private static readonly object NativeAddressSpace = new();
    private readonly void* _pointer;

    public PointerStorage(void* pointer, long length, ElementType type)
    {
        _pointer = pointer;
        Length = length;
        ElementType = type;
    }

    public override ElementType ElementType { get; }
    public override long Length { get; }
    public override MemoryLocation Location => MemoryLocation.Host;
    internal override (object Allocation, long ByteOffset) Identity => (NativeAddressSpace, (long)_pointer);
    internal override MemoryHandle Pin() => new(_pointer);
}
