// What each backend's devices are: name, memory, compute units and versions, for tools and logs.
namespace NativeAttention;

/// <summary>One device of a backend.</summary>
/// <param name="Backend">The backend.</param>
/// <param name="Index">The index to pass as <see cref="ContextOptions.Device"/>.</param>
/// <param name="Name">The device's name.</param>
/// <param name="MemoryBytes">Global memory in bytes.</param>
/// <param name="ComputeUnits">Streaming multiprocessors (CUDA), compute units (OpenCL) or cores (CPU).</param>
/// <param name="DriverVersion">The driver's version.</param>
/// <param name="RuntimeVersion">The runtime or compiler version kernels are built with (NVRTC, the OpenCL platform, .NET).</param>
/// <param name="IsGpu">True for GPUs.</param>
public sealed record DeviceInfo(Backend Backend, int Index, string Name, long MemoryBytes, int ComputeUnits, string DriverVersion, string RuntimeVersion, bool IsGpu);

public static partial class Backends
{
    /// <summary>The devices of <paramref name="backend"/>; empty when it is not supported here.</summary>
    public static IReadOnlyList<DeviceInfo> Devices(Backend backend)
    {
        var resolved = Resolve(backend);
        if (!Query(resolved).IsSupported) return [];
        return resolved switch
        {
            Backend.Cpu =>
            [
                new DeviceInfo(Backend.Cpu, 0, Cpu.CpuFeatures.Describe(), GC.GetGCMemoryInfo().TotalAvailableMemoryBytes,
                    Environment.ProcessorCount, "-", ".NET " + Environment.Version, false),
            ],
            Backend.OpenCl => Gpu.OpenCl.OpenClDeviceInfo.Describe(),
            Backend.Cuda => Gpu.Cuda.CudaDeviceInfo.Describe(),
            _ => [],
        };
    }
}
