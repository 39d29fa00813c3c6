// A Memory<T> over part of an ILGPU CPU accelerator buffer, for the options that take index arrays as ReadOnlyMemory<int>.
using System.Buffers;
using ILGPU.Runtime;

namespace NativeAttention.Ilgpu.Interop;

/// <summary>
/// <paramref name="length"/> elements of <paramref name="buffer"/> (host memory of a CPU accelerator) from element
/// <paramref name="start"/>, as a <see cref="Memory{T}"/> with no copy. Reading it after ILGPU disposed the buffer throws
/// <see cref="ObjectDisposedException"/> instead of touching freed memory.
/// </summary>
internal sealed unsafe class IlgpuHostMemory<T>(MemoryBuffer buffer, long start, int length) : MemoryManager<T> where T : unmanaged
{
    public override Span<T> GetSpan()
    {
        ObjectDisposedException.ThrowIf(buffer.IsDisposed, buffer);
        return new Span<T>((T*)buffer.NativePtr + start, length);
    }

    public override MemoryHandle Pin(int elementIndex = 0)
    {
        ObjectDisposedException.ThrowIf(buffer.IsDisposed, buffer);
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)elementIndex, (uint)length, nameof(elementIndex));
        return new MemoryHandle((T*)buffer.NativePtr + start + elementIndex);
    }

    public override void Unpin() { }

    protected override void Dispose(bool disposing) { }
}
