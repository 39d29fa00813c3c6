// Probes for the GPU runtimes. Replaced by the OpenCL and CUDA runtime layers (issue 3).
namespace NativeAttention;

internal static class GpuProbes
{
    public static BackendInfo ProbeOpenCl() =>
        new(Backend.OpenCl, false, "The OpenCL backend is not built yet (issue 3).");

    public static BackendInfo ProbeCuda() =>
        new(Backend.Cuda, false, "The CUDA backend is not built yet (issue 3).");
}
