// Where Q, K, V, O and LSE live and the problem sizes: the block every attention family's params struct embeds as its
// first member (flash/flash_params.h, decode/decode_params.h), so kernels read e.g. p.qkvo.q_stride_n. Mirrored by
// managed/NativeAttention/Gpu/QkvoParams.cs, filled there by one helper from the validated views. 24 64-bit fields
// then 8 ints: 224 bytes, a multiple of 8, so the family fields that follow start aligned and no padding depends on
// the compiler.
// Layouts: Q [B, Hq, Nq, Dqk], K [B, Hkv, Nk, Dqk], V [B, Hkv, Nk, Dv], O [B, Hq, Nq, Dv], LSE [B, Hq, Nq]; offsets
// and strides count elements from each buffer's base. Families whose K/V are caches say what their batch axis is.
typedef struct na_qkvo_params
{
    na_i64 q_offset;     // element offset of Q[0,0,0,0] from the Q buffer's base
    na_i64 k_offset;     // element offset of K[0,0,0,0]
    na_i64 v_offset;     // element offset of V[0,0,0,0]
    na_i64 o_offset;     // element offset of O[0,0,0,0]
    na_i64 lse_offset;   // element offset of LSE[0,0,0]; unused when the family writes no LSE
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
    int nk;              // key length; 0 where it differs per batch element (KV-cache decode)
    int dqk;             // query/key head dim (<= NA_HEAD_DIM_QK)
    int dv;              // value head dim (<= NA_HEAD_DIM_V)
} na_qkvo_params;

// Every field of na_qkvo_params in declaration order, for the layout probes: X(field) per field.
#define NA_QKVO_FIELDS(X)                                                                                              \
    X(q_offset) X(k_offset) X(v_offset) X(o_offset) X(lse_offset)                                                      \
    X(q_stride_b) X(q_stride_h) X(q_stride_n) X(q_stride_d) X(k_stride_b) X(k_stride_h) X(k_stride_n) X(k_stride_d)     \
    X(v_stride_b) X(v_stride_h) X(v_stride_n) X(v_stride_d) X(o_stride_b) X(o_stride_h) X(o_stride_n) X(o_stride_d)     \
    X(lse_stride_b) X(lse_stride_h) X(lse_stride_n)                                                                    \
    X(batch) X(heads_q) X(heads_kv) X(group) X(nq) X(nk) X(dqk) X(dv)
