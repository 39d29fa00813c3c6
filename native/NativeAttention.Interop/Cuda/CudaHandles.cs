// SafeHandles for CUDA driver objects. Objects tied to a context make it current while they are released.
// Handles made with ownsHandle = false wrap objects another library owns and are never released.
using Microsoft.Win32.SafeHandles;

namespace NativeAttention.Interop.Cuda;

/// <summary>A retained primary context of one device; released with <c>cuDevicePrimaryCtxRelease</c>.</summary>
public sealed class CudaContextHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public CudaContextHandle(IntPtr context, int device, bool ownsHandle) : base(ownsHandle)
    {
        SetHandle(context);
        Device = device;
    }

    /// <summary>The device ordinal.</summary>
    public int Device { get; }

    protected override bool ReleaseHandle() => CudaNative.cuDevicePrimaryCtxRelease(Device) == CudaNative.Success;
}

/// <summary>Base of handles released while their context is current.</summary>
public abstract class CudaContextBoundHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    private readonly IntPtr _context;

    protected CudaContextBoundHandle(IntPtr existing, IntPtr context, bool ownsHandle) : base(ownsHandle)
    {
        SetHandle(existing);
        _context = context;
    }

    protected override unsafe bool ReleaseHandle()
    {
        if (CudaNative.cuCtxPushCurrent(_context) != CudaNative.Success) return false;
        bool released = Release(handle);
        IntPtr popped;
        CudaNative.cuCtxPopCurrent(&popped);
        return released;
    }

    /// <summary>Frees the object; the owning context is current.</summary>
    protected abstract bool Release(IntPtr value);
}

public sealed class CudaModuleHandle(IntPtr module, IntPtr context) : CudaContextBoundHandle(module, context, true)
{
    protected override bool Release(IntPtr value) => CudaNative.cuModuleUnload(value) == CudaNative.Success;
}

public sealed class CudaStreamHandle(IntPtr stream, IntPtr context, bool ownsHandle) : CudaContextBoundHandle(stream, context, ownsHandle)
{
    protected override bool Release(IntPtr value) => CudaNative.cuStreamDestroy(value) == CudaNative.Success;
}

/// <summary>A device allocation from <c>cuMemAlloc</c>; the handle value is the <c>CUdeviceptr</c>.</summary>
public sealed class CudaDeviceMemoryHandle(IntPtr devicePointer, IntPtr context, bool ownsHandle) : CudaContextBoundHandle(devicePointer, context, ownsHandle)
{
    protected override bool Release(IntPtr value) => CudaNative.cuMemFree((ulong)value) == CudaNative.Success;
}
