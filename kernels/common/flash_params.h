// Arguments of every flash-family kernel, passed by value. Mirrored by managed/NativeAttention/Gpu/FlashParams.cs;
// a test compiles common/layout_probe.h and checks that both sides agree on size and offsets.
// 64-bit fields come first so that no padding depends on the compiler.
typedef struct na_flash_params
{
    na_i64 q_offset;     // element offset of Q[0,0,0,0] from the Q buffer's base
    na_i64 k_offset;     // element offset of K[0,0,0,0]
    na_i64 v_offset;     // element offset of V[0,0,0,0]
    na_i64 o_offset;     // element offset of O[0,0,0,0]
    na_i64 lse_offset;   // element offset of LSE[0,0,0]; unused when has_lse == 0
    na_i64 q_stride_b;   // Q element strides: batch, head, token, feature
    na_i64 q_stride_h;
    na_i64 q_stride_n;
    na_i64 q_stride_d;
    na_i64 k_stride_b;   // K element strides: batch, kv head, token, feature
    na_i64 k_stride_h;
    na_i64 k_stride_n;
    na_i64 k_stride_d;
    na_i64 v_stride_b;   // V element strides: batch, kv head, token, feature
    na_i64 v_stride_h;
    na_i64 v_stride_n;
    na_i64 v_stride_d;
    na_i64 o_stride_b;   // O element strides: batch, head, token, feature
    na_i64 o_stride_h;
    na_i64 o_stride_n;
    na_i64 o_stride_d;
    na_i64 lse_stride_b; // LSE element strides: batch, head, token
    na_i64 lse_stride_h;
    na_i64 lse_stride_n;
    int batch;           // B
    int heads_q;         // Hq
    int heads_kv;        // Hkv (divides Hq)
    int group;           // Hq / Hkv: query heads sharing one kv head
    int nq;              // query length
    int nk;              // key length
    int dqk;             // query/key head dim (<= NA_HEAD_DIM_QK)
    int dv;              // value head dim (<= NA_HEAD_DIM_V)
    int window_left;     // keys j >= i' - window_left stay visible; -1 unbounded
    int window_right;    // keys j <= i' + window_right stay visible; -1 unbounded
    int causal;          // 1: keys j <= i' (bottom-right alignment, i' = i + nk - nq)
    int has_lse;         // 1: write LSE
    float scale_log2;    // scale * log2(e): scores are kept in base 2
    float scale;         // scale itself, for reference
} na_flash_params;
