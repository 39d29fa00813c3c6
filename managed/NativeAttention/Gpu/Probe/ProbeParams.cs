// C# mirror of kernels/probe/probe_params.h; field order and widths match the C struct.
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

/// <summary>Mirror of <c>na_probe_params</c> (kernels/probe/probe_params.h); field order and widths must match.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct ProbeParams
{
    public long Elements;
    public int Iterations;
    public float Sentinel;
}
