// C# mirror of kernels/flash/flash_params.h; field order, types and comments match the C struct.
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

[StructLayout(LayoutKind.Sequential)]
internal struct FlashParams
{
    public QkvoParams Qkvo;   // Q, K, V, O, LSE and the sizes (common/qkvo_params.h)
    public long BiasOffset;   // element offset of Bias[0,0,0,0]; unused without a dense bias
    public long BiasStrideB, BiasStrideH, BiasStrideN, BiasStrideK;  // Bias element strides (0 when broadcast)
    public long UOffset;      // element offset of U[0,0,0,0] (low-rank bias U W^T)
    public long UStrideB, UStrideH, UStrideN, UStrideR;  // U element strides: batch, head, query, rank
    public long WOffset;      // element offset of W[0,0,0,0]
    public long WStrideB, WStrideH, WStrideN, WStrideR;  // W element strides: batch, head, key, rank
    public long AlibiOffset;  // element offset of the first ALiBi slope
    public long AlibiStrideB, AlibiStrideH;              // slope strides: batch (0 for [Hq] slopes), head
    public long SinksOffset;  // element offset of the first sink logit
    public long SinksStrideH; // sink stride over heads
    public int WindowLeft;    // -1 unbounded
    public int WindowRight;   // -1 unbounded
    public int Causal;        // 1: bottom-right causal
    public int HasLse;        // 1: write LSE
    public int Rank;          // inner dim of the low-rank bias; 0 without one
    public float ScaleLog2;   // scale * log2(e)
    public float Scale;       // scale
    public float SoftcapLog2; // softcap c * log2(e)
    public float SigmoidBias; // b of sigmoid(s' + b)
    public int Reserved;      // keeps the size a multiple of 8 without compiler padding
}
