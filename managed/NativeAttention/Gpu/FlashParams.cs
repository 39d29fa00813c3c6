// C# mirror of kernels/common/flash_params.h; field order, types and comments match the C struct.
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
    public float ScaleLog2;   // scale * log2(e)
    public float Scale;       // scale
}
