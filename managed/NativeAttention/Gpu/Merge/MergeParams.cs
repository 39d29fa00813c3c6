// C# mirror of kernels/merge/merge_params.h; field order and widths match the C struct.
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

/// <summary>Mirror of <c>na_merge_params</c> (kernels/merge/merge_params.h); field order and widths must match.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct MergeParams
{
    public long PoOffset, PoStrideS, PoStrideD, PlOffset, PlStrideS, OOffset, OStrideD, LseOffset;
    public fixed long PoStrideR[4];
    public fixed long PlStrideR[4];
    public fixed long OStrideR[4];
    public fixed long LseStrideR[4];
    public fixed int RowShape[4];
    public int Splits, Dv, Rows, HasLse;
}
