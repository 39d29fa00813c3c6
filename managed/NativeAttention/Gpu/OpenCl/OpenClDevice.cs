// An OpenCL device as the backend probe found it.
namespace NativeAttention.Gpu.OpenCl;

/// <summary>One OpenCL device: its id, platform and the strings that key the kernel cache.</summary>
internal sealed record OpenClDevice(IntPtr Platform, IntPtr Id, string Name, string PlatformName, string DriverVersion, bool IsGpu);
