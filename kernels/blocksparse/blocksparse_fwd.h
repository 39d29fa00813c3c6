// Block-sparse attention forward, portable path (OpenCL C and CUDA C). A work-group takes NA_BLOCK_M query rows of one
// query block of one (batch, head), one work-item per row, and walks the row's block table: full key blocks without the
// element predicate, partial key blocks with it, each in tiles of NA_BLOCK_N keys staged in shared memory as float
// (blocksparse/blocksparse_tiles.h). Online softmax in base 2, updated once per tile, float accumulation whatever the
// storage type. A row that sees no key writes zeros and LSE = -inf.
// CUDA builds with NA_BSP_MMA = 1 use the tensor-core kernel of blocksparse/blocksparse_fwd_mma.h instead.
#include "blocksparse/blocksparse_params.h"
#include "common/dtype.h"
#include "common/math.h"
#include "common/masking.h"
#include "common/score.h"

#ifndef NA_HEAD_DIM_QK
#define NA_HEAD_DIM_QK 64   // query/key head dim rounded up; the kernel zero-pads up to it
#endif
#ifndef NA_HEAD_DIM_V
#define NA_HEAD_DIM_V NA_HEAD_DIM_QK
#endif
#ifndef NA_BLOCK_M
#define NA_BLOCK_M 64       // query rows per work-group = work-items per work-group (portable kernel)
#endif
#ifndef NA_BLOCK_N
#define NA_BLOCK_N 32       // keys per shared-memory tile
#endif
#ifndef NA_BSP_MMA
#define NA_BSP_MMA 0
#endif

#include "blocksparse/blocksparse_tiles.h"

#if NA_HEAD_DIM_QK % 8 != 0
#error "NA_HEAD_DIM_QK must be a multiple of 8 (the dot product keeps eight partial sums)"
#endif

#if NA_BSP_MMA && NA_CUDA
#include "blocksparse/blocksparse_fwd_mma.h"
#else

NA_KERNEL NA_WORKGROUP(NA_BLOCK_M) void na_blocksparse_fwd(
    const NA_GLOBAL na_elem* NA_RESTRICT q, const NA_GLOBAL na_elem* NA_RESTRICT k, const NA_GLOBAL na_elem* NA_RESTRICT v,
    NA_GLOBAL na_elem* NA_RESTRICT o, NA_GLOBAL float* NA_RESTRICT lse, const NA_GLOBAL int* NA_RESTRICT meta,
    NA_GLOBAL float* NA_RESTRICT partial_o, NA_GLOBAL float* NA_RESTRICT partial_lse, const na_blocksparse_params p)
{
    NA_SHARED float ks[NA_BLOCK_N * NA_HEAD_DIM_QK];
    NA_SHARED float vs[NA_BLOCK_N * NA_HEAD_DIM_V];

    const int tid = NA_LOCAL_ID(0);
    const na_bsp_group g = na_bsp_group_of(p, meta, NA_GROUP_ID(0), NA_BLOCK_M);
    if (g.row0 >= g.row_limit) return;   // a row tile past the end of a short last query block (uniform: no barrier missed)
    const int row = g.row0 + tid;
    const int row_ok = row < g.row_limit;
    const int last = (g.row0 + NA_BLOCK_M < g.row_limit ? g.row0 + NA_BLOCK_M : g.row_limit) - 1;

    const NA_GLOBAL na_elem* qb = q + p.qkvo.q_offset + g.b * p.qkvo.q_stride_b + g.h * p.qkvo.q_stride_h;
    const NA_GLOBAL na_elem* kb = k + p.qkvo.k_offset + g.b * p.qkvo.k_stride_b + g.hk * p.qkvo.k_stride_h;
    const NA_GLOBAL na_elem* vb = v + p.qkvo.v_offset + g.b * p.qkvo.v_stride_b + g.hk * p.qkvo.v_stride_h;

    // The predicate of partial blocks for this row: a key range (causal, window, prefix-LM) and a document id.
    const int row_start = na_bsp_key_start(p, row);
    const int row_end = na_bsp_key_end(p, g, row);
    const int documents = p.predicate == 3;
    const int row_doc = documents && row_ok ? meta[p.qdoc_offset + g.b * p.qkvo.nq + row] : 0;
    const NA_GLOBAL int* key_docs = meta + (documents ? p.kdoc_offset + g.b * p.qkvo.nk : 0);

    float qr[NA_HEAD_DIM_QK];
    float acc[NA_HEAD_DIM_V];
    for (int d = 0; d < NA_HEAD_DIM_QK; d++)
        qr[d] = (row_ok && d < p.qkvo.dqk) ? na_load(qb, row * p.qkvo.q_stride_n + d * p.qkvo.q_stride_d) * p.scale_log2 : 0.0f;
    for (int d = 0; d < NA_HEAD_DIM_V; d++) acc[d] = 0.0f;
    float m = -NA_INFINITY;
    float l = 0.0f;

    // Every work-item walks the same tiles: the loop bounds are uniform over the work-group.
    na_bsp_tiles t = na_bsp_tiles_begin(p, meta, g, g.row0, last);
    for (; na_bsp_more(&t); na_bsp_advance(&t, meta, p))
    {
        const int n0 = t.n0, k1 = t.k1, partial = na_bsp_is_partial(&t);
        for (int idx = tid; idx < NA_BLOCK_N * NA_HEAD_DIM_QK; idx += NA_BLOCK_M)
        {
            const int j = idx / NA_HEAD_DIM_QK, d = idx - j * NA_HEAD_DIM_QK, key = n0 + j;
            ks[idx] = (key < k1 && d < p.qkvo.dqk) ? na_load(kb, key * p.qkvo.k_stride_n + d * p.qkvo.k_stride_d) : 0.0f;
        }
        for (int idx = tid; idx < NA_BLOCK_N * NA_HEAD_DIM_V; idx += NA_BLOCK_M)
        {
            const int j = idx / NA_HEAD_DIM_V, d = idx - j * NA_HEAD_DIM_V, key = n0 + j;
            vs[idx] = (key < k1 && d < p.qkvo.dv) ? na_load(vb, key * p.qkvo.v_stride_n + d * p.qkvo.v_stride_d) : 0.0f;
        }
        NA_BARRIER();

        // A whole tile at a time, without a branch per key (as in flash/flash_fwd.h): scores first (invisible keys
        // -inf), then one rescale and the P V update.
        float st[NA_BLOCK_N];
        float tile_max = -NA_INFINITY;
        for (int j = 0; j < NA_BLOCK_N; j++)
        {
            const int key = n0 + j;
            float part[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
            for (int d = 0; d < NA_HEAD_DIM_QK; d += 8)
                for (int u = 0; u < 8; u++) part[u] += qr[d + u] * ks[j * NA_HEAD_DIM_QK + d + u];
            float score = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
            if (p.softcap_log2 > 0.0f) score = na_softcap(score, p.softcap_log2);
            int visible = row_ok && key < k1;
            if (partial) visible = visible && key >= row_start && key < row_end && (!documents || key_docs[key] == row_doc);
            score = visible ? score : -NA_INFINITY;
            st[j] = score;
            tile_max = NA_FMAX(tile_max, score);
        }
        const float m_new = NA_FMAX(m, tile_max);
        const float m_use = na_max_or_zero(m_new);
        const float alpha = NA_EXP2(m - m_use);
        m = m_new;
        l *= alpha;
        for (int d = 0; d < NA_HEAD_DIM_V; d++) acc[d] *= alpha;
        for (int j = 0; j < NA_BLOCK_N; j++)
        {
            const float pj = NA_EXP2(st[j] - m_use);
            l += pj;
            for (int d = 0; d < NA_HEAD_DIM_V; d++) acc[d] += pj * vs[j * NA_HEAD_DIM_V + d];
        }
        NA_BARRIER();
    }

    if (row_ok && p.splits > 1)
    {
        // A split's partial state, normalised by its own sum (zeros and -inf when it saw no key), for MergeStates.
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        for (int d = 0; d < NA_HEAD_DIM_V; d++)
            if (d < p.qkvo.dv) partial_o[(g.partial + row) * p.qkvo.dv + d] = acc[d] * inv;
        partial_lse[g.partial + row] = na_lse_from_base2(m, l);
    }
    else if (row_ok)
    {
        NA_GLOBAL na_elem* ob = o + p.qkvo.o_offset + g.b * p.qkvo.o_stride_b + g.h * p.qkvo.o_stride_h + row * p.qkvo.o_stride_n;
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        for (int d = 0; d < NA_HEAD_DIM_V; d++)
            if (d < p.qkvo.dv) na_store(ob, d * p.qkvo.o_stride_d, acc[d] * inv);
        if (p.has_lse)
            lse[p.qkvo.lse_offset + g.b * p.qkvo.lse_stride_b + g.h * p.qkvo.lse_stride_h + row * p.qkvo.lse_stride_n] =
                na_lse_from_base2(m, l);
    }
}

#endif
