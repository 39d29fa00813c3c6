// The exception type of NVRTC: the error name, the failing call and, for compilation, the full log.
using System.Runtime.InteropServices;
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

    private static unsafe string NameOf(int code)
    {
        try
        {
            return Marshal.PtrToStringUTF8((IntPtr)NvrtcNative.nvrtcGetErrorString(code)) ?? "NVRTC_ERROR";
        }
        catch (DllNotFoundException)
        {
            return "NVRTC_ERROR";
        }
    }
}
