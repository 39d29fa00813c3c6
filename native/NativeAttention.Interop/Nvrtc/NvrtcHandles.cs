// SafeHandle for an NVRTC program.
using Microsoft.Win32.SafeHandles;

namespace NativeAttention.Interop.Nvrtc;

public sealed class NvrtcProgramHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public NvrtcProgramHandle(IntPtr program) : base(true) => SetHandle(program);

    protected override unsafe bool ReleaseHandle()
    {
        IntPtr program = handle;
        return NvrtcNative.nvrtcDestroyProgram(&program) == NvrtcNative.Success;
    }
}
