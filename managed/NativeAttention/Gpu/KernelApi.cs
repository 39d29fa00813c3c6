// The kernel dialects.
namespace NativeAttention.Gpu;

/// <summary>The two kernel dialects one source compiles to.</summary>
internal enum KernelApi
{
    OpenCl,
    Cuda,
}
