// Layout probe of na_nbh_params (neighborhood/neighborhood_params.h): its size, then every field's offset in
// declaration order (common/layout_probe.h), the embedded na_qkvo_params member followed by each of its fields;
// checked against the C# mirror by the layout tests.
#include "common/layout_probe.h"
#include "neighborhood/neighborhood_params.h"

NA_KERNEL void na_nbh_params_layout(NA_GLOBAL int* out)
{
    NA_PROBE_BEGIN(na_nbh_params);
#define NA_P(f) NA_PROBE(na_nbh_params, f)
#define NA_P_QKVO(f) NA_P(qkvo.f);
    NA_P(qkvo);
    NA_QKVO_FIELDS(NA_P_QKVO)
    NA_P(q_stride_x); NA_P(k_stride_x); NA_P(v_stride_x); NA_P(o_stride_x); NA_P(lse_stride_x);
    NA_P(ek_offset); NA_P(ek_stride_b); NA_P(ek_stride_h); NA_P(ek_stride_n); NA_P(ek_stride_d);
    NA_P(ev_offset); NA_P(ev_stride_b); NA_P(ev_stride_h); NA_P(ev_stride_n); NA_P(ev_stride_d);
    NA_P(rpb_offset); NA_P(rpb_stride_h); NA_P(rpb_stride_x);
    NA_P(length); NA_P(kernel_size); NA_P(dilation); NA_P(stride); NA_P(causal); NA_P(tile); NA_P(tiles);
    NA_P(n_extra); NA_P(has_lse); NA_P(has_rpb); NA_P(has_extent); NA_P(scale_log2);
#undef NA_P_QKVO
#undef NA_P
}
