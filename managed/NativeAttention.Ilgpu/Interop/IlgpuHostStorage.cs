// Host tensor storage over the memory of an ILGPU CPU accelerator buffer: the CPU backend reads and writes it in place.
using System.Buffers;
using ILGPU.Runtime;

namespace NativeAttention.Ilgpu.Interop;

/// <summary>
/// The elements of an ILGPU <see cref="MemoryBuffer"/> that lives in host memory (a CPU accelerator's buffer), seen as
/// <see cref="ElementType"/> elements from the buffer's first byte. ILGPU owns the memory: once it disposes the buffer,
/// every view of this storage throws <see cref="ObjectDisposedException"/> instead of touching freed memory.
/// </summary>
internal sealed unsafe class IlgpuHostStorage : TensorStorage
{
    private readonly MemoryBuffer _buffer;

    public IlgpuHostStorage(MemoryBuffer buffer, ElementType type)
    {
        _buffer = buffer;
        ElementType = type;
        Length = buffer.LengthInBytes / type.SizeOf();
    }

    public override ElementType ElementType { get; }
    public override long Length { get; }
    public override MemoryLocation Location => MemoryLocation.Host;

    /// <summary>The ILGPU buffer, so that every view of one buffer (any element type, any offset) is checked for overlap against the others.</summary>
    internal override (object Allocation, long ByteOffset) Identity => (_buffer, 0);

    internal override void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_buffer.IsDisposed, _buffer);

    internal override MemoryHandle Pin()
    {
        ThrowIfDisposed();
        return new MemoryHandle((void*)_buffer.NativePtr);
    }
}
