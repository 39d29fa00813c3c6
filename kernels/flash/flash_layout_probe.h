// Layout probe of na_flash_params (flash/flash_params.h): its size, then every field's offset in declaration order
// (common/layout_probe.h), the embedded na_qkvo_params member followed by each of its fields; checked against the C#
// mirror by the layout tests.
#include "common/layout_probe.h"
#include "flash/flash_params.h"

NA_KERNEL void na_flash_params_layout(NA_GLOBAL int* out)
{
    NA_PROBE_BEGIN(na_flash_params);
#define NA_P(f) NA_PROBE(na_flash_params, f)
#define NA_P_QKVO(f) NA_P(qkvo.f);
    NA_P(qkvo);
    NA_QKVO_FIELDS(NA_P_QKVO)
    NA_P(bias_offset); NA_P(bias_stride_b); NA_P(bias_stride_h); NA_P(bias_stride_n); NA_P(bias_stride_k); NA_P(u_offset);
    NA_P(u_stride_b); NA_P(u_stride_h); NA_P(u_stride_n); NA_P(u_stride_r); NA_P(w_offset); NA_P(w_stride_b);
    NA_P(w_stride_h); NA_P(w_stride_n); NA_P(w_stride_r); NA_P(alibi_offset); NA_P(alibi_stride_b); NA_P(alibi_stride_h);
    NA_P(sinks_offset); NA_P(sinks_stride_h); NA_P(window_left); NA_P(window_right); NA_P(causal); NA_P(has_lse);
    NA_P(rank); NA_P(scale_log2); NA_P(scale); NA_P(softcap_log2); NA_P(sigmoid_bias); NA_P(reserved);
#undef NA_P_QKVO
#undef NA_P
}
