// Layout probe of na_blocksparse_params (blocksparse/blocksparse_params.h): its size, then every field's offset in
// declaration order (common/layout_probe.h), the embedded na_qkvo_params member followed by each of its fields; checked
// against the C# mirror by the layout tests.
#include "common/layout_probe.h"
#include "blocksparse/blocksparse_params.h"

NA_KERNEL void na_blocksparse_params_layout(NA_GLOBAL int* out)
{
    NA_PROBE_BEGIN(na_blocksparse_params);
#define NA_P(f) NA_PROBE(na_blocksparse_params, f)
#define NA_P_QKVO(f) NA_P(qkvo.f);
    NA_P(qkvo);
    NA_QKVO_FIELDS(NA_P_QKVO)
    NA_P(mask_stride_b); NA_P(mask_stride_h); NA_P(mask_head_div); NA_P(qdoc_offset); NA_P(kdoc_offset); NA_P(bq);
    NA_P(bk); NA_P(query_blocks); NA_P(row_tiles); NA_P(predicate); NA_P(window_left); NA_P(window_right);
    NA_P(window_causal); NA_P(prefix_offset); NA_P(prefix_stride); NA_P(has_lse); NA_P(scale_log2); NA_P(softcap_log2);
    NA_P(splits); NA_P(reserved);
#undef NA_P_QKVO
#undef NA_P
}
