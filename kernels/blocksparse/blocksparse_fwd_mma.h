// Block-sparse attention forward on tensor cores (CUDA sm_80+, f16/bf16 storage, Dqk == Dv in {64, 128}), the
// block-sparse walk of blocksparse/blocksparse_tiles.h over the tensor-core scheme of flash/flash_fwd_mma.h: each warp
// owns NA_MMA_M_TILES x 16 query rows; S = Q K^T and O += P V run on mma.sync m16n8k16 with float accumulators; K and V
// tiles are loaded with cp.async into XOR-swizzled shared memory, the V load overlapping Q K^T and the next tile's K
// load overlapping P V. Tiles that are short (a block's or the sequence's end) or partial (the predicate) are masked
// element by element; a partial tile that every row of the work-group sees whole under a key-range predicate (causal,
// window, prefix-LM) is not. P never leaves registers.
// Host requirements: feature stride 1, every other stride and offset a multiple of 8 elements.
#include "common/mma_sm80.h"

#ifndef NA_WARPS
#define NA_WARPS 4
#endif
#ifndef NA_MMA_M_TILES
#define NA_MMA_M_TILES 1
#endif
#define NA_MT NA_MMA_M_TILES
#define NA_MMA_THREADS (NA_WARPS * 32)
#define NA_MMA_MIN_BLOCKS (NA_WARPS <= 4 ? 2 : 1)
#define NA_MMA_BM (NA_WARPS * 16 * NA_MT)
#define NA_Q_IN_REGS (NA_MT * NA_D <= 128)         // else Q fragments are re-read from shared memory per tile
#define NA_D NA_HEAD_DIM_QK
#define NA_CHUNKS (NA_D / 8)   // 16-byte chunks per row

#if NA_MMA_BM != NA_BLOCK_M
#error "NA_BLOCK_M must be NA_WARPS x 16 x NA_MMA_M_TILES: the host sizes the grid by it"
#endif
#if NA_BLOCK_N % 16 != 0
#error "NA_BLOCK_N must be a multiple of 16"
#endif

// na_swizzle and the Q K^T, online-softmax and P V steps shared with the other tensor-core kernels:
#include "common/mma_attention.h"

// Starts loading rows [row0, row0 + rows) of a [n][NA_D] matrix into a swizzled tile; rows >= limit become zeros.
NA_INLINE void na_bsp_load_tile(unsigned short* tile, const unsigned short* src, na_i64 stride, int row0, int rows, int limit, int tid)
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

NA_KERNEL void __launch_bounds__(NA_MMA_THREADS, NA_MMA_MIN_BLOCKS) na_blocksparse_fwd(
    const na_elem* NA_RESTRICT q, const na_elem* NA_RESTRICT k, const na_elem* NA_RESTRICT v,
    na_elem* NA_RESTRICT o, float* NA_RESTRICT lse, const int* NA_RESTRICT meta, float* NA_RESTRICT partial_o,
    float* NA_RESTRICT partial_lse, const na_blocksparse_params p)
{
    extern __shared__ __align__(128) unsigned short na_smem[];
    unsigned short* qs = na_smem;
    unsigned short* ks = qs + NA_MMA_BM * NA_D;
    unsigned short* vs = ks + NA_BLOCK_N * NA_D;

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const na_bsp_group g = na_bsp_group_of(p, meta, (int)blockIdx.x, NA_MMA_BM);
    if (g.row0 >= g.row_limit) return;   // a row tile past the end of a short last query block
    const int last = (g.row0 + NA_MMA_BM < g.row_limit ? g.row0 + NA_MMA_BM : g.row_limit) - 1;

    const unsigned short* qb = q + p.qkvo.q_offset + g.b * p.qkvo.q_stride_b + g.h * p.qkvo.q_stride_h;
    const unsigned short* kb = k + p.qkvo.k_offset + g.b * p.qkvo.k_stride_b + g.hk * p.qkvo.k_stride_h;
    const unsigned short* vb = v + p.qkvo.v_offset + g.b * p.qkvo.v_stride_b + g.hk * p.qkvo.v_stride_h;

    // The predicate of partial blocks per row of this lane: (row tile mt, half hf) is row
    // row0 + wrow + 16 mt + 8 hf + lane / 4.
    const int documents = p.predicate == 3;
    const int* key_docs = meta + (documents ? p.kdoc_offset + g.b * p.qkvo.nk : 0);
    const int wrow = warp * 16 * NA_MT;
    int rs[NA_MT][2], re[NA_MT][2], rd[NA_MT][2];
#pragma unroll
    for (int mt = 0; mt < NA_MT; mt++)
#pragma unroll
        for (int hf = 0; hf < 2; hf++)
        {
            const int row = g.row0 + wrow + 16 * mt + 8 * hf + (lane >> 2);
            const int ok = row < g.row_limit;
            rs[mt][hf] = na_bsp_key_start(p, row);
            re[mt][hf] = ok ? na_bsp_key_end(p, g, row) : 0;
            rd[mt][hf] = documents && ok ? meta[p.qdoc_offset + g.b * p.qkvo.nq + row] : 0;
        }
    // Partial tiles inside [whole_start, whole_end) are seen whole by every row of the work-group: the key ranges are
    // monotone in the row. Documents always need the element check.
    const int whole_start = documents ? p.qkvo.nk : na_bsp_key_start(p, last);
    const int whole_end = documents ? 0 : na_bsp_key_end(p, g, g.row0);

    na_bsp_tiles t = na_bsp_tiles_begin(p, meta, g, g.row0, last);
    na_bsp_load_tile(qs, qb, p.qkvo.q_stride_n, g.row0, NA_MMA_BM, g.row_limit, tid);
    if (na_bsp_more(&t)) na_bsp_load_tile(ks, kb, p.qkvo.k_stride_n, t.n0, NA_BLOCK_N, t.k1, tid);
    na_cp_async_commit();
    na_cp_async_wait_all();
    __syncthreads();

    unsigned qf[NA_MT][NA_QF_TILES][4];
    na_mma_load_q(qf, qs, wrow, lane);
    float oacc[NA_MT][NA_D / 8][4];
    float mrow[NA_MT][2], lrow[NA_MT][2];
    na_mma_init_state(oacc, mrow, lrow);

    while (na_bsp_more(&t))
    {
        const int n0 = t.n0, k1 = t.k1, partial = na_bsp_is_partial(&t);
        na_cp_async_wait_all();   // K of this tile
        __syncthreads();          // and every warp is done with the previous tile's V
        na_bsp_load_tile(vs, vb, p.qkvo.v_stride_n, n0, NA_BLOCK_N, k1, tid);
        na_cp_async_commit();

        float sacc[NA_MT][NA_BLOCK_N / 8][4];
        na_mma_scores(sacc, qf, qs, ks, wrow, lane);

        // No element check for a whole tile of a full block, nor for a whole partial tile every row sees whole.
        const int whole = n0 + NA_BLOCK_N <= k1 && (!partial || (n0 >= whole_start && n0 + NA_BLOCK_N <= whole_end));
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
                    if (p.softcap_log2 > 0.0f) s = na_softcap(s, p.softcap_log2);
                    if (!whole)
                    {
                        const int key = n0 + i * 8 + 2 * (lane & 3) + (e & 1);
                        int visible = key < k1;
                        if (partial)
                            visible = visible && key >= rs[mt][e >> 1] && key < re[mt][e >> 1] && (!documents || key_docs[key] == rd[mt][e >> 1]);
                        if (!visible) s = -NA_INFINITY;
                    }
                    sacc[mt][i][e] = s;
                }
            na_mma_softmax(sacc[mt], oacc[mt], mrow[mt], lrow[mt]);
            na_mma_pack_p(pf[mt], sacc[mt]);
        }

        na_cp_async_wait_all();   // V of this tile; every warp is also done reading K after this barrier
        __syncthreads();
        na_bsp_advance(&t, meta, p);
        if (na_bsp_more(&t)) na_bsp_load_tile(ks, kb, p.qkvo.k_stride_n, t.n0, NA_BLOCK_N, t.k1, tid);
        na_cp_async_commit();

        na_mma_pv(oacc, pf, vs, lane);
    }

#pragma unroll
    for (int mt = 0; mt < NA_MT; mt++)
#pragma unroll
        for (int hf = 0; hf < 2; hf++)
        {
            const int row = g.row0 + wrow + 16 * mt + 8 * hf + (lane >> 2);
            const float m = mrow[mt][hf];
            const float l = na_quad_sum(lrow[mt][hf]);
            if (row >= g.row_limit) continue;
            const float inv = l > 0.0f ? 1.0f / l : 0.0f;
            if (p.splits > 1)
            {
                // A split's partial state (Dv == NA_D here), for MergeStates.
                float* prow = partial_o + (g.partial + row) * NA_D;
#pragma unroll
                for (int i = 0; i < NA_D / 8; i++)
                {
                    prow[i * 8 + 2 * (lane & 3)] = oacc[mt][i][2 * hf] * inv;
                    prow[i * 8 + 2 * (lane & 3) + 1] = oacc[mt][i][2 * hf + 1] * inv;
                }
                if ((lane & 3) == 0) partial_lse[g.partial + row] = na_lse_from_base2(m, l);
                continue;
            }
            unsigned short* orow = o + p.qkvo.o_offset + g.b * p.qkvo.o_stride_b + g.h * p.qkvo.o_stride_h + row * p.qkvo.o_stride_n;
#pragma unroll
            for (int i = 0; i < NA_D / 8; i++)
                *(unsigned*)(orow + i * 8 + 2 * (lane & 3)) = na_pack2(oacc[mt][i][2 * hf] * inv, oacc[mt][i][2 * hf + 1] * inv);
            if (p.has_lse && (lane & 3) == 0)
                lse[p.qkvo.lse_offset + g.b * p.qkvo.lse_stride_b + g.h * p.qkvo.lse_stride_h + row * p.qkvo.lse_stride_n] =
                    na_lse_from_base2(m, l);
        }
}
