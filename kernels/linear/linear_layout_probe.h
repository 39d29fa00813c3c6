// Layout probe of na_linear_params (linear/linear_params.h): its size, then every field's offset in declaration order
// (common/layout_probe.h), the embedded na_qkvo_params member followed by each of its fields; checked against the C#
// mirror by the layout tests.
#include "common/layout_probe.h"
#include "linear/linear_params.h"

NA_KERNEL void na_linear_params_layout(NA_GLOBAL int* out)
{
    NA_PROBE_BEGIN(na_linear_params);
#define NA_P(f) NA_PROBE(na_linear_params, f)
#define NA_P_QKVO(f) NA_P(qkvo.f);
    NA_P(qkvo);
    NA_QKVO_FIELDS(NA_P_QKVO)
    NA_P(s0_offset); NA_P(s0_stride_s); NA_P(s0_stride_h); NA_P(s0_stride_f); NA_P(s0_stride_c);
    NA_P(s1_offset); NA_P(s1_stride_s); NA_P(s1_stride_t); NA_P(s1_stride_h); NA_P(s1_stride_f); NA_P(s1_stride_c);
    NA_P(g_offset); NA_P(g_stride_b); NA_P(g_stride_h); NA_P(g_stride_n); NA_P(g_stride_d);
    NA_P(heads); NA_P(group_q); NA_P(group_k); NA_P(group_v); NA_P(features); NA_P(columns); NA_P(sequences);
    NA_P(chunk); NA_P(col_blocks); NA_P(feature_map); NA_P(decay); NA_P(normalize); NA_P(causal); NA_P(has_initial);
    NA_P(has_final); NA_P(varlen); NA_P(verify); NA_P(decay_base); NA_P(scale); NA_P(eps);
#undef NA_P_QKVO
#undef NA_P
}
