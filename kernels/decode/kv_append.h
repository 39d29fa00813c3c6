// KV-cache append (OpenCL C and CUDA C): writes the Nnew new tokens of every (batch element, kv head) into the
// caches at positions CacheSeqLens[b] + t, through the block table when paged; new keys are turned by the rotary
// embedding at that position first (in float32, then rounded to the cache's type). One work-item per (token,
// feature): it reads only NewKey/NewValue, so no work-item reads what another writes.
#include "common/dtype.h"
#include "decode/decode_params.h"

#ifndef NA_APPEND_THREADS
#define NA_APPEND_THREADS 64
#endif

NA_KERNEL NA_WORKGROUP(NA_APPEND_THREADS) void na_kv_append(
    const NA_GLOBAL na_elem* NA_RESTRICT new_k, const NA_GLOBAL na_elem* NA_RESTRICT new_v,
    NA_GLOBAL na_elem* NA_RESTRICT k, NA_GLOBAL na_elem* NA_RESTRICT v, const NA_GLOBAL int* NA_RESTRICT meta,
    const NA_GLOBAL float* NA_RESTRICT rcos, const NA_GLOBAL float* NA_RESTRICT rsin, const na_decode_params p)
{
    const int width = p.qkvo.dqk > p.qkvo.dv ? p.qkvo.dqk : p.qkvo.dv;
    // Grid x holds (b * Hkv + kv head, work-group of its tokens x features): grid y would cap B * Hkv at 65535 on CUDA.
    const int groups = (p.nnew * width + NA_APPEND_THREADS - 1) / NA_APPEND_THREADS;
    const int bh = NA_GROUP_ID(0) / groups;
    const int x = (NA_GROUP_ID(0) - bh * groups) * NA_APPEND_THREADS + NA_LOCAL_ID(0);
    const int b = bh / p.qkvo.heads_kv;
    const int h = bh - b * p.qkvo.heads_kv;
    const int t = x / width;
    const int d = x - t * width;
    if (t >= p.nnew) return;
    const int pos = na_cache_length(meta, p, b) + t;

    if (d < p.qkvo.dqk)
    {
        const na_i64 src = p.nk_offset + b * p.nk_stride_b + h * p.nk_stride_h + (na_i64)t * p.nk_stride_n;
        float value = na_load(new_k, src + d * p.nk_stride_d);
        if (p.rotary && d < 2 * p.rotary_half)
        {
            int pair, second;
            const int partner = na_rotary_partner(p.rotary, d, p.rotary_half, &pair, &second);
            const float other = na_load(new_k, src + partner * p.nk_stride_d);
            value = na_rotate(value, other, second, rcos[p.cos_offset + pos * p.cos_stride_p + pair * p.cos_stride_i],
                              rsin[p.sin_offset + pos * p.sin_stride_p + pair * p.sin_stride_i]);
        }
        na_store(k, p.qkvo.k_offset + h * p.qkvo.k_stride_h + na_cache_slot(meta, p, b, pos, p.qkvo.k_stride_b, p.qkvo.k_stride_n) + d * p.qkvo.k_stride_d, value);
    }
    if (d < p.qkvo.dv)
    {
        const na_i64 src = p.nv_offset + b * p.nv_stride_b + h * p.nv_stride_h + (na_i64)t * p.nv_stride_n;
        na_store(v, p.qkvo.v_offset + h * p.qkvo.v_stride_h + na_cache_slot(meta, p, b, pos, p.qkvo.v_stride_b, p.qkvo.v_stride_n) + d * p.qkvo.v_stride_d,
                 na_load(new_v, src + d * p.nv_stride_d));
    }
}
