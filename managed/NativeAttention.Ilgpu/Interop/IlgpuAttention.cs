// NativeAttention on an ILGPU accelerator: a context on the accelerator's memory and stream, and ArrayViews as tensors.
using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;
using NativeAttention.Gpu;
using NativeAttention.Gpu.Cuda;
using NativeAttention.Gpu.OpenCl;
using NativeAttention.Ilgpu.Interop;

namespace NativeAttention.Ilgpu;

/// <summary>
/// Runs NativeAttention's kernels on an ILGPU <see cref="ILGPU.Runtime.Accelerator"/>'s memory and stream, with no
/// copies. <see cref="Context"/> is an ordinary <see cref="AttentionContext"/>, and <see cref="View{T}(ArrayView{T}, ReadOnlySpan{int})"/>
/// turns the accelerator's <see cref="ArrayView{T}"/>s into <see cref="TensorView"/>s over the same memory:
/// <list type="bullet">
/// <item>a <see cref="CPUAccelerator"/>: the CPU backend, reading and writing the buffers' host memory in place;</item>
/// <item>a <see cref="CudaAccelerator"/>: the CUDA backend inside ILGPU's own CUDA context (not the primary one),
/// launching on the given <see cref="CudaStream"/>, on buffers that wrap ILGPU's device pointers;</item>
/// <item>a <see cref="CLAccelerator"/>: the OpenCL backend on ILGPU's <c>cl_context</c>, enqueueing on the given
/// <see cref="CLStream"/>'s command queue, on buffers that wrap ILGPU's <c>cl_mem</c> objects.</item>
/// </list>
/// Ordering: on CUDA and OpenCL every kernel and transfer of <see cref="Context"/> goes on <see cref="Stream"/>, so it
/// runs after the work the caller queued there before and before the work queued after, with no synchronisation;
/// work on other streams needs the caller's own events. On the CPU accelerator, ILGPU's launches and this context's
/// calls both finish before they return, so calls made in program order run in that order.
/// <para>
/// Misuse is caught before any native call: a view of another accelerator (<see cref="ArgumentException"/>), a disposed
/// ILGPU buffer (<see cref="ObjectDisposedException"/>, also when it is disposed after the view was made), an element
/// type other than float, Half (<see cref="System.Half"/> or <see cref="ILGPU.Half"/>) or <see cref="BFloat16"/>, a
/// shape that reaches past the view, and a reshape or index array of a view that is not contiguous.
/// </para>
/// Disposing this object disposes <see cref="Context"/>; the accelerator, the stream and the buffers stay ILGPU's.
/// </summary>
public sealed class IlgpuAttention : IDisposable
{
    // One wrapper per ILGPU buffer and element type, so that views of one buffer share a root and overlap checks see them.
    private readonly ConditionalWeakTable<MemoryBuffer, DeviceBuffer?[]> _wrappers = [];
    private readonly Lock _wrapperLock = new();
    private int _disposed;

    private IlgpuAttention(Accelerator accelerator, AcceleratorStream stream, AttentionContext context)
    {
        Accelerator = accelerator;
        Stream = stream;
        Context = context;
    }

    /// <summary>
    /// Creates a context on <paramref name="accelerator"/> that runs on <paramref name="stream"/> (the accelerator's
    /// default stream when null).
    /// </summary>
    /// <param name="accelerator">A CPU, CUDA or OpenCL accelerator of ILGPU.</param>
    /// <param name="stream">A stream of <paramref name="accelerator"/>; null for its <see cref="Accelerator.DefaultStream"/>.</param>
    /// <param name="options">Options of the context; <see cref="ContextOptions.Threads"/> is used on the CPU accelerator,
    /// <see cref="ContextOptions.Device"/> is ignored (the accelerator names the device).</param>
    /// <exception cref="ArgumentException">The stream belongs to another accelerator.</exception>
    /// <exception cref="ObjectDisposedException">The accelerator or the stream was disposed.</exception>
    /// <exception cref="NotSupportedException">The accelerator is of another kind, or its backend is not available here.</exception>
    public static IlgpuAttention Create(Accelerator accelerator, AcceleratorStream? stream = null, ContextOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        ObjectDisposedException.ThrowIf(accelerator.IsDisposed, accelerator);
        stream ??= accelerator.DefaultStream;
        if (!ReferenceEquals(stream.Accelerator, accelerator))
            throw new ArgumentException($"The stream belongs to accelerator '{stream.Accelerator.Name}', not to '{accelerator.Name}'.", nameof(stream));
        ObjectDisposedException.ThrowIf(stream.IsDisposed, stream);
        AttentionContext context = (accelerator, stream) switch
        {
            (CPUAccelerator, _) => new Cpu.CpuContext(options ?? new ContextOptions()),
            (CudaAccelerator cuda, CudaStream cudaStream) => FromCuda(cuda, cudaStream),
            (CLAccelerator, CLStream clStream) => OpenClContext.FromQueue(clStream.CommandQueue),
            _ => throw new NotSupportedException(
                $"Accelerator '{accelerator.Name}' is a {accelerator.AcceleratorType} accelerator with a {stream.GetType().Name}; NativeAttention runs on ILGPU's CPU, CUDA and OpenCL accelerators."),
        };
        var created = new IlgpuAttention(accelerator, stream, context);
        Created.AddOrUpdate(context, created);
        return created;
    }

    // The IlgpuAttention each context was created by, so that Flex can accept views of its accelerator's buffers.
    private static readonly ConditionalWeakTable<AttentionContext, IlgpuAttention> Created = [];

    /// <summary>The <see cref="IlgpuAttention"/> whose <see cref="Context"/> is <paramref name="context"/>, or null.</summary>
    internal static IlgpuAttention? Of(AttentionContext context) => Created.TryGetValue(context, out var owner) ? owner : null;

    /// <summary>
    /// The device buffer of this context that wraps all of <paramref name="buffer"/>, a CUDA or OpenCL buffer of
    /// <see cref="Accelerator"/> (the one every tensor view of it shares), for a view field of a flex modification.
    /// </summary>
    internal DeviceBuffer DeviceBufferOf(MemoryBuffer buffer, string name)
    {
        ThrowIfDisposed();
        return (DeviceBuffer)Storage(buffer, buffer.LengthInBytes >= sizeof(float) ? ElementType.Float32 : ElementType.Float16, name);
    }

    /// <summary>
    /// Our CUDA context in ILGPU's context, on its stream. ILGPU remembers per thread which accelerator it made current
    /// and skips the switch when asked for that one again; our context switches the thread to ILGPU's context before
    /// every driver call, so it binds the accelerator there too (a no-op when it already is), keeping ILGPU's record true
    /// when one thread drives several CUDA accelerators.
    /// </summary>
    private static CudaContext FromCuda(CudaAccelerator accelerator, CudaStream stream)
    {
        var context = CudaContext.FromContext(accelerator.NativePtr, stream.StreamPtr);
        context.BeforeMakeCurrent = () =>
        {
            ObjectDisposedException.ThrowIf(accelerator.IsDisposed, accelerator);
            accelerator.Bind();
        };
        accelerator.Bind();
        return context;
    }

    /// <summary>The ILGPU accelerator whose memory the views address.</summary>
    public Accelerator Accelerator { get; }

    /// <summary>The stream <see cref="Context"/> runs on (CUDA and OpenCL; the CPU accelerator's streams do nothing).</summary>
    public AcceleratorStream Stream { get; }

    /// <summary>
    /// The context that runs the kernels: the CPU backend for a CPU accelerator, a <see cref="CudaContext"/> or an
    /// <see cref="OpenClContext"/> otherwise. Call any family on it with views from <see cref="View{T}(ArrayView{T}, ReadOnlySpan{int})"/>.
    /// </summary>
    public AttentionContext Context { get; }

    /// <summary>A row-major contiguous tensor of shape <paramref name="shape"/> over the first elements of <paramref name="view"/>.</summary>
    /// <exception cref="ArgumentException">The view belongs to another accelerator, its element type is not taken, or the shape holds more elements than the view.</exception>
    /// <exception cref="ObjectDisposedException">The view's buffer or this object was disposed.</exception>
    public TensorView View<T>(ArrayView<T> view, params ReadOnlySpan<int> shape) where T : unmanaged =>
        Wrap(view, shape, TensorView.ContiguousStrides(shape), 0, nameof(view));

    /// <summary>A row-major contiguous tensor over the first elements of a dense 1-D view (what <c>buffer.View</c> gives).</summary>
    /// <exception cref="ArgumentException">As for <see cref="View{T}(ArrayView{T}, ReadOnlySpan{int})"/>.</exception>
    /// <exception cref="ObjectDisposedException">The view's buffer or this object was disposed.</exception>
    public TensorView View<T>(ArrayView1D<T, Stride1D.Dense> view, params ReadOnlySpan<int> shape) where T : unmanaged =>
        Wrap(view.BaseView, shape, TensorView.ContiguousStrides(shape), 0, nameof(view));

    /// <summary>A row-major contiguous tensor over the first elements of a 1-D buffer: <c>View(q, B, H, N, D)</c>.</summary>
    /// <exception cref="ArgumentException">As for <see cref="View{T}(ArrayView{T}, ReadOnlySpan{int})"/>.</exception>
    /// <exception cref="ObjectDisposedException">The buffer or this object was disposed.</exception>
    public TensorView View<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer, params ReadOnlySpan<int> shape) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(buffer);
        ObjectDisposedException.ThrowIf(buffer.IsDisposed, buffer);
        return Wrap(buffer.View.BaseView, shape, TensorView.ContiguousStrides(shape), 0, nameof(buffer));
    }

    /// <summary>
    /// A strided tensor over <paramref name="view"/>: element <c>(i0, i1, ...)</c> is <c>view[offset + sum(i_k * strides[k])]</c>,
    /// strides in elements. Every element must lie inside <paramref name="view"/> (not merely inside its buffer).
    /// </summary>
    /// <exception cref="ArgumentException">The view belongs to another accelerator, its element type is not taken, a size or stride is negative, or the tensor reaches past the view.</exception>
    /// <exception cref="ObjectDisposedException">The view's buffer or this object was disposed.</exception>
    public TensorView View<T>(ArrayView<T> view, ReadOnlySpan<int> shape, ReadOnlySpan<long> strides, long offset = 0) where T : unmanaged =>
        Wrap(view, shape, strides, offset, nameof(view));

    /// <summary>A rank-1 tensor <c>[X]</c> with the view's stride (a general stride may step over elements).</summary>
    /// <exception cref="ArgumentException">As for <see cref="View{T}(ArrayView{T}, ReadOnlySpan{int})"/>.</exception>
    /// <exception cref="ObjectDisposedException">The view's buffer or this object was disposed.</exception>
    public TensorView View<T, TStride>(ArrayView1D<T, TStride> view) where T : unmanaged where TStride : struct, IStride1D =>
        Wrap(view.BaseView, [Extent(view.Extent.X, "X", nameof(view))], [view.Stride.XStride], 0, nameof(view));

    /// <summary>
    /// A rank-2 tensor <c>[Y, X]</c> (ILGPU's axes reversed, so that a <see cref="Stride2D.DenseX"/> view, X contiguous, is
    /// row-major) with strides <c>[YStride, XStride]</c>; pitched and transposed views keep their strides.
    /// </summary>
    /// <exception cref="ArgumentException">As for <see cref="View{T}(ArrayView{T}, ReadOnlySpan{int})"/>.</exception>
    /// <exception cref="ObjectDisposedException">The view's buffer or this object was disposed.</exception>
    public TensorView View<T, TStride>(ArrayView2D<T, TStride> view) where T : unmanaged where TStride : struct, IStride2D =>
        Wrap(view.BaseView, [Extent(view.Extent.Y, "Y", nameof(view)), Extent(view.Extent.X, "X", nameof(view))],
            [view.Stride.YStride, view.Stride.XStride], 0, nameof(view));

    /// <summary>
    /// A rank-3 tensor <c>[Z, Y, X]</c> (ILGPU's axes reversed, so that a <see cref="Stride3D.DenseXY"/> view is row-major)
    /// with strides <c>[ZStride, YStride, XStride]</c>.
    /// </summary>
    /// <exception cref="ArgumentException">As for <see cref="View{T}(ArrayView{T}, ReadOnlySpan{int})"/>.</exception>
    /// <exception cref="ObjectDisposedException">The view's buffer or this object was disposed.</exception>
    public TensorView View<T, TStride>(ArrayView3D<T, TStride> view) where T : unmanaged where TStride : struct, IStride3D =>
        Wrap(view.BaseView,
            [Extent(view.Extent.Z, "Z", nameof(view)), Extent(view.Extent.Y, "Y", nameof(view)), Extent(view.Extent.X, "X", nameof(view))],
            [view.Stride.ZStride, view.Stride.YStride, view.Stride.XStride], 0, nameof(view));

    /// <summary>
    /// A 2-D or 3-D view's elements as a row-major contiguous tensor of another shape (e.g. a <c>[B*H*N, D]</c> 2-D buffer
    /// as <c>[B, H, N, D]</c>): the view must be dense, its elements back to back in <c>[.., Y, X]</c> order.
    /// </summary>
    /// <exception cref="ArgumentException">The view is not contiguous (pitched, transposed or a strided sub-view), the shape
    /// does not hold exactly the view's elements, or as for <see cref="View{T}(ArrayView{T}, ReadOnlySpan{int})"/>.</exception>
    /// <exception cref="ObjectDisposedException">The view's buffer or this object was disposed.</exception>
    public TensorView View<T, TStride>(ArrayView2D<T, TStride> view, params ReadOnlySpan<int> shape) where T : unmanaged where TStride : struct, IStride2D =>
        Reshape(View(view), shape, nameof(view));

    /// <inheritdoc cref="View{T, TStride}(ArrayView2D{T, TStride}, ReadOnlySpan{int})"/>
    public TensorView View<T, TStride>(ArrayView3D<T, TStride> view, params ReadOnlySpan<int> shape) where T : unmanaged where TStride : struct, IStride3D =>
        Reshape(View(view), shape, nameof(view));

    /// <summary>
    /// An index array (cumulative sequence lengths, cache lengths, a block table, block-mask counts and indices) for the
    /// options that take <see cref="ReadOnlyMemory{T}"/> of int. Every family reads those on the host before it launches,
    /// so on the CPU accelerator the result is the buffer's own memory (no copy; valid while the buffer is), while on a
    /// GPU accelerator the values are copied to a new host array after the work queued on <see cref="Stream"/> so far.
    /// </summary>
    /// <exception cref="ArgumentException">The view belongs to another accelerator, or it is not contiguous.</exception>
    /// <exception cref="ObjectDisposedException">The view's buffer or this object was disposed.</exception>
    public ReadOnlyMemory<int> Indices(ArrayView<int> view)
    {
        ThrowIfDisposed();
        var buffer = BufferOf(view, nameof(view));
        if (view.Length == 0) return ReadOnlyMemory<int>.Empty;
        if (view.Length > int.MaxValue)
            throw new ArgumentException($"The index view holds {view.Length} elements; at most {int.MaxValue} fit an index array.", nameof(view));
        if (Accelerator is CPUAccelerator)
            return new IlgpuHostMemory<int>(buffer, ((IContiguousArrayView)view).Index, (int)view.Length).Memory;
        var copy = new int[view.Length];
        view.CopyToCPU(Stream, copy);
        return copy;
    }

    /// <summary>An index array from a 1-D view, which must be dense (stride 1); see <see cref="Indices(ArrayView{int})"/>.</summary>
    /// <exception cref="ArgumentException">The view's stride is not 1, or as for <see cref="Indices(ArrayView{int})"/>.</exception>
    /// <exception cref="ObjectDisposedException">The view's buffer or this object was disposed.</exception>
    public ReadOnlyMemory<int> Indices<TStride>(ArrayView1D<int, TStride> view) where TStride : struct, IStride1D
    {
        if (view.Extent.X > 1 && view.Stride.XStride != 1)
            throw new ArgumentException($"The index view has stride {view.Stride.XStride}; an index array must be contiguous (stride 1).", nameof(view));
        return Indices(view.BaseView.SubView(0, view.Extent.X));
    }

    /// <summary>
    /// Disposes <see cref="Context"/> (its compiled kernels and scratch); ILGPU's accelerator, stream and buffers are
    /// untouched. Dispose this before the accelerator.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        // Disposed after a CUDA accelerator: ILGPU destroyed its context and, with it, every module and allocation of ours
        // in it; the driver would refuse the context, and there is nothing left to release.
        if (Context is CudaContext && Accelerator.IsDisposed) return;
        Context.Dispose();
    }

    private void ThrowIfDisposed()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        ObjectDisposedException.ThrowIf(Accelerator.IsDisposed, Accelerator);
    }

    private TensorView Wrap<T>(ArrayView<T> view, ReadOnlySpan<int> shape, ReadOnlySpan<long> strides, long offset, string name) where T : unmanaged
    {
        ThrowIfDisposed();
        var type = ElementTypeOf<T>(name);
        var buffer = BufferOf(view, name);
        if (offset < 0)
            throw new ArgumentOutOfRangeException(nameof(offset), offset, "The element offset must be non-negative.");
        CheckInsideView(view.Length, shape, strides, offset, name);
        // Element 0 of the view is element Index of the buffer, counted in T (ILGPU keeps Index in the view's element size).
        long index = ((IContiguousArrayView)view).Index;
        return new TensorView(Storage(buffer, type, name), shape, strides, index + offset);
    }

    /// <summary>
    /// Throws naming <paramref name="name"/> when a well-formed tensor reaches past the ILGPU view (which may be a sub-view
    /// of a larger buffer); malformed shapes and strides are left to <see cref="TensorView"/>'s own checks.
    /// </summary>
    private static void CheckInsideView(long viewLength, ReadOnlySpan<int> shape, ReadOnlySpan<long> strides, long offset, string name)
    {
        if (shape.Length != strides.Length) return;
        long last = offset;
        for (int i = 0; i < shape.Length; i++)
        {
            if (shape[i] < 0 || strides[i] < 0) return;
            if (shape[i] == 0) return;
        }
        try
        {
            for (int i = 0; i < shape.Length; i++) last = checked(last + (shape[i] - 1) * strides[i]);
        }
        catch (OverflowException)
        {
            last = long.MaxValue;
        }
        if (last >= viewLength)
            throw new ArgumentException(
                $"A tensor of shape [{string.Join(", ", shape.ToArray())}] with strides [{string.Join(", ", strides.ToArray())}] at offset {offset} reaches element {last} of {name}, which holds {viewLength}.",
                name);
    }

    /// <summary>The view's ILGPU buffer, after checking that it is valid, alive and this accelerator's.</summary>
    private MemoryBuffer BufferOf<T>(ArrayView<T> view, string name) where T : unmanaged
    {
        var buffer = ((IArrayView)view).Buffer
            ?? throw new ArgumentException($"{name} is an empty ArrayView<{typeof(T).Name}> with no buffer.", name);
        ObjectDisposedException.ThrowIf(buffer.IsDisposed, buffer);
        if (!ReferenceEquals(buffer.Accelerator, Accelerator))
            throw new ArgumentException(
                $"{name} is memory of accelerator '{buffer.Accelerator.Name}' ({buffer.AcceleratorType}); this context runs on '{Accelerator.Name}' ({Accelerator.AcceleratorType}). Copy it to this accelerator first.",
                name);
        return buffer;
    }

    /// <summary>The tensor storage of <paramref name="buffer"/> as <paramref name="type"/> elements: host storage on the CPU accelerator, a wrapping device buffer otherwise.</summary>
    private TensorStorage Storage(MemoryBuffer buffer, ElementType type, string name)
    {
        if (Context.TensorLocation == MemoryLocation.Host) return new IlgpuHostStorage(buffer, type);
        if (buffer is CPUMemoryBuffer)
            throw new ArgumentException(
                $"{name} is host memory of accelerator '{Accelerator.Name}' (a page-locked or CPU buffer); the {Context.Backend} backend reads tensors from the accelerator's device memory.",
                name);
        if (buffer.LengthInBytes < type.SizeOf())
            throw new ArgumentException($"{name} is in an ILGPU buffer of {buffer.LengthInBytes} bytes, too small for one {type} element.", name);
        lock (_wrapperLock)
        {
            var byType = _wrappers.GetValue(buffer, static _ => new DeviceBuffer?[3]);
            if (byType[(int)type] is { } existing) return existing;
            long length = buffer.LengthInBytes / type.SizeOf();
            DeviceBuffer wrapper = Context switch
            {
                CudaContext cuda => cuda.WrapBuffer(buffer.NativePtr, type, length),
                OpenClContext openCl => openCl.WrapBuffer(buffer.NativePtr, type, length),
                _ => throw new InvalidOperationException($"Unexpected context {Context.GetType().Name}."),
            };
            wrapper.ObserveOwnerRelease(() => buffer.IsDisposed);
            byType[(int)type] = wrapper;
            return wrapper;
        }
    }

    private static ElementType ElementTypeOf<T>(string name) where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return ElementType.Float32;
        if (typeof(T) == typeof(System.Half) || typeof(T) == typeof(ILGPU.Half)) return ElementType.Float16;
        if (typeof(T) == typeof(BFloat16)) return ElementType.BFloat16;
        throw new ArgumentException(
            $"{name} holds {typeof(T).FullName} elements; a tensor holds float, System.Half or ILGPU.Half, or NativeAttention.BFloat16 (index arrays of int go through Indices).",
            name);
    }

    private static int Extent(long extent, string axis, string name) =>
        extent <= int.MaxValue ? (int)extent
            : throw new ArgumentException($"{name} has {extent} elements along {axis}; a tensor axis holds at most {int.MaxValue}.", name);

    private static TensorView Reshape(TensorView tensor, ReadOnlySpan<int> shape, string name)
    {
        if (!tensor.IsContiguous)
            throw new ArgumentException(
                $"{name} ({tensor}) is not contiguous, so it cannot be reshaped; pass it without a shape to keep its strides, or copy it to a dense view.", name);
        long count = 1;
        foreach (int s in shape) count *= s;
        if (count != tensor.ElementCount)
            throw new ArgumentException($"{name} holds {tensor.ElementCount} elements; shape [{string.Join(", ", shape.ToArray())}] holds {count}.", name);
        return tensor.Reshape(shape);
    }
}
