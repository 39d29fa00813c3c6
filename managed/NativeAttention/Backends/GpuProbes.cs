// Probes the GPU runtimes once each (Backends caches the result): a missing library, driver or device is a reason.
namespace NativeAttention;

internal static class GpuProbes
{
    public static BackendInfo ProbeOpenCl() => Gpu.OpenCl.OpenClDevices.Probe();

    public static BackendInfo ProbeCuda() => Gpu.Cuda.CudaDevices.Probe();
}
