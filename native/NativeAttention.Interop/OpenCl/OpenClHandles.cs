// SafeHandles for OpenCL objects; each releases its reference exactly once. Handles made with
// ownsHandle = false wrap objects another library owns and are never released.
using Microsoft.Win32.SafeHandles;

namespace NativeAttention.Interop.OpenCl;

public sealed class OpenClContextHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public OpenClContextHandle() : base(true) { }
    public OpenClContextHandle(IntPtr existing, bool ownsHandle) : base(ownsHandle) => SetHandle(existing);
    protected override bool ReleaseHandle() => OpenClNative.clReleaseContext(handle) == OpenClNative.Success;
}

public sealed class OpenClQueueHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public OpenClQueueHandle() : base(true) { }
    public OpenClQueueHandle(IntPtr existing, bool ownsHandle) : base(ownsHandle) => SetHandle(existing);
    protected override bool ReleaseHandle() => OpenClNative.clReleaseCommandQueue(handle) == OpenClNative.Success;
}

public sealed class OpenClMemHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public OpenClMemHandle() : base(true) { }
    public OpenClMemHandle(IntPtr existing, bool ownsHandle) : base(ownsHandle) => SetHandle(existing);
    protected override bool ReleaseHandle() => OpenClNative.clReleaseMemObject(handle) == OpenClNative.Success;
}

public sealed class OpenClProgramHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public OpenClProgramHandle() : base(true) { }
    protected override bool ReleaseHandle() => OpenClNative.clReleaseProgram(handle) == OpenClNative.Success;
}

public sealed class OpenClKernelHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public OpenClKernelHandle() : base(true) { }
    protected override bool ReleaseHandle() => OpenClNative.clReleaseKernel(handle) == OpenClNative.Success;
}
