// C# mirror of kernels/deltarule/delta_params.h; field order, types and comments match the C struct.
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

[StructLayout(LayoutKind.Sequential)]
internal struct DeltaParams
{
    public QkvoParams Qkvo;    // Q, K, V, O and the sizes (common/qkvo_params.h); HeadsQ is H; no LSE
    public long S0Offset;      // element offset of the state before the first token; unused when has_initial == 0
    public long S0StrideS, S0StrideH, S0StrideF, S0StrideC;              // its strides: sequence, head, key dimension, value column
    public long DOffset;       // element offset of the destination state
    public long DStrideS, DStrideT, DStrideH, DStrideF, DStrideC;        // its strides (token: verify only, else 0)
    public long GOffset;       // element offset of LogGate[0,0,0(,0)]; unused when gate == 0
    public long GStrideB, GStrideH, GStrideN, GStrideD;                  // log gate strides (D 0 for [B, H, N] gates)
    public long BetaOffset;    // element offset of beta[0,0,0]
    public long BetaStrideB, BetaStrideH, BetaStrideN;                   // beta strides: batch, head, token
    public int Heads;          // H, output and state heads
    public int GroupQ;         // H / Hq
    public int GroupK;         // H / Hk
    public int GroupV;         // H / Hv
    public int Sequences;      // S
    public int ColBlocks;      // work-groups per (sequence, head) along the value columns
    public int Gate;           // 0 none, 1 per token, 2 per token and key dimension
    public int L2Norm;         // 1: q and k L2-normalised in the kernel
    public int HasInitial;     // 1: start from s0
    public int Varlen;         // 1: packed sequences, offsets in meta
    public int BetaF32;        // 1: beta is float32
    public float Scale;        // factor on S^T q
    public int Chunk;          // tokens per chunk of the chunked kernels (1 .. NA_DELTA_CHUNK); unused by the recurrent one
    public int ChunkFirst;     // chunked kernels: the launch's window of chunks of every sequence starts at this chunk index
    public int ChunkCount;     // ... and holds this many (the scratch holds that many chunks per sequence and head)
    public int Reserved;       // 0; keeps the 4-byte fields even
}
