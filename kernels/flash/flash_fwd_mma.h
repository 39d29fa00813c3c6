// Flash attention forward on tensor cores (CUDA sm_80+, f16/bf16 storage, Dqk == Dv in {64, 128}).
// Each warp owns 16 query rows; S = Q K^T and O += P V run on mma.sync m16n8k16 with float accumulators.
// K and V tiles are loaded with cp.async into XOR-swizzled shared memory (conflict-free ldmatrix); the V load
// overlaps Q K^T and the next K load overlaps P V. P never leaves registers: the S accumulator fragments are
// exactly the A fragments of the P V product once packed to 16 bits.
// Host requirements: feature stride 1, every other stride and offset a multiple of 8 elements.
#include "common/mma_sm80.h"

#ifndef NA_WARPS
#define NA_WARPS 4
#endif
#define NA_MMA_THREADS (NA_WARPS * 32)
#define NA_MMA_MIN_BLOCKS (NA_WARPS <= 4 ? 2 : 1)   // two 4-warp blocks per SM hide each other's barriers
#define NA_MMA_BM (NA_WARPS * 16)
#define NA_D NA_HEAD_DIM_QK
#define NA_CHUNKS (NA_D / 8)   // 16-byte chunks per row

// Element index of chunk c of row r in a swizzled [rows][NA_D] tile: chunk c lands at c ^ (r % 8).
NA_INLINE int na_swizzle(int r, int c) { return r * NA_D + ((c ^ (r & 7)) << 3); }

// Starts loading rows [row0, row0 + rows) of a [n][NA_D] matrix into a swizzled tile; rows >= limit become zeros.
NA_INLINE void na_load_tile(unsigned short* tile, const unsigned short* src, na_i64 stride, int row0, int rows, int limit, int tid)
{
#pragma unroll
    for (int c = tid; c < rows * NA_CHUNKS; c += NA_MMA_THREADS)
    {
        const int r = c / NA_CHUNKS, ch = c - r * NA_CHUNKS;
        const int row = row0 + r;
        const int ok = row < limit;
        na_cp_async_16(na_smem_address(tile + na_swizzle(r, ch)), src + (ok ? row : 0) * stride + ch * 8, ok ? 16 : 0);
    }
}

NA_KERNEL void __launch_bounds__(NA_MMA_THREADS, NA_MMA_MIN_BLOCKS) na_flash_fwd(
    const na_elem* NA_RESTRICT q, const na_elem* NA_RESTRICT k, const na_elem* NA_RESTRICT v,
    na_elem* NA_RESTRICT o, float* NA_RESTRICT lse, const na_flash_params p)
{
    extern __shared__ __align__(128) unsigned short na_smem[];
    unsigned short* qs = na_smem;
    unsigned short* ks = qs + NA_MMA_BM * NA_D;
    unsigned short* vs = ks + NA_BLOCK_N * NA_D;

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int bh = blockIdx.y;
    const int b = bh / p.heads_q;
    const int h = bh - b * p.heads_q;
    const int hk = h / p.group;
    // Causal blocks near the end see the most keys: start them first so the tail of the grid is short.
    const int m0 = (gridDim.x - 1 - blockIdx.x) * NA_MMA_BM;
    const int last = (m0 + NA_MMA_BM < p.nq ? m0 + NA_MMA_BM : p.nq) - 1;

    const unsigned short* qb = q + p.q_offset + b * p.q_stride_b + h * p.q_stride_h;
    const unsigned short* kb = k + p.k_offset + b * p.k_stride_b + hk * p.k_stride_h;
    const unsigned short* vb = v + p.v_offset + b * p.v_stride_b + hk * p.v_stride_h;

#if NA_MASKED
    const int tile_start = na_key_start(m0, p.nq, p.nk, p.window_left);
    const int tile_end = na_key_end(last, p.nq, p.nk, p.window_right, p.causal);
    // Tiles inside [full_start, full_end) are visible to every row of the block and skip the mask.
    const int full_start = na_key_start(last, p.nq, p.nk, p.window_left);
    const int full_end = na_key_end(m0, p.nq, p.nk, p.window_right, p.causal);
#else
    const int tile_start = 0, tile_end = p.nk, full_start = 0, full_end = p.nk;
#endif
    const int r0 = m0 + warp * 16 + (lane >> 2);
    const int r1 = r0 + 8;
#if NA_MASKED
    const int rs0 = na_key_start(r0, p.nq, p.nk, p.window_left), re0 = r0 < p.nq ? na_key_end(r0, p.nq, p.nk, p.window_right, p.causal) : 0;
    const int rs1 = na_key_start(r1, p.nq, p.nk, p.window_left), re1 = r1 < p.nq ? na_key_end(r1, p.nq, p.nk, p.window_right, p.causal) : 0;
#else
    const int rs0 = 0, re0 = r0 < p.nq ? p.nk : 0, rs1 = 0, re1 = r1 < p.nq ? p.nk : 0;
#endif

    int n0 = (tile_start / NA_BLOCK_N) * NA_BLOCK_N;
    na_load_tile(qs, qb, p.q_stride_n, m0, NA_MMA_BM, p.nq, tid);
    if (n0 < tile_end) na_load_tile(ks, kb, p.k_stride_n, n0, NA_BLOCK_N, p.nk, tid);
    na_cp_async_commit();
    na_cp_async_wait_all();
    __syncthreads();

    unsigned qf[NA_D / 16][4];
#pragma unroll
    for (int kk = 0; kk < NA_D / 16; kk++)
        na_ldmatrix_x4(qf[kk], na_smem_address(qs + na_swizzle(warp * 16 + (lane & 15), kk * 2 + (lane >> 4))));

    float oacc[NA_D / 8][4];
#pragma unroll
    for (int i = 0; i < NA_D / 8; i++) oacc[i][0] = oacc[i][1] = oacc[i][2] = oacc[i][3] = 0.0f;
    float mrow[2] = { -NA_INFINITY, -NA_INFINITY };
    float lrow[2] = { 0.0f, 0.0f };

    for (; n0 < tile_end; n0 += NA_BLOCK_N)
    {
        na_cp_async_wait_all();   // K tile n0
        __syncthreads();
        na_load_tile(vs, vb, p.v_stride_n, n0, NA_BLOCK_N, p.nk, tid);
        na_cp_async_commit();

        float sacc[NA_BLOCK_N / 8][4];
#pragma unroll
        for (int i = 0; i < NA_BLOCK_N / 8; i++) sacc[i][0] = sacc[i][1] = sacc[i][2] = sacc[i][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < NA_D / 16; kk++)
        {
#pragma unroll
            for (int nt = 0; nt < NA_BLOCK_N / 16; nt++)
            {
                unsigned kf[4];
                na_ldmatrix_x4(kf, na_smem_address(ks + na_swizzle(nt * 16 + (lane & 7) + ((lane >> 4) << 3), kk * 2 + ((lane >> 3) & 1))));
                na_mma_16816(sacc[2 * nt], qf[kk], kf[0], kf[1]);
                na_mma_16816(sacc[2 * nt + 1], qf[kk], kf[2], kf[3]);
            }
        }

        const int full = n0 >= full_start && n0 + NA_BLOCK_N <= full_end;
#pragma unroll
        for (int i = 0; i < NA_BLOCK_N / 8; i++)
#pragma unroll
            for (int e = 0; e < 4; e++)
            {
                float s = sacc[i][e] * p.scale_log2;
                if (!full)
                {
                    const int key = n0 + i * 8 + 2 * (lane & 3) + (e & 1);
                    const int visible = e < 2 ? (key >= rs0 && key < re0) : (key >= rs1 && key < re1);
                    if (!visible) s = -NA_INFINITY;
                }
                sacc[i][e] = s;
            }

        unsigned pf[NA_BLOCK_N / 16][4];
#pragma unroll
        for (int r = 0; r < 2; r++)
        {
            float mx = -NA_INFINITY;
#pragma unroll
            for (int i = 0; i < NA_BLOCK_N / 8; i++) mx = fmaxf(mx, fmaxf(sacc[i][2 * r], sacc[i][2 * r + 1]));
            const float m_new = fmaxf(mrow[r], na_quad_max(mx));
            // Rows that have seen no visible key subtract 0 instead of -inf, so exp2 gives 0, never NaN.
            const float m_use = m_new == -NA_INFINITY ? 0.0f : m_new;
            const float alpha = na_fast_exp2(mrow[r] - m_use);
            mrow[r] = m_new;
            float sum = 0.0f;
#pragma unroll
            for (int i = 0; i < NA_BLOCK_N / 8; i++)
            {
                sacc[i][2 * r] = na_fast_exp2(sacc[i][2 * r] - m_use);
                sacc[i][2 * r + 1] = na_fast_exp2(sacc[i][2 * r + 1] - m_use);
                sum += sacc[i][2 * r] + sacc[i][2 * r + 1];
            }
            lrow[r] = lrow[r] * alpha + sum;
#pragma unroll
            for (int i = 0; i < NA_D / 8; i++)
            {
                oacc[i][2 * r] *= alpha;
                oacc[i][2 * r + 1] *= alpha;
            }
        }
#pragma unroll
        for (int kk = 0; kk < NA_BLOCK_N / 16; kk++)
        {
            pf[kk][0] = na_pack2(sacc[2 * kk][0], sacc[2 * kk][1]);
            pf[kk][1] = na_pack2(sacc[2 * kk][2], sacc[2 * kk][3]);
            pf[kk][2] = na_pack2(sacc[2 * kk + 1][0], sacc[2 * kk + 1][1]);
            pf[kk][3] = na_pack2(sacc[2 * kk + 1][2], sacc[2 * kk + 1][3]);
        }

        na_cp_async_wait_all();   // V tile n0; every warp is also done reading K tile n0 after this barrier
        __syncthreads();
        if (n0 + NA_BLOCK_N < tile_end) na_load_tile(ks, kb, p.k_stride_n, n0 + NA_BLOCK_N, NA_BLOCK_N, p.nk, tid);
        na_cp_async_commit();

#pragma unroll
        for (int kk = 0; kk < NA_BLOCK_N / 16; kk++)
        {
#pragma unroll
            for (int dt = 0; dt < NA_D / 16; dt++)
            {
                unsigned vf[4];
                na_ldmatrix_x4_trans(vf, na_smem_address(vs + na_swizzle(kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3), dt * 2 + (lane >> 4))));
                na_mma_16816(oacc[2 * dt], pf[kk], vf[0], vf[1]);
                na_mma_16816(oacc[2 * dt + 1], pf[kk], vf[2], vf[3]);
            }
        }
    }

#pragma unroll
    for (int r = 0; r < 2; r++)
    {
        const int row = r == 0 ? r0 : r1;
        const float l = na_quad_sum(lrow[r]);
        if (row >= p.nq) continue;
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        unsigned short* orow = o + p.o_offset + b * p.o_stride_b + h * p.o_stride_h + row * p.o_stride_n;
#pragma unroll
        for (int i = 0; i < NA_D / 8; i++)
            *(unsigned*)(orow + i * 8 + 2 * (lane & 3)) = na_pack2(oacc[i][2 * r] * inv, oacc[i][2 * r + 1] * inv);
        if (p.has_lse && (lane & 3) == 0)
            lse[p.lse_offset + b * p.lse_stride_b + h * p.lse_stride_h + row * p.lse_stride_n] =
                l > 0.0f ? (mrow[r] + log2f(l)) * 0.69314718055994531f : -NA_INFINITY;
    }
}
