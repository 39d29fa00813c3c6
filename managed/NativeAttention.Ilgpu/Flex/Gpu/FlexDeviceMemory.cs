// ILGPU array views of NativeAttention device tensors: the views a score or mask modification's fields hold on a CUDA or
// OpenCL context of this library (ILGPU's own OpenCL accelerator refuses PoCL, and its CUDA accelerator works in a
// context of its own), and the views the flex kernels' own arguments hold. The kernels never run through ILGPU's
// runtime: FlexArguments turns each view back into its device buffer when it marshals the arguments.
using ILGPU;
using ILGPU.Runtime;
using NativeAttention.Gpu;

namespace NativeAttention.Ilgpu.Flex.Gpu;

/// <summary>
/// An ILGPU memory buffer that stands for a NativeAttention <see cref="DeviceBuffer"/> (no accelerator of ILGPU's):
/// an <see cref="ArrayView{T}"/> of it is only for fields of modifications passed to the flex kernels of the context
/// that owns <see cref="Device"/>. Copies and fills through ILGPU are not supported.
/// </summary>
internal sealed class FlexDeviceMemory : MemoryBuffer
{
    private FlexDeviceMemory(DeviceBuffer device, long length, int elementSize) : base(null!, length, elementSize) => Device = device;

    /// <summary>The device buffer this memory stands for.</summary>
    public DeviceBuffer Device { get; }

    /// <summary>
    /// A view of the elements of <paramref name="tensor"/>, a contiguous tensor in a device buffer of a GPU context,
    /// from its first element to its last; its type must be <typeparamref name="T"/>'s (float for Float32, int for Int32).
    /// </summary>
    /// <exception cref="ArgumentException">The tensor is not in a device buffer, not contiguous, or of another element size.</exception>
    public static ArrayView<T> View<T>(in TensorView tensor, string name = "tensor") where T : unmanaged
    {
        if (tensor.Storage is not DeviceBuffer buffer)
            throw new ArgumentException($"{name} is not in a device buffer of a CUDA or OpenCL context.", name);
        if (!tensor.IsContiguous)
            throw new ArgumentException($"{name} is not contiguous; a modification's view field reads its elements in order.", name);
        int size = System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        if (tensor.ElementType.SizeOf() != size)
            throw new ArgumentException($"{name} holds {tensor.ElementType} elements; a view of {typeof(T).Name} needs {size}-byte elements.", name);
        var memory = new FlexDeviceMemory(buffer, buffer.Length, size);
        return tensor.ElementCount == 0 ? default : memory.AsArrayView<T>(tensor.Offset, tensor.ElementCount);
    }

    /// <summary>A view of all of <paramref name="buffer"/>, for the kernels' own arguments.</summary>
    public static ArrayView<T> Whole<T>(DeviceBuffer? buffer) where T : unmanaged =>
        buffer is null || buffer.Length == 0 ? default
            : new FlexDeviceMemory(buffer, buffer.Length, System.Runtime.CompilerServices.Unsafe.SizeOf<T>()).AsArrayView<T>(0, buffer.Length);

    protected override void MemSet(AcceleratorStream stream, byte value, in ArrayView<byte> targetView) => throw Unsupported();
    protected override void CopyTo(AcceleratorStream stream, in ArrayView<byte> sourceView, in ArrayView<byte> targetView) => throw Unsupported();
    protected override void CopyFrom(AcceleratorStream stream, in ArrayView<byte> sourceView, in ArrayView<byte> targetView) => throw Unsupported();
    protected override void DisposeAcceleratorObject(bool disposing) { }

    private static NotSupportedException Unsupported() =>
        new("A view of a NativeAttention device tensor is only read by flex kernels; copy through the TensorView or its DeviceBuffer.");
}
