// Recurrent delta rule (OpenCL C and CUDA C) for DeltaNet, Gated DeltaNet and KDA: chunked prefill, decode step and
// verify, tokens in order straight through a float32 state. Per token, with G the decay (1, g_t, or diag(g_t) per key
// dimension) applied before the update as the CPU kernel and the reference do:
//   S' = G S,  u = beta (v - S'^T k),  S = S' + k u^T,  o = scale S^T q
// (q and k first L2-normalised when asked). One work-group per (sequence, head, block of NA_DELTA_THREADS value
// columns); work-item i owns value column e = block * NA_DELTA_THREADS + i of S for every key dimension, so each state
// entry is read and written by one work-item only and the state lives in global memory (the destination state: the
// final state, a scratch copy, the decode state in place, or the verify call's intermediate states) without fences.
// q, k and the gates are staged in shared memory NA_DELTA_THREADS key dimensions at a time.
#include "deltarule/delta_params.h"
#include "common/dtype.h"
#include "common/math.h"

#ifndef NA_DELTA_THREADS
#define NA_DELTA_THREADS 32   // work-items per work-group = value columns per block = key dimensions per stage
#endif

#if NA_CUDA
#define NA_DELTA_RSQRT(x) rsqrtf(x)
#define NA_DELTA_SHARED_PTR float*   // CUDA: a generic pointer reaches shared memory
#else
#define NA_DELTA_RSQRT(x) rsqrt(x)
#define NA_DELTA_SHARED_PTR __local float*
#endif

#define NA_DELTA_L2_EPS 1e-6f

// Sum of x over the work-group (x from every work-item); red has NA_DELTA_THREADS entries. Ends with a barrier.
NA_INLINE float na_delta_sum(NA_DELTA_SHARED_PTR red, int tid, float x)
{
    NA_BARRIER();
    red[tid] = x;
    NA_BARRIER();
    for (int width = NA_DELTA_THREADS / 2; width > 0; width /= 2)
    {
        if (tid < width) red[tid] += red[tid + width];
        NA_BARRIER();
    }
    const float total = red[0];
    NA_BARRIER();
    return total;
}

NA_KERNEL NA_WORKGROUP(NA_DELTA_THREADS) void na_delta_recurrent(
    const NA_GLOBAL na_elem* NA_RESTRICT q, const NA_GLOBAL na_elem* NA_RESTRICT k, const NA_GLOBAL na_elem* NA_RESTRICT v,
    const NA_GLOBAL float* beta_f, const NA_GLOBAL na_elem* beta_e, NA_GLOBAL na_elem* NA_RESTRICT o,
    const NA_GLOBAL float* s0, NA_GLOBAL float* dst, const NA_GLOBAL float* NA_RESTRICT gate,
    const NA_GLOBAL int* NA_RESTRICT meta, const na_delta_params p)
{
    NA_SHARED float qs[NA_DELTA_THREADS];
    NA_SHARED float ks[NA_DELTA_THREADS];
    NA_SHARED float gs[NA_DELTA_THREADS];
    NA_SHARED float red[NA_DELTA_THREADS];

    const int tid = NA_LOCAL_ID(0);
    const int group = NA_GROUP_ID(0);
    const int cb = group % p.col_blocks;
    const int item = group / p.col_blocks;
    const int s = item / p.heads;
    const int h = item - s * p.heads;
    const int b = p.varlen ? 0 : s;
    const int first = p.varlen ? meta[s] : 0;
    const int length = p.varlen ? meta[s + 1] - first : p.qkvo.nq;
    const int dk = p.qkvo.dqk;
    const int dv = p.qkvo.dv;
    const int col = cb * NA_DELTA_THREADS + tid;
    const int live = col < dv;

    const na_i64 q_base = p.qkvo.q_offset + b * p.qkvo.q_stride_b + (h / p.group_q) * p.qkvo.q_stride_h;
    const na_i64 k_base = p.qkvo.k_offset + b * p.qkvo.k_stride_b + (h / p.group_k) * p.qkvo.k_stride_h;
    const na_i64 v_base = p.qkvo.v_offset + b * p.qkvo.v_stride_b + (h / p.group_v) * p.qkvo.v_stride_h;
    const na_i64 o_base = p.qkvo.o_offset + b * p.qkvo.o_stride_b + h * p.qkvo.o_stride_h;
    const na_i64 beta_base = p.beta_offset + b * p.beta_stride_b + h * p.beta_stride_h;
    const na_i64 s0_col = p.s0_offset + s * p.s0_stride_s + h * p.s0_stride_h + col * p.s0_stride_c;
    const na_i64 d_col = p.d_offset + s * p.d_stride_s + h * p.d_stride_h + col * p.d_stride_c;

    for (int r = 0; r < length; r++)
    {
        const int t = first + r;
        const na_i64 q_row = q_base + t * p.qkvo.q_stride_n;
        const na_i64 k_row = k_base + t * p.qkvo.k_stride_n;
        const na_i64 g_row = p.g_offset + b * p.g_stride_b + h * p.g_stride_h + t * p.g_stride_n;
        // The state this token starts from: s0 (or zeros) for the first token, else the previous token's destination.
        const na_i64 from_col = r == 0 ? s0_col : d_col + (r - 1) * p.d_stride_t;
        const na_i64 from_f = r == 0 ? p.s0_stride_f : p.d_stride_f;
        const int from_s0 = r == 0;
        const int zero_start = r == 0 && !p.has_initial;
        const na_i64 to_col = d_col + r * p.d_stride_t;

        float q_norm = 1.0f, k_norm = 1.0f;
        if (p.l2norm)
        {
            float qq = 0.0f, kk = 0.0f;
            for (int f = tid; f < dk; f += NA_DELTA_THREADS)
            {
                const float qf = na_load(q, q_row + f * p.qkvo.q_stride_d);
                const float kf = na_load(k, k_row + f * p.qkvo.k_stride_d);
                qq += qf * qf;
                kk += kf * kf;
            }
            q_norm = NA_DELTA_RSQRT(na_delta_sum(red, tid, qq) + NA_DELTA_L2_EPS);
            k_norm = NA_DELTA_RSQRT(na_delta_sum(red, tid, kk) + NA_DELTA_L2_EPS);
        }
        const float bt = p.beta_f32 ? beta_f[beta_base + t * p.beta_stride_n] : na_load(beta_e, beta_base + t * p.beta_stride_n);
        const float scalar_gate = p.gate == 1 ? NA_EXP2(gate[g_row] * NA_LOG2E) : 1.0f;

        // Pass 1: S' = G S into the destination, and S'^T k.
        float sk = 0.0f;
        for (int fb = 0; fb < dk; fb += NA_DELTA_THREADS)
        {
            NA_BARRIER();   // everyone is done with the previous stage
            const int f = fb + tid;
            ks[tid] = f < dk ? na_load(k, k_row + f * p.qkvo.k_stride_d) * k_norm : 0.0f;
            gs[tid] = f < dk ? (p.gate == 2 ? NA_EXP2(gate[g_row + f * p.g_stride_d] * NA_LOG2E) : scalar_gate) : 1.0f;
            NA_BARRIER();
            const int n = dk - fb < NA_DELTA_THREADS ? dk - fb : NA_DELTA_THREADS;
            if (live)
            {
                for (int j = 0; j < n; j++)
                {
                    const na_i64 from = from_col + (fb + j) * from_f;
                    const float old = zero_start ? 0.0f : from_s0 ? s0[from] : dst[from];
                    const float x = gs[j] * old;
                    dst[to_col + (fb + j) * p.d_stride_f] = x;
                    sk += ks[j] * x;
                }
            }
        }
        const float u = live ? bt * (na_load(v, v_base + t * p.qkvo.v_stride_n + col * p.qkvo.v_stride_d) - sk) : 0.0f;

        // Pass 2: S = S' + k u^T, and o = scale S^T q.
        float acc = 0.0f;
        for (int fb = 0; fb < dk; fb += NA_DELTA_THREADS)
        {
            NA_BARRIER();
            const int f = fb + tid;
            ks[tid] = f < dk ? na_load(k, k_row + f * p.qkvo.k_stride_d) * k_norm : 0.0f;
            qs[tid] = f < dk ? na_load(q, q_row + f * p.qkvo.q_stride_d) * q_norm : 0.0f;
            NA_BARRIER();
            const int n = dk - fb < NA_DELTA_THREADS ? dk - fb : NA_DELTA_THREADS;
            if (live)
            {
                for (int j = 0; j < n; j++)
                {
                    const na_i64 to = to_col + (fb + j) * p.d_stride_f;
                    const float x = dst[to] + ks[j] * u;
                    dst[to] = x;
                    acc += qs[j] * x;
                }
            }
        }
        if (live) na_store(o, o_base + t * p.qkvo.o_stride_n + col * p.qkvo.o_stride_d, acc * p.scale);
    }
    // An empty (packed) sequence: its final state is its initial state, or zeros. (Decode and verify calls with no
    // token are not launched.)
    if (length == 0 && live)
        for (int f = 0; f < dk; f++)
            dst[d_col + f * p.d_stride_f] = p.has_initial ? s0[s0_col + f * p.s0_stride_f] : 0.0f;
}
