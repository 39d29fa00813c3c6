// The exception type of the CUDA driver API: the error name and the failing call.
using System.Runtime.InteropServices;
using NativeAttention.Interop.Cuda;

namespace NativeAttention.Gpu.Cuda;

/// <summary>A CUDA driver API call failed.</summary>
public sealed class CudaException : Exception
{
    internal CudaException(int errorCode, string call)
        : base($"{call} failed with {NameOf(errorCode)} ({errorCode}).")
    {
        ErrorCode = errorCode;
        ErrorName = NameOf(errorCode);
        Call = call;
    }

    /// <summary>The <c>CUresult</c>.</summary>
    public int ErrorCode { get; }
    /// <summary>The result's name, e.g. <c>CUDA_ERROR_OUT_OF_MEMORY</c>.</summary>
    public string ErrorName { get; }
    /// <summary>The driver function that failed.</summary>
    public string Call { get; }

    internal static void Check(int result, string call)
    {
        if (result != CudaNative.Success) throw new CudaException(result, call);
    }

    internal static unsafe string NameOf(int code)
    {
        try
        {
            byte* name;
            if (CudaNative.cuGetErrorName(code, &name) == CudaNative.Success && name != null)
                return Marshal.PtrToStringUTF8((IntPtr)name) ?? "CUDA_ERROR";
        }
        catch (DllNotFoundException) { }
        return "CUDA_ERROR";
    }
}
