// The CUDA backend's context: one device's primary context, one stream, the compiled-kernel cache, buffers.
using System.Collections.Concurrent;
using NativeAttention.Interop.Cuda;
using static NativeAttention.Interop.Cuda.CudaNative;

namespace NativeAttention.Gpu.Cuda;

/// <summary>
/// Runs attention kernels on one CUDA device, in the device's primary context (the one the CUDA runtime and
/// PyTorch use), on one stream. Tensors must live in <see cref="CudaBuffer"/>s (allocate with
/// <see cref="AttentionContext.Allocate"/> or <see cref="AllocateBuffer"/>, or wrap another library's device
/// pointer with <see cref="WrapBuffer"/>). Launches are asynchronous; <see cref="Synchronize"/> waits.
/// </summary>
public sealed unsafe class CudaContext : AttentionContext, IGpuKernelHost
{
    private readonly CudaContextHandle _context;
    private readonly CudaStreamHandle _stream;
    private readonly CudaDevice _device;
    private readonly int _driverVersion;
    private readonly ConcurrentDictionary<string, Lazy<CudaModule>> _modules = new();
    private readonly ConcurrentDictionary<CudaBuffer, byte> _buffers = new();

    private CudaContext(CudaContextHandle context, CudaStreamHandle stream, CudaDevice device, int driverVersion)
    {
        _context = context;
        _stream = stream;
        _device = device;
        _driverVersion = driverVersion;
        Scratch = new GpuScratch((type, length) => AllocateBuffer(type, length), Synchronize);
    }

    /// <summary>Creates a context with its own non-blocking stream on device <see cref="ContextOptions.Device"/>.</summary>
    internal static CudaContext Create(ContextOptions options)
    {
        var (device, driver, context) = Retain(options.Device);
        IntPtr stream;
        int result = cuStreamCreate(&stream, StreamNonBlocking);
        if (result != Success)
        {
            context.Dispose();
            throw new CudaException(result, "cuStreamCreate");
        }
        return new CudaContext(context, new CudaStreamHandle(stream, context.DangerousGetHandle(), ownsHandle: true), device, driver);
    }

    /// <summary>
    /// A context that launches on <paramref name="stream"/>, a <c>CUstream</c> (or <c>cudaStream_t</c>) of device
    /// <paramref name="device"/> that another library owns; the stream is used, never destroyed. Zero means the
    /// legacy default stream.
    /// </summary>
    /// <exception cref="NotSupportedException">CUDA is not available here.</exception>
    public static CudaContext FromStream(IntPtr stream, int device = 0)
    {
        var (info, driver, context) = Retain(device);
        return new CudaContext(context, new CudaStreamHandle(stream, context.DangerousGetHandle(), ownsHandle: false), info, driver);
    }

    private static (CudaDevice, int, CudaContextHandle) Retain(int ordinal)
    {
        var info = Backends.Query(Backend.Cuda);
        if (!info.IsSupported) throw new NotSupportedException("The Cuda backend is not available: " + info.Description);
        var (devices, driver, _) = CudaDevices.All;
        if ((uint)ordinal >= (uint)devices.Count)
            throw new ArgumentOutOfRangeException(nameof(ordinal), ordinal, $"CUDA has {devices.Count} device(s).");
        IntPtr context;
        CudaException.Check(cuDevicePrimaryCtxRetain(&context, ordinal), "cuDevicePrimaryCtxRetain");
        var handle = new CudaContextHandle(context, ordinal, ownsHandle: true);
        CudaException.Check(cuCtxSetCurrent(context), "cuCtxSetCurrent");
        return (devices[ordinal], driver, handle);
    }

    /// <inheritdoc/>
    public override Backend Backend => Backend.Cuda;
    /// <inheritdoc/>
    public override string DeviceName => $"{_device.Name} (sm_{_device.ComputeCapability})";
    /// <inheritdoc/>
    public override MemoryLocation TensorLocation => MemoryLocation.Device;

    /// <summary>The <c>CUstream</c> kernels are launched on.</summary>
    public IntPtr Stream => _stream.DangerousGetHandle();

    /// <summary>The device's compute capability, e.g. 90 for sm_90.</summary>
    public int ComputeCapability => _device.ComputeCapability;

    /// <summary>True when fp16/bf16 flash calls with a suitable layout use the tensor-core kernel (sm_80 and later).</summary>
    public bool UsesTensorCores => _device.ComputeCapability >= 80;

    /// <summary>Allocates <paramref name="length"/> zero-filled elements on the device.</summary>
    /// <exception cref="CudaException">The allocation failed.</exception>
    public CudaBuffer AllocateBuffer(ElementType type, long length)
    {
        ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        MakeCurrent();
        ulong pointer;
        CudaException.Check(cuMemAlloc(&pointer, (nuint)Math.Max(length * type.SizeOf(), 16)), "cuMemAlloc");
        var buffer = new CudaBuffer(this, new CudaDeviceMemoryHandle((IntPtr)(long)pointer, _context.DangerousGetHandle(), ownsHandle: true), type, length);
        _buffers.TryAdd(buffer, 0);
        buffer.Fill(0);
        return buffer;
    }

    /// <summary>
    /// Wraps <paramref name="devicePointer"/>, memory of this device that another library owns, without taking
    /// ownership: disposing the wrapper never frees it. The caller keeps at least <paramref name="length"/>
    /// elements valid while the wrapper is used.
    /// </summary>
    public CudaBuffer WrapBuffer(IntPtr devicePointer, ElementType type, long length)
    {
        ThrowIfDisposed();
        if (devicePointer == IntPtr.Zero) throw new ArgumentNullException(nameof(devicePointer));
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        return new CudaBuffer(this, new CudaDeviceMemoryHandle(devicePointer, _context.DangerousGetHandle(), ownsHandle: false), type, length);
    }

    /// <summary>Waits for every operation on the stream.</summary>
    public override void Synchronize()
    {
        ThrowIfDisposed();
        MakeCurrent();
        CudaException.Check(cuStreamSynchronize(Stream), "cuStreamSynchronize");
    }

    /// <summary>Makes this context current on the calling thread; every driver call goes through here first.</summary>
    internal void MakeCurrent() => CudaException.Check(cuCtxSetCurrent(_context.DangerousGetHandle()), "cuCtxSetCurrent");

    private protected override TensorView AllocateCore(ElementType type, ReadOnlySpan<int> shape)
    {
        long count = 1;
        foreach (int s in shape) count = checked(count * s);
        return AllocateBuffer(type, count).View(shape);
    }

    private protected override void FlashCore(FlashProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp)
    {
        uint heads = checked((uint)(problem.Batch * problem.QueryHeads));
        if (heads > 65535) throw new NotSupportedException($"B * Hq = {heads} exceeds CUDA's grid limit of 65535.");
        var q = Pointer(query, nameof(query));
        var k = Pointer(key, nameof(key));
        var v = Pointer(value, nameof(value));
        var o = Pointer(output, nameof(output));
        ulong lse = logSumExp is { } l ? Pointer(l, nameof(logSumExp)) : 0;
        var optionTensors = GpuFlash.OptionTensors(problem.Options);
        var options = stackalloc ulong[optionTensors.Length];
        for (int n = 0; n < optionTensors.Length; n++)
            options[n] = optionTensors[n] is { } t ? Pointer(t, GpuFlash.OptionTensorNames[n]) : 0;
        var p = GpuFlash.Params(problem, query, key, value, output, logSumExp);
        // Wrapped pointers from other libraries may sit at any address; cp.async needs 16-byte aligned rows.
        bool aligned = ((q | k | v | o) & 15) == 0;
        var variant = GpuFlash.Choose(problem, p, UsesTensorCores && aligned);
        var module = Module(variant);
        int blockM = variant.Tiles.BlockM;
        uint blocks = (uint)((problem.QueryLength + blockM - 1) / blockM);
        void** args = stackalloc void*[11] { &q, &k, &v, &o, &lse, &options[0], &options[1], &options[2], &options[3], &options[4], &p };
        MakeCurrent();
        CudaException.Check(cuLaunchKernel(module.Function, blocks, heads, 1, (uint)variant.Threads, 1, 1,
            (uint)variant.DynamicSharedBytes, Stream, args, null), $"cuLaunchKernel({variant.Name})");
    }

    private protected override void MergeStatesCore(MergeProblem problem, in TensorView partialOutputs, in TensorView partialLogSumExp, in TensorView output, in TensorView? logSumExp)
    {
        var po = Pointer(partialOutputs, nameof(partialOutputs));
        var pl = Pointer(partialLogSumExp, nameof(partialLogSumExp));
        var o = Pointer(output, nameof(output));
        ulong lse = logSumExp is { } l ? Pointer(l, nameof(logSumExp)) : 0;
        var p = GpuMerge.Params(problem, partialOutputs, partialLogSumExp, output, logSumExp);
        var (outputType, partialType) = (output.ElementType, partialOutputs.ElementType);
        string name = GpuMerge.Name(outputType, partialType);
        var module = SourceModule(name, () => GpuMerge.Source(KernelApi.Cuda, outputType, partialType), GpuMerge.EntryPoint);
        void** args = stackalloc void*[5] { &po, &pl, &o, &lse, &p };
        MakeCurrent();
        CudaException.Check(cuLaunchKernel(module.Function, (uint)GpuMerge.Groups(problem), 1, 1, GpuMerge.Threads, 1, 1, 0, Stream, args, null),
            $"cuLaunchKernel({name})");
    }

    private protected override void FlashKvCacheCore(KvCacheProblem problem, in TensorView query, in TensorView keyCache, in TensorView valueCache, in TensorView output, in TensorView? logSumExp)
    {
        if (GpuDecode.PrefersFlash(problem)) base.FlashKvCacheCore(problem, query, keyCache, valueCache, output, logSumExp);
        else GpuDecode.Run(this, problem, query, keyCache, valueCache, output, logSumExp);
    }

    KernelApi IGpuKernelHost.Api => KernelApi.Cuda;

    int IGpuKernelHost.ComputeUnits => _device.Multiprocessors;

    /// <inheritdoc cref="IGpuKernelHost.Scratch"/>
    internal GpuScratch Scratch { get; }

    GpuScratch IGpuKernelHost.Scratch => Scratch;

    void IGpuKernelHost.CheckOwner(in TensorView view, string name) => Pointer(view, name);

    void IGpuKernelHost.Launch(string name, Func<string> source, string entryPoint, ReadOnlySpan<DeviceBuffer?> buffers, ReadOnlySpan<byte> parameters,
        int groupsX, int groupsY, int threads)
    {
        var module = SourceModule(name, source, entryPoint);
        var pointers = stackalloc ulong[buffers.Length];
        var args = stackalloc void*[buffers.Length + 1];
        for (int i = 0; i < buffers.Length; i++)
        {
            pointers[i] = buffers[i] is CudaBuffer b ? b.RootPointer : 0;
            args[i] = &pointers[i];
        }
        fixed (byte* p = parameters)
        {
            args[buffers.Length] = p;
            MakeCurrent();
            CudaException.Check(cuLaunchKernel(module.Function, (uint)groupsX, (uint)groupsY, 1, (uint)threads, 1, 1, 0, Stream, args, null),
                $"cuLaunchKernel({name})");
        }
    }

    /// <summary>The module <paramref name="name"/> built from <paramref name="source"/>, compiled once per context.</summary>
    private CudaModule SourceModule(string name, Func<string> source, string entryPoint) =>
        _modules.GetOrAdd(name, _ => new Lazy<CudaModule>(() =>
        {
            MakeCurrent();
            return CudaModule.Load(_context.DangerousGetHandle(), source(), name, entryPoint, CudaCompiler.TargetFor(_device.ComputeCapability), _driverVersion, 0);
        })).Value;

    /// <summary>The loaded module of a variant, compiled once per context even when several threads ask at once.</summary>
    internal CudaModule Module(FlashVariant variant) =>
        _modules.GetOrAdd(variant.Name, _ => new Lazy<CudaModule>(() =>
        {
            MakeCurrent();
            return CudaModule.Load(_context.DangerousGetHandle(), variant.Source(KernelApi.Cuda), variant.Name, FlashVariant.EntryPoint,
                CudaCompiler.TargetFor(_device.ComputeCapability), _driverVersion, variant.DynamicSharedBytes);
        })).Value;

    /// <summary>Compiles and runs the layout probe <paramref name="entryPoint"/> (<see cref="LayoutProbe"/>): the struct's size, then each field's offset.</summary>
    internal int[] ParamsLayout(string entryPoint)
    {
        var module = SourceModule("layout_probe." + entryPoint, () => LayoutProbe.For(entryPoint).Source(KernelApi.Cuda), entryPoint);
        using var output = AllocateBuffer(ElementType.Float32, 128);
        ulong pointer = (ulong)output.DevicePointer;
        void** args = stackalloc void*[1] { &pointer };
        MakeCurrent();
        CudaException.Check(cuLaunchKernel(module.Function, 1, 1, 1, 1, 1, 1, 0, Stream, args, null), "cuLaunchKernel(layout_probe)");
        var values = new float[128];
        output.Read<float>(values);
        return System.Runtime.InteropServices.MemoryMarshal.Cast<float, int>(values).ToArray();
    }

    internal void Untrack(CudaBuffer buffer) => _buffers.TryRemove(buffer, out _);

    /// <inheritdoc/>
    protected override void ReleaseResources()
    {
        MakeCurrent();
        cuStreamSynchronize(Stream);
        Scratch.Dispose();
        foreach (var buffer in _buffers.Keys) buffer.Dispose();
        foreach (var module in _modules.Values)
            if (module.IsValueCreated) module.Value.Dispose();
        _stream.Dispose();
        _context.Dispose();
    }

    private static ulong Pointer(in TensorView view, string name)
    {
        if (view.Storage is CudaBuffer buffer) return buffer.RootPointer;
        TensorChecks.Throw($"{name} is not in a CUDA buffer; allocate it with this context or wrap its pointer with WrapBuffer.", name);
        return 0;
    }
}
