// Layout probe of na_merge_params (merge/merge_params.h): its size, then every field's offset in declaration order
// (common/layout_probe.h), checked against the C# mirror by the layout tests.
#include "common/layout_probe.h"
#include "merge/merge_params.h"

NA_KERNEL void na_merge_params_layout(NA_GLOBAL int* out)
{
    NA_PROBE_BEGIN(na_merge_params);
#define NA_P(f) NA_PROBE(na_merge_params, f)
    NA_P(po_offset); NA_P(po_stride_s); NA_P(po_stride_d); NA_P(pl_offset); NA_P(pl_stride_s); NA_P(o_offset);
    NA_P(o_stride_d); NA_P(lse_offset); NA_P(po_stride_r); NA_P(pl_stride_r); NA_P(o_stride_r); NA_P(lse_stride_r);
    NA_P(row_shape); NA_P(splits); NA_P(dv); NA_P(rows); NA_P(has_lse);
#undef NA_P
}
