// The exception type of the CUDA driver API: the error name and the failing call.
using System.Runtime.InteropServices;
using NativeAttention.Interop.Cuda;

namespace NativeAttention.Gpu.Cuda;

/// <summary>A CUDA driver API call failed.</summary>
public sealed class CudaException : NativeCallException
{
    internal CudaException(int errorCode, string call)
        : base(errorCode, NameOf(errorCode), call, null)
    {
    }

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
