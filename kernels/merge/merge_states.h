// MergeStates (OpenCL C and CUDA C): combines S partial attention results of the same rows through their
// log-sum-exps (common/lse_merge.h), one work-item per row. LSE = m + log(sum_s exp(LSE_s - m));
// o = sum_s exp(LSE_s - LSE) o_s.
// Partials whose LSE is -inf get weight exactly 0 and are never read, so garbage in them cannot leak; a row whose
// partials are all -inf writes zeros and LSE = -inf.
#include "common/dtype.h"
#include "common/lse_merge.h"
#include "merge/merge_params.h"

#ifndef NA_PARTIAL_DTYPE
#define NA_PARTIAL_DTYPE 0       // element type of the partial outputs: 0 f32, 1 f16, 2 bf16 (NA_DTYPE is the output's)
#endif
#ifndef NA_MERGE_THREADS
#define NA_MERGE_THREADS 64      // rows per work-group
#endif

NA_KERNEL NA_WORKGROUP(NA_MERGE_THREADS) void na_merge_states(
    const NA_GLOBAL NA_TYPE_AS(NA_PARTIAL_DTYPE)* NA_RESTRICT po, const NA_GLOBAL float* NA_RESTRICT pl,
    NA_GLOBAL na_elem* NA_RESTRICT o, NA_GLOBAL float* NA_RESTRICT lse, const na_merge_params p)
{
    const int row = NA_GROUP_ID(0) * NA_MERGE_THREADS + NA_LOCAL_ID(0);
    if (row >= p.rows) return;
    na_i64 po_row = p.po_offset, pl_row = p.pl_offset, o_row = p.o_offset, lse_row = p.lse_offset;
    int rest = row;
    for (int a = 3; a >= 0; a--)
    {
        const int i = rest % p.row_shape[a];
        rest /= p.row_shape[a];
        po_row += i * p.po_stride_r[a];
        pl_row += i * p.pl_stride_r[a];
        o_row += i * p.o_stride_r[a];
        lse_row += i * p.lse_stride_r[a];
    }

    const float total = na_lse_merge(pl, pl_row, p.pl_stride_s, p.splits);
    for (int d = 0; d < p.dv; d++)
    {
        float acc = 0.0f;
        for (int s = 0; s < p.splits; s++)
        {
            const float w = na_lse_weight(pl[pl_row + s * p.pl_stride_s], total);
            if (w != 0.0f) acc += w * NA_LOAD_AS(NA_PARTIAL_DTYPE, po, po_row + s * p.po_stride_s + d * p.po_stride_d);
        }
        na_store(o, o_row + d * p.o_stride_d, acc);
    }
    if (p.has_lse) lse[lse_row] = total;
}
