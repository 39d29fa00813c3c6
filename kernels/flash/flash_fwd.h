// Flash attention forward, portable path (OpenCL C and CUDA C): one work-item per query row, K/V tiles staged in
// shared memory as float, online softmax in base 2 updated once per key tile, float accumulation whatever the
// storage type.
// A row whose visible keys are all masked keeps m = -inf and l = 0 and writes zeros and LSE = -inf.
// Score options (flash/flash_score_mod.h) are compiled in only when their NA_* define is set.
// CUDA builds with NA_FLASH_MMA = 1 use the tensor-core kernel of flash/flash_fwd_mma.h instead, and sm_90a builds with
// NA_FLASH_WGMMA = 1 the Hopper kernel of flash/flash_fwd_wgmma.h.
#include "flash/flash_params.h"
#include "common/dtype.h"
#include "common/math.h"
#include "common/lse_merge.h"
#include "common/masking.h"
#include "flash/flash_score_mod.h"

#ifndef NA_HEAD_DIM_QK
#define NA_HEAD_DIM_QK 64   // query/key head dim rounded up; the kernel zero-pads up to it
#endif
#ifndef NA_HEAD_DIM_V
#define NA_HEAD_DIM_V NA_HEAD_DIM_QK
#endif
#ifndef NA_BLOCK_M
#define NA_BLOCK_M 64       // query rows per work-group = work-items per work-group
#endif
#ifndef NA_BLOCK_N
#define NA_BLOCK_N 32       // keys per shared-memory tile
#endif
#ifndef NA_MASKED
#define NA_MASKED 0         // 1 when causal or windowed: per-row key ranges apply
#endif
#ifndef NA_EVEN_N
#define NA_EVEN_N 0         // 1 when nk % NA_BLOCK_N == 0: every key of every tile exists
#endif
#ifndef NA_FLASH_MMA
#define NA_FLASH_MMA 0
#endif
#ifndef NA_FLASH_WGMMA
#define NA_FLASH_WGMMA 0    // 1 (CUDA sm_90a): the Hopper kernel of flash/flash_fwd_wgmma.h
#endif

#if NA_HEAD_DIM_QK % 8 != 0
#error "NA_HEAD_DIM_QK must be a multiple of 8 (the dot product keeps eight partial sums)"
#endif

#if NA_FLASH_MMA && NA_CUDA
// Both tensor-core kernels (wgmma variants set NA_FLASH_MMA too) enter through flash_fwd_mma.h: kernel sources inline
// each file once, where it is first included, so the headers the two kernels share are included there for both.
#include "flash/flash_fwd_mma.h"
#else

NA_KERNEL NA_WORKGROUP(NA_BLOCK_M) void na_flash_fwd(
    const NA_GLOBAL na_elem* NA_RESTRICT q, const NA_GLOBAL na_elem* NA_RESTRICT k, const NA_GLOBAL na_elem* NA_RESTRICT v,
    NA_GLOBAL na_elem* NA_RESTRICT o, NA_GLOBAL float* NA_RESTRICT lse,
    const NA_GLOBAL na_bias_elem* NA_RESTRICT bias, const NA_GLOBAL na_u_elem* NA_RESTRICT lr_u,
    const NA_GLOBAL na_w_elem* NA_RESTRICT lr_w, const NA_GLOBAL float* NA_RESTRICT slopes,
    const NA_GLOBAL float* NA_RESTRICT sinks, const na_flash_params p)
{
    NA_SHARED float ks[NA_BLOCK_N * NA_HEAD_DIM_QK];
    NA_SHARED float vs[NA_BLOCK_N * NA_HEAD_DIM_V];

    const int tid = NA_LOCAL_ID(0);
    // Grid x holds (b * Hq + h, query block), query blocks fastest: grid y would cap B * Hq at 65535 on CUDA.
    const int blocks_m = (p.qkvo.nq + NA_BLOCK_M - 1) / NA_BLOCK_M;
    const int bh = NA_GROUP_ID(0) / blocks_m;
    const int b = bh / p.qkvo.heads_q;
    const int h = bh - b * p.qkvo.heads_q;
    const int hk = h / p.qkvo.group;
    const int m0 = (NA_GROUP_ID(0) - bh * blocks_m) * NA_BLOCK_M;
    const int row = m0 + tid;
    const int row_ok = row < p.qkvo.nq;
    const int last = (m0 + NA_BLOCK_M < p.qkvo.nq ? m0 + NA_BLOCK_M : p.qkvo.nq) - 1;

    const NA_GLOBAL na_elem* qb = q + p.qkvo.q_offset + b * p.qkvo.q_stride_b + h * p.qkvo.q_stride_h;
    const NA_GLOBAL na_elem* kb = k + p.qkvo.k_offset + b * p.qkvo.k_stride_b + hk * p.qkvo.k_stride_h;
    const NA_GLOBAL na_elem* vb = v + p.qkvo.v_offset + b * p.qkvo.v_stride_b + hk * p.qkvo.v_stride_h;

#if NA_MASKED
    const int row_start = na_key_start(row, p.qkvo.nq, p.qkvo.nk, p.window_left);
    const int row_end = row_ok ? na_key_end(row, p.qkvo.nq, p.qkvo.nk, p.window_right, p.causal) : 0;
    const int tile_start = na_key_start(m0, p.qkvo.nq, p.qkvo.nk, p.window_left);
    const int tile_end = na_key_end(last, p.qkvo.nq, p.qkvo.nk, p.window_right, p.causal);
#else
    const int row_start = 0;
    const int row_end = row_ok ? p.qkvo.nk : 0;
    const int tile_start = 0;
    const int tile_end = p.qkvo.nk;
#endif

    float qr[NA_HEAD_DIM_QK];
    float acc[NA_HEAD_DIM_V];
    for (int d = 0; d < NA_HEAD_DIM_QK; d++)
        qr[d] = (row_ok && d < p.qkvo.dqk) ? na_load(qb, row * p.qkvo.q_stride_n + d * p.qkvo.q_stride_d) * p.scale_log2 : 0.0f;
    for (int d = 0; d < NA_HEAD_DIM_V; d++) acc[d] = 0.0f;
    float m = -NA_INFINITY;
    float l = 0.0f;
#if NA_SCORE_MOD
    const na_score_row sr = na_score_row_init(p, slopes, b, h, row);
#endif

    for (int n0 = (tile_start / NA_BLOCK_N) * NA_BLOCK_N; n0 < tile_end; n0 += NA_BLOCK_N)
    {
        for (int idx = tid; idx < NA_BLOCK_N * NA_HEAD_DIM_QK; idx += NA_BLOCK_M)
        {
            const int j = idx / NA_HEAD_DIM_QK, d = idx - j * NA_HEAD_DIM_QK, key = n0 + j;
            ks[idx] = ((NA_EVEN_N || key < p.qkvo.nk) && d < p.qkvo.dqk) ? na_load(kb, key * p.qkvo.k_stride_n + d * p.qkvo.k_stride_d) : 0.0f;
        }
        for (int idx = tid; idx < NA_BLOCK_N * NA_HEAD_DIM_V; idx += NA_BLOCK_M)
        {
            const int j = idx / NA_HEAD_DIM_V, d = idx - j * NA_HEAD_DIM_V, key = n0 + j;
            vs[idx] = ((NA_EVEN_N || key < p.qkvo.nk) && d < p.qkvo.dv) ? na_load(vb, key * p.qkvo.v_stride_n + d * p.qkvo.v_stride_d) : 0.0f;
        }
        NA_BARRIER();

        // A whole tile at a time, without a branch per key: scores first (invisible keys -inf), then one rescale
        // and the P V update. Work-items stay in lockstep, which PoCL's work-item-loop vectoriser needs (a per-key
        // online update measured 2-4x slower on PoCL). Eight partial sums break the dot product's chain of adds,
        // which compilers may not reassociate on their own.
        float st[NA_BLOCK_N];
        float tile_max = -NA_INFINITY;
        for (int j = 0; j < NA_BLOCK_N; j++)
        {
            const int key = n0 + j;
            float part[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
            for (int d = 0; d < NA_HEAD_DIM_QK; d += 8)
                for (int u = 0; u < 8; u++) part[u] += qr[d + u] * ks[j * NA_HEAD_DIM_QK + d + u];
            float score = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
#if NA_SCORE_MOD
            score = na_score_mod(score, key, sr, p, bias, lr_u, lr_w);
#endif
            score = (key >= row_start && key < row_end) ? score : -NA_INFINITY;
#if NA_SIGMOID
            // Unnormalised weights go straight into acc; (m, l) only track log2 of the total weight for LSE.
            float lw;
            const float wj = na_sigmoid_weight(score, p.sigmoid_bias, &lw);
            for (int d = 0; d < NA_HEAD_DIM_V; d++) acc[d] += wj * vs[j * NA_HEAD_DIM_V + d];
            score = lw;
#endif
            st[j] = score;
            tile_max = NA_FMAX(tile_max, score);
        }
        const float m_new = NA_FMAX(m, tile_max);
        const float m_use = na_max_or_zero(m_new);
        const float alpha = NA_EXP2(m - m_use);
        m = m_new;
        l *= alpha;
#if !NA_SIGMOID
        for (int d = 0; d < NA_HEAD_DIM_V; d++) acc[d] *= alpha;
#endif
        for (int j = 0; j < NA_BLOCK_N; j++)
        {
            const float pj = NA_EXP2(st[j] - m_use);
            l += pj;
#if !NA_SIGMOID
            for (int d = 0; d < NA_HEAD_DIM_V; d++) acc[d] += pj * vs[j * NA_HEAD_DIM_V + d];
#endif
        }
        NA_BARRIER();
    }

    if (row_ok)
    {
        NA_GLOBAL na_elem* ob = o + p.qkvo.o_offset + b * p.qkvo.o_stride_b + h * p.qkvo.o_stride_h + row * p.qkvo.o_stride_n;
#if NA_SIGMOID
        const float inv = 1.0f;
#else
#if NA_SINKS
        // The sink joins max and denominator only; a row without visible keys stays zeros and LSE = -inf.
        const float alpha = na_join_sink(&m, &l, sinks[p.sinks_offset + h * p.sinks_stride_h] * NA_LOG2E);
        for (int d = 0; d < NA_HEAD_DIM_V; d++) acc[d] *= alpha;
#endif
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#endif
        for (int d = 0; d < NA_HEAD_DIM_V; d++)
            if (d < p.qkvo.dv) na_store(ob, d * p.qkvo.o_stride_d, acc[d] * inv);
        if (p.has_lse)
            lse[p.qkvo.lse_offset + b * p.qkvo.lse_stride_b + h * p.qkvo.lse_stride_h + row * p.qkvo.lse_stride_n] =
                na_lse_from_base2(m, l);
    }
}

#endif
