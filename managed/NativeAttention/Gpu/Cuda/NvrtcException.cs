// The exception type of NVRTC: the error name, the failing call and, for compilation, the full log.
using NativeAttention.Interop.Nvrtc;

namespace NativeAttention.Gpu.Cuda;

/// <summary>An NVRTC call failed; a failed compilation carries the compiler's log.</summary>
public sealed class NvrtcException : NativeCallException
{
    internal NvrtcException(int errorCode, string call, string? buildLog = null)
        : base(errorCode, NameOf(errorCode), call, buildLog)
    {
    }

    internal static void Check(int result, string call)
    {
        if (result != NvrtcNative.Success) throw new NvrtcException(result, call);
    }

    // A table rather than nvrtcGetErrorString: a stub or broken NVRTC must still produce a readable error.
    private static string NameOf(int code) => code switch
    {
        1 => "NVRTC_ERROR_OUT_OF_MEMORY",
        2 => "NVRTC_ERROR_PROGRAM_CREATION_FAILURE",
        3 => "NVRTC_ERROR_INVALID_INPUT",
        4 => "NVRTC_ERROR_INVALID_PROGRAM",
        5 => "NVRTC_ERROR_INVALID_OPTION",
        6 => "NVRTC_ERROR_COMPILATION",
        7 => "NVRTC_ERROR_BUILTIN_OPERATION_FAILURE",
        11 => "NVRTC_ERROR_INTERNAL_ERROR",
        _ => "NVRTC_ERROR",
    };
}
