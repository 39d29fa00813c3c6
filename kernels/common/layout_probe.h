// Writes sizeof(na_flash_params) / sizeof(na_decode_params) and each field's offset, in declaration order, so the
// host can check its mirrors.
#include "common/flash_params.h"
#include "decode/decode_params.h"

NA_KERNEL void na_flash_params_layout(NA_GLOBAL int* out)
{
    if (NA_LOCAL_ID(0) != 0 || NA_GROUP_ID(0) != 0) return;
    int n = 0;
    out[n++] = (int)sizeof(na_flash_params);
#define NA_PROBE(f) out[n++] = NA_OFFSETOF(na_flash_params, f)
    NA_PROBE(q_offset); NA_PROBE(k_offset); NA_PROBE(v_offset); NA_PROBE(o_offset); NA_PROBE(lse_offset);
    NA_PROBE(q_stride_b); NA_PROBE(q_stride_h); NA_PROBE(q_stride_n); NA_PROBE(q_stride_d);
    NA_PROBE(k_stride_b); NA_PROBE(k_stride_h); NA_PROBE(k_stride_n); NA_PROBE(k_stride_d);
    NA_PROBE(v_stride_b); NA_PROBE(v_stride_h); NA_PROBE(v_stride_n); NA_PROBE(v_stride_d);
    NA_PROBE(o_stride_b); NA_PROBE(o_stride_h); NA_PROBE(o_stride_n); NA_PROBE(o_stride_d);
    NA_PROBE(lse_stride_b); NA_PROBE(lse_stride_h); NA_PROBE(lse_stride_n);
    NA_PROBE(bias_offset); NA_PROBE(bias_stride_b); NA_PROBE(bias_stride_h); NA_PROBE(bias_stride_n); NA_PROBE(bias_stride_k);
    NA_PROBE(u_offset); NA_PROBE(u_stride_b); NA_PROBE(u_stride_h); NA_PROBE(u_stride_n); NA_PROBE(u_stride_r);
    NA_PROBE(w_offset); NA_PROBE(w_stride_b); NA_PROBE(w_stride_h); NA_PROBE(w_stride_n); NA_PROBE(w_stride_r);
    NA_PROBE(alibi_offset); NA_PROBE(alibi_stride_b); NA_PROBE(alibi_stride_h); NA_PROBE(sinks_offset); NA_PROBE(sinks_stride_h);
    NA_PROBE(batch); NA_PROBE(heads_q); NA_PROBE(heads_kv); NA_PROBE(group); NA_PROBE(nq); NA_PROBE(nk);
    NA_PROBE(dqk); NA_PROBE(dv); NA_PROBE(window_left); NA_PROBE(window_right); NA_PROBE(causal); NA_PROBE(has_lse);
    NA_PROBE(rank); NA_PROBE(scale_log2); NA_PROBE(scale); NA_PROBE(softcap_log2); NA_PROBE(sigmoid_bias);
#undef NA_PROBE
}

NA_KERNEL void na_decode_params_layout(NA_GLOBAL int* out)
{
    if (NA_LOCAL_ID(0) != 0 || NA_GROUP_ID(0) != 0) return;
    int n = 0;
    out[n++] = (int)sizeof(na_decode_params);
#define NA_PROBE(f) out[n++] = NA_OFFSETOF(na_decode_params, f)
    NA_PROBE(q_offset); NA_PROBE(k_offset); NA_PROBE(v_offset); NA_PROBE(o_offset); NA_PROBE(lse_offset); NA_PROBE(nk_offset);
    NA_PROBE(nv_offset); NA_PROBE(cos_offset); NA_PROBE(sin_offset); NA_PROBE(alibi_offset); NA_PROBE(sinks_offset); NA_PROBE(q_stride_b);
    NA_PROBE(q_stride_h); NA_PROBE(q_stride_n); NA_PROBE(q_stride_d); NA_PROBE(k_stride_b); NA_PROBE(k_stride_h); NA_PROBE(k_stride_n);
    NA_PROBE(k_stride_d); NA_PROBE(v_stride_b); NA_PROBE(v_stride_h); NA_PROBE(v_stride_n); NA_PROBE(v_stride_d); NA_PROBE(o_stride_b);
    NA_PROBE(o_stride_h); NA_PROBE(o_stride_n); NA_PROBE(o_stride_d); NA_PROBE(lse_stride_b); NA_PROBE(lse_stride_h); NA_PROBE(lse_stride_n);
    NA_PROBE(nk_stride_b); NA_PROBE(nk_stride_h); NA_PROBE(nk_stride_n); NA_PROBE(nk_stride_d); NA_PROBE(nv_stride_b); NA_PROBE(nv_stride_h);
    NA_PROBE(nv_stride_n); NA_PROBE(nv_stride_d); NA_PROBE(cos_stride_p); NA_PROBE(cos_stride_i); NA_PROBE(sin_stride_p); NA_PROBE(sin_stride_i);
    NA_PROBE(alibi_stride_b); NA_PROBE(alibi_stride_h); NA_PROBE(sinks_stride_h); NA_PROBE(batch); NA_PROBE(heads_q); NA_PROBE(heads_kv);
    NA_PROBE(group); NA_PROBE(nq); NA_PROBE(nnew); NA_PROBE(dqk); NA_PROBE(dv); NA_PROBE(page_size);
    NA_PROBE(blocks_per_seq); NA_PROBE(rotary_half); NA_PROBE(window_left); NA_PROBE(window_right); NA_PROBE(causal); NA_PROBE(has_lse);
    NA_PROBE(splits); NA_PROBE(row_chunks); NA_PROBE(paged); NA_PROBE(rotary); NA_PROBE(has_alibi); NA_PROBE(has_sinks);
    NA_PROBE(sigmoid); NA_PROBE(has_softcap); NA_PROBE(lengths_in_meta); NA_PROBE(scale_log2); NA_PROBE(softcap_log2); NA_PROBE(sigmoid_bias);
    NA_PROBE(lengths); NA_PROBE(reserved);
#undef NA_PROBE
}
