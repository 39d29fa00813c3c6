// Neighborhood attention forward on tensor cores (CUDA sm_80+, f16/bf16 storage, Dqk == Dv in {64, 128}), included by
// neighborhood/neighborhood_fwd.h. The fragment work is flash/flash_fwd_mma.h's (one K/V stage): each warp owns
// NA_MMA_M_TILES x 16 rows of the block, S = Q K^T and O += P V run on mma.sync m16n8k16 with float accumulators, P
// never leaves registers. What differs is where rows come from: a block's rows are the queries of one query tile
// (a box inside one dilation group per axis, neighborhood/neighborhood_window.h) and its key tiles are NA_BLOCK_N
// consecutive keys of the tile's union window in row-major order, then the additional keys; every row is gathered
// with cp.async from its own address, so any strides work as long as rows start 16-byte aligned.
// A key tile inside the intersection of the tile's windows (every key visible to every query) skips the mask; the
// others compare each key's box coordinates, kept in shared memory beside the K tile, with the row's window. The
// relative-position bias is read per visible (row, grid key) element from the same coordinates; padding rows (outside
// the sample's valid extent) load zero queries and write zeros with LSE -inf.
// Host requirements: feature stride 1, every other stride and offset a multiple of 8 elements.
#include "common/mma_sm80.h"

#ifndef NA_WARPS
#define NA_WARPS 4
#endif
#ifndef NA_MMA_M_TILES
#define NA_MMA_M_TILES 2
#endif
#define NA_MT NA_MMA_M_TILES
#define NA_MMA_THREADS (NA_WARPS * 32)
#define NA_MMA_MIN_BLOCKS (NA_WARPS <= 4 ? 2 : 1)
#define NA_MMA_BM (NA_WARPS * 16 * NA_MT)
#define NA_D NA_HEAD_DIM_QK
#define NA_CHUNKS (NA_D / 8)                   // 16-byte chunks per row
#define NA_Q_IN_REGS (NA_MT * NA_D <= 128)     // else Q fragments are re-read from shared memory per tile

#if NA_BLOCK_M != NA_MMA_BM
#error "NA_BLOCK_M must be NA_WARPS * 16 * NA_MMA_M_TILES: the host sizes query tiles by it"
#endif
#if NA_HEAD_DIM_V != NA_HEAD_DIM_QK || (NA_D != 64 && NA_D != 128)
#error "the tensor-core neighborhood kernel needs Dqk == Dv in {64, 128}"
#endif

// na_swizzle and the Q K^T, online-softmax and P V steps shared with the other tensor-core kernels:
#include "common/mma_attention.h"

// Starts loading the block's query rows (the tile's queries, row-major; rows past them and padding rows become zeros).
NA_INLINE void na_nbh_load_queries(unsigned short* tile, const unsigned short* base, const na_nbh_params p, const na_nbh_tile* t, int tid)
{
    for (int c = tid; c < NA_MMA_BM * NA_CHUNKS; c += NA_MMA_THREADS)
    {
        const int r = c / NA_CHUNKS, ch = c - r * NA_CHUNKS;
        int x0, x1, x2, valid;
        // Only valid queries are read: a padding row stays zeros, whatever the caller keeps there.
        const int ok = na_nbh_query(p, t, r, &x0, &x1, &x2, &valid) && valid;
        const na_i64 off = ok ? na_nbh_offset(t, p, x0, x1, x2, p.q_stride_x[0], p.q_stride_x[1], p.q_stride_x[2]) : 0;
        na_cp_async_16(na_smem_address(tile + na_swizzle(r, ch)), base + off + ch * 8, ok ? 16 : 0);
    }
}

// Starts loading keys [n0, n0 + NA_BLOCK_N) of the block's key sequence (the union box row-major, padded to whole
// tiles at union_end, then the additional keys) from `grid` (strides s0, s1, s2 per axis) or `extra` (token stride
// extra_n); padding rows become zeros. With kc, also stores each key's box coordinates there (NA_NBH_PAD for padding,
// NA_NBH_EXTRA in x for an additional key), visible after the next barrier.
NA_INLINE void na_nbh_load_keys(unsigned short* tile, int* kc, const unsigned short* grid, na_i64 s0, na_i64 s1, na_i64 s2,
    const unsigned short* extra, na_i64 extra_n, const na_nbh_params p, const na_nbh_tile* t, int n0, int union_keys, int union_end, int tid)
{
    for (int c = tid; c < NA_BLOCK_N * NA_CHUNKS; c += NA_MMA_THREADS)
    {
        const int r = c / NA_CHUNKS, ch = c - r * NA_CHUNKS, n = n0 + r;
        int u0 = NA_NBH_PAD, u1 = NA_NBH_PAD, u2 = NA_NBH_PAD;
        const unsigned short* src = grid;
        if (n < union_end)
        {
            if (n < union_keys)
            {
                na_nbh_box_coords(t, n, &u0, &u1, &u2);
                src = grid + na_nbh_key_offset(t, p, u0, u1, u2, s0, s1, s2);
            }
        }
        else if (n - union_end < p.n_extra)
        {
            u0 = NA_NBH_EXTRA;
            src = extra + (na_i64)(n - union_end) * extra_n;
        }
        na_cp_async_16(na_smem_address(tile + na_swizzle(r, ch)), src + ch * 8, u0 == NA_NBH_PAD ? 0 : 16);
        if (kc != 0 && ch == 0)
        {
            kc[r] = u0;
            kc[NA_BLOCK_N + r] = u1;
            kc[2 * NA_BLOCK_N + r] = u2;
        }
    }
}

NA_KERNEL void __launch_bounds__(NA_MMA_THREADS, NA_MMA_MIN_BLOCKS) na_neighborhood_fwd(
    const na_elem* NA_RESTRICT q, const na_elem* NA_RESTRICT k, const na_elem* NA_RESTRICT v,
    na_elem* NA_RESTRICT o, float* NA_RESTRICT lse,
    const na_elem* NA_RESTRICT ek, const na_elem* NA_RESTRICT ev, const float* NA_RESTRICT rpb, const int* NA_RESTRICT extents,
    const na_nbh_params p)
{
    extern __shared__ __align__(128) unsigned short na_smem[];
    unsigned short* qs = na_smem;
    unsigned short* ks = qs + NA_MMA_BM * NA_D;
    unsigned short* vs = ks + NA_BLOCK_N * NA_D;
    int* kc = (int*)(vs + NA_BLOCK_N * NA_D);   // per key of the K tile: box coordinates x, y, z

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    // Grid x holds (b * Hq + h, query tile), tiles fastest: grid y would cap B * Hq at 65535.
    const int tiles = p.tiles[0] * p.tiles[1] * p.tiles[2];
    const int bh = (int)blockIdx.x / tiles;
    const int b = bh / p.qkvo.heads_q;
    const int h = bh - b * p.qkvo.heads_q;
    const int hk = h / p.qkvo.group;
    const na_nbh_tile t = na_nbh_tile_at(p, (int)blockIdx.x - bh * tiles,
        na_nbh_extent(p, extents, b, 0), na_nbh_extent(p, extents, b, 1), na_nbh_extent(p, extents, b, 2));

    const unsigned short* qb = q + p.qkvo.q_offset + b * p.qkvo.q_stride_b + h * p.qkvo.q_stride_h;
    const unsigned short* kb = k + p.qkvo.k_offset + b * p.qkvo.k_stride_b + hk * p.qkvo.k_stride_h;
    const unsigned short* vb = v + p.qkvo.v_offset + b * p.qkvo.v_stride_b + hk * p.qkvo.v_stride_h;
    // Without additional keys their pointers may be null: never read, but keep the arithmetic on a real buffer.
    const unsigned short* ekb = p.n_extra > 0 ? ek + p.ek_offset + b * p.ek_stride_b + hk * p.ek_stride_h : kb;
    const unsigned short* evb = p.n_extra > 0 ? ev + p.ev_offset + b * p.ev_stride_b + hk * p.ev_stride_h : vb;

    const int union_keys = t.ext[0] * t.ext[1] * t.ext[2];
    const int union_end = (union_keys + NA_BLOCK_N - 1) / NA_BLOCK_N * NA_BLOCK_N;
    const int keys_end = union_end + (p.n_extra + NA_BLOCK_N - 1) / NA_BLOCK_N * NA_BLOCK_N;

    // Windows, in box coordinates, of this lane's rows (row tile mt, half hf): wrow + 16 mt + 8 hf + lane / 4. Rows
    // past the tile's queries and padding rows get empty windows (ws = we = 0), which also hides the additional keys
    // from them; ws < we on axis x tells a valid row. rb: the row's relative-position bias base (na_nbh_rpb_base).
    const int wrow = warp * 16 * NA_MT;
    int ws[NA_MT][2][3], we[NA_MT][2][3];
    na_i64 rb[NA_MT][2];
#pragma unroll
    for (int mt = 0; mt < NA_MT; mt++)
#pragma unroll
        for (int hf = 0; hf < 2; hf++)
        {
            int x[3], valid;
            const int ok = na_nbh_query(p, &t, wrow + 16 * mt + 8 * hf + (lane >> 2), &x[0], &x[1], &x[2], &valid) && valid;
            rb[mt][hf] = ok && p.has_rpb ? na_nbh_rpb_base(p, h, x[0] - t.low[0], x[1] - t.low[1], x[2] - t.low[2]) : 0;
#pragma unroll
            for (int a = 0; a < 3; a++)
            {
                int start = 0, end = 0;
                if (ok) na_nbh_window(x[a], t.lg[a], p.kernel_size[a], p.stride[a], p.causal[a], &start, &end);
                ws[mt][hf][a] = ok ? start - t.low[a] : 0;
                we[mt][hf][a] = ok ? end - t.low[a] : 0;
            }
        }

    na_nbh_load_queries(qs, qb, p, &t, tid);
    na_nbh_load_keys(ks, kc, kb, p.k_stride_x[0], p.k_stride_x[1], p.k_stride_x[2], ekb, p.ek_stride_n, p, &t, 0, union_keys, union_end, tid);
    na_cp_async_commit();
    na_cp_async_wait_all();
    __syncthreads();

    unsigned qf[NA_MT][NA_QF_TILES][4];
    na_mma_load_q(qf, qs, wrow, lane);
    float oacc[NA_MT][NA_D / 8][4];
    float mrow[NA_MT][2], lrow[NA_MT][2];
    na_mma_init_state(oacc, mrow, lrow);

    for (int n0 = 0; n0 < keys_end; n0 += NA_BLOCK_N)
    {
        na_cp_async_wait_all();   // K tile n0 (and its coordinates, stored before the barrier)
        __syncthreads();
        na_nbh_load_keys(vs, 0, vb, p.v_stride_x[0], p.v_stride_x[1], p.v_stride_x[2], evb, p.ev_stride_n, p, &t, n0, union_keys, union_end, tid);
        na_cp_async_commit();

        float sacc[NA_MT][NA_BLOCK_N / 8][4];
        na_mma_scores(sacc, qf, qs, ks, wrow, lane);

        const int full = na_nbh_full_tile(p, &t, n0, NA_BLOCK_N, union_keys, union_end);
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
                    if (!full || p.has_rpb)
                    {
                        const int j = i * 8 + 2 * (lane & 3) + (e & 1);
                        const int c0 = kc[j], c1 = kc[NA_BLOCK_N + j], c2 = kc[2 * NA_BLOCK_N + j];
                        const int hf = e >> 1;
                        const int row_valid = ws[mt][hf][0] < we[mt][hf][0];
                        // An additional key is visible to every valid row; a padding key (x = -1) to none. A full tile
                        // is visible whole (rows past the tile's queries compute garbage there that is never written).
                        const int visible = full || (c0 == NA_NBH_EXTRA
                            ? row_valid
                            : c0 >= ws[mt][hf][0] && c0 < we[mt][hf][0] && c1 >= ws[mt][hf][1] && c1 < we[mt][hf][1] &&
                              c2 >= ws[mt][hf][2] && c2 < we[mt][hf][2]);
                        if (!visible) s = -NA_INFINITY;
                        else if (p.has_rpb && c0 >= 0 && row_valid) s += na_nbh_rpb(rpb, p, rb[mt][hf], c0, c1, c2);
                    }
                    sacc[mt][i][e] = s;
                }
            na_mma_softmax(sacc[mt], oacc[mt], mrow[mt], lrow[mt]);
            na_mma_pack_p(pf[mt], sacc[mt]);
        }

        na_cp_async_wait_all();   // V tile n0; after this barrier every warp is also done with K tile n0 and its coordinates
        __syncthreads();
        if (n0 + NA_BLOCK_N < keys_end)
            na_nbh_load_keys(ks, kc, kb, p.k_stride_x[0], p.k_stride_x[1], p.k_stride_x[2], ekb, p.ek_stride_n, p, &t, n0 + NA_BLOCK_N,
                union_keys, union_end, tid);
        na_cp_async_commit();

        na_mma_pv(oacc, pf, vs, lane);
    }

#pragma unroll
    for (int mt = 0; mt < NA_MT; mt++)
#pragma unroll
        for (int hf = 0; hf < 2; hf++)
        {
            const float m = mrow[mt][hf];
            const float l = na_quad_sum(lrow[mt][hf]);   // every lane joins the shuffle before rows drop out
            int x0, x1, x2, valid;
            if (!na_nbh_query(p, &t, wrow + 16 * mt + 8 * hf + (lane >> 2), &x0, &x1, &x2, &valid)) continue;
            // A padding row writes zeros and LSE -inf (in a full tile it saw keys; what it summed is dropped here).
            const float inv = valid && l > 0.0f ? 1.0f / l : 0.0f;
            unsigned short* orow = o + p.qkvo.o_offset + b * p.qkvo.o_stride_b + h * p.qkvo.o_stride_h +
                na_nbh_offset(&t, p, x0, x1, x2, p.o_stride_x[0], p.o_stride_x[1], p.o_stride_x[2]);
#pragma unroll
            for (int i = 0; i < NA_D / 8; i++)
                *(unsigned*)(orow + i * 8 + 2 * (lane & 3)) = na_pack2(oacc[mt][i][2 * hf] * inv, oacc[mt][i][2 * hf + 1] * inv);
            if (p.has_lse && (lane & 3) == 0)
                lse[p.qkvo.lse_offset + b * p.qkvo.lse_stride_b + h * p.qkvo.lse_stride_h +
                    na_nbh_offset(&t, p, x0, x1, x2, p.lse_stride_x[0], p.lse_stride_x[1], p.lse_stride_x[2])] = valid ? na_lse_from_base2(m, l) : -NA_INFINITY;
        }
}
