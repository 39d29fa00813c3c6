// Layout probe of na_delta_params (deltarule/delta_params.h): its size, then every field's offset in declaration order
// (common/layout_probe.h), the embedded na_qkvo_params member followed by each of its fields; checked against the C#
// mirror by the layout tests.
#include "common/layout_probe.h"
#include "deltarule/delta_params.h"

NA_KERNEL void na_delta_params_layout(NA_GLOBAL int* out)
{
    NA_PROBE_BEGIN(na_delta_params);
#define NA_P(f) NA_PROBE(na_delta_params, f)
#define NA_P_QKVO(f) NA_P(qkvo.f);
    NA_P(qkvo);
    NA_QKVO_FIELDS(NA_P_QKVO)
    NA_P(s0_offset); NA_P(s0_stride_s); NA_P(s0_stride_h); NA_P(s0_stride_f); NA_P(s0_stride_c);
    NA_P(d_offset); NA_P(d_stride_s); NA_P(d_stride_t); NA_P(d_stride_h); NA_P(d_stride_f); NA_P(d_stride_c);
    NA_P(g_offset); NA_P(g_stride_b); NA_P(g_stride_h); NA_P(g_stride_n); NA_P(g_stride_d);
    NA_P(beta_offset); NA_P(beta_stride_b); NA_P(beta_stride_h); NA_P(beta_stride_n);
    NA_P(heads); NA_P(group_q); NA_P(group_k); NA_P(group_v); NA_P(sequences); NA_P(col_blocks); NA_P(gate);
    NA_P(l2norm); NA_P(has_initial); NA_P(varlen); NA_P(beta_f32); NA_P(scale);
    NA_P(chunk); NA_P(chunk_first); NA_P(chunk_count); NA_P(reserved);
#undef NA_P_QKVO
#undef NA_P
}
