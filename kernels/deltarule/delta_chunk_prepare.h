// Chunked delta rule, first kernel (OpenCL C and CUDA C): the column-independent quantities of one chunk, computed once
// and written to the scratch (deltarule/delta_chunk_common.h has the formulas and the layout) for the per-column kernel
// deltarule/delta_chunked.h. One work-group per (sequence, chunk of the launch's window, head), in that order from
// the slowest (so that the group index is the scratch slot); NA_DELTA_CHUNK work-items, one per token of the chunk.
// Chunks do not depend on one another here: every chunk of the window is prepared at once.
//
// Features run in blocks of NA_DELTA_FB, staged in local memory. A first pass builds A (below the diagonal of m) and
// P (transposed, on and above it) and writes the scaled, decayed queries QT, the decayed keys KT and the decays DL;
// P goes out, T = (I + A)^-1 is solved into m's upper triangle (transposed; column j by work-item j), Tb = T diag(beta)
// goes out; a second pass over the feature blocks forms W = Tb (K . 2^B). With per-key gates (KDA) pass 1 takes the
// exact per-key decays only inside 16-token sub-chunks and factorises them across (NA_DELTA_SUB below).
#include "deltarule/delta_chunk_common.h"
#include "common/chunk_scan.h"

#define NA_DELTA_LDT (NA_DELTA_CHUNK + 1)   // row stride of the transposed staging (FB x LDT fits in CHUNK x LDF)
#if NA_DELTA_FB * NA_DELTA_LDT > NA_DELTA_CHUNK * NA_DELTA_LDF
#error "the transposed staging must fit the row-major one"
#endif

// KDA (per-key gates) builds A and P by sub-chunks of NA_DELTA_SUB tokens. With c the first token of t's sub-chunk:
//   s in t's sub-chunk (c <= s < t):  k_s[f] 2^(B_t[f] - B_s[f])                        (exact, one exponential each)
//   s before it (s < c):              (k_t[f] 2^(B_t[f] - B_c[f])) (k_s[f] 2^(B_c[f] - B_s[f]))
// and the same with q_t for P. Both exponents of the split are <= 0 (log gates are <= 0, so B is non-increasing down
// the chunk), so neither factor exceeds 1 and nothing overflows at any gate strength. The left factor is taken once per
// (t, f), the right once per (sub-chunk, s, f) and staged; the cross-sub-chunk sums are then plain dot products over f.
// A factor that underflows (to 0, or flushed from a denormal) is below 2^-126; the exact 2^(B_t - B_s) is the product
// of two factors <= 1, so it is below that factor too: such a term is under 2^-126 |k_t[f] k_s[f]| (|q_t[f] k_s[f]|) in
// exact arithmetic as well, far below float32 rounding of any entry that matters. Exponentials per chunk and key
// dimension: L (SUB - 1) / 2 inside sub-chunks, L left factors, L (L / SUB - 1) / 2 right ones, L (SUB + L / SUB) / 2 in
// all, in place of L (L - 1) / 2 (640 in place of 2016 at L = 64, SUB = 16).
#ifndef NA_DELTA_SUB
#define NA_DELTA_SUB 16
#endif
#if NA_DELTA_SUB < 1 || (NA_DELTA_CHUNK - NA_DELTA_SUB) * NA_DELTA_FB > NA_DELTA_CHUNK * NA_DELTA_LDF
#error "the decayed keys of the last sub-chunk must fit the query staging"
#endif

NA_KERNEL NA_WORKGROUP(NA_DELTA_CHUNK) void na_delta_chunk_prepare(
    const NA_GLOBAL na_elem* NA_RESTRICT q, const NA_GLOBAL na_elem* NA_RESTRICT k, const NA_GLOBAL na_elem* NA_RESTRICT v,
    const NA_GLOBAL float* beta_f, const NA_GLOBAL na_elem* beta_e, NA_GLOBAL na_elem* NA_RESTRICT o,
    const NA_GLOBAL float* s0, NA_GLOBAL float* dst, const NA_GLOBAL float* NA_RESTRICT gate,
    const NA_GLOBAL int* NA_RESTRICT meta, NA_GLOBAL float* NA_RESTRICT work, const na_delta_params p)
{
    NA_SHARED float m[NA_DELTA_CHUNK * NA_DELTA_LDM];         // A below the diagonal (m[t][s], s < t); P^T on and above it (m[s][t], s <= t), then T^T and Tb^T above it
    NA_SHARED float stage[3 * NA_DELTA_CHUNK * NA_DELTA_LDF]; // the staged q, k and (KDA) cumulative log2 gates of a feature block (pass 1 transposed)
    NA_SHARED float bl[NA_DELTA_CHUNK];                       // scalar log2 gates, then their cumulative sums
    NA_SHARED float qn[NA_DELTA_CHUNK];                       // L2 factors of q_t and k_t (1 without normalisation)
    NA_SHARED float kn[NA_DELTA_CHUNK];
    NA_SHARED float bv[NA_DELTA_CHUNK];                       // beta_t

    NA_DELTA_SHARED_PTR qs = stage;                                        // [CHUNK][LDF], pass 1 [FB][LDT]
    NA_DELTA_SHARED_PTR ks = stage + NA_DELTA_CHUNK * NA_DELTA_LDF;        // [CHUNK][LDF]
    NA_DELTA_SHARED_PTR gs = stage + 2 * NA_DELTA_CHUNK * NA_DELTA_LDF;    // [CHUNK][LDF]

    const int tid = NA_LOCAL_ID(0);
    const int group = NA_GROUP_ID(0);
    const int h = group % p.heads;
    const int rest = group / p.heads;
    const int w = rest % p.chunk_count;
    const int seq = rest / p.chunk_count;
    const int b = p.varlen ? 0 : seq;
    const int first = p.varlen ? meta[seq] : 0;
    const int length = p.varlen ? meta[seq + 1] - first : p.qkvo.nq;
    const int dk = p.qkvo.dqk;
    const int chunk = p.chunk;
    const int t0 = (p.chunk_first + w) * chunk;
    // Tokens of this chunk: 0 when the sequence has fewer chunks (the work-group then writes nothing; no early return,
    // so that every work-item meets every barrier on every OpenCL implementation).
    const int l = t0 >= length ? 0 : chunk < length - t0 ? chunk : length - t0;
    const int t = tid;
    const int valid = t < l;
    const int tok = first + t0 + t;

    const na_i64 q_base = p.qkvo.q_offset + b * p.qkvo.q_stride_b + (h / p.group_q) * p.qkvo.q_stride_h;
    const na_i64 k_base = p.qkvo.k_offset + b * p.qkvo.k_stride_b + (h / p.group_k) * p.qkvo.k_stride_h;
    const na_i64 beta_base = p.beta_offset + b * p.beta_stride_b + h * p.beta_stride_h;
    const na_i64 g_base = p.g_offset + b * p.g_stride_b + h * p.g_stride_h;
    NA_GLOBAL float* tb_out = work + na_delta_chunk_at(seq, w, h, p.chunk_count, p.heads, chunk, dk);
    NA_GLOBAL float* p_out = tb_out + chunk * chunk;
    NA_GLOBAL float* w_out = p_out + chunk * chunk;
    NA_GLOBAL float* q_out = w_out + (na_i64)dk * chunk;
    NA_GLOBAL float* k_out = q_out + (na_i64)dk * chunk;
    NA_GLOBAL float* d_out = k_out + (na_i64)dk * chunk;

    // Per token: beta, the L2 factors, the scalar log2 gate; this work-item's row of m cleared.
    float beta_t = 0.0f, q_factor = 1.0f, k_factor = 1.0f, log2_gate = 0.0f;
    if (valid)
    {
        beta_t = p.beta_f32 ? beta_f[beta_base + tok * p.beta_stride_n] : na_load(beta_e, beta_base + tok * p.beta_stride_n);
        if (p.gate == 1) log2_gate = gate[g_base + tok * p.g_stride_n] * NA_LOG2E;
        if (p.l2norm)
        {
            float qq = 0.0f, kk = 0.0f;
            for (int f = 0; f < dk; f++)
            {
                const float qf = na_load(q, q_base + tok * p.qkvo.q_stride_n + f * p.qkvo.q_stride_d);
                const float kf = na_load(k, k_base + tok * p.qkvo.k_stride_n + f * p.qkvo.k_stride_d);
                qq += qf * qf;
                kk += kf * kf;
            }
            q_factor = NA_DELTA_RSQRT(qq + NA_DELTA_L2_EPS);
            k_factor = NA_DELTA_RSQRT(kk + NA_DELTA_L2_EPS);
        }
    }
    qn[t] = q_factor;
    kn[t] = k_factor;
    bv[t] = beta_t;
    for (int s = 0; s < NA_DELTA_CHUNK; s++) m[t * NA_DELTA_LDM + s] = 0.0f;
    const float bt = na_chunk_log2_prefix(bl, t, l, log2_gate);   // b_t = sum_{r <= t} log2 g_r; past the chunk b_{l-1}
    const float blast = l > 0 ? bl[l - 1] : 0.0f;

    // Pass 1, per feature block, staged transposed (feature rows, token columns): work-item i adds to row i of A
    // (A[i][s], s < i) and to row i of P^T (P[t][i], t >= i), both along a row of m, so that the inner loops run over
    // consecutive tokens (they vectorise where work-items are loops); undecayed for scalar gates. Then QT, KT and DL.
    for (int fb = 0; fb < dk; fb += NA_DELTA_FB)
    {
        const int nf = dk - fb < NA_DELTA_FB ? dk - fb : NA_DELTA_FB;   // key dimensions of this block
        NA_BARRIER();   // everyone is done with the previous block
        for (int i = tid; i < NA_DELTA_CHUNK * NA_DELTA_FB; i += NA_DELTA_CHUNK)
        {
            const int r = i / NA_DELTA_FB;
            const int f = i - r * NA_DELTA_FB;
            const int live = r < l && fb + f < dk;
            const int tk = first + t0 + r;
            qs[f * NA_DELTA_LDT + r] = live ? na_load(q, q_base + tk * p.qkvo.q_stride_n + (fb + f) * p.qkvo.q_stride_d) * qn[r] : 0.0f;
            ks[f * NA_DELTA_LDT + r] = live ? na_load(k, k_base + tk * p.qkvo.k_stride_n + (fb + f) * p.qkvo.k_stride_d) * kn[r] : 0.0f;
            gs[f * NA_DELTA_LDT + r] = (live && p.gate == 2) ? gate[g_base + tk * p.g_stride_n + (fb + f) * p.g_stride_d] * NA_LOG2E : 0.0f;
        }
        NA_BARRIER();
        if (p.gate == 2)
        {
            // Cumulative log2 gates down the chunk, one feature per work-item.
            if (tid < NA_DELTA_FB)
            {
                float run = 0.0f;
                for (int r = 0; r < l; r++)
                {
                    run += gs[tid * NA_DELTA_LDT + r];
                    gs[tid * NA_DELTA_LDT + r] = run;
                }
            }
            NA_BARRIER();
        }
        // KDA: this token's key and query decayed to the start c of its sub-chunk, 2^(B_t - B_c) (zeros past the block).
        float ke[NA_DELTA_FB];
        float qe[NA_DELTA_FB];
        NA_DELTA_UNROLL
        for (int f = 0; f < NA_DELTA_FB; f++)
        {
            ke[f] = 0.0f;
            qe[f] = 0.0f;
        }
        if (valid)
        {
            NA_DELTA_SHARED_PTR a_row = m + t * NA_DELTA_LDM;   // A[t][s], s < t; then P^T[t][u] = P[u][t], u >= t
            if (p.gate == 2)
            {
                // Per-key gates, pairs inside t's sub-chunk: one exponential per (t, s, f) serves A[t][s] and P[t][s]
                // (the latter into column t of P^T, m[s][t]). Earlier sub-chunks come after the block's barrier below.
                const int c = t - t % NA_DELTA_SUB;
                for (int f = 0; f < nf; f++)
                {
                    NA_DELTA_SHARED_PTR kf = ks + f * NA_DELTA_LDT;
                    NA_DELTA_SHARED_PTR gf = gs + f * NA_DELTA_LDT;
                    const float kt = kf[t];
                    const float gt = gf[t];
                    const float qt = qs[f * NA_DELTA_LDT + t];
                    for (int s = c; s < t; s++)
                    {
                        const float x = kf[s] * na_delta_decay(gt - gf[s]);
                        a_row[s] += kt * x;
                        m[s * NA_DELTA_LDM + t] += qt * x;
                    }
                    a_row[t] += qt * kt;
                }
                NA_DELTA_UNROLL
                for (int f = 0; f < NA_DELTA_FB; f++)
                {
                    const float e = na_delta_decay(gs[f * NA_DELTA_LDT + t] - gs[f * NA_DELTA_LDT + c]);
                    ke[f] = ks[f * NA_DELTA_LDT + t] * e;
                    qe[f] = qs[f * NA_DELTA_LDT + t] * e;
                }
            }
            else
            {
                for (int f = 0; f < nf; f++)
                {
                    NA_DELTA_SHARED_PTR kf = ks + f * NA_DELTA_LDT;
                    NA_DELTA_SHARED_PTR qf = qs + f * NA_DELTA_LDT;
                    const float kt = kf[t];
                    for (int s = 0; s < t; s++) a_row[s] += kt * kf[s];
                    for (int u = t; u < l; u++) a_row[u] += kt * qf[u];
                }
            }
            // This token's decayed query and key columns of the block: q_t 2^(B_t) scale, k_t 2^(B_L - B_t).
            for (int f = 0; f < nf; f++)
            {
                const float g = gs[f * NA_DELTA_LDT + t];
                const float qd = p.gate == 2 ? na_delta_decay(g) : p.gate == 1 ? na_delta_decay(bt) : 1.0f;
                const float kd = p.gate == 2 ? na_delta_decay(gs[f * NA_DELTA_LDT + l - 1] - g) : p.gate == 1 ? na_delta_decay(blast - bt) : 1.0f;
                q_out[(fb + f) * (na_i64)chunk + t] = p.scale * qs[f * NA_DELTA_LDT + t] * qd;
                k_out[(fb + f) * (na_i64)chunk + t] = ks[f * NA_DELTA_LDT + t] * kd;
            }
        }
        if (tid < nf && l > 0)
            d_out[fb + tid] = p.gate == 2 ? na_delta_decay(gs[tid * NA_DELTA_LDT + l - 1]) : p.gate == 1 ? na_delta_decay(blast) : 1.0f;
        if (p.gate == 2)
        {
            // KDA, pairs across sub-chunks (s < c_i <= t, c_i = i SUB the start of t's sub-chunk i): the keys decayed to
            // c_i, xs_i[f][s] = k_s[f] 2^(B_ci[f] - B_s[f]) (c_i x FB, token-minor), staged where the queries were (every
            // work-item holds its own in qe now) for as many sub-chunks at a time as fit; then work-item t adds
            // sum_f ke[f] xs_i[f][s] to A[t][s] and sum_f qe[f] xs_i[f][s] to P[t][s], along s.
            const int subs = (l + NA_DELTA_SUB - 1) / NA_DELTA_SUB;
            const int it = t / NA_DELTA_SUB;
            NA_DELTA_SHARED_PTR xs = qs;
            for (int i0 = 1; i0 < subs;)
            {
                int i1 = i0, used = 0;   // sub-chunks [i0, i1) this round
                while (i1 < subs && used + i1 * NA_DELTA_SUB * NA_DELTA_FB <= NA_DELTA_CHUNK * NA_DELTA_LDF)
                {
                    used += i1 * NA_DELTA_SUB * NA_DELTA_FB;
                    i1++;
                }
                NA_BARRIER();   // everyone is done with the staged queries (first round) or the previous round's keys
                int at = 0;
                for (int i = i0; i < i1; i++)
                {
                    const int ci = i * NA_DELTA_SUB;
                    for (int e = tid; e < ci * NA_DELTA_FB; e += NA_DELTA_CHUNK)
                    {
                        const int f = e / ci;
                        const int s = e - f * ci;
                        xs[at + e] = ks[f * NA_DELTA_LDT + s] * na_delta_decay(gs[f * NA_DELTA_LDT + ci] - gs[f * NA_DELTA_LDT + s]);
                    }
                    at += ci * NA_DELTA_FB;
                }
                NA_BARRIER();
                if (valid && it >= i0 && it < i1)
                {
                    int from = 0;
                    for (int i = i0; i < it; i++) from += i * NA_DELTA_SUB * NA_DELTA_FB;
                    NA_DELTA_SHARED_PTR x = xs + from;
                    const int ci = it * NA_DELTA_SUB;
                    for (int s = 0; s < ci; s++)
                    {
                        float sa = 0.0f, sp = 0.0f;
                        NA_DELTA_UNROLL
                        for (int f = 0; f < NA_DELTA_FB; f++)
                        {
                            const float y = x[f * ci + s];
                            sa += ke[f] * y;
                            sp += qe[f] * y;
                        }
                        m[t * NA_DELTA_LDM + s] += sa;
                        m[s * NA_DELTA_LDM + t] += sp;
                    }
                }
                i0 = i1;
            }
        }
    }

    // beta and the scalar decays on A, scale and the scalar decays on P, row t by work-item t (with per-key gates other
    // work-items added to it in the last block).
    NA_BARRIER();
    if (valid)
    {
        for (int s = 0; s < t; s++)
            m[t * NA_DELTA_LDM + s] *= p.gate == 1 ? beta_t * na_delta_decay(bt - bl[s]) : beta_t;
        for (int u = t; u < l; u++)
            m[t * NA_DELTA_LDM + u] *= p.gate == 1 ? p.scale * na_delta_decay(bl[u] - bt) : p.scale;
    }
    NA_BARRIER();   // A and P are complete
    if (valid)
        for (int s = 0; s <= t; s++) p_out[s * chunk + t] = m[s * NA_DELTA_LDM + t];
    NA_BARRIER();   // P is out: the upper triangle is free for T^T

    // T = (I + A)^-1 by forward substitution, column j on work-item j, kept transposed above the diagonal:
    // T[r][j] = -A[r][j] - sum_{j < s < r} A[r][s] T[s][j] (T[j][j] = 1) at m[j][r]. Work-item j writes row j only
    // and reads its own row and A.
    {
        const int j = tid;
        for (int r = j + 1; r < l; r++)
        {
            float x = -m[r * NA_DELTA_LDM + j];
            for (int s = j + 1; s < r; s++) x -= m[r * NA_DELTA_LDM + s] * m[j * NA_DELTA_LDM + s];
            m[j * NA_DELTA_LDM + r] = x;
        }
    }
    NA_BARRIER();   // T is complete

    // Tb = T diag(beta), row t by work-item t (column t of m's upper triangle, the diagonal beta_t), kept in m and out.
    if (valid)
    {
        for (int s = 0; s < t; s++)
        {
            const float x = m[s * NA_DELTA_LDM + t] * bv[s];
            m[s * NA_DELTA_LDM + t] = x;
            tb_out[s * chunk + t] = x;
        }
        m[t * NA_DELTA_LDM + t] = beta_t;
        tb_out[t * chunk + t] = beta_t;
    }

    // Pass 2, per feature block: W = Tb (K . 2^B), row t by work-item t.
    for (int fb = 0; fb < dk; fb += NA_DELTA_FB)
    {
        const int nf = dk - fb < NA_DELTA_FB ? dk - fb : NA_DELTA_FB;
        NA_BARRIER();   // everyone is done with the previous block (and with T, first time)
        for (int i = tid; i < NA_DELTA_CHUNK * NA_DELTA_FB; i += NA_DELTA_CHUNK)
        {
            const int r = i / NA_DELTA_FB;
            const int f = i - r * NA_DELTA_FB;
            const int live = r < l && fb + f < dk;
            const int tk = first + t0 + r;
            const float x = live ? na_load(k, k_base + tk * p.qkvo.k_stride_n + (fb + f) * p.qkvo.k_stride_d) * kn[r] : 0.0f;
            ks[r * NA_DELTA_LDF + f] = p.gate == 1 ? x * na_delta_decay(bl[r]) : x;
            gs[r * NA_DELTA_LDF + f] = (live && p.gate == 2) ? gate[g_base + tk * p.g_stride_n + (fb + f) * p.g_stride_d] * NA_LOG2E : 0.0f;
        }
        NA_BARRIER();
        if (p.gate == 2)
        {
            if (tid < NA_DELTA_FB)
            {
                float run = 0.0f;
                for (int r = 0; r < l; r++)
                {
                    run += gs[r * NA_DELTA_LDF + tid];
                    ks[r * NA_DELTA_LDF + tid] *= na_delta_decay(run);
                }
            }
            NA_BARRIER();
        }
        if (valid)
        {
            float acc[NA_DELTA_FB];
            NA_DELTA_UNROLL
            for (int f = 0; f < NA_DELTA_FB; f++) acc[f] = 0.0f;
            for (int s = 0; s <= t; s++)
            {
                const float x = m[s * NA_DELTA_LDM + t];
                NA_DELTA_UNROLL
                for (int f = 0; f < NA_DELTA_FB; f++) acc[f] += x * ks[s * NA_DELTA_LDF + f];
            }
            NA_DELTA_UNROLL
            for (int f = 0; f < NA_DELTA_FB; f++)
                if (f < nf) w_out[(fb + f) * (na_i64)chunk + t] = acc[f];
        }
    }
}
