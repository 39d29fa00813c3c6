// Layout probe of na_decode_params (decode/decode_params.h): its size, then every field's offset in declaration order
// (common/layout_probe.h), the embedded na_qkvo_params member followed by each of its fields; checked against the C#
// mirror by the layout tests.
#include "common/layout_probe.h"
#include "decode/decode_params.h"

NA_KERNEL void na_decode_params_layout(NA_GLOBAL int* out)
{
    NA_PROBE_BEGIN(na_decode_params);
#define NA_P(f) NA_PROBE(na_decode_params, f)
#define NA_P_QKVO(f) NA_P(qkvo.f);
    NA_P(qkvo);
    NA_QKVO_FIELDS(NA_P_QKVO)
    NA_P(nk_offset); NA_P(nv_offset); NA_P(cos_offset); NA_P(sin_offset); NA_P(alibi_offset); NA_P(sinks_offset);
    NA_P(nk_stride_b); NA_P(nk_stride_h); NA_P(nk_stride_n); NA_P(nk_stride_d); NA_P(nv_stride_b); NA_P(nv_stride_h);
    NA_P(nv_stride_n); NA_P(nv_stride_d); NA_P(cos_stride_p); NA_P(cos_stride_i); NA_P(sin_stride_p); NA_P(sin_stride_i);
    NA_P(alibi_stride_b); NA_P(alibi_stride_h); NA_P(sinks_stride_h); NA_P(nnew); NA_P(page_size); NA_P(blocks_per_seq);
    NA_P(rotary_half); NA_P(window_left); NA_P(window_right); NA_P(causal); NA_P(has_lse); NA_P(splits);
    NA_P(row_chunks); NA_P(paged); NA_P(rotary); NA_P(has_alibi); NA_P(has_sinks); NA_P(sigmoid);
    NA_P(has_softcap); NA_P(lengths_in_meta); NA_P(scale_log2); NA_P(softcap_log2); NA_P(sigmoid_bias); NA_P(lengths);
#undef NA_P_QKVO
#undef NA_P
}
