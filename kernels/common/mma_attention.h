// The tensor-core steps that the flash, block-sparse and neighborhood forward kernels share (CUDA sm_80+, f16/bf16
// tiles, float accumulators, mma.sync m16n8k16). Include after NA_D, NA_BLOCK_N, NA_MT (row tiles of 16 per warp) and
// NA_Q_IN_REGS are defined. Shared-memory tiles are [rows][NA_D] 16-bit elements with 16-byte chunks XOR-swizzled by
// row (conflict-free ldmatrix). Lane l of a warp holds, for row tile mt, rows wrow + 16 mt + l / 4 (half 0) and + 8
// (half 1); a score fragment sacc[mt][i][e] is key 8 i + 2 (l % 4) + (e % 2) of half e / 2. The S fragments, once
// packed to 16 bits, are exactly the A fragments of P V, so P never leaves registers.
#ifndef NA_MMA_ATTENTION_H
#define NA_MMA_ATTENTION_H
#include "common/score.h"

// Element index of chunk c of row r in a swizzled [rows][NA_D] tile: chunk c lands at c ^ (r % 8).
NA_INLINE int na_swizzle(int r, int c) { return r * NA_D + ((c ^ (r & 7)) << 3); }

// Q fragments kept in registers for the whole key loop when they fit (NA_Q_IN_REGS); else re-read per tile and this
// array has one unused slot.
#define NA_QF_TILES (NA_Q_IN_REGS ? NA_D / 16 : 1)

// Loads this warp's Q fragments from the swizzled Q tile (nothing unless NA_Q_IN_REGS).
NA_INLINE void na_mma_load_q(unsigned qf[NA_MT][NA_QF_TILES][4], const unsigned short* qs, int wrow, int lane)
{
#if NA_Q_IN_REGS
#pragma unroll
    for (int mt = 0; mt < NA_MT; mt++)
#pragma unroll
        for (int kk = 0; kk < NA_D / 16; kk++)
            na_ldmatrix_x4(qf[mt][kk], na_smem_address(qs + na_swizzle(wrow + 16 * mt + (lane & 15), kk * 2 + (lane >> 4))));
#endif
}

// An empty output and softmax state: O = 0, running maximum -inf, running sum 0.
NA_INLINE void na_mma_init_state(float oacc[NA_MT][NA_D / 8][4], float mrow[NA_MT][2], float lrow[NA_MT][2])
{
#pragma unroll
    for (int mt = 0; mt < NA_MT; mt++)
    {
#pragma unroll
        for (int i = 0; i < NA_D / 8; i++) oacc[mt][i][0] = oacc[mt][i][1] = oacc[mt][i][2] = oacc[mt][i][3] = 0.0f;
        mrow[mt][0] = mrow[mt][1] = -NA_INFINITY;
        lrow[mt][0] = lrow[mt][1] = 0.0f;
    }
}

// S = Q K^T of this warp's rows against the NA_BLOCK_N keys of the swizzled K tile kt (unscaled).
NA_INLINE void na_mma_scores(float sacc[NA_MT][NA_BLOCK_N / 8][4], const unsigned qf[NA_MT][NA_QF_TILES][4], const unsigned short* qs,
    const unsigned short* kt, int wrow, int lane)
{
#pragma unroll
    for (int mt = 0; mt < NA_MT; mt++)
#pragma unroll
        for (int i = 0; i < NA_BLOCK_N / 8; i++) sacc[mt][i][0] = sacc[mt][i][1] = sacc[mt][i][2] = sacc[mt][i][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < NA_D / 16; kk++)
    {
        unsigned qa[NA_MT][4];
#pragma unroll
        for (int mt = 0; mt < NA_MT; mt++)
        {
#if NA_Q_IN_REGS
            qa[mt][0] = qf[mt][kk][0]; qa[mt][1] = qf[mt][kk][1]; qa[mt][2] = qf[mt][kk][2]; qa[mt][3] = qf[mt][kk][3];
#else
            na_ldmatrix_x4(qa[mt], na_smem_address(qs + na_swizzle(wrow + 16 * mt + (lane & 15), kk * 2 + (lane >> 4))));
#endif
        }
#pragma unroll
        for (int nt = 0; nt < NA_BLOCK_N / 16; nt++)
        {
            unsigned kf[4];
            na_ldmatrix_x4(kf, na_smem_address(kt + na_swizzle(nt * 16 + (lane & 7) + ((lane >> 4) << 3), kk * 2 + ((lane >> 3) & 1))));
#pragma unroll
            for (int mt = 0; mt < NA_MT; mt++)
            {
                na_mma_16816(sacc[mt][2 * nt], qa[mt], kf[0], kf[1]);
                na_mma_16816(sacc[mt][2 * nt + 1], qa[mt], kf[2], kf[3]);
            }
        }
    }
}

// The statistics half of the online softmax of one row tile: scores s (log2 units, masked to -inf) become
// exp2(s - m) with the running maximum m and sum l updated; alpha[hf] = exp2(m_old - m) is the factor the output rows
// still need (na_mma_rescale). A row that has seen only -inf keeps m = -inf and uses 0 in its place, so its weights are
// exact zeros. Kept apart from the rescale so that the wgmma kernel can run it while its P V product is in flight.
NA_INLINE void na_mma_softmax_stats(float sacc[NA_BLOCK_N / 8][4], float mrow[2], float lrow[2], float alpha[2])
{
#pragma unroll
    for (int hf = 0; hf < 2; hf++)
    {
        float mx = -NA_INFINITY;
#pragma unroll
        for (int i = 0; i < NA_BLOCK_N / 8; i++) mx = fmaxf(mx, fmaxf(sacc[i][2 * hf], sacc[i][2 * hf + 1]));
        const float m_new = fmaxf(mrow[hf], na_quad_max(mx));
        const float m_use = na_max_or_zero(m_new);
        alpha[hf] = na_fast_exp2(mrow[hf] - m_use);
        mrow[hf] = m_new;
        float sum = 0.0f;
#pragma unroll
        for (int i = 0; i < NA_BLOCK_N / 8; i++)
        {
            sacc[i][2 * hf] = na_fast_exp2(sacc[i][2 * hf] - m_use);
            sacc[i][2 * hf + 1] = na_fast_exp2(sacc[i][2 * hf + 1] - m_use);
            sum += sacc[i][2 * hf] + sacc[i][2 * hf + 1];
        }
        lrow[hf] = lrow[hf] * alpha[hf] + sum;
    }
}

// Rescales the output rows of one row tile by the factors na_mma_softmax_stats returned.
NA_INLINE void na_mma_rescale(float oacc[NA_D / 8][4], const float alpha[2])
{
#pragma unroll
    for (int i = 0; i < NA_D / 8; i++)
    {
        oacc[i][0] *= alpha[0];
        oacc[i][1] *= alpha[0];
        oacc[i][2] *= alpha[1];
        oacc[i][3] *= alpha[1];
    }
}

// The online softmax of one row tile: na_mma_softmax_stats, then the output rows rescaled by exp2(m_old - m).
NA_INLINE void na_mma_softmax(float sacc[NA_BLOCK_N / 8][4], float oacc[NA_D / 8][4], float mrow[2], float lrow[2])
{
    float alpha[2];
    na_mma_softmax_stats(sacc, mrow, lrow, alpha);
    na_mma_rescale(oacc, alpha);
}

// Sigmoid scoring of one row tile: unnormalised weights P = sigmoid(s' + b) replace the scores and O is never
// rescaled. Each lane keeps its own (m, l) of log2 weights for LSE; the quad combines them in the epilogue.
NA_INLINE void na_mma_sigmoid(float sacc[NA_BLOCK_N / 8][4], float mrow[2], float lrow[2], float bias)
{
#pragma unroll
    for (int i = 0; i < NA_BLOCK_N / 8; i++)
#pragma unroll
        for (int e = 0; e < 4; e++)
        {
            float lw;
            sacc[i][e] = na_sigmoid_weight(sacc[i][e], bias, &lw);
            if (lw > mrow[e >> 1])
            {
                lrow[e >> 1] *= na_fast_exp2(mrow[e >> 1] - lw);
                mrow[e >> 1] = lw;
            }
            if (lw != -NA_INFINITY) lrow[e >> 1] += na_fast_exp2(lw - mrow[e >> 1]);
        }
}

// Packs one row tile's probabilities into the A fragments of P V.
NA_INLINE void na_mma_pack_p(unsigned pf[NA_BLOCK_N / 16][4], const float sacc[NA_BLOCK_N / 8][4])
{
#pragma unroll
    for (int kk = 0; kk < NA_BLOCK_N / 16; kk++)
    {
        pf[kk][0] = na_pack2(sacc[2 * kk][0], sacc[2 * kk][1]);
        pf[kk][1] = na_pack2(sacc[2 * kk][2], sacc[2 * kk][3]);
        pf[kk][2] = na_pack2(sacc[2 * kk + 1][0], sacc[2 * kk + 1][1]);
        pf[kk][3] = na_pack2(sacc[2 * kk + 1][2], sacc[2 * kk + 1][3]);
    }
}

// O += P V over the NA_BLOCK_N keys of the swizzled V tile vt.
NA_INLINE void na_mma_pv(float oacc[NA_MT][NA_D / 8][4], const unsigned pf[NA_MT][NA_BLOCK_N / 16][4], const unsigned short* vt, int lane)
{
#pragma unroll
    for (int kk = 0; kk < NA_BLOCK_N / 16; kk++)
    {
#pragma unroll
        for (int dt = 0; dt < NA_D / 16; dt++)
        {
            unsigned vf[4];
            na_ldmatrix_x4_trans(vf, na_smem_address(vt + na_swizzle(kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3), dt * 2 + (lane >> 4))));
#pragma unroll
            for (int mt = 0; mt < NA_MT; mt++)
            {
                na_mma_16816(oacc[mt][2 * dt], pf[mt][kk], vf[0], vf[1]);
                na_mma_16816(oacc[mt][2 * dt + 1], pf[mt][kk], vf[2], vf[3]);
            }
        }
    }
}

#endif
