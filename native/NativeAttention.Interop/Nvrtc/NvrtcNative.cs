// NVRTC entry points: compile CUDA C source to PTX (or to CUBIN for a real architecture) at run time, no device needed.
using System.Runtime.InteropServices;

namespace NativeAttention.Interop.Nvrtc;

/// <summary>Raw NVRTC API. Every function returns an <c>nvrtcResult</c>; 0 is success.</summary>
public static unsafe partial class NvrtcNative
{
    private const string Lib = NativeLibraries.NvrtcName;

    static NvrtcNative() => NativeLibraries.EnsureRegistered();

    public const int Success = 0;
    public const int CompilationError = 6;

    [LibraryImport(Lib)] public static partial byte* nvrtcGetErrorString(int result);
    [LibraryImport(Lib)] public static partial int nvrtcVersion(int* major, int* minor);
    [LibraryImport(Lib)] public static partial int nvrtcGetNumSupportedArchs(int* count);
    [LibraryImport(Lib)] public static partial int nvrtcGetSupportedArchs(int* architectures);
    [LibraryImport(Lib)] public static partial int nvrtcCreateProgram(IntPtr* program, byte* source, byte* name, int numHeaders, byte** headers, byte** includeNames);
    [LibraryImport(Lib)] public static partial int nvrtcDestroyProgram(IntPtr* program);
    [LibraryImport(Lib)] public static partial int nvrtcCompileProgram(NvrtcProgramHandle program, int numOptions, byte** options);
    [LibraryImport(Lib)] public static partial int nvrtcGetPTXSize(NvrtcProgramHandle program, nuint* size);
    [LibraryImport(Lib)] public static partial int nvrtcGetPTX(NvrtcProgramHandle program, byte* ptx);
    // CUBIN output (NVRTC 11.1 and later) when compiled for a real architecture (--gpu-architecture=sm_XX).
    [LibraryImport(Lib)] public static partial int nvrtcGetCUBINSize(NvrtcProgramHandle program, nuint* size);
    [LibraryImport(Lib)] public static partial int nvrtcGetCUBIN(NvrtcProgramHandle program, byte* cubin);
    [LibraryImport(Lib)] public static partial int nvrtcGetProgramLogSize(NvrtcProgramHandle program, nuint* size);
    [LibraryImport(Lib)] public static partial int nvrtcGetProgramLog(NvrtcProgramHandle program, byte* log);
}
