// Enumerates OpenCL devices across platforms (once) and describes them for the backend probe.
using System.Text;
using NativeAttention.Interop;
using static NativeAttention.Interop.OpenCl.OpenClNative;

namespace NativeAttention.Gpu.OpenCl;

internal static unsafe class OpenClDevices
{
    private static readonly Lazy<(IReadOnlyList<OpenClDevice> Devices, string? Error)> Found = new(Enumerate);

    /// <summary>Every device of every platform, in platform order, or the reason there are none.</summary>
    public static (IReadOnlyList<OpenClDevice> Devices, string? Error) All => Found.Value;

    public static BackendInfo Probe()
    {
        var (devices, error) = All;
        if (error is not null) return new BackendInfo(Backend.OpenCl, false, error);
        var text = string.Join("; ", devices.Select((d, i) => $"{i}: {d.Name} ({d.PlatformName}, driver {d.DriverVersion})"));
        return new BackendInfo(Backend.OpenCl, true, text, devices[0].IsGpu);
    }

    private static (IReadOnlyList<OpenClDevice>, string?) Enumerate()
    {
        if (!NativeLibraries.TryGet(NativeLibraryKind.OpenCl, out string library))
            return ([], "The OpenCL library was " + library + ".");
        try
        {
            uint platformCount;
            int status = clGetPlatformIDs(0, null, &platformCount);
            if (status != Success || platformCount == 0)
                return ([], $"No OpenCL platform is installed (clGetPlatformIDs returned {status}).");
            var platforms = new IntPtr[platformCount];
            fixed (IntPtr* pp = platforms) OpenClException.Check(clGetPlatformIDs(platformCount, pp, null), "clGetPlatformIDs");
            var devices = new List<OpenClDevice>();
            foreach (var platform in platforms)
            {
                uint count;
                if (clGetDeviceIDs(platform, DeviceTypeAll, 0, null, &count) != Success || count == 0) continue;
                var ids = new IntPtr[count];
                fixed (IntPtr* pd = ids) OpenClException.Check(clGetDeviceIDs(platform, DeviceTypeAll, count, pd, null), "clGetDeviceIDs");
                string platformName = PlatformString(platform, PlatformName);
                foreach (var id in ids)
                {
                    ulong type;
                    OpenClException.Check(clGetDeviceInfo(id, DeviceType, sizeof(ulong), &type, null), "clGetDeviceInfo");
                    devices.Add(new OpenClDevice(platform, id, DeviceString(id, DeviceName).Trim(), platformName,
                        DeviceString(id, DriverVersion), (type & DeviceTypeGpu) != 0));
                }
            }
            return devices.Count == 0 ? ([], "OpenCL platforms are installed but expose no device.") : (devices, null);
        }
        catch (Exception e) when (e is OpenClException or DllNotFoundException or EntryPointNotFoundException)
        {
            return ([], "OpenCL could not be queried: " + e.Message);
        }
    }

    public static string DeviceString(IntPtr device, uint name)
    {
        nuint size;
        OpenClException.Check(clGetDeviceInfo(device, name, 0, null, &size), "clGetDeviceInfo");
        var bytes = new byte[size];
        fixed (byte* p = bytes) OpenClException.Check(clGetDeviceInfo(device, name, size, p, null), "clGetDeviceInfo");
        return Encoding.UTF8.GetString(bytes).TrimEnd('\0');
    }

    private static string PlatformString(IntPtr platform, uint name)
    {
        nuint size;
        OpenClException.Check(clGetPlatformInfo(platform, name, 0, null, &size), "clGetPlatformInfo");
        var bytes = new byte[size];
        fixed (byte* p = bytes) OpenClException.Check(clGetPlatformInfo(platform, name, size, p, null), "clGetPlatformInfo");
        return Encoding.UTF8.GetString(bytes).TrimEnd('\0');
    }
}
