// The public way to give a score or mask modification a view field of a NativeAttention tensor, on every backend.
using ILGPU;
using NativeAttention.Gpu;
using NativeAttention.Ilgpu.Flex;
using NativeAttention.Ilgpu.Flex.Gpu;

namespace NativeAttention.Ilgpu;

/// <summary>
/// ILGPU <see cref="ArrayView{T}"/>s of NativeAttention tensors, for the fields of Flex score and mask modifications
/// (document ids, bias tables, per-head slopes) that run unchanged on the CPU, OpenCL and CUDA:
/// <code>var mask = new DocumentMask { Ids = FlexViews.Of&lt;int&gt;(context.Upload(ids)), ... };</code>
/// A view of a host tensor is read in place by the CPU kernel (the tensor's memory stays pinned while the view is
/// reachable); a view of a device tensor of a CUDA or OpenCL context is passed to that context's flex kernels. Int
/// tables live in Float32 tensors (same element size) holding the ints' bit patterns.
/// </summary>
/// <remarks>
/// <see cref="FlexAttention.Flex{TScore, TMask}"/> and <see cref="FlexAttention.CreateBlockMask{TMask}"/> check every
/// view field before anything runs: a view of a host tensor given to a CUDA or OpenCL context, a view of a device
/// tensor given to the CPU, or a view of another context's device tensor throws an <see cref="ArgumentException"/>
/// whose <see cref="ArgumentException.ParamName"/> is <c>scoreMod</c> or <c>maskMod</c> and whose message names the
/// field. Views of an ILGPU accelerator's own buffers work too, on the context <see cref="IlgpuAttention"/> created from
/// that accelerator. ILGPU's view indexer asserts its bounds with <c>Trace.Assert</c>; on the CPU, Flex puts a trace
/// listener ahead of the default one that turns such an assertion inside a Flex call into an exception, so a read out
/// of range ends the call with a <see cref="FlexModificationException"/> naming the struct, as an array read does (an
/// application that removes that listener gets the default behaviour back: the process ends). On CUDA and OpenCL the flex
/// kernels check every <c>ArrayView&lt;T&gt;</c> indexer read a modification makes: a read out of range gives the view's
/// nearest element (nothing outside it is read), and the call then throws a <see cref="FlexModificationException"/>
/// naming the struct, the view and the index (the host waits for the kernel to read the result, so a call with view
/// fields on a GPU context returns when the device is done).
/// </remarks>
public static class FlexViews
{
    /// <summary>
    /// A view of the elements of <paramref name="tensor"/>, in order, from its first to its last: a contiguous host tensor
    /// (for a CPU context) or a contiguous device tensor of a CUDA or OpenCL context (for that context). Its element
    /// size must be <typeparamref name="T"/>'s: float or int for Float32, Half or ushort for Float16 and BFloat16.
    /// </summary>
    /// <param name="tensor">The tensor the view reads; it must outlive every call that reads the view.</param>
    /// <exception cref="ArgumentException"><paramref name="tensor"/> has no storage, is not contiguous, or holds elements of another size.</exception>
    /// <exception cref="ObjectDisposedException">The tensor's storage was disposed.</exception>
    public static ArrayView<T> Of<T>(in TensorView tensor) where T : unmanaged
    {
        var storage = tensor.Storage ?? throw new ArgumentException("tensor has no storage (a default TensorView).", nameof(tensor));
        storage.ThrowIfDisposed();
        if (!tensor.IsContiguous)
            throw new ArgumentException($"tensor ({tensor}) is not contiguous; a modification's view field reads its elements in order. Copy it to a contiguous tensor first.", nameof(tensor));
        int size = System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        if (tensor.ElementType.SizeOf() != size)
            throw new ArgumentException($"tensor holds {tensor.ElementType} elements ({tensor.ElementType.SizeOf()} bytes); a view of {typeof(T).Name} needs {size}-byte elements.", nameof(tensor));
        if (storage is DeviceBuffer) return FlexDeviceMemory.View<T>(tensor, nameof(tensor));
        if (storage.Location != MemoryLocation.Host)
            throw new ArgumentException($"tensor is in {storage.Location} memory that is neither host memory nor a device buffer of a CUDA or OpenCL context.", nameof(tensor));
        if (tensor.ElementCount == 0) return default;
        return new FlexHostMemory(storage, size).AsArrayView<T>(tensor.Offset, tensor.ElementCount);
    }
}
