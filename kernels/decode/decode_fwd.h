// KV-cache decode attention (OpenCL C and CUDA C), split-KV as in FlashDecoding: a work-group takes up to
// NA_DECODE_ROWS query rows that share one kv head (the G query heads of a GQA group times a run of queries,
// ordered query-major), and one of S splits of their visible keys. Each key tile is read from the cache once (through
// the block table when paged), widened into shared memory and used by every row; scores, the online softmax in base 2
// and P V are spread over the work-group. With S = 1 the work-group writes the result; with S > 1 it writes a
// float32 partial (o_s, LSE_s) that na_decode_combine (decode/decode_combine.h) merges exactly. Queries are turned by the rotary embedding at
// their positions L_b - Nq + i as they are loaded. A row without visible keys writes zeros and LSE = -inf.
// With NA_DECODE_KV_SHARED = 1 (devices with OpenCL's minimum 32 KB of local memory) the V tile is staged through
// the K tile's buffer: loaded in the softmax step's barrier interval, after the last score read K, so the tile keeps
// its size and the work-group its barrier count.
#include "common/dtype.h"
#include "common/math.h"
#include "common/lse_merge.h"
#include "common/masking.h"
#include "common/score.h"
#include "decode/decode_params.h"

#ifndef NA_HEAD_DIM_QK
#define NA_HEAD_DIM_QK 64   // query/key head dim rounded up; zero-padded
#endif
#ifndef NA_HEAD_DIM_V
#define NA_HEAD_DIM_V NA_HEAD_DIM_QK
#endif
#ifndef NA_DECODE_ROWS
#define NA_DECODE_ROWS 16   // query rows per work-group
#endif
#ifndef NA_DECODE_THREADS
#define NA_DECODE_THREADS 128
#endif
#ifndef NA_BLOCK_N
#define NA_BLOCK_N 32       // keys per shared-memory tile
#endif

#ifndef NA_DECODE_KV_SHARED
#define NA_DECODE_KV_SHARED 0   // 1: V is staged through K's buffer (the 32 KB variant)
#endif

#define NA_KS (NA_BLOCK_N + 1)   // keys are stored transposed, [d][j], rows padded: the loads (d fastest across
                                 // work-items) and the dot products (j across work-items) both hit distinct banks
#define NA_K_TILE (NA_HEAD_DIM_QK * NA_KS)
#define NA_V_TILE (NA_BLOCK_N * NA_HEAD_DIM_V)
#if NA_DECODE_KV_SHARED
#define NA_KV_TILE (NA_K_TILE > NA_V_TILE ? NA_K_TILE : NA_V_TILE)
#define NA_V_AT 0                // V overwrites K once the scores are taken
#else
#define NA_KV_TILE (NA_K_TILE + NA_V_TILE)
#define NA_V_AT NA_K_TILE        // V beside K
#endif
#define NA_ACC ((NA_DECODE_ROWS * NA_HEAD_DIM_V + NA_DECODE_THREADS - 1) / NA_DECODE_THREADS)

// Stages the tile's values (row j of V at kv[NA_V_AT + j * NA_HEAD_DIM_V]), zeros past the split and past dv.
#define NA_DECODE_STAGE_V()                                                                                         \
    for (int idx = tid; idx < NA_BLOCK_N * NA_HEAD_DIM_V; idx += NA_DECODE_THREADS)                                 \
    {                                                                                                               \
        const int j = idx / NA_HEAD_DIM_V, d = idx - j * NA_HEAD_DIM_V;                                             \
        const na_i64 slot = v_slot[j];                                                                              \
        kv[NA_V_AT + idx] = (slot >= 0 && d < p.qkvo.dv) ? na_load(v, slot + d * p.qkvo.v_stride_d) : 0.0f;         \
    }

NA_KERNEL NA_WORKGROUP(NA_DECODE_THREADS) void na_decode_fwd(
    const NA_GLOBAL na_elem* NA_RESTRICT q, const NA_GLOBAL na_elem* NA_RESTRICT k, const NA_GLOBAL na_elem* NA_RESTRICT v,
    NA_GLOBAL na_elem* NA_RESTRICT o, NA_GLOBAL float* NA_RESTRICT lse, const NA_GLOBAL int* NA_RESTRICT meta,
    const NA_GLOBAL float* NA_RESTRICT rcos, const NA_GLOBAL float* NA_RESTRICT rsin, const NA_GLOBAL float* NA_RESTRICT slopes,
    const NA_GLOBAL float* NA_RESTRICT sinks, NA_GLOBAL float* NA_RESTRICT part_o, NA_GLOBAL float* NA_RESTRICT part_lse,
    const na_decode_params p)
{
    NA_SHARED float qs[NA_DECODE_ROWS * NA_HEAD_DIM_QK];
    NA_SHARED float kv[NA_KV_TILE];   // K transposed at 0 ([d][j], NA_KS per row), V [j][d] at NA_V_AT
    NA_SHARED float ps[NA_DECODE_ROWS * NA_BLOCK_N];
    NA_SHARED na_i64 k_slot[NA_BLOCK_N];
    NA_SHARED na_i64 v_slot[NA_BLOCK_N];
    NA_SHARED int row_start[NA_DECODE_ROWS];
    NA_SHARED int row_end[NA_DECODE_ROWS];
    NA_SHARED float row_m[NA_DECODE_ROWS];
    NA_SHARED float row_l[NA_DECODE_ROWS];
    NA_SHARED float row_alpha[NA_DECODE_ROWS];
    NA_SHARED float row_slope[NA_DECODE_ROWS];

    const int tid = NA_LOCAL_ID(0);
    // Grid x holds (b * Hkv + kv head, row chunk, split), splits fastest: grid y would cap B * Hkv at 65535 on CUDA.
    const int split = NA_GROUP_ID(0) % p.splits;
    const int chunk = NA_GROUP_ID(0) / p.splits % p.row_chunks;
    const int bh = NA_GROUP_ID(0) / p.splits / p.row_chunks;
    const int b = bh / p.qkvo.heads_kv;
    const int hk = bh - b * p.qkvo.heads_kv;
    const int total_rows = p.qkvo.group * p.qkvo.nq;
    const int r0 = chunk * NA_DECODE_ROWS;
    const int rows = total_rows - r0 < NA_DECODE_ROWS ? total_rows - r0 : NA_DECODE_ROWS;
    const int nk = na_cache_length(meta, p, b) + p.nnew;   // L_b

    // Row bounds and state; rows past `rows` see no key.
    for (int r = tid; r < NA_DECODE_ROWS; r += NA_DECODE_THREADS)
    {
        const int i = (r0 + r) / p.qkvo.group;
        const int ok = r < rows;
        row_start[r] = ok ? na_key_start(i, p.qkvo.nq, nk, p.window_left) : 0;
        row_end[r] = ok ? na_key_end(i, p.qkvo.nq, nk, p.window_right, p.causal) : 0;
        row_m[r] = -NA_INFINITY;
        row_l[r] = 0.0f;
        row_alpha[r] = 1.0f;
        const int h = hk * p.qkvo.group + (r0 + r) % p.qkvo.group;
        row_slope[r] = ok && p.has_alibi ? slopes[p.alibi_offset + b * p.alibi_stride_b + h * p.alibi_stride_h] * NA_LOG2E : 0.0f;
    }
    // Queries, rotated at their positions and scaled into base 2.
    for (int idx = tid; idx < NA_DECODE_ROWS * NA_HEAD_DIM_QK; idx += NA_DECODE_THREADS)
    {
        const int r = idx / NA_HEAD_DIM_QK, d = idx - r * NA_HEAD_DIM_QK;
        float value = 0.0f;
        if (r < rows && d < p.qkvo.dqk)
        {
            const int row = r0 + r, i = row / p.qkvo.group, h = hk * p.qkvo.group + row % p.qkvo.group;
            const na_i64 src = p.qkvo.q_offset + b * p.qkvo.q_stride_b + h * p.qkvo.q_stride_h + (na_i64)i * p.qkvo.q_stride_n;
            value = na_load(q, src + d * p.qkvo.q_stride_d);
            if (p.rotary && d < 2 * p.rotary_half)
            {
                int pair, second;
                const int partner = na_rotary_partner(p.rotary, d, p.rotary_half, &pair, &second);
                const int pos = nk - p.qkvo.nq + i;
                value = na_rotate(value, na_load(q, src + partner * p.qkvo.q_stride_d), second,
                                  rcos[p.cos_offset + pos * p.cos_stride_p + pair * p.cos_stride_i],
                                  rsin[p.sin_offset + pos * p.sin_stride_p + pair * p.sin_stride_i]);
            }
            value *= p.scale_log2;
        }
        qs[idx] = value;
    }

    // The rows' keys form one range (bounds grow with the query); this split takes an equal share of it.
    int lo = 0, hi = 0;
    if (rows > 0)
    {
        lo = na_key_start(r0 / p.qkvo.group, p.qkvo.nq, nk, p.window_left);
        hi = na_key_end((r0 + rows - 1) / p.qkvo.group, p.qkvo.nq, nk, p.window_right, p.causal);
    }
    int split_lo = 0, split_hi = 0;
    if (lo < hi)
    {
        split_lo = lo + (int)((na_i64)(hi - lo) * split / p.splits);
        split_hi = lo + (int)((na_i64)(hi - lo) * (split + 1) / p.splits);
    }

    float acc[NA_ACC];
    for (int a = 0; a < NA_ACC; a++) acc[a] = 0.0f;
    const na_i64 k_head = p.qkvo.k_offset + hk * p.qkvo.k_stride_h;
    const na_i64 v_head = p.qkvo.v_offset + hk * p.qkvo.v_stride_h;
    NA_BARRIER();

    for (int n0 = split_lo; n0 < split_hi; n0 += NA_BLOCK_N)
    {
        for (int j = tid; j < NA_BLOCK_N; j += NA_DECODE_THREADS)
        {
            const int key = n0 + j;
            k_slot[j] = key < split_hi ? k_head + na_cache_slot(meta, p, b, key, p.qkvo.k_stride_b, p.qkvo.k_stride_n) : -1;
            v_slot[j] = key < split_hi ? v_head + na_cache_slot(meta, p, b, key, p.qkvo.v_stride_b, p.qkvo.v_stride_n) : -1;
        }
        NA_BARRIER();
        for (int idx = tid; idx < NA_BLOCK_N * NA_HEAD_DIM_QK; idx += NA_DECODE_THREADS)
        {
            const int j = idx / NA_HEAD_DIM_QK, d = idx - j * NA_HEAD_DIM_QK;
            const na_i64 slot = k_slot[j];
            kv[d * NA_KS + j] = (slot >= 0 && d < p.qkvo.dqk) ? na_load(k, slot + d * p.qkvo.k_stride_d) : 0.0f;
        }
#if !NA_DECODE_KV_SHARED   // V has its own buffer: staged together with K
        NA_DECODE_STAGE_V()
#endif
        NA_BARRIER();

        // Scores of every (row, key) pair; keys a row does not see are -inf (sigmoid: log2 weight -inf).
        for (int idx = tid; idx < NA_DECODE_ROWS * NA_BLOCK_N; idx += NA_DECODE_THREADS)
        {
            const int r = idx / NA_BLOCK_N, j = idx - r * NA_BLOCK_N, key = n0 + j;
            float score = -NA_INFINITY;
            if (key < split_hi && key >= row_start[r] && key < row_end[r])
            {
                float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
                for (int d = 0; d < NA_HEAD_DIM_QK; d += 4)
                    for (int u = 0; u < 4; u++) part[u] += qs[r * NA_HEAD_DIM_QK + d + u] * kv[(d + u) * NA_KS + j];
                score = (part[0] + part[1]) + (part[2] + part[3]);
                if (p.has_softcap) score = na_softcap(score, p.softcap_log2);
                score = na_alibi(score, row_slope[r], (r0 + r) / p.qkvo.group + nk - p.qkvo.nq - key);   // slope 0 without ALiBi
                if (p.sigmoid)
                {
                    // Only log2 of the weight is kept: the softmax pass below turns it back into the weight.
                    float log2_weight;
                    na_sigmoid_weight(score, p.sigmoid_bias, &log2_weight);
                    score = log2_weight;
                }
            }
            ps[idx] = score;
        }
        NA_BARRIER();
#if NA_DECODE_KV_SHARED
        // Every score is taken: V replaces K in the shared buffer, in the same barrier interval as the rows' softmax.
        // Staged before the softmax loop: placed after it, PoCL 3.1 (CPU) returned NaN for every row.
        NA_DECODE_STAGE_V()
#endif

        // Online softmax per row over the tile (sigmoid: the running log2 total only; weights stay absolute).
        for (int r = tid; r < NA_DECODE_ROWS; r += NA_DECODE_THREADS)
        {
            float tile_max = -NA_INFINITY;
            for (int j = 0; j < NA_BLOCK_N; j++) tile_max = NA_FMAX(tile_max, ps[r * NA_BLOCK_N + j]);
            const float m_old = row_m[r];
            const float m_new = NA_FMAX(m_old, tile_max);
            const float m_use = na_max_or_zero(m_new);
            const float alpha = NA_EXP2(m_old - m_use);
            float sum = 0.0f;
            for (int j = 0; j < NA_BLOCK_N; j++)
            {
                const float s = ps[r * NA_BLOCK_N + j];
                const float pj = NA_EXP2(s - m_use);
                sum += pj;
                ps[r * NA_BLOCK_N + j] = p.sigmoid ? NA_EXP2(s) : pj;
            }
            row_l[r] = row_l[r] * alpha + sum;
            row_m[r] = m_new;
            row_alpha[r] = p.sigmoid ? 1.0f : alpha;
        }
        NA_BARRIER();

        for (int a = 0; a < NA_ACC; a++)
        {
            const int e = tid + a * NA_DECODE_THREADS;
            if (e < NA_DECODE_ROWS * NA_HEAD_DIM_V)
            {
                const int r = e / NA_HEAD_DIM_V, d = e - r * NA_HEAD_DIM_V;
                float value = acc[a] * row_alpha[r];
                for (int j = 0; j < NA_BLOCK_N; j++) value += ps[r * NA_BLOCK_N + j] * kv[NA_V_AT + j * NA_HEAD_DIM_V + d];
                acc[a] = value;
            }
        }
        NA_BARRIER();
    }

    for (int a = 0; a < NA_ACC; a++)
    {
        const int e = tid + a * NA_DECODE_THREADS;
        const int r = e / NA_HEAD_DIM_V, d = e - r * NA_HEAD_DIM_V;
        if (e >= NA_DECODE_ROWS * NA_HEAD_DIM_V || r >= rows || d >= p.qkvo.dv) continue;
        const int row = r0 + r, i = row / p.qkvo.group, h = hk * p.qkvo.group + row % p.qkvo.group;
        float m = row_m[r], l = row_l[r], value = acc[a];
        if (p.splits > 1)
        {
            // Partial of split s: o_s normalised (sigmoid: the raw weighted sum) and its natural-log LSE.
            const na_i64 out_row = ((na_i64)split * p.qkvo.batch * p.qkvo.heads_q + (na_i64)b * p.qkvo.heads_q + h) * p.qkvo.nq + i;
            part_o[out_row * p.qkvo.dv + d] = p.sigmoid ? value : l > 0.0f ? value / l : 0.0f;
            if (d == 0) part_lse[out_row] = na_lse_from_base2(m, l);
            continue;
        }
        // The sink joins max and denominator only; a row without visible keys stays zeros and LSE = -inf.
        if (p.has_sinks) value *= na_join_sink(&m, &l, sinks[p.sinks_offset + h * p.sinks_stride_h] * NA_LOG2E);
        const float inv = p.sigmoid ? 1.0f : l > 0.0f ? 1.0f / l : 0.0f;
        na_store(o, p.qkvo.o_offset + b * p.qkvo.o_stride_b + h * p.qkvo.o_stride_h + (na_i64)i * p.qkvo.o_stride_n + d * p.qkvo.o_stride_d, value * inv);
        if (d == 0 && p.has_lse)
            lse[p.qkvo.lse_offset + b * p.qkvo.lse_stride_b + h * p.qkvo.lse_stride_h + (na_i64)i * p.qkvo.lse_stride_n] =
                na_lse_from_base2(m, l);
    }
}
