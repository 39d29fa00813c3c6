// The content builder of block-sparse masks (OpenCL C and CUDA C), BlockMasks.FromContent on a GPU context. Mirrors
// managed/NativeAttention/Cpu/BlockSparse/CpuBlockScores.cs step for step, in float32:
//   na_content_pool (NA_CONTENT_STAGE 0), one work-item per (b, h, block) of Q or K: the block's mean row and its mean
//     pairwise cosine similarity |sum of unit rows|^2 / n^2 (a zero row counts as a zero unit row);
//   na_content_select (NA_CONTENT_STAGE 1), one work-item per (b, query head, query block) row: pooled scores
//     scale q_mean . k_mean over the row's candidates (kv head h / (Hq / Hkv); causal: the bottom-right visible blocks),
//     softmaxed; forced blocks (gated row, sinks, diagonal, gated key blocks) first, then the rest by decreasing
//     probability (ties: lower index first) by repeated argmax, while top-k or the mass threshold asks for more. It
//     writes one flag per (row, key block): 1 kept, 0 not; the host lists the kept ones (partial or full).
// Selection costs O(kept x candidates) per row: meant for up to a few thousand key blocks.
#include "common/dtype.h"
#include "blocksparse/content_params.h"

#ifndef NA_CONTENT_STAGE
#define NA_CONTENT_STAGE 0
#endif
#ifndef NA_CONTENT_THREADS
#define NA_CONTENT_THREADS 64
#endif

#if NA_CONTENT_STAGE == 0
// means: [total, d] floats; unit: [total, d] floats of scratch (the unit-row sums); similarity: [total] floats.
NA_KERNEL NA_WORKGROUP(NA_CONTENT_THREADS) void na_content_pool(
    const NA_GLOBAL na_elem* NA_RESTRICT x, NA_GLOBAL float* NA_RESTRICT means, NA_GLOBAL float* NA_RESTRICT unit,
    NA_GLOBAL float* NA_RESTRICT similarity, const na_content_pool_params p)
{
    const int item = NA_GROUP_ID(0) * NA_CONTENT_THREADS + NA_LOCAL_ID(0);
    if (item >= p.total) return;
    const int block = item % p.blocks;
    const int bh = item / p.blocks;
    const int b = bh / p.heads, h = bh % p.heads;
    const int first = block * p.block_size;
    const int count = min(p.block_size, p.n - first);
    const na_i64 at = (na_i64)item * p.d;
    for (int c = 0; c < p.d; c++) { means[at + c] = 0.0f; unit[at + c] = 0.0f; }
    const na_i64 base = p.offset + b * p.stride_b + h * p.stride_h;
    for (int i = first; i < first + count; i++)
    {
        const na_i64 row = base + i * p.stride_n;
        float norm = 0.0f;
        for (int c = 0; c < p.d; c++)
        {
            const float v = na_load(x, row + c * p.stride_d);
            norm += v * v;
        }
        const float inverse = norm > 0.0f ? 1.0f / sqrt(norm) : 0.0f;
        for (int c = 0; c < p.d; c++)
        {
            const float v = na_load(x, row + c * p.stride_d);
            means[at + c] += v;
            unit[at + c] += v * inverse;
        }
    }
    const float inverse_count = 1.0f / (float)count;
    float u2 = 0.0f;
    for (int c = 0; c < p.d; c++)
    {
        means[at + c] *= inverse_count;
        u2 += unit[at + c] * unit[at + c];
    }
    similarity[item] = u2 * inverse_count * inverse_count;
}
#else
// query_means/query_similar: pooled Q; key_means/key_similar: pooled K; probabilities: [rows, key_blocks] scratch;
// kept: [rows, key_blocks] flags written here.
NA_KERNEL NA_WORKGROUP(NA_CONTENT_THREADS) void na_content_select(
    const NA_GLOBAL float* NA_RESTRICT query_means, const NA_GLOBAL float* NA_RESTRICT query_similar,
    const NA_GLOBAL float* NA_RESTRICT key_means, const NA_GLOBAL float* NA_RESTRICT key_similar,
    NA_GLOBAL float* NA_RESTRICT probabilities, NA_GLOBAL int* NA_RESTRICT kept, const na_content_select_params p)
{
    const int row = NA_GROUP_ID(0) * NA_CONTENT_THREADS + NA_LOCAL_ID(0);
    if (row >= p.rows) return;
    const int qb = row % p.query_blocks;
    const int bh = row / p.query_blocks;
    const int b = bh / p.hq, h = bh % p.hq;
    const int kv_row = b * p.hkv + h / (p.hq / p.hkv);
    const int kb = p.key_blocks;

    // Candidates [0, seen) and the first block crossing the causal diagonal (BlockGrid.Causal / Diagonal).
    int seen = kb, frontier = kb;
    const na_i64 shift = (na_i64)p.nk - p.nq;
    const na_i64 last = (na_i64)min((qb + 1) * p.bq, p.nq) - 1 + shift;
    if (p.causal)
    {
        const na_i64 first = (na_i64)qb * p.bq + shift;
        if (last < 0) { seen = 0; frontier = 0; }
        else
        {
            seen = (int)min((na_i64)kb, last / p.bk + 1);
            frontier = first < 0 ? 0 : (int)min((na_i64)seen, (first + 1) / p.bk);
        }
    }
    const int diagonal = (int)(last < 0 ? 0 : min((na_i64)(kb - 1), last / p.bk));

    NA_GLOBAL float* prob = probabilities + (na_i64)row * kb;
    NA_GLOBAL int* flag = kept + (na_i64)row * kb;
    const NA_GLOBAL float* qm = query_means + (na_i64)row * p.d;
    const NA_GLOBAL float* km = key_means + (na_i64)kv_row * kb * p.d;
    float max_score = -NA_INFINITY;
    for (int c = 0; c < seen; c++)
    {
        float dot = 0.0f;
        for (int x = 0; x < p.d; x++) dot += qm[x] * km[(na_i64)c * p.d + x];
        prob[c] = p.scale * dot;
        max_score = NA_FMAX(max_score, prob[c]);
    }
    float sum = 0.0f;
    for (int c = 0; c < seen; c++)
    {
        prob[c] = NA_EXP(prob[c] - max_score);
        sum += prob[c];
    }
    for (int c = 0; c < seen; c++) prob[c] = prob[c] / sum;

    const int keep_row = query_similar[row] < p.threshold;
    float mass = 0.0f;
    for (int c = 0; c < kb; c++)
    {
        int forced = 0;
        if (c < seen)
            forced = keep_row || c < p.sink_blocks || (p.keep_diagonal && (p.causal ? c >= frontier : c == diagonal))
                || key_similar[(na_i64)kv_row * kb + c] < p.threshold;
        flag[c] = forced;
        if (forced) mass += prob[c];
    }
    // The rest by decreasing probability (ties: the lower index), while top-k or the threshold asks for more.
    int taken = 0;
    while (p.top_k >= 0 ? taken < p.top_k : (p.gamma >= 1.0f || mass < p.gamma))
    {
        int best = -1;
        for (int c = 0; c < seen; c++)
            if (!flag[c] && (best < 0 || prob[c] > prob[best])) best = c;
        if (best < 0) break;
        flag[best] = 1;
        mass += prob[best];
        taken++;
    }
}
#endif
