// The exception type of NVRTC: the error name, the failing call and, for compilation, the full log.
using NativeAttention.Interop.Nvrtc;

namespace NativeAttention.Gpu.Cuda;

/// <summary>An NVRTC call failed; a failed compilation carries the compiler's log.</summary>
public sealed class NvrtcException : Exception
{
    internal NvrtcException(int errorCode, string call, string? buildLog = null)
        : base($"{call} failed with {NameOf(errorCode)} ({errorCode})." + (buildLog is null ? "" : "\nBuild log:\n" + buildLog))
    {
        ErrorCode = errorCode;
        ErrorName = NameOf(errorCode);
        Call = call;
        BuildLog = buildLog;
    }

    /// <summary>The <c>nvrtcResult</c>.</summary>
    public int ErrorCode { get; }
    /// <summary>The result's name, e.g. <c>NVRTC_ERROR_COMPILATION</c>.</summary>
    public string ErrorName { get; }
    /// <summary>The NVRTC function that failed.</summary>
    public string Call { get; }
    /// <summary>The compiler's full log when compilation failed, otherwise null.</summary>
    public string? BuildLog { get; }

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
