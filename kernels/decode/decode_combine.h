// Split-KV combine of the decode kernel (OpenCL C and CUDA C): reads the float32 partials na_decode_fwd wrote for
// S > 1 splits and writes the output and LSE of every (b, h, i) row.
#include "common/dtype.h"
#include "common/lse_merge.h"
#include "decode/decode_params.h"

#ifndef NA_COMBINE_THREADS
#define NA_COMBINE_THREADS 64
#endif

// Merges the S float32 partials of every output element exactly (common/lse_merge.h): LSE = log sum_s exp(LSE_s)
// (then the sink joins it), o = sum_s exp(LSE_s - LSE) o_s; sigmoid partials are raw sums and simply add. Splits with
// LSE_s = -inf are never read. One work-item per (row, feature), rows ordered [B, Hq, Nq].
NA_KERNEL NA_WORKGROUP(NA_COMBINE_THREADS) void na_decode_combine(
    NA_GLOBAL na_elem* NA_RESTRICT o, NA_GLOBAL float* NA_RESTRICT lse, const NA_GLOBAL float* NA_RESTRICT sinks,
    const NA_GLOBAL float* NA_RESTRICT part_o, const NA_GLOBAL float* NA_RESTRICT part_lse, const na_decode_params p)
{
    const na_i64 x = (na_i64)NA_GROUP_ID(0) * NA_COMBINE_THREADS + NA_LOCAL_ID(0);
    const na_i64 rows = (na_i64)p.qkvo.batch * p.qkvo.heads_q * p.qkvo.nq;
    const na_i64 row = x / p.qkvo.dv;
    const int d = (int)(x - row * p.qkvo.dv);
    if (row >= rows) return;
    const int i = (int)(row % p.qkvo.nq);
    const int h = (int)((row / p.qkvo.nq) % p.qkvo.heads_q);
    const int b = (int)(row / ((na_i64)p.qkvo.nq * p.qkvo.heads_q));
    const na_i64 stride = rows;   // between splits

    float total = na_lse_merge(part_lse, row, stride, p.splits);
    float value = 0.0f;
    if (p.sigmoid)
    {
        for (int s = 0; s < p.splits; s++)
            if (part_lse[s * stride + row] != -NA_INFINITY) value += part_o[(s * stride + row) * p.qkvo.dv + d];
    }
    else
    {
        // The sink joins the denominator only; a row no split saw stays zeros and LSE = -inf.
        if (p.has_sinks && total != -NA_INFINITY) total = na_log_add_exp(total, sinks[p.sinks_offset + h * p.sinks_stride_h]);
        for (int s = 0; s < p.splits; s++)
        {
            const float w = na_lse_weight(part_lse[s * stride + row], total);
            if (w != 0.0f) value += w * part_o[(s * stride + row) * p.qkvo.dv + d];
        }
    }
    na_store(o, p.qkvo.o_offset + b * p.qkvo.o_stride_b + h * p.qkvo.o_stride_h + (na_i64)i * p.qkvo.o_stride_n + d * p.qkvo.o_stride_d, value);
    if (d == 0 && p.has_lse)
        lse[p.qkvo.lse_offset + b * p.qkvo.lse_stride_b + h * p.qkvo.lse_stride_h + (na_i64)i * p.qkvo.lse_stride_n] = total;
}
