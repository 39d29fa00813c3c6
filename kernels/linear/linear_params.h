// Arguments of the chunked linear-attention kernels (linear/linear_fwd.h, linear/linear_decode.h), passed by value.
// Mirrored by managed/NativeAttention/Gpu/Linear/LinearParams.cs; a test runs linear/linear_layout_probe.h and checks
// that both sides agree on size and offsets. The Q/K/V/O block comes first (its heads_q is H, the output and state
// heads; heads_kv is Hk; nq = nk = N), then 64-bit fields, then an even number of 4-byte fields, so that no padding
// depends on the compiler.
// States are float32 [S, H, F, C] (S = B, or the packed sequences), C = Dv (+ 1 normaliser column); verify calls write
// intermediate states [B, T, H, F, C]. Log gates are float32 [B, H, N] or [B, H, N, Dk].
#include "common/qkvo_params.h"

typedef struct na_linear_params
{
    na_qkvo_params qkvo;  // Q, K, V, O and the sizes (common/qkvo_params.h); no LSE
    na_i64 s0_offset;     // element offset of the initial state (decode: the state) [0,0,0,0]; unused when has_initial == 0
    na_i64 s0_stride_s;   // initial state element strides: sequence, head, feature, column
    na_i64 s0_stride_h;
    na_i64 s0_stride_f;
    na_i64 s0_stride_c;
    na_i64 s1_offset;     // element offset of the final state (verify: intermediate states) [0,...]; unused when has_final == 0
    na_i64 s1_stride_s;   // final state element strides: sequence (verify: batch), token (verify only, else 0), head, feature, column
    na_i64 s1_stride_t;
    na_i64 s1_stride_h;
    na_i64 s1_stride_f;
    na_i64 s1_stride_c;
    na_i64 g_offset;      // element offset of LogGate[0,0,0(,0)]; unused unless decay is 2 or 3
    na_i64 g_stride_b;    // log gate element strides: batch, head, token, key dimension (0 for [B, H, N] gates)
    na_i64 g_stride_h;
    na_i64 g_stride_n;
    na_i64 g_stride_d;
    int heads;            // H, output and state heads
    int group_q;          // H / Hq: output head h reads query head h / group_q
    int group_k;          // H / Hk
    int group_v;          // H / Hv
    int features;         // F, the feature size of phi
    int columns;          // C, state columns: Dv, plus 1 with normalize
    int sequences;        // S: B, or the packed sequence count (meta[0 .. S] holds the offsets when varlen)
    int chunk;            // tokens per chunk, 1 .. NA_LINEAR_CHUNK (chunked kernel only)
    int col_blocks;       // work-groups per (sequence, head) along the value columns
    int feature_map;      // NA_LINEAR_MAP_*: 0 identity, 1 elu + 1, 2 relu, 3 Taylor2, 4 precomputed
    int decay;            // NA_LINEAR_DECAY_*: 0 none, 1 per head (log2 decays at meta[decay_base + h]), 2 per token, 3 per token and key
    int normalize;        // 1: divide by scale * (phi(q) . z) + eps, z the normaliser column Dv of the state
    int causal;           // 0: phi(Q) (phi(K)^T V) over the whole sequence (no decay, no states)
    int has_initial;      // 1: the state starts from s0 (else zeros)
    int has_final;        // 1: the state is written to s1 at the end (verify: after every token)
    int varlen;           // 1: packed sequences, B = 1, offsets in meta[0 .. S]
    int verify;           // decode only: 1 reads s0 and writes every token's state to s1; 0 updates s0 in place
    int decay_base;       // index in meta of the first per-head log2 decay (stored by bit pattern)
    float scale;          // factor on phi(q) . phi(k)
    float eps;            // added to the normaliser
} na_linear_params;
