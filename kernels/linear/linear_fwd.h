// Chunked linear attention (OpenCL C and CUDA C): one work-group per (sequence, head, block of NA_LINEAR_CB value
// columns), NA_LINEAR_CHUNK work-items, one per token of a chunk. Chunks run in order; inside a chunk, with b_t the
// cumulative log2 gate of token t within the chunk (never across chunks, so nothing under- or overflows):
//   o_t = scale (2^(b_t) phi(q_t) S + sum_{s <= t} 2^(b_t - b_s) (phi(q_t) . phi(k_s)) [v_s, 1])
//   S   = 2^(b_L) S + sum_s 2^(b_L - b_s) phi(k_s) [v_s, 1]^T
// (per-key gates: the same with the exponentials per feature, inside the dot products). Features are processed in
// blocks of NA_LINEAR_FB: the state block of the work-group's columns is read from its float32 scratch copy `work`
// into shared memory, used for the inter-chunk product, and written back updated. Every work-item reads and writes only
// the scratch entries it owns (entry i of a feature block belongs to work-item i mod NA_LINEAR_CHUNK, in every chunk),
// so the scratch needs no fence. With normalisation every column block also carries the normaliser column (local
// column NA_LINEAR_CB, V extended with ones); block 0 alone writes it to the final state.
// Non-causal calls make two passes: the state over the whole sequence, then phi(Q) S.
#include "linear/linear_params.h"
#include "common/dtype.h"
#include "common/math.h"
#include "common/chunk_scan.h"
#include "linear/linear_features.h"

#ifndef NA_LINEAR_CHUNK
#define NA_LINEAR_CHUNK 64     // the longest chunk = work-items per work-group
#endif
#ifndef NA_LINEAR_FB
#define NA_LINEAR_FB 16        // features per block
#endif
#ifndef NA_LINEAR_CB
#define NA_LINEAR_CB 32        // value columns per work-group
#endif
#ifndef NA_LINEAR_PER_KEY
#define NA_LINEAR_PER_KEY 0    // 1: per-token per-key gates (decay 3); 0: none, per head or per token
#endif
#define NA_LINEAR_CW (NA_LINEAR_CB + 1)   // local columns: the value columns, then the normaliser

// The state column of local column c: a value column of the block, the normaliser (c == NA_LINEAR_CB), or -1.
NA_INLINE int na_linear_column(int c, int c0, int dv, int normalize)
{
    if (c < NA_LINEAR_CB) return c0 + c < dv ? c0 + c : -1;
    return normalize ? dv : -1;
}

NA_KERNEL NA_WORKGROUP(NA_LINEAR_CHUNK) void na_linear_fwd(
    const NA_GLOBAL na_elem* NA_RESTRICT q, const NA_GLOBAL na_elem* NA_RESTRICT k, const NA_GLOBAL na_elem* NA_RESTRICT v,
    NA_GLOBAL na_elem* NA_RESTRICT o, const NA_GLOBAL float* NA_RESTRICT s0, NA_GLOBAL float* NA_RESTRICT s1,
    const NA_GLOBAL float* NA_RESTRICT gate, const NA_GLOBAL int* NA_RESTRICT meta, NA_GLOBAL float* NA_RESTRICT work,
    const na_linear_params p)
{
    NA_SHARED float ks[NA_LINEAR_CHUNK * NA_LINEAR_FB];   // phi(k_s) of the feature block
    NA_SHARED float kd[NA_LINEAR_CHUNK * NA_LINEAR_FB];   // phi(k_s) decayed to the chunk's end
#if NA_LINEAR_PER_KEY
    NA_SHARED float gs[NA_LINEAR_CHUNK * NA_LINEAR_FB];   // cumulative log2 gates of the feature block
#endif
    NA_SHARED float vs[NA_LINEAR_CHUNK * NA_LINEAR_CW];   // [v_s, 1] of the block's columns
    NA_SHARED float ss[NA_LINEAR_FB * NA_LINEAR_CW];      // the state block at the chunk's start
    NA_SHARED float bl[NA_LINEAR_CHUNK];                  // scalar gates, then their cumulative sums

    const int tid = NA_LOCAL_ID(0);
    const int group = NA_GROUP_ID(0);
    const int cb = group % p.col_blocks;
    const int item = group / p.col_blocks;
    const int seq = item / p.heads;
    const int h = item - seq * p.heads;
    const int b = p.varlen ? 0 : seq;
    const int start = p.varlen ? meta[seq] : 0;
    const int len = p.varlen ? meta[seq + 1] - start : p.qkvo.nq;
    const int c0 = cb * NA_LINEAR_CB;
    const int nf = p.features;
    const int dk = p.qkvo.dqk;
    const int dv = p.qkvo.dv;
    const int width = dv - c0 < NA_LINEAR_CB ? dv - c0 : NA_LINEAR_CB;   // value columns of this block

    const na_i64 q_base = p.qkvo.q_offset + b * p.qkvo.q_stride_b + (h / p.group_q) * p.qkvo.q_stride_h;
    const na_i64 k_base = p.qkvo.k_offset + b * p.qkvo.k_stride_b + (h / p.group_k) * p.qkvo.k_stride_h;
    const na_i64 v_base = p.qkvo.v_offset + b * p.qkvo.v_stride_b + (h / p.group_v) * p.qkvo.v_stride_h;
    const na_i64 o_base = p.qkvo.o_offset + b * p.qkvo.o_stride_b + h * p.qkvo.o_stride_h;
    const na_i64 g_base = p.g_offset + b * p.g_stride_b + h * p.g_stride_h;
    const na_i64 work_base = (na_i64)group * nf * NA_LINEAR_CW;
#if !NA_LINEAR_PER_KEY
    const float head_log2 = p.decay == NA_LINEAR_DECAY_HEAD ? na_linear_head_log2(meta, p.decay_base + h) : 0.0f;
#endif

    // The scratch state: the initial state's columns of this block, or zeros.
    for (int fb = 0; fb < nf; fb += NA_LINEAR_FB)
        for (int i = tid; i < NA_LINEAR_FB * NA_LINEAR_CW; i += NA_LINEAR_CHUNK)
        {
            const int f = fb + i / NA_LINEAR_CW;
            const int col = na_linear_column(i % NA_LINEAR_CW, c0, dv, p.normalize);
            if (f < nf)
                work[work_base + (na_i64)fb * NA_LINEAR_CW + i] = (p.has_initial && col >= 0)
                    ? s0[p.s0_offset + seq * p.s0_stride_s + h * p.s0_stride_h + f * p.s0_stride_f + col * p.s0_stride_c] : 0.0f;
        }

    const int t = tid;
    const int passes = p.causal ? 1 : 2;
    for (int pass = 0; pass < passes; pass++)
    {
        const int update = p.causal || pass == 0;   // advance the state
        const int emit = p.causal || pass == 1;     // write outputs
        for (int t0 = 0; t0 < len; t0 += p.chunk)
        {
            const int l = p.chunk < len - t0 ? p.chunk : len - t0;
            const int valid = t < l;
            const int tok = start + t0 + t;

            NA_BARRIER();   // the previous chunk is done with vs and bl
            for (int c = 0; c < NA_LINEAR_CW; c++)
            {
                const int col = na_linear_column(c, c0, dv, p.normalize);
                vs[t * NA_LINEAR_CW + c] = (valid && col >= 0)
                    ? (c < NA_LINEAR_CB ? na_load(v, v_base + tok * p.qkvo.v_stride_n + col * p.qkvo.v_stride_d) : 1.0f) : 0.0f;
            }
#if !NA_LINEAR_PER_KEY
            float lg = 0.0f;
            if (valid && p.decay == NA_LINEAR_DECAY_HEAD) lg = head_log2;
            else if (valid && p.decay == NA_LINEAR_DECAY_TOKEN) lg = gate[g_base + tok * p.g_stride_n] * NA_LOG2E;
            const float bt = na_chunk_log2_prefix(bl, t, l, lg);   // b_t = sum_{r <= t} log2 g_r; past the chunk b_{l-1}
            const float blast = bl[l - 1];
            const float wt = NA_EXP2(blast - bt);   // decay of token t's contribution to the chunk's end
#endif

            float acc[NA_LINEAR_CW];
            float arow[NA_LINEAR_CHUNK];
            NA_LINEAR_UNROLL
            for (int c = 0; c < NA_LINEAR_CW; c++) acc[c] = 0.0f;
            NA_LINEAR_UNROLL
            for (int s = 0; s < NA_LINEAR_CHUNK; s++) arow[s] = 0.0f;

            for (int fb = 0; fb < nf; fb += NA_LINEAR_FB)
            {
                NA_BARRIER();   // the previous feature block is done with ks, kd, gs and ss
                for (int f = 0; f < NA_LINEAR_FB; f++)
                {
                    const int feature = fb + f;
                    const int live = valid && feature < nf;
                    const float x = live ? na_linear_phi(k, k_base + tok * p.qkvo.k_stride_n, p.qkvo.k_stride_d, dk, p.feature_map, feature) : 0.0f;
                    ks[t * NA_LINEAR_FB + f] = x;
#if NA_LINEAR_PER_KEY
                    gs[t * NA_LINEAR_FB + f] = live ? gate[g_base + tok * p.g_stride_n + feature * p.g_stride_d] * NA_LOG2E : 0.0f;
#else
                    kd[t * NA_LINEAR_FB + f] = x * wt;
#endif
                }
                for (int i = tid; i < NA_LINEAR_FB * NA_LINEAR_CW; i += NA_LINEAR_CHUNK)
                    ss[i] = fb + i / NA_LINEAR_CW < nf ? work[work_base + (na_i64)fb * NA_LINEAR_CW + i] : 0.0f;
                NA_BARRIER();
#if NA_LINEAR_PER_KEY
                if (tid < NA_LINEAR_FB)
                {
                    // Cumulative log2 gates down the chunk, per feature; then the keys decayed to the chunk's end. Rows
                    // past the chunk keep their zeros: they only meet queries and keys that are zero.
                    float run = 0.0f;
                    for (int r = 0; r < l; r++)
                    {
                        run += gs[r * NA_LINEAR_FB + tid];
                        gs[r * NA_LINEAR_FB + tid] = run;
                    }
                    for (int r = 0; r < l; r++)
                        kd[r * NA_LINEAR_FB + tid] = ks[r * NA_LINEAR_FB + tid] * NA_EXP2(run - gs[r * NA_LINEAR_FB + tid]);
                }
                NA_BARRIER();
#endif
                if (emit)
                {
                    float qf[NA_LINEAR_FB];
                    NA_LINEAR_UNROLL
                    for (int f = 0; f < NA_LINEAR_FB; f++)
                        qf[f] = (valid && fb + f < nf) ? na_linear_phi(q, q_base + tok * p.qkvo.q_stride_n, p.qkvo.q_stride_d, dk, p.feature_map, fb + f) : 0.0f;
                    if (p.causal)
                    {
                        // Intra-chunk scores, undecayed (scalar gates) or decayed per feature (every exponent <= 0).
                        NA_LINEAR_UNROLL
                        for (int s = 0; s < NA_LINEAR_CHUNK; s++)
                        {
                            if (s >= l) break;
                            float dot = 0.0f;
                            NA_LINEAR_UNROLL
                            for (int f = 0; f < NA_LINEAR_FB; f++)
                            {
                                if (fb + f >= nf) break;
#if NA_LINEAR_PER_KEY
                                const float e = gs[t * NA_LINEAR_FB + f] - gs[s * NA_LINEAR_FB + f];
                                dot += qf[f] * ks[s * NA_LINEAR_FB + f] * NA_EXP2(e < 0.0f ? e : 0.0f);
#else
                                dot += qf[f] * ks[s * NA_LINEAR_FB + f];
#endif
                            }
                            arow[s] += dot;
                        }
                    }
#if NA_LINEAR_PER_KEY
                    NA_LINEAR_UNROLL
                    for (int f = 0; f < NA_LINEAR_FB; f++) qf[f] *= NA_EXP2(gs[t * NA_LINEAR_FB + f]);
#endif
                    // Inter-chunk: phi(q_t) (decayed per feature) times the state block.
                    NA_LINEAR_UNROLL
                    for (int c = 0; c < NA_LINEAR_CW; c++)
                    {
                        if (c >= width && c < NA_LINEAR_CB) continue;   // columns past Dv
                        float sum = 0.0f;
                        NA_LINEAR_UNROLL
                        for (int f = 0; f < NA_LINEAR_FB; f++)
                        {
                            if (fb + f >= nf) break;
                            sum += qf[f] * ss[f * NA_LINEAR_CW + c];
                        }
                        acc[c] += sum;
                    }
                }
                if (update)
                    for (int i = tid; i < NA_LINEAR_FB * NA_LINEAR_CW; i += NA_LINEAR_CHUNK)
                    {
                        const int f = i / NA_LINEAR_CW;
                        const int c = i - f * NA_LINEAR_CW;
                        if (fb + f >= nf || na_linear_column(c, c0, dv, p.normalize) < 0) continue;
#if NA_LINEAR_PER_KEY
                        const float decay = NA_EXP2(gs[(l - 1) * NA_LINEAR_FB + f]);
#else
                        const float decay = NA_EXP2(blast);
#endif
                        float sum = 0.0f;
                        for (int s = 0; s < l; s++) sum += kd[s * NA_LINEAR_FB + f] * vs[s * NA_LINEAR_CW + c];
                        work[work_base + (na_i64)fb * NA_LINEAR_CW + i] = decay * ss[i] + sum;
                    }
            }

            if (emit && valid)
            {
#if !NA_LINEAR_PER_KEY
                const float inter = NA_EXP2(bt);
                NA_LINEAR_UNROLL
                for (int c = 0; c < NA_LINEAR_CW; c++) acc[c] *= inter;
#endif
                if (p.causal)
                {
                    NA_LINEAR_UNROLL
                    for (int s = 0; s < NA_LINEAR_CHUNK; s++)
                    {
                        if (s >= l) break;
#if NA_LINEAR_PER_KEY
                        const float a = s <= t ? arow[s] : 0.0f;
#else
                        const float a = s <= t ? arow[s] * NA_EXP2(bt - bl[s]) : 0.0f;
#endif
                        NA_LINEAR_UNROLL
                        for (int c = 0; c < NA_LINEAR_CW; c++)
                            if (c < width || c == NA_LINEAR_CB) acc[c] += a * vs[s * NA_LINEAR_CW + c];
                    }
                }
                const float factor = p.normalize ? p.scale / (p.scale * acc[NA_LINEAR_CB] + p.eps) : p.scale;
                const na_i64 o_row = o_base + tok * p.qkvo.o_stride_n;
                NA_LINEAR_UNROLL
                for (int c = 0; c < NA_LINEAR_CB; c++)
                    if (c < width) na_store(o, o_row + (c0 + c) * p.qkvo.o_stride_d, acc[c] * factor);
            }
        }
    }

    // The final state: the block's value columns, and the normaliser from block 0. Each work-item copies the entries it owns.
    if (p.has_final)
        for (int fb = 0; fb < nf; fb += NA_LINEAR_FB)
            for (int i = tid; i < NA_LINEAR_FB * NA_LINEAR_CW; i += NA_LINEAR_CHUNK)
            {
                const int f = fb + i / NA_LINEAR_CW;
                const int c = i % NA_LINEAR_CW;
                const int col = na_linear_column(c, c0, dv, p.normalize);
                if (f < nf && col >= 0 && (c < NA_LINEAR_CB || cb == 0))
                    s1[p.s1_offset + seq * p.s1_stride_s + h * p.s1_stride_h + f * p.s1_stride_f + col * p.s1_stride_c] =
                        work[work_base + (na_i64)fb * NA_LINEAR_CW + i];
            }
}
