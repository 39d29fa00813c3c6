// What the backends' exception types share: the error code and its name, the failing call, and a compiler's log.
namespace NativeAttention.Gpu;

/// <summary>
/// A call into a native GPU runtime failed. Each backend throws its own subclass (<see cref="Cuda.CudaException"/>,
/// <see cref="Cuda.NvrtcException"/>, <see cref="OpenCl.OpenClException"/>), whose <see cref="ErrorCode"/> is that
/// runtime's status (<c>CUresult</c>, <c>nvrtcResult</c>, <c>cl_int</c>).
/// </summary>
public abstract class NativeCallException : Exception
{
    private protected NativeCallException(int errorCode, string errorName, string call, string? buildLog)
        : base($"{call} failed with {errorName} ({errorCode})." + (buildLog is null ? "" : "\nBuild log:\n" + buildLog))
    {
        ErrorCode = errorCode;
        ErrorName = errorName;
        Call = call;
        BuildLog = buildLog;
    }

    /// <summary>The runtime's status code.</summary>
    public int ErrorCode { get; }
    /// <summary>The status's name, e.g. <c>CUDA_ERROR_OUT_OF_MEMORY</c>, <c>NVRTC_ERROR_COMPILATION</c>, <c>CL_BUILD_PROGRAM_FAILURE</c>.</summary>
    public string ErrorName { get; }
    /// <summary>The native function that failed.</summary>
    public string Call { get; }
    /// <summary>The compiler's full log when a compilation or program build failed, otherwise null.</summary>
    public string? BuildLog { get; }
}
