// C# mirrors of kernels/blocksparse/content_params.h; field order and widths match the C structs.
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

/// <summary>Mirror of <c>na_content_pool_params</c>: one [B, H, N, D] tensor pooled per block.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct ContentPoolParams
{
    public long Offset, StrideB, StrideH, StrideN, StrideD;
    public int Heads, N, D, BlockSize, Blocks, Total, Reserved0, Reserved1;
}

/// <summary>Mirror of <c>na_content_select_params</c>: the pooled scores, softmax, gate and selection per row.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct ContentSelectParams
{
    public int Hq, Hkv, QueryBlocks, KeyBlocks, D, Rows, Nq, Nk, Bq, Bk, Causal, KeepDiagonal, SinkBlocks, TopK;
    public float Gamma, Scale, Threshold;
    public int Reserved;
}
