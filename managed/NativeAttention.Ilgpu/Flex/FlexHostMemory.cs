// ILGPU array views of NativeAttention host tensors: what FlexViews.Of gives a modification's view field on the CPU.
using System.Buffers;
using ILGPU;
using ILGPU.Runtime;

namespace NativeAttention.Ilgpu.Flex;

/// <summary>
/// An ILGPU memory buffer over the host memory of a NativeAttention <see cref="TensorStorage"/> (no accelerator): its
/// <see cref="MemoryBuffer.NativePtr"/> is the storage's first element, pinned while this object lives, so that ILGPU's
/// <see cref="ArrayView{T}"/> indexer reads the tensor in place from managed code, as the CPU flex kernel calls the
/// modifications. Copies and fills through ILGPU are not supported.
/// </summary>
internal sealed unsafe class FlexHostMemory : MemoryBuffer
{
    private MemoryHandle _pin;

    public FlexHostMemory(TensorStorage storage, int elementSize)
        : base(null!, storage.Length * storage.ElementType.SizeOf() / elementSize, elementSize)
    {
        Storage = storage;
        _pin = storage.Pin();
        NativePtr = (IntPtr)_pin.Pointer;
    }

    /// <summary>The tensor storage this memory reads.</summary>
    public TensorStorage Storage { get; }

    ~FlexHostMemory() => _pin.Dispose();

    protected override void MemSet(AcceleratorStream stream, byte value, in ArrayView<byte> targetView) => throw Unsupported();
    protected override void CopyTo(AcceleratorStream stream, in ArrayView<byte> sourceView, in ArrayView<byte> targetView) => throw Unsupported();
    protected override void CopyFrom(AcceleratorStream stream, in ArrayView<byte> sourceView, in ArrayView<byte> targetView) => throw Unsupported();

    // The pin is released by the finalizer: a view that is still reachable keeps this object, and so the pin, alive.
    protected override void DisposeAcceleratorObject(bool disposing) { }

    private static NotSupportedException Unsupported() =>
        new("A view of a NativeAttention host tensor is only read by flex modifications; copy through the TensorView.");
}
