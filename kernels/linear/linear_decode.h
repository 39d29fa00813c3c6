// Recurrent linear-attention decoding (OpenCL C and CUDA C): T tokens straight through the float32 state,
// S_t = g_t S_{t-1} + phi(k_t) [v_t, 1]^T and o_t = scale phi(q_t) S_t (divided by scale phi(q_t) . z_t + eps with
// normalisation, z the state's column Dv). One work-group per (batch, head, block of value columns); work-item i owns
// the value columns c = block * T + i (+ k * T * blocks), and, with normalisation, the normaliser entries of the
// features f = i (mod T), so every state entry is read and written by one work-item only, token after token: the state
// is updated in place (or, verifying, read once and each token's state written to intermediate states[:, t], the next
// token reading it back) without fences. Normalised calls run one column block per head (every block needs z).
// phi(q), phi(k) and the gates are staged in shared memory NA_LINEAR_DECODE_THREADS features at a time.
#include "linear/linear_params.h"
#include "common/dtype.h"
#include "common/math.h"
#include "linear/linear_features.h"

#ifndef NA_LINEAR_DECODE_THREADS
#define NA_LINEAR_DECODE_THREADS 64   // work-items per work-group = value columns per block = features per stage
#endif

// The gate of feature f at token tok: 1, the head's constant, the token's, or the token's for feature f.
// head_gate is the head's constant gate (decay 1); g_row the token's log gate row.
NA_INLINE float na_linear_gate(const NA_GLOBAL float* gate, int decay, float head_gate, na_i64 g_row, na_i64 g_stride_d, int f)
{
    if (decay == NA_LINEAR_DECAY_HEAD) return head_gate;
    if (decay == NA_LINEAR_DECAY_TOKEN) return NA_EXP2(gate[g_row] * NA_LOG2E);
    if (decay == NA_LINEAR_DECAY_KEY) return NA_EXP2(gate[g_row + f * g_stride_d] * NA_LOG2E);
    return 1.0f;
}

NA_KERNEL NA_WORKGROUP(NA_LINEAR_DECODE_THREADS) void na_linear_decode(
    const NA_GLOBAL na_elem* NA_RESTRICT q, const NA_GLOBAL na_elem* NA_RESTRICT k, const NA_GLOBAL na_elem* NA_RESTRICT v,
    NA_GLOBAL na_elem* NA_RESTRICT o, NA_GLOBAL float* state, NA_GLOBAL float* intermediate,
    const NA_GLOBAL float* NA_RESTRICT gate, const NA_GLOBAL int* NA_RESTRICT meta, const na_linear_params p)
{
    NA_SHARED float qs[NA_LINEAR_DECODE_THREADS];
    NA_SHARED float kfs[NA_LINEAR_DECODE_THREADS];
    NA_SHARED float gfs[NA_LINEAR_DECODE_THREADS];
    NA_SHARED float red[NA_LINEAR_DECODE_THREADS];

    const int tid = NA_LOCAL_ID(0);
    const int group = NA_GROUP_ID(0);
    const int cb = group % p.col_blocks;
    const int item = group / p.col_blocks;
    const int b = item / p.heads;
    const int h = item - b * p.heads;
    const int nf = p.features;
    const int dk = p.qkvo.dqk;
    const int dv = p.qkvo.dv;
    const int chunks = (dv + NA_LINEAR_DECODE_THREADS - 1) / NA_LINEAR_DECODE_THREADS;

    const na_i64 q_base = p.qkvo.q_offset + b * p.qkvo.q_stride_b + (h / p.group_q) * p.qkvo.q_stride_h;
    const na_i64 k_base = p.qkvo.k_offset + b * p.qkvo.k_stride_b + (h / p.group_k) * p.qkvo.k_stride_h;
    const na_i64 v_base = p.qkvo.v_offset + b * p.qkvo.v_stride_b + (h / p.group_v) * p.qkvo.v_stride_h;
    const na_i64 o_base = p.qkvo.o_offset + b * p.qkvo.o_stride_b + h * p.qkvo.o_stride_h;
    const na_i64 s0_base = p.s0_offset + b * p.s0_stride_s + h * p.s0_stride_h;
    const int decay = p.decay;
    const float head_gate = decay == NA_LINEAR_DECAY_HEAD ? NA_EXP2(na_linear_head_log2(meta, p.decay_base + h)) : 1.0f;

    for (int t = 0; t < p.qkvo.nq; t++)
    {
        // Source and target of this token's state: in place, or from the previous intermediate state when verifying.
        const int from_intermediate = p.verify && t > 0;
        // (Buffers are chosen per access: a pointer selected once per token costs CUDA a stack frame and spills.)
        const na_i64 src_base = from_intermediate ? p.s1_offset + b * p.s1_stride_s + (t - 1) * p.s1_stride_t + h * p.s1_stride_h : s0_base;
        const na_i64 src_f = from_intermediate ? p.s1_stride_f : p.s0_stride_f;
        const na_i64 src_c = from_intermediate ? p.s1_stride_c : p.s0_stride_c;
        const na_i64 dst_base = p.verify ? p.s1_offset + b * p.s1_stride_s + t * p.s1_stride_t + h * p.s1_stride_h : s0_base;
        const na_i64 dst_f = p.verify ? p.s1_stride_f : p.s0_stride_f;
        const na_i64 dst_c = p.verify ? p.s1_stride_c : p.s0_stride_c;
        const na_i64 q_row = q_base + t * p.qkvo.q_stride_n;
        const na_i64 k_row = k_base + t * p.qkvo.k_stride_n;
        const na_i64 g_row = p.g_offset + b * p.g_stride_b + h * p.g_stride_h + t * p.g_stride_n;

        // The normaliser column: features split over the work-items, then summed in shared memory.
        float denominator = 1.0f;
        if (p.normalize)
        {
            float part = 0.0f;
            for (int f = tid; f < nf; f += NA_LINEAR_DECODE_THREADS)
            {
                const float kf = na_linear_phi(k, k_row, p.qkvo.k_stride_d, dk, p.feature_map, f);
                const float z = na_linear_gate(gate, decay, head_gate, g_row, p.g_stride_d, f) * (from_intermediate ? intermediate[src_base + f * src_f + dv * src_c] : state[src_base + f * src_f + dv * src_c]) + kf;
                if (p.verify) intermediate[dst_base + f * dst_f + dv * dst_c] = z;
                else state[dst_base + f * dst_f + dv * dst_c] = z;
                part += na_linear_phi(q, q_row, p.qkvo.q_stride_d, dk, p.feature_map, f) * z;
            }
            red[tid] = part;
            NA_BARRIER();
            for (int width = NA_LINEAR_DECODE_THREADS / 2; width > 0; width /= 2)
            {
                if (tid < width) red[tid] += red[tid + width];
                NA_BARRIER();
            }
            denominator = p.scale * red[0] + p.eps;
            NA_BARRIER();   // red is free again
        }

        for (int chunk = cb; chunk < chunks; chunk += p.col_blocks)
        {
            const int col = chunk * NA_LINEAR_DECODE_THREADS + tid;
            const int live = col < dv;
            const float vc = live ? na_load(v, v_base + t * p.qkvo.v_stride_n + col * p.qkvo.v_stride_d) : 0.0f;
            float acc = 0.0f;
            for (int fb = 0; fb < nf; fb += NA_LINEAR_DECODE_THREADS)
            {
                NA_BARRIER();   // everyone is done with the previous stage
                const int f = fb + tid;
                qs[tid] = f < nf ? na_linear_phi(q, q_row, p.qkvo.q_stride_d, dk, p.feature_map, f) : 0.0f;
                kfs[tid] = f < nf ? na_linear_phi(k, k_row, p.qkvo.k_stride_d, dk, p.feature_map, f) : 0.0f;
                gfs[tid] = f < nf ? na_linear_gate(gate, decay, head_gate, g_row, p.g_stride_d, f) : 1.0f;
                NA_BARRIER();
                const int n = nf - fb < NA_LINEAR_DECODE_THREADS ? nf - fb : NA_LINEAR_DECODE_THREADS;
                if (live)
                {
                    na_i64 from = src_base + fb * src_f + col * src_c, to = dst_base + fb * dst_f + col * dst_c;
                    for (int j = 0; j < n; j++, from += src_f, to += dst_f)
                    {
                        const float x = gfs[j] * (from_intermediate ? intermediate[from] : state[from]) + kfs[j] * vc;
                        if (p.verify) intermediate[to] = x;
                        else state[to] = x;
                        acc += qs[j] * x;
                    }
                }
            }
            if (live) na_store(o, o_base + t * p.qkvo.o_stride_n + col * p.qkvo.o_stride_d, acc * (p.scale / denominator));
        }
    }
}
