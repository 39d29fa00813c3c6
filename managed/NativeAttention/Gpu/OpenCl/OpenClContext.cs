// The OpenCL backend's context: one device, one in-order command queue, the compiled-kernel cache, buffers.
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using NativeAttention.Interop.OpenCl;
using static NativeAttention.Interop.OpenCl.OpenClNative;

namespace NativeAttention.Gpu.OpenCl;

/// <summary>
/// Runs attention kernels on one OpenCL device. Tensors must live in <see cref="OpenClBuffer"/>s of this context
/// (allocate with <see cref="AttentionContext.Allocate"/>, <see cref="AllocateBuffer"/>, or wrap a <c>cl_mem</c>
/// with <see cref="WrapBuffer"/>). Kernels are enqueued on <see cref="CommandQueue"/> and run asynchronously;
/// <see cref="Synchronize"/> waits for them.
/// </summary>
public sealed unsafe class OpenClContext : AttentionContext, IGpuKernelHost
{
    private readonly OpenClContextHandle _context;
    private readonly OpenClDevice _device;
    private readonly ConcurrentDictionary<string, Lazy<OpenClModule>> _modules = new();
    private readonly ConcurrentDictionary<OpenClBuffer, byte> _buffers = new();
    private readonly Lazy<int> _computeUnits;

    private OpenClContext(OpenClContextHandle context, OpenClQueueHandle queue, OpenClDevice device)
    {
        _context = context;
        Queue = queue;
        _device = device;
        _computeUnits = new(() => OpenClDeviceInfo.ComputeUnits(device.Id));
        Scratch = new GpuScratch((type, length) => AllocateBuffer(type, length), Synchronize);
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
    /// <inheritdoc/>
    public override MemoryLocation TensorLocation => MemoryLocation.Device;

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
        _buffers.TryAdd(buffer, 0);
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

    private protected override TensorView AllocateCore(ElementType type, ReadOnlySpan<int> shape)
    {
        long count = 1;
        foreach (int s in shape) count = checked(count * s);
        return AllocateBuffer(type, count).View(shape);
    }

    private protected override void FlashCore(FlashProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp)
    {
        CheckOwner(query, nameof(query));
        CheckOwner(key, nameof(key));
        CheckOwner(value, nameof(value));
        CheckOwner(output, nameof(output));
        if (logSumExp is { } lse) CheckOwner(lse, nameof(logSumExp));
        var optionTensors = GpuFlash.OptionTensors(problem.Options);
        foreach (var (tensor, name) in optionTensors.Zip(GpuFlash.OptionTensorNames))
            if (tensor is { } t) CheckOwner(t, name);
        var p = GpuFlash.Params(problem, query, key, value, output, logSumExp);
        var variant = GpuFlash.Choose(problem, p, tensorCoresAvailable: false);
        var module = Module(variant.Name, () => variant.Source(KernelApi.OpenCl), FlashVariant.EntryPoint);
        int blockM = variant.Tiles.BlockM;
        int blocks = (problem.QueryLength + blockM - 1) / blockM;
        ReadOnlySpan<IntPtr> memory =
        [
            MemOf(query), MemOf(key), MemOf(value), MemOf(output), logSumExp is { } l ? MemOf(l) : IntPtr.Zero,
            .. optionTensors.Select(t => t is { } view ? MemOf(view) : IntPtr.Zero),
        ];
        module.Launch(Queue, memory, MemoryMarshal.AsBytes(new ReadOnlySpan<FlashParams>(in p)),
            checked(blocks * blockM), checked(problem.Batch * problem.QueryHeads), variant.Threads);
    }

    private protected override void MergeStatesCore(MergeProblem problem, in TensorView partialOutputs, in TensorView partialLogSumExp, in TensorView output, in TensorView? logSumExp)
    {
        CheckOwner(partialOutputs, nameof(partialOutputs));
        CheckOwner(partialLogSumExp, nameof(partialLogSumExp));
        CheckOwner(output, nameof(output));
        if (logSumExp is { } lse) CheckOwner(lse, nameof(logSumExp));
        var p = GpuMerge.Params(problem, partialOutputs, partialLogSumExp, output, logSumExp);
        var (outputType, partialType) = (output.ElementType, partialOutputs.ElementType);
        var module = Module(GpuMerge.Name(outputType, partialType), () => GpuMerge.Source(KernelApi.OpenCl, outputType, partialType), GpuMerge.EntryPoint);
        ReadOnlySpan<IntPtr> memory =
            [MemOf(partialOutputs), MemOf(partialLogSumExp), MemOf(output), logSumExp is { } l ? MemOf(l) : IntPtr.Zero];
        module.Launch(Queue, memory, MemoryMarshal.AsBytes(new ReadOnlySpan<MergeParams>(in p)),
            GpuMerge.Groups(problem) * GpuMerge.Threads, 1, GpuMerge.Threads);
    }

    private protected override void FlashKvCacheCore(KvCacheProblem problem, in TensorView query, in TensorView keyCache, in TensorView valueCache, in TensorView output, in TensorView? logSumExp)
    {
        if (GpuDecode.PrefersFlash(problem)) base.FlashKvCacheCore(problem, query, keyCache, valueCache, output, logSumExp);
        else GpuDecode.Run(this, problem, query, keyCache, valueCache, output, logSumExp);
    }

    KernelApi IGpuKernelHost.Api => KernelApi.OpenCl;

    int IGpuKernelHost.ComputeUnits => _computeUnits.Value;

    /// <inheritdoc cref="IGpuKernelHost.Scratch"/>
    internal GpuScratch Scratch { get; }

    GpuScratch IGpuKernelHost.Scratch => Scratch;

    void IGpuKernelHost.CheckOwner(in TensorView view, string name) => CheckOwner(view, name);

    void IGpuKernelHost.Launch(string name, Func<string> source, string entryPoint, ReadOnlySpan<DeviceBuffer?> buffers, ReadOnlySpan<byte> parameters,
        int groupsX, int groupsY, int threads)
    {
        var module = Module(name, source, entryPoint);
        Span<IntPtr> memory = stackalloc IntPtr[buffers.Length];
        for (int i = 0; i < buffers.Length; i++) memory[i] = buffers[i] is OpenClBuffer b ? b.NativeHandle : IntPtr.Zero;
        module.Launch(Queue, memory, parameters, checked(groupsX * threads), groupsY, threads);
    }

    /// <summary>The module for <paramref name="name"/>, built once per context even when several threads ask at once.</summary>
    internal OpenClModule Module(string name, Func<string> source, string entryPoint) =>
        _modules.GetOrAdd(name, _ => new Lazy<OpenClModule>(() => OpenClModule.Build(_context, _device, source(), entryPoint))).Value;

    /// <summary>Builds a program from raw source (no caching in memory); for tests and tools.</summary>
    internal OpenClModule BuildSource(string source, string entryPoint) => OpenClModule.Build(_context, _device, source, entryPoint);

    /// <summary>Runs the layout probe <paramref name="entryPoint"/> (<see cref="LayoutProbe"/>): the struct's size, then each field's offset.</summary>
    internal int[] ParamsLayout(string entryPoint)
    {
        var module = Module("layout_probe." + entryPoint, () => LayoutProbe.For(entryPoint).Source(KernelApi.OpenCl), entryPoint);
        using var output = AllocateBuffer(ElementType.Float32, 128);
        module.Launch(Queue, [output.NativeHandle], [], 1, 1, 1);
        var values = new float[128];
        output.Read<float>(values);
        return MemoryMarshal.Cast<float, int>(values).ToArray();
    }

    internal void Untrack(OpenClBuffer buffer) => _buffers.TryRemove(buffer, out _);

    /// <inheritdoc/>
    protected override void ReleaseResources()
    {
        Scratch.Dispose();
        foreach (var buffer in _buffers.Keys) buffer.Dispose();
        foreach (var module in _modules.Values)
            if (module.IsValueCreated) module.Value.Dispose();
        Queue.Dispose();
        _context.Dispose();
    }

    private void CheckOwner(in TensorView view, string name)
    {
        if (view.Storage is not OpenClBuffer)
            TensorChecks.Throw($"{name} is not in an OpenCL buffer; allocate it with this context or wrap its cl_mem with WrapBuffer.", name);
    }

    private static IntPtr MemOf(in TensorView view) => ((OpenClBuffer)view.Storage!).NativeHandle;
}
