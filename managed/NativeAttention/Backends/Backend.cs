// The backends and what each one can do on this machine, probed once.
namespace NativeAttention;

/// <summary>A compute backend.</summary>
public enum Backend
{
    /// <summary>The best supported backend: CUDA, then an OpenCL GPU, then the CPU.</summary>
    Auto,
    /// <summary>Managed SIMD kernels on the CPU; always supported.</summary>
    Cpu,
    /// <summary>OpenCL C kernels compiled by the OpenCL driver (GPUs, or CPUs through PoCL).</summary>
    OpenCl,
    /// <summary>CUDA C kernels compiled by NVRTC for NVIDIA GPUs.</summary>
    Cuda,
}

/// <summary>Whether a backend runs here, and on what (or why not).</summary>
/// <param name="Backend">The backend.</param>
/// <param name="IsSupported">True when a context can be created.</param>
/// <param name="Description">The devices found when supported, otherwise the reason it is not.</param>
/// <param name="IsGpu">True when the default device is a GPU.</param>
public sealed record BackendInfo(Backend Backend, bool IsSupported, string Description, bool IsGpu = false);

/// <summary>Probes backends once and picks one for <see cref="Backend.Auto"/>.</summary>
public static partial class Backends
{
    private static readonly Lazy<BackendInfo> CpuInfo = new(() => new BackendInfo(Backend.Cpu, true, Cpu.CpuFeatures.Describe()));
    private static readonly Lazy<BackendInfo> OpenClInfo = new(GpuProbes.ProbeOpenCl);
    private static readonly Lazy<BackendInfo> CudaInfo = new(GpuProbes.ProbeCuda);

    /// <summary>What <paramref name="backend"/> can do here; <see cref="Backend.Auto"/> resolves first.</summary>
    public static BackendInfo Query(Backend backend) => Resolve(backend) switch
    {
        Backend.Cpu => CpuInfo.Value,
        Backend.OpenCl => OpenClInfo.Value,
        Backend.Cuda => CudaInfo.Value,
        var other => throw new ArgumentOutOfRangeException(nameof(backend), other, "Unknown backend."),
    };

    /// <summary>Every concrete backend with its status.</summary>
    public static IReadOnlyList<BackendInfo> All => [Query(Backend.Cpu), Query(Backend.OpenCl), Query(Backend.Cuda)];

    /// <summary>The backend <see cref="Backend.Auto"/> stands for here: CUDA, then an OpenCL GPU, then the CPU.</summary>
    public static Backend Resolve(Backend backend)
    {
        if (backend != Backend.Auto) return backend;
        if (CudaInfo.Value.IsSupported) return Backend.Cuda;
        if (OpenClInfo.Value is { IsSupported: true, IsGpu: true }) return Backend.OpenCl;
        return Backend.Cpu;
    }
}
