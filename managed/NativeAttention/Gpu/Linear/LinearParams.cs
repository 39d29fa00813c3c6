// C# mirror of kernels/linear/linear_params.h; field order, types and comments match the C struct.
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

[StructLayout(LayoutKind.Sequential)]
internal struct LinearParams
{
    public QkvoParams Qkvo;    // Q, K, V, O and the sizes (common/qkvo_params.h); HeadsQ is H, HeadsKv is Hk; no LSE
    public long S0Offset;      // element offset of the initial state (decode: the state); unused when has_initial == 0
    public long S0StrideS, S0StrideH, S0StrideF, S0StrideC;               // initial state strides: sequence, head, feature, column
    public long S1Offset;      // element offset of the final state (verify: intermediate states); unused when has_final == 0
    public long S1StrideS, S1StrideT, S1StrideH, S1StrideF, S1StrideC;    // final state strides (token: verify only, else 0)
    public long GOffset;       // element offset of LogGate[0,0,0(,0)]; unused unless decay is 2 or 3
    public long GStrideB, GStrideH, GStrideN, GStrideD;                   // log gate strides (D 0 for [B, H, N] gates)
    public int Heads;          // H, output and state heads
    public int GroupQ;         // H / Hq
    public int GroupK;         // H / Hk
    public int GroupV;         // H / Hv
    public int Features;       // F
    public int Columns;        // C = Dv (+ 1 with normalize)
    public int Sequences;      // S
    public int Chunk;          // tokens per chunk (chunked kernel only)
    public int ColBlocks;      // work-groups per (sequence, head) along the value columns
    public int FeatureMap;     // FeatureMap as an int
    public int Decay;          // DecayKind as an int
    public int Normalize;      // 1: normalised
    public int Causal;         // 1: causal
    public int HasInitial;     // 1: start from s0
    public int HasFinal;       // 1: write s1
    public int Varlen;         // 1: packed sequences, offsets in meta
    public int Verify;         // decode only: 1 writes every token's state to s1
    public int DecayBase;      // index in meta of the first per-head log2 decay
    public float Scale;        // factor on phi(q) . phi(k)
    public float Eps;          // added to the normaliser
}
