// The CUDA backend's context: one device's primary context, one stream, the compiled-kernel cache, buffers.
using System.Collections.Concurrent;
using NativeAttention.Interop.Cuda;
using static NativeAttention.Interop.Cuda.CudaNative;

namespace NativeAttention.Gpu.Cuda;

/// <summary>
/// Runs attention kernels on one CUDA device, in the device's primary context (the one the CUDA runtime and
/// PyTorch use), on one stream; <see cref="FromContext"/> runs in a context another library owns instead. Tensors must live in <see cref="CudaBuffer"/>s (allocate with
/// <see cref="AttentionContext.Allocate"/> or <see cref="AllocateBuffer"/>, or wrap another library's device
/// pointer with <see cref="WrapBuffer"/>). Launches are asynchronous; <see cref="Synchronize"/> waits.
/// </summary>
public sealed unsafe partial class CudaContext : GpuContext
{
    private readonly CudaContextHandle _context;
    private readonly CudaStreamHandle _stream;
    private readonly CudaDevice _device;
    private readonly int _driverVersion;
    private readonly ConcurrentDictionary<string, Lazy<CudaModule>> _modules = new();

    private CudaContext(CudaContextHandle context, CudaStreamHandle stream, CudaDevice device, int driverVersion)
    {
        _context = context;
        _stream = stream;
        _device = device;
        _driverVersion = driverVersion;
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

    /// <summary>
    /// A context that launches on <paramref name="stream"/> inside <paramref name="context"/>, a <c>CUcontext</c> another
    /// library created and owns (ILGPU's <c>CudaAccelerator</c> makes its own, non-primary context). The context and the
    /// stream are used, never retained, destroyed or released; the caller keeps both alive while this context is used.
    /// Buffers are wrapped with <see cref="WrapBuffer"/>. Zero for <paramref name="stream"/> means the context's legacy
    /// default stream. Every driver call makes <paramref name="context"/> current on the calling thread first.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="context"/> is zero.</exception>
    /// <exception cref="NotSupportedException">CUDA is not available here.</exception>
    /// <exception cref="CudaException">The handle is not a valid context.</exception>
    public static CudaContext FromContext(IntPtr context, IntPtr stream)
    {
        if (context == IntPtr.Zero) throw new ArgumentNullException(nameof(context));
        var info = Backends.Query(Backend.Cuda);
        if (!info.IsSupported) throw new NotSupportedException("The Cuda backend is not available: " + info.Description);
        var (devices, driver, _) = CudaDevices.All;
        CudaException.Check(cuCtxSetCurrent(context), "cuCtxSetCurrent");
        int ordinal;
        CudaException.Check(cuCtxGetDevice(&ordinal), "cuCtxGetDevice");
        if ((uint)ordinal >= (uint)devices.Count)
            throw new ArgumentOutOfRangeException(nameof(context), ordinal, $"The context's device {ordinal} is not among CUDA's {devices.Count} device(s).");
        var handle = new CudaContextHandle(context, ordinal, ownsHandle: false);
        return new CudaContext(handle, new CudaStreamHandle(stream, context, ownsHandle: false), devices[ordinal], driver);
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
        Track(buffer);
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
    internal void MakeCurrent()
    {
        BeforeMakeCurrent?.Invoke();
        CudaException.Check(cuCtxSetCurrent(_context.DangerousGetHandle()), "cuCtxSetCurrent");
    }

    /// <summary>
    /// Runs on the calling thread before every <see cref="MakeCurrent"/>: ILGPU interop binds ILGPU's accelerator there, so
    /// that ILGPU's per-thread record of the current context stays true after this context switches it (or throws when
    /// the accelerator was disposed).
    /// </summary>
    internal Action? BeforeMakeCurrent { get; set; }

    private protected override KernelApi Api => KernelApi.Cuda;

    private protected override int ComputeUnits => _device.Multiprocessors;

    /// <summary>Statically declared shared memory is capped at 48 KB per block on every architecture.</summary>
    private protected override long LocalMemoryBytes => 48 * 1024;

    private protected override DeviceBuffer AllocateDevice(ElementType type, long length) => AllocateBuffer(type, length);

    /// <summary>Tensor cores need sm_80 or later and 16-byte aligned roots: wrapped pointers from other libraries may sit anywhere.</summary>
    private protected override bool TensorCoresFit(ReadOnlySpan<DeviceBuffer?> buffers)
    {
        if (!UsesTensorCores) return false;
        foreach (var buffer in buffers)
            if (buffer is CudaBuffer b && (b.RootPointer & 15) != 0) return false;
        return true;
    }

    private protected override void Launch(string name, Func<string> source, string entryPoint, ReadOnlySpan<DeviceBuffer?> buffers, ReadOnlySpan<byte> parameters,
        int groupsX, int groupsY, int threads, int dynamicSharedBytes) =>
        LaunchFor(null, name, source, entryPoint, buffers, parameters, groupsX, groupsY, threads, dynamicSharedBytes);

    /// <summary>
    /// <see cref="Launch"/> compiled for <c>compute_</c><paramref name="arch"/> (e.g. <c>90a</c>) instead of the newest
    /// architecture NVRTC supports up to the device's.
    /// </summary>
    private void LaunchFor(string? arch, string name, Func<string> source, string entryPoint, ReadOnlySpan<DeviceBuffer?> buffers, ReadOnlySpan<byte> parameters,
        int groupsX, int groupsY, int threads, int dynamicSharedBytes)
    {
        if (groupsY > MaxGridY)
            throw new NotSupportedException($"{name}: {groupsY} blocks along grid y exceed CUDA's limit of {MaxGridY}.");
        var module = Module(name, source, entryPoint, dynamicSharedBytes, arch);
        var pointers = stackalloc ulong[buffers.Length];
        var args = stackalloc void*[buffers.Length + 1];
        for (int i = 0; i < buffers.Length; i++)
        {
            pointers[i] = buffers[i] is CudaBuffer b ? b.RootPointer : 0;
            args[i] = &pointers[i];
        }
        fixed (byte* p = parameters)
        {
            args[buffers.Length] = p;   // kernels without a params struct never read it
            MakeCurrent();
            CudaException.Check(cuLaunchKernel(module.Function, (uint)groupsX, (uint)groupsY, 1, (uint)threads, 1, 1, (uint)dynamicSharedBytes, Stream, args, null),
                $"cuLaunchKernel({name})");
        }
    }

    /// <summary>CUDA's limit on grid y (and z).</summary>
    private const int MaxGridY = 65535;

    /// <summary>
    /// The module <paramref name="name"/> built from <paramref name="source"/>, compiled once per context even when several
    /// threads ask at once, its kernel allowed <paramref name="dynamicSharedBytes"/> of dynamic shared memory.
    /// </summary>
    private CudaModule Module(string name, Func<string> source, string entryPoint, int dynamicSharedBytes, string? arch) =>
        _modules.GetOrAdd(name, _ => new Lazy<CudaModule>(() =>
        {
            MakeCurrent();
            return CudaModule.Load(_context.DangerousGetHandle(), source(), name, entryPoint,
                arch ?? CudaCompiler.TargetFor(_device.ComputeCapability).ToString(System.Globalization.CultureInfo.InvariantCulture),
                _driverVersion, dynamicSharedBytes);
        })).Value;

    /// <inheritdoc/>
    protected override void ReleaseResources()
    {
        MakeCurrent();
        cuStreamSynchronize(Stream);
        base.ReleaseResources();
        DisposeBuilt(_modules);
        _stream.Dispose();
        _context.Dispose();
    }

    /// <summary>The driver's handle of the CUDA context (the device's primary context) this context launches in.</summary>
    internal IntPtr NativeContext => _context.DangerousGetHandle();

    /// <summary>Accepts buffers of this device's primary context: those of this context and of other contexts on the same device.</summary>
    private protected override void CheckOwner(in TensorView view, string name) =>
        CheckBufferOwner<CudaBuffer>(view, name, NativeContext, static buffer => buffer.Context.NativeContext,
            " is in a CUDA buffer of another device's context; allocate it with this context or copy it here.",
            " is not in a CUDA buffer; allocate it with this context or wrap its pointer with WrapBuffer.");
}
