// Chunked delta rule, second kernel (OpenCL C and CUDA C) for DeltaNet, Gated DeltaNet and KDA: the state-dependent
// work of prefill through the WY/UT representation, reading each chunk's column-independent quantities (Tb, P, W, the
// decayed queries and keys and the decays) from the scratch deltarule/delta_chunk_prepare.h wrote
// (deltarule/delta_chunk_common.h has the formulas and the layout). One work-group per (sequence, head, block of
// NA_DELTA_CB value columns), NA_DELTA_CHUNK work-items, one per token of a chunk; the chunks of the launch's window run
// in order through a float32 state kept in the destination (final state or scratch copy, K-major or V-major through its
// strides). Per chunk:
//   U = Tb V - W S,  O = (scale Q . 2^B) S + P U,  S = diag(2^(B_L)) S + (K . 2^(B_L - B))^T U
// with the state block staged NA_DELTA_FB key dimensions at a time. The NA_DELTA_RUN entries of a feature block at
// feature tid / (NA_DELTA_CB / NA_DELTA_RUN), local columns (tid % (NA_DELTA_CB / NA_DELTA_RUN)) NA_DELTA_RUN + j, are read
// and written by work-item tid only, when staged and when updated, in every chunk and every launch, so the state in global
// memory needs no fence (and the update runs along a row of U, which vectorises where work-items are loops).
#include "deltarule/delta_chunk_common.h"

#ifndef NA_DELTA_CB
#define NA_DELTA_CB 32      // value columns per work-group
#endif

#define NA_DELTA_LDU (NA_DELTA_CB + 1)      // row stride of V / U
// The state entries of a feature block each work-item owns: NA_DELTA_RUN consecutive value columns of one feature.
#define NA_DELTA_RUN (NA_DELTA_FB * NA_DELTA_CB / NA_DELTA_CHUNK)
#if NA_DELTA_RUN < 1 || NA_DELTA_RUN * NA_DELTA_CHUNK != NA_DELTA_FB * NA_DELTA_CB || NA_DELTA_CB % NA_DELTA_RUN != 0
#error "NA_DELTA_FB x NA_DELTA_CB must split into NA_DELTA_CHUNK runs of whole columns"
#endif
#define NA_DELTA_SSIZE (NA_DELTA_FB * NA_DELTA_CB)
#define NA_DELTA_KSIZE (NA_DELTA_CHUNK * NA_DELTA_LDF)
#define NA_DELTA_STAGE (NA_DELTA_SSIZE > NA_DELTA_KSIZE ? NA_DELTA_SSIZE : NA_DELTA_KSIZE)

NA_KERNEL NA_WORKGROUP(NA_DELTA_CHUNK) void na_delta_chunked(
    const NA_GLOBAL na_elem* NA_RESTRICT q, const NA_GLOBAL na_elem* NA_RESTRICT k, const NA_GLOBAL na_elem* NA_RESTRICT v,
    const NA_GLOBAL float* beta_f, const NA_GLOBAL na_elem* beta_e, NA_GLOBAL na_elem* NA_RESTRICT o,
    const NA_GLOBAL float* s0, NA_GLOBAL float* dst, const NA_GLOBAL float* NA_RESTRICT gate,
    const NA_GLOBAL int* NA_RESTRICT meta, const NA_GLOBAL float* NA_RESTRICT work, const na_delta_params p)
{
    NA_SHARED float vu[NA_DELTA_CHUNK * NA_DELTA_LDU];   // V, then U, of the block's value columns
    NA_SHARED float stage[NA_DELTA_STAGE];               // the state block [FB][CB], or the decayed keys [CHUNK][LDF]
    NA_SHARED float dl[NA_DELTA_FB];                     // 2^(B_L[f]) of the block

    NA_DELTA_SHARED_PTR ss = stage;
    NA_DELTA_SHARED_PTR ks = stage;

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
    const int chunks = (length + chunk - 1) / chunk;
    const int last = p.chunk_first + p.chunk_count < chunks ? p.chunk_first + p.chunk_count : chunks;

    const na_i64 v_base = p.qkvo.v_offset + b * p.qkvo.v_stride_b + (h / p.group_v) * p.qkvo.v_stride_h;
    const na_i64 o_base = p.qkvo.o_offset + b * p.qkvo.o_stride_b + h * p.qkvo.o_stride_h;
    const na_i64 s0_base = p.s0_offset + seq * p.s0_stride_s + h * p.s0_stride_h;
    const na_i64 d_base = p.d_offset + seq * p.d_stride_s + h * p.d_stride_h;
    const int own_f = tid / (NA_DELTA_CB / NA_DELTA_RUN);                       // this work-item's feature in a block
    const int own_c = (tid % (NA_DELTA_CB / NA_DELTA_RUN)) * NA_DELTA_RUN;      // and its first local column

    for (int c = p.chunk_first; c < last; c++)
    {
        const int t0 = c * chunk;
        const int l = chunk < length - t0 ? chunk : length - t0;
        const int valid = t < l;
        const int tok = first + t0 + t;
        const int from_s0 = c == 0;                    // the chunk starts from s0 (or zeros), else from the destination
        const int zero_start = from_s0 && !p.has_initial;
        const NA_GLOBAL float* tb_in = work + na_delta_chunk_at(seq, c - p.chunk_first, h, p.chunk_count, p.heads, chunk, dk);
        const NA_GLOBAL float* p_in = tb_in + chunk * chunk;
        const NA_GLOBAL float* w_in = p_in + chunk * chunk;
        const NA_GLOBAL float* q_in = w_in + (na_i64)dk * chunk;
        const NA_GLOBAL float* k_in = q_in + (na_i64)dk * chunk;
        const NA_GLOBAL float* d_in = k_in + (na_i64)dk * chunk;

        // Pass 1, per feature block: W S and the inter-chunk output (scale Q . 2^B) S of the block's value columns.
        float acc_u[NA_DELTA_CB];
        float acc_o[NA_DELTA_CB];
        NA_DELTA_UNROLL
        for (int cc = 0; cc < NA_DELTA_CB; cc++)
        {
            acc_u[cc] = 0.0f;
            acc_o[cc] = 0.0f;
        }
        for (int fb = 0; fb < dk; fb += NA_DELTA_FB)
        {
            const int nf = dk - fb < NA_DELTA_FB ? dk - fb : NA_DELTA_FB;   // key dimensions of this block
            NA_BARRIER();   // everyone is done with the previous block (or the previous chunk's keys)
            for (int j = 0; j < NA_DELTA_RUN; j++)
            {
                const int f = fb + own_f;
                const int col = c0 + own_c + j;
                float x = 0.0f;
                if (f < dk && col < dv && !zero_start)
                    x = from_s0 ? s0[s0_base + f * p.s0_stride_f + col * p.s0_stride_c] : dst[d_base + f * p.d_stride_f + col * p.d_stride_c];
                ss[own_f * NA_DELTA_CB + own_c + j] = x;
            }
            NA_BARRIER();
            if (valid)
            {
                for (int f = 0; f < nf; f++)
                {
                    const float wf = w_in[(fb + f) * (na_i64)chunk + t];
                    const float qf = q_in[(fb + f) * (na_i64)chunk + t];
                    NA_DELTA_UNROLL
                    for (int cc = 0; cc < NA_DELTA_CB; cc++)
                    {
                        const float x = ss[f * NA_DELTA_CB + cc];
                        acc_u[cc] += wf * x;
                        acc_o[cc] += qf * x;
                    }
                }
            }
        }

        // V of the chunk's tokens (zeros past it and past Dv), then U = Tb V - W S, row t.
        NA_BARRIER();   // everyone is done with the previous chunk's U
        for (int i = tid; i < NA_DELTA_CHUNK * NA_DELTA_CB; i += NA_DELTA_CHUNK)
        {
            const int r = i / NA_DELTA_CB;
            const int cc = i - r * NA_DELTA_CB;
            vu[r * NA_DELTA_LDU + cc] = r < l && c0 + cc < dv ? na_load(v, v_base + (first + t0 + r) * p.qkvo.v_stride_n + (c0 + cc) * p.qkvo.v_stride_d) : 0.0f;
        }
        NA_BARRIER();
        if (valid)
        {
            NA_DELTA_UNROLL
            for (int cc = 0; cc < NA_DELTA_CB; cc++) acc_u[cc] = -acc_u[cc];
            for (int s = 0; s <= t; s++)
            {
                const float x = tb_in[s * chunk + t];
                NA_DELTA_UNROLL
                for (int cc = 0; cc < NA_DELTA_CB; cc++) acc_u[cc] += x * vu[s * NA_DELTA_LDU + cc];
            }
        }
        NA_BARRIER();   // everyone has read V
        if (valid)
        {
            NA_DELTA_UNROLL
            for (int cc = 0; cc < NA_DELTA_CB; cc++) vu[t * NA_DELTA_LDU + cc] = acc_u[cc];
        }
        NA_BARRIER();

        // o_t = inter-chunk part + sum_{s <= t} P[t][s] U[s] (scale is in both).
        if (valid)
        {
            for (int s = 0; s <= t; s++)
            {
                const float x = p_in[s * chunk + t];
                NA_DELTA_UNROLL
                for (int cc = 0; cc < NA_DELTA_CB; cc++) acc_o[cc] += x * vu[s * NA_DELTA_LDU + cc];
            }
            const na_i64 o_row = o_base + tok * p.qkvo.o_stride_n;
            NA_DELTA_UNROLL
            for (int cc = 0; cc < NA_DELTA_CB; cc++)
                if (cc < width) na_store(o, o_row + (c0 + cc) * p.qkvo.o_stride_d, acc_o[cc]);
        }

        // Pass 2, per feature block: S = diag(2^(B_L)) S + (K . 2^(B_L - B))^T U, each entry by its owner.
        for (int fb = 0; fb < dk; fb += NA_DELTA_FB)
        {
            NA_BARRIER();   // everyone is done with the state block (first block) or the previous keys
            for (int i = tid; i < NA_DELTA_CHUNK * NA_DELTA_FB; i += NA_DELTA_CHUNK)
            {
                const int f = i / NA_DELTA_CHUNK;
                const int r = i - f * NA_DELTA_CHUNK;
                ks[r * NA_DELTA_LDF + f] = r < l && fb + f < dk ? k_in[(fb + f) * (na_i64)chunk + r] : 0.0f;
            }
            if (tid < NA_DELTA_FB) dl[tid] = fb + tid < dk ? d_in[fb + tid] : 0.0f;
            NA_BARRIER();
            const int f = fb + own_f;
            if (f < dk)
            {
                float sum[NA_DELTA_RUN];
                NA_DELTA_UNROLL
                for (int j = 0; j < NA_DELTA_RUN; j++) sum[j] = 0.0f;
                for (int s = 0; s < l; s++)
                {
                    const float x = ks[s * NA_DELTA_LDF + own_f];
                    NA_DELTA_UNROLL
                    for (int j = 0; j < NA_DELTA_RUN; j++) sum[j] += x * vu[s * NA_DELTA_LDU + own_c + j];
                }
                const float decay = dl[own_f];
                NA_DELTA_UNROLL
                for (int j = 0; j < NA_DELTA_RUN; j++)
                {
                    const int col = c0 + own_c + j;
                    if (col >= dv) continue;
                    const na_i64 to = d_base + f * p.d_stride_f + col * p.d_stride_c;
                    const float old = zero_start ? 0.0f : from_s0 ? s0[s0_base + f * p.s0_stride_f + col * p.s0_stride_c] : dst[to];
                    dst[to] = decay * old + sum[j];
                }
            }
        }
    }
    // An empty (packed) sequence: its final state is its initial state, or zeros (written by the first window's launch).
    if (length == 0 && p.chunk_first == 0)
        for (int i = tid; i < dk * NA_DELTA_CB; i += NA_DELTA_CHUNK)
        {
            const int f = i / NA_DELTA_CB;
            const int col = c0 + i % NA_DELTA_CB;
            if (col < dv)
                dst[d_base + f * p.d_stride_f + col * p.d_stride_c] = p.has_initial ? s0[s0_base + f * p.s0_stride_f + col * p.s0_stride_c] : 0.0f;
        }
}
