// The OpenCL backend's context: one device, one in-order command queue, the compiled-kernel cache, buffers.
using System.Collections.Concurrent;
using NativeAttention.Interop.OpenCl;
using static NativeAttention.Interop.OpenCl.OpenClNative;

namespace NativeAttention.Gpu.OpenCl;

/// <summary>
/// Runs attention kernels on one OpenCL device. Tensors must live in <see cref="OpenClBuffer"/>s of this context
/// (allocate with <see cref="AttentionContext.Allocate"/>, <see cref="AllocateBuffer"/>, or wrap a <c>cl_mem</c>
/// with <see cref="WrapBuffer"/>). Kernels are enqueued on <see cref="CommandQueue"/> and run asynchronously;
/// <see cref="Synchronize"/> waits for them.
/// </summary>
public sealed unsafe class OpenClContext : GpuContext
{
    private readonly OpenClContextHandle _context;
    private readonly OpenClDevice _device;
    private readonly ConcurrentDictionary<string, Lazy<OpenClModule>> _modules = new();
    private readonly Lazy<int> _computeUnits;
    private readonly Lazy<long> _localMemory;

    private OpenClContext(OpenClContextHandle context, OpenClQueueHandle queue, OpenClDevice device)
    {
        _context = context;
        Queue = queue;
        _device = device;
        _computeUnits = new(() => OpenClDeviceInfo.ComputeUnits(device.Id));
        _localMemory = new(() => OpenClDeviceInfo.LocalMemoryBytes(device.Id));
    }

    /// <summary>Creates a context and an in-order queue on device <see cref="ContextOptions.Device"/> (an index into every platform's devices).</summary>
    internal static OpenClContext Create(ContextOptions options)
    {
        var (devices, error) = OpenClDevices.All;
        if (error is not null) throw new NotSupportedException("The OpenCl backend is not available: " + error);
        if ((uint)options.Device >= (uint)devices.Count)
            throw new ArgumentOutOfRangeException(nameof(options), options.Device, $"OpenCL has {devices.Count} device(s); Device must be in [0, {devices.Count}).");
        var device = devices[options.Device];
        int status;
        IntPtr id = device.Id;
        var context = clCreateContext(null, 1, &id, IntPtr.Zero, IntPtr.Zero, &status);
        if (status != Success) throw new OpenClException(status, "clCreateContext");
        var queue = clCreateCommandQueue(context, id, 0, &status);
        if (status != Success)
        {
            context.Dispose();
            throw new OpenClException(status, "clCreateCommandQueue");
        }
        return new OpenClContext(context, queue, device);
    }

    /// <summary>
    /// A context that enqueues on <paramref name="commandQueue"/>, a <c>cl_command_queue</c> another library owns;
    /// the queue and its context are used, never released. Buffers of that OpenCL context can be wrapped with
    /// <see cref="WrapBuffer"/>.
    /// </summary>
    /// <exception cref="OpenClException">The handle is not a valid command queue.</exception>
    public static OpenClContext FromQueue(IntPtr commandQueue)
    {
        if (commandQueue == IntPtr.Zero) throw new ArgumentNullException(nameof(commandQueue));
        IntPtr context, queried;
        OpenClException.Check(clGetCommandQueueInfo(commandQueue, QueueContext, (nuint)sizeof(IntPtr), &context, null), "clGetCommandQueueInfo(CONTEXT)");
        OpenClException.Check(clGetCommandQueueInfo(commandQueue, QueueDevice, (nuint)sizeof(IntPtr), &queried, null), "clGetCommandQueueInfo(DEVICE)");
        IntPtr device = queried;
        var known = OpenClDevices.All.Devices.FirstOrDefault(d => d.Id == device)
            ?? new OpenClDevice(IntPtr.Zero, device, OpenClDevices.DeviceString(device, OpenClNative.DeviceName).Trim(), "external", OpenClDevices.DeviceString(device, DriverVersion), false);
        return new OpenClContext(new OpenClContextHandle(context, ownsHandle: false), new OpenClQueueHandle(commandQueue, ownsHandle: false), known);
    }

    /// <inheritdoc/>
    public override Backend Backend => Backend.OpenCl;
    /// <inheritdoc/>
    public override string DeviceName => _device.Name;

    /// <summary>The <c>cl_command_queue</c> kernels are enqueued on.</summary>
    public IntPtr CommandQueue => Queue.DangerousGetHandle();

    internal OpenClQueueHandle Queue { get; }

    /// <summary>Allocates <paramref name="length"/> zero-filled elements on the device.</summary>
    /// <exception cref="OpenClException">The allocation failed.</exception>
    public OpenClBuffer AllocateBuffer(ElementType type, long length)
    {
        ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        int status;
        // OpenCL rejects zero-sized buffers; an empty buffer still gets one element of backing store.
        nuint bytes = (nuint)Math.Max(length * type.SizeOf(), type.SizeOf());
        var memory = clCreateBuffer(_context, MemReadWrite, bytes, null, &status);
        if (status != Success) throw new OpenClException(status, "clCreateBuffer");
        var buffer = new OpenClBuffer(this, memory, type, length);
        Track(buffer);
        buffer.Fill(0);
        return buffer;
    }

    /// <summary>
    /// Wraps <paramref name="memory"/>, a <c>cl_mem</c> of this context owned by another library, without taking
    /// ownership: disposing the wrapper never releases it. <paramref name="length"/> defaults to the whole object.
    /// </summary>
    /// <exception cref="OpenClException">The handle is not a valid memory object.</exception>
    public OpenClBuffer WrapBuffer(IntPtr memory, ElementType type, long length = -1)
    {
        ThrowIfDisposed();
        if (memory == IntPtr.Zero) throw new ArgumentNullException(nameof(memory));
        nuint size;
        OpenClException.Check(clGetMemObjectInfo(memory, MemSize, (nuint)sizeof(nuint), &size, null), "clGetMemObjectInfo(SIZE)");
        long capacity = (long)size / type.SizeOf();
        if (length < 0) length = capacity;
        if (length > capacity)
            throw new ArgumentOutOfRangeException(nameof(length), length, $"The memory object holds {capacity} {type} elements.");
        return new OpenClBuffer(this, new OpenClMemHandle(memory, ownsHandle: false), type, length);
    }

    /// <summary>Waits for every command enqueued on the queue.</summary>
    public override void Synchronize()
    {
        ThrowIfDisposed();
        OpenClException.Check(clFinish(Queue), "clFinish");
    }

    private protected override KernelApi Api => KernelApi.OpenCl;

    private protected override int ComputeUnits => _computeUnits.Value;

    private protected override long LocalMemoryBytes => _localMemory.Value;

    /// <summary>The device this context's kernels are built for.</summary>
    internal OpenClDevice Device => _device;

    private protected override DeviceBuffer AllocateDevice(ElementType type, long length) => AllocateBuffer(type, length);

    private protected override void Launch(string name, Func<string> source, string entryPoint, ReadOnlySpan<DeviceBuffer?> buffers, ReadOnlySpan<byte> parameters,
        int groupsX, int groupsY, int threads, int dynamicSharedBytes)
    {
        // Shared memory is static in the OpenCL kernels: dynamicSharedBytes matters to CUDA's tensor-core kernels only.
        var module = Module(name, source, entryPoint);
        Span<IntPtr> memory = stackalloc IntPtr[buffers.Length];
        for (int i = 0; i < buffers.Length; i++) memory[i] = buffers[i] is OpenClBuffer b ? b.NativeHandle : IntPtr.Zero;
        module.Launch(Queue, memory, parameters, (long)groupsX * threads, groupsY, threads);
    }

    /// <summary>The module for <paramref name="name"/>, built once per context even when several threads ask at once.</summary>
    private OpenClModule Module(string name, Func<string> source, string entryPoint) =>
        _modules.TryGetValue(name, out var module) ? module.Value : AddModule(name, source, entryPoint);

    /// <summary>The first request for a module: in its own method, so the closure exists only then, not on every launch.</summary>
    private OpenClModule AddModule(string name, Func<string> source, string entryPoint) =>
        _modules.GetOrAdd(name, _ => new Lazy<OpenClModule>(() => BuildChecked(name, source(), entryPoint))).Value;

    /// <summary>
    /// Builds a module and refuses it, with a message naming the kernel, when it declares more local memory than the
    /// device has (a launch would otherwise fail with a bare CL_OUT_OF_RESOURCES, or not at all on some drivers).
    /// </summary>
    /// <exception cref="NotSupportedException">The kernel needs more local memory than the device offers.</exception>
    private OpenClModule BuildChecked(string name, string source, string entryPoint)
    {
        var module = OpenClModule.Build(_context, _device, source, entryPoint);
        long needed = module.LocalMemoryBytes(_device), available = ((IGpuKernelHost)this).LocalMemoryBytes;
        if (needed <= available) return module;
        module.Dispose();
        throw new NotSupportedException($"The OpenCL kernel {name} needs {needed} bytes of local memory per work-group; {_device.Name} has {available}.");
    }

    /// <summary>True once the module <paramref name="name"/> was built for a launch; for tests.</summary>
    internal bool HasModule(string name) => _modules.ContainsKey(name);

    /// <summary>Builds a program from raw source (no caching in memory); for tests and tools.</summary>
    internal OpenClModule BuildSource(string source, string entryPoint) => OpenClModule.Build(_context, _device, source, entryPoint);

    /// <inheritdoc/>
    protected override void ReleaseResources()
    {
        base.ReleaseResources();
        DisposeBuilt(_modules);
        Queue.Dispose();
        _context.Dispose();
    }

    /// <summary>The <c>cl_context</c> this context's queue belongs to; buffers of the same <c>cl_context</c> are usable here.</summary>
    internal IntPtr NativeContext => _context.DangerousGetHandle();

    /// <summary>Accepts buffers of this context's <c>cl_context</c>: its own and those of contexts sharing it (<see cref="FromQueue"/>).</summary>
    private protected override void CheckOwner(in TensorView view, string name) =>
        CheckBufferOwner<OpenClBuffer>(view, name, NativeContext, static buffer => buffer.Context.NativeContext,
            " is in a buffer of another OpenCL context; allocate it with this context or copy it here.",
            " is not in an OpenCL buffer; allocate it with this context or wrap its cl_mem with WrapBuffer.");
}
