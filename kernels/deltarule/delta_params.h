// Arguments of the delta-rule kernels (deltarule/delta_recurrent.h, delta_chunk_prepare.h and delta_chunked.h), passed
// by value. Mirrored by managed/NativeAttention/Gpu/DeltaRule/DeltaParams.cs; a test runs deltarule/delta_layout_probe.h
// and checks that both sides agree on size and offsets. The Q/K/V/O block comes first (heads_q is H, the output and state
// heads), then 64-bit fields, then an even number of 4-byte fields, so that no padding depends on the compiler.
// States are float32, addressed through a key-dimension stride (f) and a value-column stride (c), so K-major and
// V-major layouts are the same code. The kernel reads the state before the first token from s0 (or zeros) and writes
// every token's state to the destination d at d_offset + s d_stride_s + t d_stride_t + h d_stride_h (d_stride_t is 0
// but when verifying); from the second token on it reads the previous token's destination.
#include "common/qkvo_params.h"

typedef struct na_delta_params
{
    na_qkvo_params qkvo;  // Q, K, V, O and the sizes (common/qkvo_params.h); no LSE
    na_i64 s0_offset;     // element offset of the state before the first token; unused when has_initial == 0
    na_i64 s0_stride_s;   // its element strides: sequence, head, key dimension, value column
    na_i64 s0_stride_h;
    na_i64 s0_stride_f;
    na_i64 s0_stride_c;
    na_i64 d_offset;      // element offset of the destination state
    na_i64 d_stride_s;    // its element strides: sequence, token (verify only, else 0), head, key dimension, value column
    na_i64 d_stride_t;
    na_i64 d_stride_h;
    na_i64 d_stride_f;
    na_i64 d_stride_c;
    na_i64 g_offset;      // element offset of LogGate[0,0,0(,0)]; unused when gate == 0
    na_i64 g_stride_b;    // log gate element strides: batch, head, token, key dimension (0 for [B, H, N] gates)
    na_i64 g_stride_h;
    na_i64 g_stride_n;
    na_i64 g_stride_d;
    na_i64 beta_offset;   // element offset of beta[0,0,0]
    na_i64 beta_stride_b; // beta element strides: batch, head, token
    na_i64 beta_stride_h;
    na_i64 beta_stride_n;
    int heads;            // H, output and state heads
    int group_q;          // H / Hq: output head h reads query head h / group_q
    int group_k;          // H / Hk
    int group_v;          // H / Hv
    int sequences;        // S: B, or the packed sequence count (meta[0 .. S] holds the offsets when varlen)
    int col_blocks;       // work-groups per (sequence, head) along the value columns
    int gate;             // 0 none (DeltaNet), 1 per token (Gated DeltaNet), 2 per token and key dimension (KDA)
    int l2norm;           // 1: q and k become x / sqrt(|x|^2 + 1e-6) first
    int has_initial;      // 1: the state starts from s0 (else zeros)
    int varlen;           // 1: packed sequences, B = 1, offsets in meta[0 .. S]
    int beta_f32;         // 1: beta is float32 (read through beta_f), else the storage type (beta_e)
    float scale;          // factor on S^T q
    int chunk;            // tokens per chunk of the chunked kernels (1 .. NA_DELTA_CHUNK); unused by the recurrent one
    int chunk_first;      // chunked kernels: the launch's window of chunks of every sequence starts at this chunk index
    int chunk_count;      // ... and holds this many (the scratch holds that many chunks per sequence and head)
    int reserved;         // 0; keeps the 4-byte fields even
} na_delta_params;
