// Device properties of the CUDA devices found, for Backends.Devices.
using static NativeAttention.Interop.Cuda.CudaNative;

namespace NativeAttention.Gpu.Cuda;

internal static unsafe class CudaDeviceInfo
{
    public static IReadOnlyList<DeviceInfo> Describe()
    {
        var (devices, driver, _) = CudaDevices.All;
        var (nvrtcMajor, nvrtcMinor) = CudaCompiler.Version;
        var result = new List<DeviceInfo>();
        foreach (var d in devices)
        {
            int device, multiprocessors;
            nuint memory;
            CudaException.Check(cuDeviceGet(&device, d.Ordinal), "cuDeviceGet");
            CudaException.Check(cuDeviceGetAttribute(&multiprocessors, AttributeMultiprocessorCount, device), "cuDeviceGetAttribute");
            CudaException.Check(cuDeviceTotalMem(&memory, device), "cuDeviceTotalMem");
            result.Add(new DeviceInfo(Backend.Cuda, d.Ordinal, $"{d.Name} (sm_{d.ComputeCapability})", (long)memory, multiprocessors,
                $"CUDA driver {driver / 1000}.{driver % 1000 / 10}", $"NVRTC {nvrtcMajor}.{nvrtcMinor}", true));
        }
        return result;
    }
}
