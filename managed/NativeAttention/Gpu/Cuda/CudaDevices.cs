// Probes the CUDA driver and NVRTC once and describes the devices for the backend probe.
using System.Text;
using NativeAttention.Interop;
using static NativeAttention.Interop.Cuda.CudaNative;

namespace NativeAttention.Gpu.Cuda;

internal static unsafe class CudaDevices
{
    private static readonly Lazy<(IReadOnlyList<CudaDevice> Devices, int DriverVersion, string? Error)> Found = new(Enumerate);

    public static (IReadOnlyList<CudaDevice> Devices, int DriverVersion, string? Error) All => Found.Value;

    public static BackendInfo Probe()
    {
        var (devices, driver, error) = All;
        if (error is not null) return new BackendInfo(Backend.Cuda, false, error);
        if (!CudaCompiler.IsAvailable(out string nvrtc))
            return new BackendInfo(Backend.Cuda, false, "A CUDA device is present but " + nvrtc + ".");
        var text = string.Join("; ", devices.Select(d => $"{d.Ordinal}: {d.Name} (sm_{d.ComputeCapability})"));
        return new BackendInfo(Backend.Cuda, true, $"{text}; driver {driver / 1000}.{driver % 1000 / 10}, {nvrtc}", true);
    }

    private static (IReadOnlyList<CudaDevice>, int, string?) Enumerate()
    {
        if (!NativeLibraries.TryGet(NativeLibraryKind.Cuda, out string library))
            return ([], 0, "The CUDA driver library was " + library + ".");
        try
        {
            int result = cuInit(0);
            if (result != Success) return ([], 0, $"cuInit failed with {CudaException.NameOf(result)}: no usable NVIDIA driver or device.");
            int version, count;
            CudaException.Check(cuDriverGetVersion(&version), "cuDriverGetVersion");
            CudaException.Check(cuDeviceGetCount(&count), "cuDeviceGetCount");
            if (count == 0) return ([], version, "The CUDA driver reports no device.");
            var devices = new List<CudaDevice>();
            for (int i = 0; i < count; i++)
            {
                int device, major, minor, multiprocessors;
                CudaException.Check(cuDeviceGet(&device, i), "cuDeviceGet");
                var name = new byte[256];
                fixed (byte* n = name) CudaException.Check(cuDeviceGetName(n, name.Length, device), "cuDeviceGetName");
                CudaException.Check(cuDeviceGetAttribute(&major, AttributeComputeCapabilityMajor, device), "cuDeviceGetAttribute");
                CudaException.Check(cuDeviceGetAttribute(&minor, AttributeComputeCapabilityMinor, device), "cuDeviceGetAttribute");
                CudaException.Check(cuDeviceGetAttribute(&multiprocessors, AttributeMultiprocessorCount, device), "cuDeviceGetAttribute");
                devices.Add(new CudaDevice(i, Encoding.UTF8.GetString(name).TrimEnd('\0'), major * 10 + minor, multiprocessors));
            }
            return (devices, version, null);
        }
        catch (Exception e) when (e is CudaException or EntryPointNotFoundException)
        {
            return ([], 0, "The CUDA driver could not be queried: " + e.Message);
        }
    }
}
