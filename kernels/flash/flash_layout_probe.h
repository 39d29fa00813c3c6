// Layout probe of na_flash_params (flash/flash_params.h): its size, then every field's offset in declaration order
// (common/layout_probe.h), checked against the C# mirror by the layout tests.
#include "common/layout_probe.h"
#include "flash/flash_params.h"

NA_KERNEL void na_flash_params_layout(NA_GLOBAL int* out)
{
    NA_PROBE_BEGIN(na_flash_params);
#define NA_P(f) NA_PROBE(na_flash_params, f)
    NA_P(q_offset); NA_P(k_offset); NA_P(v_offset); NA_P(o_offset); NA_P(lse_offset);
    NA_P(q_stride_b); NA_P(q_stride_h); NA_P(q_stride_n); NA_P(q_stride_d); NA_P(k_stride_b); NA_P(k_stride_h);
    NA_P(k_stride_n); NA_P(k_stride_d); NA_P(v_stride_b); NA_P(v_stride_h); NA_P(v_stride_n); NA_P(v_stride_d);
    NA_P(o_stride_b); NA_P(o_stride_h); NA_P(o_stride_n); NA_P(o_stride_d); NA_P(lse_stride_b); NA_P(lse_stride_h);
    NA_P(lse_stride_n); NA_P(bias_offset); NA_P(bias_stride_b); NA_P(bias_stride_h); NA_P(bias_stride_n); NA_P(bias_stride_k);
    NA_P(u_offset); NA_P(u_stride_b); NA_P(u_stride_h); NA_P(u_stride_n); NA_P(u_stride_r); NA_P(w_offset);
    NA_P(w_stride_b); NA_P(w_stride_h); NA_P(w_stride_n); NA_P(w_stride_r); NA_P(alibi_offset); NA_P(alibi_stride_b);
    NA_P(alibi_stride_h); NA_P(sinks_offset); NA_P(sinks_stride_h); NA_P(batch); NA_P(heads_q); NA_P(heads_kv);
    NA_P(group); NA_P(nq); NA_P(nk); NA_P(dqk); NA_P(dv); NA_P(window_left);
    NA_P(window_right); NA_P(causal); NA_P(has_lse); NA_P(rank); NA_P(scale_log2); NA_P(scale);
    NA_P(softcap_log2); NA_P(sigmoid_bias);
#undef NA_P
}
