// Arguments of every flash-family kernel, passed by value. Mirrored by managed/NativeAttention/Gpu/Flash/FlashParams.cs;
// a test runs flash/flash_layout_probe.h and checks that both sides agree on size and offsets.
#include "common/qkvo_params.h"

// The Q/K/V/O block comes first, then 64-bit fields, then an even number of 4-byte fields, so that no padding depends on
// the compiler.
typedef struct na_flash_params
{
    na_qkvo_params qkvo;   // Q, K, V, O, LSE and the sizes (common/qkvo_params.h)
    na_i64 bias_offset;    // element offset of Bias[0,0,0,0]; unused without NA_BIAS
    na_i64 bias_stride_b;  // Bias element strides: batch, head (0 when broadcast), query, key
    na_i64 bias_stride_h;
    na_i64 bias_stride_n;
    na_i64 bias_stride_k;
    na_i64 u_offset;       // element offset of U[0,0,0,0] (low-rank bias U W^T); unused without NA_LOWRANK
    na_i64 u_stride_b;     // U element strides: batch, head (0 when broadcast), query, rank
    na_i64 u_stride_h;
    na_i64 u_stride_n;
    na_i64 u_stride_r;
    na_i64 w_offset;       // element offset of W[0,0,0,0]
    na_i64 w_stride_b;     // W element strides: batch, head (0 when broadcast), key, rank
    na_i64 w_stride_h;
    na_i64 w_stride_n;
    na_i64 w_stride_r;
    na_i64 alibi_offset;   // element offset of the first float32 ALiBi slope; unused without NA_ALIBI
    na_i64 alibi_stride_b; // slope strides: batch (0 for [Hq] slopes), head
    na_i64 alibi_stride_h;
    na_i64 sinks_offset;   // element offset of the first float32 sink logit; unused without NA_SINKS
    na_i64 sinks_stride_h; // sink stride over heads
    int window_left;     // keys j >= i' - window_left stay visible; -1 unbounded
    int window_right;    // keys j <= i' + window_right stay visible; -1 unbounded
    int causal;          // 1: keys j <= i' (bottom-right alignment, i' = i + nk - nq)
    int has_lse;         // 1: write LSE
    int rank;            // r, the inner dim of the low-rank bias; 0 without NA_LOWRANK
    float scale_log2;    // scale * log2(e): scores are kept in base 2
    float scale;         // scale itself, for reference
    float softcap_log2;  // softcap c * log2(e): base-2 scores s2 become softcap_log2 * tanh(s2 / softcap_log2)
    float sigmoid_bias;  // b of sigmoid scoring, sigmoid(s' + b), in natural units
    int reserved;        // keeps the size a multiple of 8 without compiler padding
} na_flash_params;
