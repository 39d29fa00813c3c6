// Neighborhood attention forward (NATTEN semantics), portable path (OpenCL C and CUDA C). A work-group takes one
// (batch, query head, query tile), one work-item per query of the tile (neighborhood/neighborhood_window.h). It walks
// the tile's union window, a box of keys, in row-major tiles of NA_BLOCK_N keys staged in shared memory as float with
// each key's box coordinates; a query masks the keys outside its own window with three range checks. The additional
// keys follow as further key tiles, visible to every query, so the online softmax merges them exactly. Online softmax
// in base 2 updated once per key tile, float accumulation whatever the storage type; LSE in natural units. The
// relative-position bias joins a grid key's score after scaling; padding queries (outside the sample's valid extent)
// see no key and write zeros with LSE -inf.
// CUDA builds with NA_NBH_MMA = 1 use the tensor-core kernel of neighborhood/neighborhood_fwd_mma.h instead.
#include "neighborhood/neighborhood_window.h"
#include "common/dtype.h"
#include "common/math.h"

#ifndef NA_HEAD_DIM_QK
#define NA_HEAD_DIM_QK 64   // query/key head dim rounded up; the kernel zero-pads up to it
#endif
#ifndef NA_HEAD_DIM_V
#define NA_HEAD_DIM_V NA_HEAD_DIM_QK
#endif
#ifndef NA_BLOCK_M
#define NA_BLOCK_M 64       // work-items per work-group: the most queries a tile holds
#endif
#ifndef NA_BLOCK_N
#define NA_BLOCK_N 32       // keys per shared-memory tile; the host halves it where the device's local memory is
#endif                      // below the K/V tiles' size (NeighborhoodVariant.SmallTile: OpenCL's minimum 32 KB at D >= 128)
#ifndef NA_NBH_MMA
#define NA_NBH_MMA 0
#endif

#if NA_HEAD_DIM_QK % 8 != 0
#error "NA_HEAD_DIM_QK must be a multiple of 8 (the dot product keeps eight partial sums)"
#endif

// Key coordinates in the shared tile: >= 0 a grid key's union-box coordinate, NA_NBH_PAD a padding key (visible to
// nobody), NA_NBH_EXTRA an additional key (visible to every query of the tile).
#define NA_NBH_PAD (-1)
#define NA_NBH_EXTRA (-2)

#if NA_NBH_MMA && NA_CUDA
#include "neighborhood/neighborhood_fwd_mma.h"
#else

NA_KERNEL NA_WORKGROUP(NA_BLOCK_M) void na_neighborhood_fwd(
    const NA_GLOBAL na_elem* NA_RESTRICT q, const NA_GLOBAL na_elem* NA_RESTRICT k, const NA_GLOBAL na_elem* NA_RESTRICT v,
    NA_GLOBAL na_elem* NA_RESTRICT o, NA_GLOBAL float* NA_RESTRICT lse,
    const NA_GLOBAL na_elem* NA_RESTRICT ek, const NA_GLOBAL na_elem* NA_RESTRICT ev, const NA_GLOBAL float* NA_RESTRICT rpb,
    const NA_GLOBAL int* NA_RESTRICT extents, const na_nbh_params p)
{
    NA_SHARED float ks[NA_BLOCK_N * NA_HEAD_DIM_QK];
    NA_SHARED float vs[NA_BLOCK_N * NA_HEAD_DIM_V];
    NA_SHARED int kc[3 * NA_BLOCK_N];        // per key: box coordinates x, y, z (NA_NBH_PAD / NA_NBH_EXTRA in x)
    NA_SHARED na_i64 krow[NA_BLOCK_N];       // per key: element offset of its K row, of its V row
    NA_SHARED na_i64 vrow[NA_BLOCK_N];

    const int tid = NA_LOCAL_ID(0);
    // Grid x holds (b * Hq + h, query tile), tiles fastest: grid y would cap B * Hq at 65535 on CUDA.
    const int tiles = p.tiles[0] * p.tiles[1] * p.tiles[2];
    const int bh = NA_GROUP_ID(0) / tiles;
    const int b = bh / p.qkvo.heads_q;
    const int h = bh - b * p.qkvo.heads_q;
    const int hk = h / p.qkvo.group;
    const na_nbh_tile t = na_nbh_tile_at(p, NA_GROUP_ID(0) - bh * tiles,
        na_nbh_extent(p, extents, b, 0), na_nbh_extent(p, extents, b, 1), na_nbh_extent(p, extents, b, 2));

    // This work-item's query: in_grid when it is one of the tile's (work-items past them idle along), row_ok when it
    // also lies inside the sample's valid extent (else it is a padding row: zeros, LSE -inf). Its window per axis in
    // box coordinates, [ws, we); empty unless row_ok.
    int x[3], row_ok;
    const int in_grid = na_nbh_query(p, &t, tid, &x[0], &x[1], &x[2], &row_ok);
    row_ok = row_ok && in_grid;
    int ws[3], we[3];
    for (int a = 0; a < 3; a++)
    {
        int start = 0, end = 0;
        if (row_ok) na_nbh_window(x[a], t.lg[a], p.kernel_size[a], p.stride[a], p.causal[a], &start, &end);
        ws[a] = row_ok ? start - t.low[a] : 0;
        we[a] = row_ok ? end - t.low[a] : 0;
    }
    const na_i64 rpb_row = row_ok && p.has_rpb ? na_nbh_rpb_base(p, h, x[0] - t.low[0], x[1] - t.low[1], x[2] - t.low[2]) : 0;
    const na_i64 q_row = p.qkvo.q_offset + b * p.qkvo.q_stride_b + h * p.qkvo.q_stride_h +
        (in_grid ? na_nbh_offset(&t, p, x[0], x[1], x[2], p.q_stride_x[0], p.q_stride_x[1], p.q_stride_x[2]) : 0);
    const na_i64 o_row = p.qkvo.o_offset + b * p.qkvo.o_stride_b + h * p.qkvo.o_stride_h +
        (in_grid ? na_nbh_offset(&t, p, x[0], x[1], x[2], p.o_stride_x[0], p.o_stride_x[1], p.o_stride_x[2]) : 0);
    const na_i64 l_row = p.qkvo.lse_offset + b * p.qkvo.lse_stride_b + h * p.qkvo.lse_stride_h +
        (in_grid ? na_nbh_offset(&t, p, x[0], x[1], x[2], p.lse_stride_x[0], p.lse_stride_x[1], p.lse_stride_x[2]) : 0);

    const na_i64 k_base = p.qkvo.k_offset + b * p.qkvo.k_stride_b + hk * p.qkvo.k_stride_h;
    const na_i64 v_base = p.qkvo.v_offset + b * p.qkvo.v_stride_b + hk * p.qkvo.v_stride_h;
    const na_i64 ek_base = p.ek_offset + b * p.ek_stride_b + hk * p.ek_stride_h;
    const na_i64 ev_base = p.ev_offset + b * p.ev_stride_b + hk * p.ev_stride_h;
    const int union_keys = t.ext[0] * t.ext[1] * t.ext[2];
    const int union_end = (union_keys + NA_BLOCK_N - 1) / NA_BLOCK_N * NA_BLOCK_N;
    const int keys_end = union_end + (p.n_extra + NA_BLOCK_N - 1) / NA_BLOCK_N * NA_BLOCK_N;

    float qr[NA_HEAD_DIM_QK];
    float acc[NA_HEAD_DIM_V];
    for (int d = 0; d < NA_HEAD_DIM_QK; d++)
        qr[d] = (row_ok && d < p.qkvo.dqk) ? na_load(q, q_row + d * p.qkvo.q_stride_d) * p.scale_log2 : 0.0f;
    for (int d = 0; d < NA_HEAD_DIM_V; d++) acc[d] = 0.0f;
    float m = -NA_INFINITY;
    float l = 0.0f;

    for (int n0 = 0; n0 < keys_end; n0 += NA_BLOCK_N)
    {
        // Union tiles first, then the additional keys; the phase is the same for the whole work-group.
        const int extra = n0 >= union_end;
        for (int j = tid; j < NA_BLOCK_N; j += NA_BLOCK_M)
        {
            const int n = n0 + j;
            int u0 = NA_NBH_PAD, u1 = NA_NBH_PAD, u2 = NA_NBH_PAD;
            na_i64 kr = 0, vr = 0;
            if (!extra && n < union_keys)
            {
                na_nbh_box_coords(&t, n, &u0, &u1, &u2);
                kr = k_base + na_nbh_key_offset(&t, p, u0, u1, u2, p.k_stride_x[0], p.k_stride_x[1], p.k_stride_x[2]);
                vr = v_base + na_nbh_key_offset(&t, p, u0, u1, u2, p.v_stride_x[0], p.v_stride_x[1], p.v_stride_x[2]);
            }
            else if (extra && n - union_end < p.n_extra)
            {
                u0 = NA_NBH_EXTRA;
                kr = ek_base + (na_i64)(n - union_end) * p.ek_stride_n;
                vr = ev_base + (na_i64)(n - union_end) * p.ev_stride_n;
            }
            kc[j] = u0;
            kc[NA_BLOCK_N + j] = u1;
            kc[2 * NA_BLOCK_N + j] = u2;
            krow[j] = kr;
            vrow[j] = vr;
        }
        NA_BARRIER();
        const NA_GLOBAL na_elem* ksrc = extra ? ek : k;
        const NA_GLOBAL na_elem* vsrc = extra ? ev : v;
        const na_i64 ksd = extra ? p.ek_stride_d : p.qkvo.k_stride_d;
        const na_i64 vsd = extra ? p.ev_stride_d : p.qkvo.v_stride_d;
        for (int i = tid; i < NA_BLOCK_N * NA_HEAD_DIM_QK; i += NA_BLOCK_M)
        {
            const int j = i / NA_HEAD_DIM_QK, d = i - j * NA_HEAD_DIM_QK;
            ks[i] = (kc[j] != NA_NBH_PAD && d < p.qkvo.dqk) ? na_load(ksrc, krow[j] + d * ksd) : 0.0f;
        }
        for (int i = tid; i < NA_BLOCK_N * NA_HEAD_DIM_V; i += NA_BLOCK_M)
        {
            const int j = i / NA_HEAD_DIM_V, d = i - j * NA_HEAD_DIM_V;
            vs[i] = (kc[j] != NA_NBH_PAD && d < p.qkvo.dv) ? na_load(vsrc, vrow[j] + d * vsd) : 0.0f;
        }
        NA_BARRIER();

        // A whole tile at a time, as in flash/flash_fwd.h: scores (invisible keys -inf), one rescale, then P V. A key
        // tile that every query of the tile sees whole skips the window checks.
        const int full = na_nbh_full_tile(p, &t, n0, NA_BLOCK_N, union_keys, union_end);
        float st[NA_BLOCK_N];
        float tile_max = -NA_INFINITY;
        for (int j = 0; j < NA_BLOCK_N; j++)
        {
            float part[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
            for (int d = 0; d < NA_HEAD_DIM_QK; d += 8)
                for (int u = 0; u < 8; u++) part[u] += qr[d + u] * ks[j * NA_HEAD_DIM_QK + d + u];
            float score = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
            const int c0 = kc[j], c1 = kc[NA_BLOCK_N + j], c2 = kc[2 * NA_BLOCK_N + j];
            const int in_window = full || (c0 >= ws[0] && c0 < we[0] && c1 >= ws[1] && c1 < we[1] && c2 >= ws[2] && c2 < we[2]);
            const int visible = row_ok && (c0 == NA_NBH_EXTRA || in_window);
            if (visible && p.has_rpb && c0 >= 0) score += na_nbh_rpb(rpb, p, rpb_row, c0, c1, c2);
            st[j] = visible ? score : -NA_INFINITY;
            tile_max = NA_FMAX(tile_max, st[j]);
        }
        const float m_new = NA_FMAX(m, tile_max);
        const float m_use = na_max_or_zero(m_new);
        const float alpha = NA_EXP2(m - m_use);
        m = m_new;
        l *= alpha;
        for (int d = 0; d < NA_HEAD_DIM_V; d++) acc[d] *= alpha;
        for (int j = 0; j < NA_BLOCK_N; j++)
        {
            const float pj = NA_EXP2(st[j] - m_use);
            l += pj;
            for (int d = 0; d < NA_HEAD_DIM_V; d++) acc[d] += pj * vs[j * NA_HEAD_DIM_V + d];
        }
        NA_BARRIER();
    }

    if (in_grid)
    {
        // A padding row saw no key (l = 0): zeros and LSE -inf. Every valid query sees at least one key.
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        for (int d = 0; d < NA_HEAD_DIM_V; d++)
            if (d < p.qkvo.dv) na_store(o, o_row + d * p.qkvo.o_stride_d, acc[d] * inv);
        if (p.has_lse) lse[l_row] = na_lse_from_base2(m, l);
    }
}

#endif
