// Chunked delta rule (OpenCL C and CUDA C) for DeltaNet, Gated DeltaNet and KDA: prefill through the WY/UT
// representation. One work-group per (sequence, head, block of NA_DELTA_CB value columns), NA_DELTA_CHUNK work-items,
// one per token of a chunk; chunks of p.chunk tokens run in order through a float32 state kept in the destination
// (final state or scratch copy, K-major or V-major through its strides).
//
// Per chunk of L tokens with state S (Dk x Dv) at its start, and B_t[f] the cumulative log2 gate of token t inside the
// chunk (b_t for a scalar gate, 0 for DeltaNet; sums of log gates restarted every chunk, so every exponent taken is a
// difference B_t - B_s <= 0 or a B_t <= 0: nothing overflows, and no cumulative product is ever formed):
//   A[t][s] = beta_t sum_f k_t[f] k_s[f] 2^(B_t[f] - B_s[f])          (s < t: strictly lower)
//   P[t][s] =        sum_f q_t[f] k_s[f] 2^(B_t[f] - B_s[f])          (s <= t)
//   R[t]    = beta_t (v_t - S^T (k_t . 2^(B_t)))
//   U       = (I + A)^-1 R = T R, T by forward substitution in float32 (work-item j solves column j of T)
//   o_t     = scale (S^T (q_t . 2^(B_t)) + sum_{s <= t} P[t][s] U[s])
//   S       = diag(2^(B_L)) S + sum_s (k_s . 2^(B_L - B_s)) U[s]^T
// which is the token recurrence S_t = G_t S_{t-1} + k_t u_t^T, u_t = beta_t (v_t - (G_t S_{t-1})^T k_t), o_t =
// scale S_t^T q_t unrolled over the chunk (u_t = U[t]). In fla's WY terms, W = T diag(beta) (K . 2^B) and
// U' = T diag(beta) V, and U = U' - W S: the same product, formed here from R so that W is never stored. Keys and
// queries are L2-normalised first when asked.
//
// Features run in blocks of NA_DELTA_FB, staged in shared memory: a first pass builds A, P, R and the inter-chunk part
// of o from the state block at the chunk's start; a second, after the solve, updates the state block. State entry i of
// a feature block (feature i / NA_DELTA_CB, local column i % NA_DELTA_CB) is read and written by work-item
// i mod NA_DELTA_CHUNK only, in both passes and every chunk, so the state in global memory needs no fence.
#include "deltarule/delta_params.h"
#include "common/dtype.h"
#include "common/math.h"

#ifndef NA_DELTA_CHUNK
#define NA_DELTA_CHUNK 64   // the longest chunk = work-items per work-group
#endif
#ifndef NA_DELTA_FB
#define NA_DELTA_FB 16      // key dimensions per staged block
#endif
#ifndef NA_DELTA_CB
#define NA_DELTA_CB 32      // value columns per work-group
#endif

#define NA_DELTA_LDM (NA_DELTA_CHUNK + 1)   // row stride of the L x L matrices (odd: no bank conflicts down a column)
#define NA_DELTA_LDF (NA_DELTA_FB + 1)      // row stride of the staged q, k and gate blocks
#define NA_DELTA_LDU (NA_DELTA_CB + 1)      // row stride of R / U
#define NA_DELTA_STAGE (3 * NA_DELTA_CHUNK * NA_DELTA_LDF + NA_DELTA_FB * NA_DELTA_CB)
#define NA_DELTA_TSIZE (NA_DELTA_CHUNK * NA_DELTA_LDM)
#define NA_DELTA_WORK (NA_DELTA_STAGE > NA_DELTA_TSIZE ? NA_DELTA_STAGE : NA_DELTA_TSIZE)

#if NA_CUDA
#define NA_DELTA_RSQRT(x) rsqrtf(x)
#define NA_DELTA_SHARED_PTR float*   // CUDA: a generic pointer reaches shared memory
#define NA_DELTA_UNROLL _Pragma("unroll")
#else
#define NA_DELTA_RSQRT(x) rsqrt(x)
#define NA_DELTA_SHARED_PTR __local float*
#define NA_DELTA_UNROLL
#endif

#define NA_DELTA_L2_EPS 1e-6f

// 2^x for an exponent that is <= 0 in exact arithmetic (clamped, so that rounding can never make it grow).
NA_INLINE float na_delta_decay(float x) { return NA_EXP2(x < 0.0f ? x : 0.0f); }

NA_KERNEL NA_WORKGROUP(NA_DELTA_CHUNK) void na_delta_chunked(
    const NA_GLOBAL na_elem* NA_RESTRICT q, const NA_GLOBAL na_elem* NA_RESTRICT k, const NA_GLOBAL na_elem* NA_RESTRICT v,
    const NA_GLOBAL float* beta_f, const NA_GLOBAL na_elem* beta_e, NA_GLOBAL na_elem* NA_RESTRICT o,
    const NA_GLOBAL float* s0, NA_GLOBAL float* dst, const NA_GLOBAL float* NA_RESTRICT gate,
    const NA_GLOBAL int* NA_RESTRICT meta, const na_delta_params p)
{
    NA_SHARED float m[NA_DELTA_TSIZE];                // A below the diagonal (m[t][s], s < t); P transposed on and above it (m[s][t], s <= t)
    NA_SHARED float work[NA_DELTA_WORK];              // the staged feature block, or T = (I + A)^-1 between the passes
    NA_SHARED float ru[NA_DELTA_CHUNK * NA_DELTA_LDU];  // R, then U, of the block's value columns
    NA_SHARED float bl[NA_DELTA_CHUNK];               // scalar log2 gates, then their cumulative sums
    NA_SHARED float qn[NA_DELTA_CHUNK];               // L2 factors of q_t and k_t (1 without normalisation)
    NA_SHARED float kn[NA_DELTA_CHUNK];
    NA_SHARED float dl[NA_DELTA_FB];                  // 2^(B_L[f]) of the block (per-key gates)

    NA_DELTA_SHARED_PTR qs = work;                                        // [CHUNK][LDF] q of the block
    NA_DELTA_SHARED_PTR ks = work + NA_DELTA_CHUNK * NA_DELTA_LDF;        // [CHUNK][LDF] k of the block
    NA_DELTA_SHARED_PTR gs = work + 2 * NA_DELTA_CHUNK * NA_DELTA_LDF;    // [CHUNK][LDF] cumulative log2 gates (KDA)
    NA_DELTA_SHARED_PTR ss = work + 3 * NA_DELTA_CHUNK * NA_DELTA_LDF;    // [FB][CB] the state block at the chunk's start
    NA_DELTA_SHARED_PTR tm = work;                                        // [CHUNK][LDM] T

    const int tid = NA_LOCAL_ID(0);
    const int group = NA_GROUP_ID(0);
    const int cb = group % p.col_blocks;
    const int item = group / p.col_blocks;
    const int seq = item / p.heads;
    const int h = item - seq * p.heads;
    const int b = p.varlen ? 0 : seq;
    const int first = p.varlen ? meta[seq] : 0;
    const int length = p.varlen ? meta[seq + 1] - first : p.qkvo.nq;
    const int dk = p.qkvo.dqk;
    const int dv = p.qkvo.dv;
    const int c0 = cb * NA_DELTA_CB;
    const int width = dv - c0 < NA_DELTA_CB ? dv - c0 : NA_DELTA_CB;   // value columns of this block
    const int chunk = p.chunk;
    const int t = tid;

    const na_i64 q_base = p.qkvo.q_offset + b * p.qkvo.q_stride_b + (h / p.group_q) * p.qkvo.q_stride_h;
    const na_i64 k_base = p.qkvo.k_offset + b * p.qkvo.k_stride_b + (h / p.group_k) * p.qkvo.k_stride_h;
    const na_i64 v_base = p.qkvo.v_offset + b * p.qkvo.v_stride_b + (h / p.group_v) * p.qkvo.v_stride_h;
    const na_i64 o_base = p.qkvo.o_offset + b * p.qkvo.o_stride_b + h * p.qkvo.o_stride_h;
    const na_i64 beta_base = p.beta_offset + b * p.beta_stride_b + h * p.beta_stride_h;
    const na_i64 g_base = p.g_offset + b * p.g_stride_b + h * p.g_stride_h;
    const na_i64 s0_base = p.s0_offset + seq * p.s0_stride_s + h * p.s0_stride_h;
    const na_i64 d_base = p.d_offset + seq * p.d_stride_s + h * p.d_stride_h;

    for (int t0 = 0; t0 < length; t0 += chunk)
    {
        const int l = chunk < length - t0 ? chunk : length - t0;
        const int valid = t < l;
        const int tok = first + t0 + t;
        const int from_s0 = t0 == 0;                   // the chunk starts from s0 (or zeros), else from the destination
        const int zero_start = from_s0 && !p.has_initial;

        // Per token: beta, the L2 factors, the scalar log2 gate; this work-item's row of A and column of P cleared.
        NA_BARRIER();   // the previous chunk is done with bl, qn, kn, m and ru
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
        bl[t] = log2_gate;
        for (int s = 0; s <= t; s++)
        {
            if (s < t) m[t * NA_DELTA_LDM + s] = 0.0f;
            m[s * NA_DELTA_LDM + t] = 0.0f;
        }
        NA_BARRIER();
        // b_t = sum_{r <= t} log2 g_r, the same additions in the same order on every work-item; past the chunk b_{L-1}.
        float bt = 0.0f;
        for (int r = 0; r < l; r++) bt += r <= t ? bl[r] : 0.0f;
        NA_BARRIER();
        bl[t] = bt;
        NA_BARRIER();
        const float blast = bl[l - 1];

        // Pass 1, per feature block: A, P (undecayed for scalar gates), K S and Q S of the block's value columns.
        float acc_r[NA_DELTA_CB];
        float acc_o[NA_DELTA_CB];
        NA_DELTA_UNROLL
        for (int c = 0; c < NA_DELTA_CB; c++)
        {
            acc_r[c] = 0.0f;
            acc_o[c] = 0.0f;
        }
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
                qs[r * NA_DELTA_LDF + f] = live ? na_load(q, q_base + tk * p.qkvo.q_stride_n + (fb + f) * p.qkvo.q_stride_d) * qn[r] : 0.0f;
                ks[r * NA_DELTA_LDF + f] = live ? na_load(k, k_base + tk * p.qkvo.k_stride_n + (fb + f) * p.qkvo.k_stride_d) * kn[r] : 0.0f;
                gs[r * NA_DELTA_LDF + f] = (live && p.gate == 2) ? gate[g_base + tk * p.g_stride_n + (fb + f) * p.g_stride_d] * NA_LOG2E : 0.0f;
            }
            for (int i = tid; i < NA_DELTA_FB * NA_DELTA_CB; i += NA_DELTA_CHUNK)
            {
                const int f = fb + i / NA_DELTA_CB;
                const int col = c0 + i % NA_DELTA_CB;
                float x = 0.0f;
                if (f < dk && col < dv && !zero_start)
                    x = from_s0 ? s0[s0_base + f * p.s0_stride_f + col * p.s0_stride_c] : dst[d_base + f * p.d_stride_f + col * p.d_stride_c];
                ss[i] = x;
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
                        run += gs[r * NA_DELTA_LDF + tid];
                        gs[r * NA_DELTA_LDF + tid] = run;
                    }
                }
                NA_BARRIER();
            }
            if (valid)
            {
                for (int s = 0; s <= t; s++)
                {
                    float kk = 0.0f, qk = 0.0f;
                    if (p.gate == 2)
                    {
                        NA_DELTA_UNROLL
                        for (int f = 0; f < NA_DELTA_FB && f < nf; f++)
                        {
                            const float w = ks[s * NA_DELTA_LDF + f] * na_delta_decay(gs[t * NA_DELTA_LDF + f] - gs[s * NA_DELTA_LDF + f]);
                            kk += ks[t * NA_DELTA_LDF + f] * w;
                            qk += qs[t * NA_DELTA_LDF + f] * w;
                        }
                    }
                    else
                    {
                        NA_DELTA_UNROLL
                        for (int f = 0; f < NA_DELTA_FB && f < nf; f++)
                        {
                            kk += ks[t * NA_DELTA_LDF + f] * ks[s * NA_DELTA_LDF + f];
                            qk += qs[t * NA_DELTA_LDF + f] * ks[s * NA_DELTA_LDF + f];
                        }
                    }
                    if (s < t) m[t * NA_DELTA_LDM + s] += kk;
                    m[s * NA_DELTA_LDM + t] += qk;
                }
                for (int f = 0; f < NA_DELTA_FB && f < nf; f++)
                {
                    const float w = p.gate == 2 ? na_delta_decay(gs[t * NA_DELTA_LDF + f]) : 1.0f;
                    const float kd = ks[t * NA_DELTA_LDF + f] * w;
                    const float qd = qs[t * NA_DELTA_LDF + f] * w;
                    NA_DELTA_UNROLL
                    for (int c = 0; c < NA_DELTA_CB && c < width; c++)
                    {
                        const float x = ss[f * NA_DELTA_CB + c];
                        acc_r[c] += kd * x;
                        acc_o[c] += qd * x;
                    }
                }
            }
        }

        // R = beta_t (v_t - decayed K S), the scalar decays on A, P and the inter-chunk output.
        if (valid)
        {
            const float wt = p.gate == 1 ? na_delta_decay(bt) : 1.0f;
            NA_DELTA_UNROLL
            for (int c = 0; c < NA_DELTA_CB; c++)
            {
                const int col = c0 + c;
                const float x = col < dv ? na_load(v, v_base + tok * p.qkvo.v_stride_n + col * p.qkvo.v_stride_d) : 0.0f;
                ru[t * NA_DELTA_LDU + c] = col < dv ? beta_t * (x - wt * acc_r[c]) : 0.0f;
                acc_o[c] *= wt;
            }
            for (int s = 0; s < t; s++)
                m[t * NA_DELTA_LDM + s] *= p.gate == 1 ? beta_t * na_delta_decay(bt - bl[s]) : beta_t;
            if (p.gate == 1)
                for (int s = 0; s <= t; s++) m[s * NA_DELTA_LDM + t] *= na_delta_decay(bt - bl[s]);
        }
        else
            for (int c = 0; c < NA_DELTA_CB; c++) ru[t * NA_DELTA_LDU + c] = 0.0f;
        NA_BARRIER();   // A and R are complete; the staging is free for T

        // T = (I + A)^-1 by forward substitution, column j on work-item j: T[r][j] = [r == j] - sum_{j <= s < r} A[r][s] T[s][j].
        {
            const int j = tid;
            for (int r = 0; r < l; r++)
            {
                float x = r == j ? 1.0f : 0.0f;
                for (int s = j; s < r; s++) x -= m[r * NA_DELTA_LDM + s] * tm[s * NA_DELTA_LDM + j];
                tm[r * NA_DELTA_LDM + j] = x;
            }
        }
        NA_BARRIER();

        // U = T R, row t (rows past the chunk stay 0).
        if (valid)
        {
            NA_DELTA_UNROLL
            for (int c = 0; c < NA_DELTA_CB; c++) acc_r[c] = 0.0f;
            for (int s = 0; s <= t; s++)
            {
                const float w = tm[t * NA_DELTA_LDM + s];
                NA_DELTA_UNROLL
                for (int c = 0; c < NA_DELTA_CB && c < width; c++) acc_r[c] += w * ru[s * NA_DELTA_LDU + c];
            }
        }
        NA_BARRIER();   // everyone has read R and T
        if (valid)
        {
            NA_DELTA_UNROLL
            for (int c = 0; c < NA_DELTA_CB; c++) ru[t * NA_DELTA_LDU + c] = acc_r[c];
        }
        NA_BARRIER();

        // o_t = scale (inter-chunk part + sum_{s <= t} P[t][s] U[s]).
        if (valid)
        {
            for (int s = 0; s <= t; s++)
            {
                const float w = m[s * NA_DELTA_LDM + t];
                NA_DELTA_UNROLL
                for (int c = 0; c < NA_DELTA_CB && c < width; c++) acc_o[c] += w * ru[s * NA_DELTA_LDU + c];
            }
            const na_i64 o_row = o_base + tok * p.qkvo.o_stride_n;
            NA_DELTA_UNROLL
            for (int c = 0; c < NA_DELTA_CB; c++)
                if (c0 + c < dv) na_store(o, o_row + (c0 + c) * p.qkvo.o_stride_d, acc_o[c] * p.scale);
        }

        // Pass 2, per feature block: S = diag(2^(B_L)) S + (K . 2^(B_L - B_s))^T U, each entry by its owner.
        for (int fb = 0; fb < dk; fb += NA_DELTA_FB)
        {
            NA_BARRIER();   // everyone is done with T (first block) or the previous block
            for (int i = tid; i < NA_DELTA_CHUNK * NA_DELTA_FB; i += NA_DELTA_CHUNK)
            {
                const int r = i / NA_DELTA_FB;
                const int f = i - r * NA_DELTA_FB;
                const int live = r < l && fb + f < dk;
                const int tk = first + t0 + r;
                const float x = live ? na_load(k, k_base + tk * p.qkvo.k_stride_n + (fb + f) * p.qkvo.k_stride_d) * kn[r] : 0.0f;
                ks[r * NA_DELTA_LDF + f] = p.gate == 1 ? x * na_delta_decay(blast - bl[r]) : x;
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
                        gs[r * NA_DELTA_LDF + tid] = run;
                    }
                    for (int r = 0; r < l; r++) ks[r * NA_DELTA_LDF + tid] *= na_delta_decay(run - gs[r * NA_DELTA_LDF + tid]);
                    dl[tid] = na_delta_decay(run);
                }
                NA_BARRIER();
            }
            const float scalar_decay = p.gate == 1 ? na_delta_decay(blast) : 1.0f;
            for (int i = tid; i < NA_DELTA_FB * NA_DELTA_CB; i += NA_DELTA_CHUNK)
            {
                const int fl = i / NA_DELTA_CB;
                const int c = i - fl * NA_DELTA_CB;
                const int f = fb + fl;
                const int col = c0 + c;
                if (f >= dk || col >= dv) continue;
                const na_i64 to = d_base + f * p.d_stride_f + col * p.d_stride_c;
                const float old = zero_start ? 0.0f : from_s0 ? s0[s0_base + f * p.s0_stride_f + col * p.s0_stride_c] : dst[to];
                float sum = 0.0f;
                for (int s = 0; s < l; s++) sum += ks[s * NA_DELTA_LDF + fl] * ru[s * NA_DELTA_LDU + c];
                dst[to] = (p.gate == 2 ? dl[fl] : scalar_decay) * old + sum;
            }
        }
    }
    // An empty (packed) sequence: its final state is its initial state, or zeros.
    if (length == 0)
        for (int i = tid; i < dk * NA_DELTA_CB; i += NA_DELTA_CHUNK)
        {
            const int f = i / NA_DELTA_CB;
            const int col = c0 + i % NA_DELTA_CB;
            if (col < dv)
                dst[d_base + f * p.d_stride_f + col * p.d_stride_c] = p.has_initial ? s0[s0_base + f * p.s0_stride_f + col * p.s0_stride_c] : 0.0f;
        }
}
