// The NATTEN window rule and the query tiling of the neighborhood kernels, shared by the portable and the tensor-core
// kernel. Along one axis of length L with kernel k, dilation d and stride s (DESIGN.md, "Neighborhood"): position x
// lies in group g = x mod d at group coordinate x / d; the group holds lg = ceil((L - g) / d) positions; everything
// below works in group coordinates.
// A query tile is a box of queries inside one dilation group per axis, at most tile[a] consecutive group coordinates
// per axis. Window starts and ends never decrease along an axis, so the union of a tile's windows is one box, from the
// window start of its first query to the window end of its last one, and their intersection runs from the start of
// the last to the end of the first.
#include "neighborhood/neighborhood_params.h"
#include "common/math.h"

// The window [*start, *end) of the query at group coordinate x of a group with lg positions.
NA_INLINE void na_nbh_window(int x, int lg, int k, int s, int causal, int* start, int* end)
{
    const int tile = x / s * s;
    if (causal)
    {
        // The tile's last query leads; keys from leader - k + 1 (not below 0) up to the query itself.
        const int leader = tile + s - 1 < lg - 1 ? tile + s - 1 : lg - 1;
        *start = leader - k + 1 > 0 ? leader - k + 1 : 0;
        *end = x + 1;
    }
    else
    {
        // The tile's centre leads; k keys from leader - k / 2, shifted inward at both borders (lg >= k).
        const int leader = tile + s / 2 < lg - 1 ? tile + s / 2 : lg - 1;
        int first = leader - k / 2;
        first = first < 0 ? 0 : first;
        first = first > lg - k ? lg - k : first;
        *start = first;
        *end = first + k;
    }
}

// Query tile t of an axis (tiles of up to `extent` group coordinates, group 0's tiles first): its group, first group
// coordinate and query count. Groups g < L mod d hold ceil(L / d) positions, the others floor(L / d) (>= 1 since
// d <= L), so the tiles of both kinds of group come in two runs of equal-sized groups.
NA_INLINE void na_nbh_axis_tile(int t, int length, int d, int extent, int* group, int* first, int* count)
{
    const int r = length % d, big = (length + d - 1) / d, small = length / d;
    const int tiles_big = (big + extent - 1) / extent, tiles_small = (small + extent - 1) / extent;
    int lg, i;
    if (t < r * tiles_big)
    {
        *group = t / tiles_big;
        i = t - *group * tiles_big;
        lg = big;
    }
    else
    {
        const int u = t - r * tiles_big;
        *group = r + u / tiles_small;
        i = u - (u / tiles_small) * tiles_small;
        lg = small;
    }
    *first = i * extent;
    *count = lg - *first < extent ? lg - *first : extent;
}

// One query tile: per axis its dilation group, the group's valid length (in the sample's valid extent), first query,
// query count in the grid, valid query count (those inside the valid extent; 0 or less when none is), and its union
// window [low, low + ext) and intersection [full_lo, full_hi) over the valid queries, in group coordinates.
typedef struct na_nbh_tile
{
    int group[3], lg[3], first[3], count[3], valid[3], low[3], ext[3], full_lo[3], full_hi[3];
} na_nbh_tile;

// Tile `t` (row-major over tiles[0] x tiles[1] x tiles[2]) of a sample whose valid extent is e0 x e1 x e2 (the axis
// lengths without padding). Windows follow the valid extent: borders shift there, as if it were the grid. A tile
// without a valid query has an empty union (ext 0 on some axis).
NA_INLINE na_nbh_tile na_nbh_tile_at(const na_nbh_params p, int t, int e0, int e1, int e2)
{
    na_nbh_tile q;
    for (int a = 2; a >= 0; a--)
    {
        const int ta = t % p.tiles[a];
        t /= p.tiles[a];
        na_nbh_axis_tile(ta, p.length[a], p.dilation[a], p.tile[a], &q.group[a], &q.first[a], &q.count[a]);
        const int d = p.dilation[a], extent = a == 0 ? e0 : a == 1 ? e1 : e2;
        q.lg[a] = (extent - q.group[a] + d - 1) / d;
        q.valid[a] = q.lg[a] - q.first[a] < q.count[a] ? q.lg[a] - q.first[a] : q.count[a];
        q.low[a] = q.ext[a] = q.full_lo[a] = q.full_hi[a] = 0;
        if (q.valid[a] <= 0) continue;
        int s0, e0w, s1, e1w;
        na_nbh_window(q.first[a], q.lg[a], p.kernel_size[a], p.stride[a], p.causal[a], &s0, &e0w);
        na_nbh_window(q.first[a] + q.valid[a] - 1, q.lg[a], p.kernel_size[a], p.stride[a], p.causal[a], &s1, &e1w);
        q.low[a] = s0;
        q.ext[a] = e1w - s0;
        q.full_lo[a] = s1;
        q.full_hi[a] = e0w;
    }
    for (int a = 0; a < 3; a++)
        if (q.valid[a] <= 0) q.ext[0] = 0;   // no valid query on some axis: nothing to attend to
    return q;
}

// The valid extent of sample b along internal axis a: extents[3 b + a] with padding, else the axis length.
NA_INLINE int na_nbh_extent(const na_nbh_params p, const NA_GLOBAL int* extents, int b, int a)
{
    return p.has_extent ? extents[3 * b + a] : p.length[a];
}

// Splits a flat index of the tile's union box (row-major, z fastest) into box coordinates u[0..2].
NA_INLINE void na_nbh_box_coords(const na_nbh_tile* q, int n, int* u0, int* u1, int* u2)
{
    *u2 = n % q->ext[2];
    n /= q->ext[2];
    *u1 = n % q->ext[1];
    *u0 = n / q->ext[1];
}

// Query r of a tile, row-major over the tile extents p.tile: its group coordinates (x0, x1, x2). Returns 0 when r lies
// past the tile's queries in the grid (a tile cut off by the end of its group, or a block with more rows than the tile
// holds), else 1, with *valid telling whether the query lies inside the sample's valid extent (else it is padding).
NA_INLINE int na_nbh_query(const na_nbh_params p, const na_nbh_tile* q, int r, int* x0, int* x1, int* x2, int* valid)
{
    const int i2 = r % p.tile[2], i1 = r / p.tile[2] % p.tile[1], i0 = r / p.tile[2] / p.tile[1];
    *x0 = q->first[0] + i0;
    *x1 = q->first[1] + i1;
    *x2 = q->first[2] + i2;
    *valid = i0 < q->valid[0] && i1 < q->valid[1] && i2 < q->valid[2];
    return i0 < q->count[0] && i1 < q->count[1] && i2 < q->count[2];
}

// The spatial element offset of the token at group coordinates (x0, x1, x2) of the tile's groups, for per-axis strides
// s0, s1, s2: position x * dilation + group along each axis.
NA_INLINE na_i64 na_nbh_offset(const na_nbh_tile* q, const na_nbh_params p, int x0, int x1, int x2, na_i64 s0, na_i64 s1, na_i64 s2)
{
    return (na_i64)(x0 * p.dilation[0] + q->group[0]) * s0
         + (na_i64)(x1 * p.dilation[1] + q->group[1]) * s1
         + (na_i64)(x2 * p.dilation[2] + q->group[2]) * s2;
}

// The spatial element offset of the key at union-box coordinates (u0, u1, u2).
NA_INLINE na_i64 na_nbh_key_offset(const na_nbh_tile* q, const na_nbh_params p, int u0, int u1, int u2, na_i64 s0, na_i64 s1, na_i64 s2)
{
    return na_nbh_offset(q, p, q->low[0] + u0, q->low[1] + u1, q->low[2] + u2, s0, s1, s2);
}

// True when every key of key tile [n0, n0 + n) is visible to every query of the query tile: a tile of real union keys
// whose bounding box (exact along an axis while the axes before it are constant over the tile) lies inside the
// intersection of the query tile's windows, or a tile of real additional keys. Key tiles are n keys of the union box in
// row-major order, padded to whole tiles at union_end, then the additional keys.
NA_INLINE int na_nbh_full_tile(const na_nbh_params p, const na_nbh_tile* t, int n0, int n, int union_keys, int union_end)
{
    if (n0 >= union_end) return n0 - union_end + n <= p.n_extra;
    if (n0 + n > union_keys) return 0;
    int a0, a1, a2, b0, b1, b2;
    na_nbh_box_coords(t, n0, &a0, &a1, &a2);
    na_nbh_box_coords(t, n0 + n - 1, &b0, &b1, &b2);
    if (a0 != b0) { a1 = 0; b1 = t->ext[1] - 1; }
    if (a0 != b0 || a1 != b1) { a2 = 0; b2 = t->ext[2] - 1; }
    return a0 >= t->full_lo[0] - t->low[0] && b0 < t->full_hi[0] - t->low[0]
        && a1 >= t->full_lo[1] - t->low[1] && b1 < t->full_hi[1] - t->low[1]
        && a2 >= t->full_lo[2] - t->low[2] && b2 < t->full_hi[2] - t->low[2];
}

// The relative-position bias of a query: the element offset of rpb[h, k_x - 1 - r_x, k_y - 1 - r_y, k_z - 1 - r_z],
// where r is the query's union-box coordinates; the key at box coordinates c then adds rpb[base + sum c_a stride_a],
// its offset from the query in group steps being c_a - r_a (every visible key's lies in [-(k-1), k-1]).
NA_INLINE na_i64 na_nbh_rpb_base(const na_nbh_params p, int h, int r0, int r1, int r2)
{
    return p.rpb_offset + (na_i64)h * p.rpb_stride_h
         + (na_i64)(p.kernel_size[0] - 1 - r0) * p.rpb_stride_x[0]
         + (na_i64)(p.kernel_size[1] - 1 - r1) * p.rpb_stride_x[1]
         + (na_i64)(p.kernel_size[2] - 1 - r2) * p.rpb_stride_x[2];
}

// The bias, in base 2, of the grid key at box coordinates (c0, c1, c2) for a query whose na_nbh_rpb_base is `base`.
NA_INLINE float na_nbh_rpb(const NA_GLOBAL float* rpb, const na_nbh_params p, na_i64 base, int c0, int c1, int c2)
{
    return rpb[base + (na_i64)c0 * p.rpb_stride_x[0] + (na_i64)c1 * p.rpb_stride_x[1] + (na_i64)c2 * p.rpb_stride_x[2]] * NA_LOG2E;
}
