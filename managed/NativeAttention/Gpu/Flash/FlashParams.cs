// C# mirror of kernels/flash/flash_params.h; field order, types and comments match the C struct.
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

[StructLayout(LayoutKind.Sequential)]
internal struct FlashParams
{
    public long QOffset;      // element offset of Q[0,0,0,0] from the Q buffer's base
    public long KOffset;      // element offset of K[0,0,0,0]
    public long VOffset;      // element offset of V[0,0,0,0]
    public long OOffset;      // element offset of O[0,0,0,0]
    public long LseOffset;    // element offset of LSE[0,0,0]; unused when HasLse == 0
    public long QStrideB, QStrideH, QStrideN, QStrideD;  // Q element strides: batch, head, token, feature
    public long KStrideB, KStrideH, KStrideN, KStrideD;  // K element strides: batch, kv head, token, feature
    public long VStrideB, VStrideH, VStrideN, VStrideD;  // V element strides: batch, kv head, token, feature
    public long OStrideB, OStrideH, OStrideN, OStrideD;  // O element strides: batch, head, token, feature
    public long LseStrideB, LseStrideH, LseStrideN;      // LSE element strides: batch, head, token
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
    public int Batch;         // B
    public int HeadsQ;        // Hq
    public int HeadsKv;       // Hkv (divides Hq)
    public int Group;         // Hq / Hkv
    public int Nq;            // query length
    public int Nk;            // key length
    public int Dqk;           // query/key head dim
    public int Dv;            // value head dim
    public int WindowLeft;    // -1 unbounded
    public int WindowRight;   // -1 unbounded
    public int Causal;        // 1: bottom-right causal
    public int HasLse;        // 1: write LSE
    public int Rank;          // inner dim of the low-rank bias; 0 without one
    public float ScaleLog2;   // scale * log2(e)
    public float Scale;       // scale
    public float SoftcapLog2; // softcap c * log2(e)
    public float SigmoidBias; // b of sigmoid(s' + b)
}
