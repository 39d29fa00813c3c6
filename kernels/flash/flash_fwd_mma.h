// Flash attention forward on tensor cores (CUDA sm_80+, f16/bf16 storage, Dqk == Dv in {64, 128}).
// Each warp owns NA_MMA_M_TILES x 16 query rows; S = Q K^T and O += P V run on mma.sync m16n8k16 with float
// accumulators. Two row tiles per warp reuse every K and V fragment twice, halving shared-memory reads per flop.
// K and V tiles are loaded with cp.async into XOR-swizzled shared memory (conflict-free ldmatrix). With one
// stage the V load overlaps Q K^T and the next K load overlaps P V; with two stages (NA_MMA_STAGES = 2) K and V
// are double-buffered and each tile is loaded a whole tile ahead. P never leaves registers: the S accumulator fragments are
// exactly the A fragments of the P V product once packed to 16 bits.
// Host requirements: feature stride 1, every other stride and offset a multiple of 8 elements.
// Score options (flash/flash_score_mod.h, included by flash_fwd.h) modify the S fragments element by element before
// masking; sinks and sigmoid scoring change only the row statistics and the epilogue.
#include "common/mma_sm80.h"

#if NA_FLASH_WGMMA
// The Hopper kernel (flash/flash_fwd_wgmma.h, included below instead of this one): one 16-row tile per warp, Q read
// from shared memory by wgmma.
#define NA_D NA_HEAD_DIM_QK
#define NA_MT 1
#define NA_Q_IN_REGS 0
#else
#ifndef NA_WARPS
#define NA_WARPS 4
#endif
#ifndef NA_MMA_M_TILES
#define NA_MMA_M_TILES 1
#endif
#define NA_MT NA_MMA_M_TILES
#ifndef NA_MMA_STAGES
#define NA_MMA_STAGES 1
#endif
#define NA_MMA_THREADS (NA_WARPS * 32)
#define NA_MMA_MIN_BLOCKS (NA_WARPS <= 4 ? 2 : 1)   // two 4-warp blocks per SM hide each other's barriers
#define NA_MMA_BM (NA_WARPS * 16 * NA_MT)
#define NA_Q_IN_REGS (NA_MT * NA_D <= 128)         // else Q fragments are re-read from shared memory per tile
#define NA_D NA_HEAD_DIM_QK
#define NA_CHUNKS (NA_D / 8)   // 16-byte chunks per row
#endif

// na_swizzle and the Q K^T, online-softmax and P V steps shared with the other tensor-core kernels:
#include "common/mma_attention.h"

#if NA_FLASH_WGMMA
#include "flash/flash_fwd_wgmma.h"
#else

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
    na_elem* NA_RESTRICT o, float* NA_RESTRICT lse,
    const na_bias_elem* NA_RESTRICT bias, const na_u_elem* NA_RESTRICT lr_u, const na_w_elem* NA_RESTRICT lr_w,
    const float* NA_RESTRICT slopes, const float* NA_RESTRICT sinks, const na_flash_params p)
{
    extern __shared__ __align__(128) unsigned short na_smem[];
    unsigned short* qs = na_smem;
    unsigned short* ks = qs + NA_MMA_BM * NA_D;
    unsigned short* vs = ks + NA_MMA_STAGES * NA_BLOCK_N * NA_D;

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    // Grid x holds (b * Hq + h, query block), query blocks fastest: grid y would cap B * Hq at 65535.
    const int blocks_m = (p.qkvo.nq + NA_MMA_BM - 1) / NA_MMA_BM;
    const int bh = (int)blockIdx.x / blocks_m;
    const int b = bh / p.qkvo.heads_q;
    const int h = bh - b * p.qkvo.heads_q;
    const int hk = h / p.qkvo.group;
    // Causal blocks near the end see the most keys: start them first so the tail of the grid is short.
    const int m0 = (blocks_m - 1 - ((int)blockIdx.x - bh * blocks_m)) * NA_MMA_BM;
    const int last = (m0 + NA_MMA_BM < p.qkvo.nq ? m0 + NA_MMA_BM : p.qkvo.nq) - 1;

    const unsigned short* qb = q + p.qkvo.q_offset + b * p.qkvo.q_stride_b + h * p.qkvo.q_stride_h;
    const unsigned short* kb = k + p.qkvo.k_offset + b * p.qkvo.k_stride_b + hk * p.qkvo.k_stride_h;
    const unsigned short* vb = v + p.qkvo.v_offset + b * p.qkvo.v_stride_b + hk * p.qkvo.v_stride_h;

#if NA_MASKED
    const int tile_start = na_key_start(m0, p.qkvo.nq, p.qkvo.nk, p.window_left);
    const int tile_end = na_key_end(last, p.qkvo.nq, p.qkvo.nk, p.window_right, p.causal);
    // Tiles inside [full_start, full_end) are visible to every row of the block and skip the mask.
    const int full_start = na_key_start(last, p.qkvo.nq, p.qkvo.nk, p.window_left);
    const int full_end = na_key_end(m0, p.qkvo.nq, p.qkvo.nk, p.window_right, p.causal);
#else
    const int tile_start = 0, tile_end = p.qkvo.nk, full_start = 0, full_end = p.qkvo.nk;
#endif
    // Row of (row tile mt, half hf) of this lane: m0 + wrow + 16 mt + 8 hf + lane / 4.
    const int wrow = warp * 16 * NA_MT;
    int rs[NA_MT][2], re[NA_MT][2];
#pragma unroll
    for (int mt = 0; mt < NA_MT; mt++)
#pragma unroll
        for (int hf = 0; hf < 2; hf++)
        {
            const int row = m0 + wrow + 16 * mt + 8 * hf + (lane >> 2);
#if NA_MASKED
            rs[mt][hf] = na_key_start(row, p.qkvo.nq, p.qkvo.nk, p.window_left);
            re[mt][hf] = row < p.qkvo.nq ? na_key_end(row, p.qkvo.nq, p.qkvo.nk, p.window_right, p.causal) : 0;
#else
            rs[mt][hf] = 0;
            re[mt][hf] = row < p.qkvo.nq ? p.qkvo.nk : 0;
#endif
        }

#if NA_SCORE_MOD
    na_score_row sr[NA_MT][2];
#pragma unroll
    for (int mt = 0; mt < NA_MT; mt++)
#pragma unroll
        for (int hf = 0; hf < 2; hf++)
            sr[mt][hf] = na_score_row_init(p, slopes, b, h, m0 + wrow + 16 * mt + 8 * hf + (lane >> 2));
#endif

    int n0 = (tile_start / NA_BLOCK_N) * NA_BLOCK_N;
    na_load_tile(qs, qb, p.qkvo.q_stride_n, m0, NA_MMA_BM, p.qkvo.nq, tid);
    if (n0 < tile_end) na_load_tile(ks, kb, p.qkvo.k_stride_n, n0, NA_BLOCK_N, p.qkvo.nk, tid);
#if NA_MMA_STAGES == 2
    if (n0 < tile_end) na_load_tile(vs, vb, p.qkvo.v_stride_n, n0, NA_BLOCK_N, p.qkvo.nk, tid);
    na_cp_async_commit();
    if (n0 + NA_BLOCK_N < tile_end)
    {
        na_load_tile(ks + NA_BLOCK_N * NA_D, kb, p.qkvo.k_stride_n, n0 + NA_BLOCK_N, NA_BLOCK_N, p.qkvo.nk, tid);
        na_load_tile(vs + NA_BLOCK_N * NA_D, vb, p.qkvo.v_stride_n, n0 + NA_BLOCK_N, NA_BLOCK_N, p.qkvo.nk, tid);
    }
    na_cp_async_commit();
    na_cp_async_wait_all_but_one();
#else
    na_cp_async_commit();
    na_cp_async_wait_all();
#endif
    __syncthreads();

    unsigned qf[NA_MT][NA_QF_TILES][4];
    na_mma_load_q(qf, qs, wrow, lane);
    float oacc[NA_MT][NA_D / 8][4];
    float mrow[NA_MT][2], lrow[NA_MT][2];
    na_mma_init_state(oacc, mrow, lrow);

    for (int stage = 0; n0 < tile_end; n0 += NA_BLOCK_N, stage ^= NA_MMA_STAGES - 1)
    {
        const unsigned short* kt = ks + stage * NA_BLOCK_N * NA_D;
        const unsigned short* vt = vs + stage * NA_BLOCK_N * NA_D;
#if NA_MMA_STAGES == 2
        na_cp_async_wait_all_but_one();   // K and V of tile n0 (groups are committed once per tile)
        __syncthreads();
#else
        na_cp_async_wait_all();   // K tile n0
        __syncthreads();
        na_load_tile(vs, vb, p.qkvo.v_stride_n, n0, NA_BLOCK_N, p.qkvo.nk, tid);
        na_cp_async_commit();
#endif

        float sacc[NA_MT][NA_BLOCK_N / 8][4];
        na_mma_scores(sacc, qf, qs, kt, wrow, lane);

        const int full = n0 >= full_start && n0 + NA_BLOCK_N <= full_end;
        unsigned pf[NA_MT][NA_BLOCK_N / 16][4];
#pragma unroll
        for (int mt = 0; mt < NA_MT; mt++)
        {
#pragma unroll
            for (int i = 0; i < NA_BLOCK_N / 8; i++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                {
                    float s = sacc[mt][i][e] * p.scale_log2;
#if NA_SCORE_MOD
                    s = na_score_mod(s, n0 + i * 8 + 2 * (lane & 3) + (e & 1), sr[mt][e >> 1], p, bias, lr_u, lr_w);
#endif
                    if (!full)
                    {
                        const int key = n0 + i * 8 + 2 * (lane & 3) + (e & 1);
                        if (key < rs[mt][e >> 1] || key >= re[mt][e >> 1]) s = -NA_INFINITY;
                    }
                    sacc[mt][i][e] = s;
                }
#if NA_SIGMOID
            na_mma_sigmoid(sacc[mt], mrow[mt], lrow[mt], p.sigmoid_bias);
#else
            na_mma_softmax(sacc[mt], oacc[mt], mrow[mt], lrow[mt]);
#endif
            na_mma_pack_p(pf[mt], sacc[mt]);
        }

#if NA_MMA_STAGES == 1
        na_cp_async_wait_all();   // V tile n0; every warp is also done reading K tile n0 after this barrier
        __syncthreads();
        if (n0 + NA_BLOCK_N < tile_end) na_load_tile(ks, kb, p.qkvo.k_stride_n, n0 + NA_BLOCK_N, NA_BLOCK_N, p.qkvo.nk, tid);
        na_cp_async_commit();
#endif

        na_mma_pv(oacc, pf, vt, lane);
#if NA_MMA_STAGES == 2
        __syncthreads();   // every warp is done with this stage's K and V: refill it with tile n0 + 2 tiles
        if (n0 + 2 * NA_BLOCK_N < tile_end)
        {
            na_load_tile(ks + stage * NA_BLOCK_N * NA_D, kb, p.qkvo.k_stride_n, n0 + 2 * NA_BLOCK_N, NA_BLOCK_N, p.qkvo.nk, tid);
            na_load_tile(vs + stage * NA_BLOCK_N * NA_D, vb, p.qkvo.v_stride_n, n0 + 2 * NA_BLOCK_N, NA_BLOCK_N, p.qkvo.nk, tid);
        }
        na_cp_async_commit();
#endif
    }

#pragma unroll
    for (int mt = 0; mt < NA_MT; mt++)
#pragma unroll
        for (int hf = 0; hf < 2; hf++)
        {
            const int row = m0 + wrow + 16 * mt + 8 * hf + (lane >> 2);
#if NA_SIGMOID
            const float m = na_quad_max(mrow[mt][hf]);
            const float l = na_quad_sum(lrow[mt][hf] > 0.0f ? lrow[mt][hf] * na_fast_exp2(mrow[mt][hf] - m) : 0.0f);
            if (row >= p.qkvo.nq) continue;
            const float inv = 1.0f;
#else
            float m = mrow[mt][hf];
            float l = na_quad_sum(lrow[mt][hf]);
            if (row >= p.qkvo.nq) continue;
#if NA_SINKS
            // The sink joins max and denominator only; a row without visible keys stays zeros and LSE = -inf.
            const float alpha = na_join_sink(&m, &l, sinks[p.sinks_offset + h * p.sinks_stride_h] * NA_LOG2E);
            const float inv = l > 0.0f ? alpha / l : 0.0f;
#else
            const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#endif
#endif
            unsigned short* orow = o + p.qkvo.o_offset + b * p.qkvo.o_stride_b + h * p.qkvo.o_stride_h + row * p.qkvo.o_stride_n;
#pragma unroll
            for (int i = 0; i < NA_D / 8; i++)
                *(unsigned*)(orow + i * 8 + 2 * (lane & 3)) = na_pack2(oacc[mt][i][2 * hf] * inv, oacc[mt][i][2 * hf + 1] * inv);
            if (p.has_lse && (lane & 3) == 0)
                lse[p.qkvo.lse_offset + b * p.qkvo.lse_stride_b + h * p.qkvo.lse_stride_h + row * p.qkvo.lse_stride_n] =
                    na_lse_from_base2(m, l);
        }
}

#endif
