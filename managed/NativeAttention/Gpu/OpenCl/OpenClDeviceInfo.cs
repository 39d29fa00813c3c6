// Device properties of the OpenCL devices found, for Backends.Devices.
using static NativeAttention.Interop.OpenCl.OpenClNative;

namespace NativeAttention.Gpu.OpenCl;

internal static unsafe class OpenClDeviceInfo
{
    private const uint MaxComputeUnits = 0x1002;   // CL_DEVICE_MAX_COMPUTE_UNITS (cl_uint)
    private const uint GlobalMemSize = 0x101F;     // CL_DEVICE_GLOBAL_MEM_SIZE (cl_ulong)
    private const uint DeviceVersion = 0x102F;     // CL_DEVICE_VERSION (string)
    private const uint LocalMemSize = 0x1023;      // CL_DEVICE_LOCAL_MEM_SIZE (cl_ulong)

    /// <summary>CL_DEVICE_MAX_COMPUTE_UNITS of a device.</summary>
    public static int ComputeUnits(IntPtr device)
    {
        uint units;
        OpenClException.Check(clGetDeviceInfo(device, MaxComputeUnits, sizeof(uint), &units, null), "clGetDeviceInfo(MAX_COMPUTE_UNITS)");
        return (int)units;
    }

    /// <summary>CL_DEVICE_LOCAL_MEM_SIZE of a device: the local memory one work-group may use (32 KB guaranteed).</summary>
    public static long LocalMemoryBytes(IntPtr device)
    {
        ulong bytes;
        OpenClException.Check(clGetDeviceInfo(device, LocalMemSize, sizeof(ulong), &bytes, null), "clGetDeviceInfo(LOCAL_MEM_SIZE)");
        return (long)bytes;
    }

    public static IReadOnlyList<DeviceInfo> Describe()
    {
        var (devices, _) = OpenClDevices.All;
        var result = new List<DeviceInfo>();
        for (int i = 0; i < devices.Count; i++)
        {
            var d = devices[i];
            uint units;
            ulong memory;
            OpenClException.Check(clGetDeviceInfo(d.Id, MaxComputeUnits, sizeof(uint), &units, null), "clGetDeviceInfo");
            OpenClException.Check(clGetDeviceInfo(d.Id, GlobalMemSize, sizeof(ulong), &memory, null), "clGetDeviceInfo");
            string version = OpenClDevices.DeviceString(d.Id, DeviceVersion);
            result.Add(new DeviceInfo(Backend.OpenCl, i, d.Name, (long)memory, (int)units, d.DriverVersion, $"{d.PlatformName}, {version}", d.IsGpu));
        }
        return result;
    }
}
