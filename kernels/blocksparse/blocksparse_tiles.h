// What a block-sparse work-group works on, shared by the portable and the tensor-core kernel: its (batch, head, rows)
// from the group id, the predicate's key range per query row, and the walk over its key tiles (the row's full blocks,
// then its partial blocks, each cut into tiles of NA_BLOCK_N keys; a block's last tile may be short, and so may the
// last key block of the sequence).
#include "blocksparse/blocksparse_params.h"
#include "common/masking.h"

#ifndef NA_BLOCK_N
#define NA_BLOCK_N 32       // keys per shared-memory tile
#endif

// The rows of one work-group: rows [row0, row0 + tile rows) of query block qb of (b, h), of which those below row_limit
// exist (the query block's end, or nq for a short last block); meta_row indexes the row's entries in the block table.
typedef struct na_bsp_group
{
    int b, h, hk;     // batch, query head, kv head
    int row0;         // first query row of the work-group
    int row_limit;    // one past the last query row of the query block
    int meta_row;     // 2 r: the row's full entries are meta[meta[meta_row]] .. meta[meta[meta_row + 1]]
    int prefix;       // prefix-LM (predicate 4): the sample's prefix length; 0 otherwise
    int split;        // which of the row's p.splits entry ranges this group takes
    na_i64 partial;   // with splits: index of the group's row 0 in the partial LSE [splits, B, Hq, Nq] (times Dv: in the outputs)
} na_bsp_group;

// Grid x holds (b * Hq + h, query block, row tile, split), splits fastest: grid y would cap B * Hq at 65535 on CUDA.
NA_INLINE na_bsp_group na_bsp_group_of(const na_blocksparse_params p, const NA_GLOBAL int* meta, int group, int rows)
{
    na_bsp_group g;
    const int split = group % p.splits;
    group /= p.splits;
    const int per_head = p.query_blocks * p.row_tiles;
    const int bh = group / per_head;
    const int rest = group - bh * per_head;
    const int qb = rest / p.row_tiles;
    const int tile = rest - qb * p.row_tiles;
    g.b = bh / p.qkvo.heads_q;
    g.split = split;
    g.partial = ((na_i64)split * p.qkvo.batch * p.qkvo.heads_q + bh) * p.qkvo.nq;
    g.h = bh - g.b * p.qkvo.heads_q;
    g.hk = g.h / p.qkvo.group;
    const int block0 = qb * p.bq;                  // < nq: query blocks cover nq exactly
    const int left = p.qkvo.nq - block0;
    g.row_limit = block0 + (p.bq < left ? p.bq : left);
    g.row0 = block0 + tile * rows;                 // past row_limit in a short last query block: the group does nothing
    g.meta_row = 2 * (g.b * p.mask_stride_b + (g.h / p.mask_head_div) * p.mask_stride_h + qb);
    g.prefix = p.predicate == 4 ? meta[p.prefix_offset + g.b * p.prefix_stride] : 0;
    return g;
}

// The key range [start, end) the causal (1), window (2) or prefix-LM (4) predicate leaves query row i of the group's
// sample (bottom-right aligned, as in flash); every key for the other predicates. Both bounds are non-decreasing in i.
// Documents (3) are checked per element on top.
NA_INLINE int na_bsp_key_start(const na_blocksparse_params p, int i)
{
    return p.predicate == 2 ? na_key_start(i, p.qkvo.nq, p.qkvo.nk, p.window_left) : 0;
}

NA_INLINE int na_bsp_key_end(const na_blocksparse_params p, const na_bsp_group g, int i)
{
    if (p.predicate == 1) return na_key_end(i, p.qkvo.nq, p.qkvo.nk, -1, 1);
    if (p.predicate == 2) return na_key_end(i, p.qkvo.nq, p.qkvo.nk, p.window_right, p.window_causal);
    if (p.predicate == 4)
    {
        // The prefix (every query sees it) or the causal range, whichever reaches further.
        const int causal_end = na_key_end(i, p.qkvo.nq, p.qkvo.nk, -1, 1);
        const int prefix_end = g.prefix < p.qkvo.nk ? g.prefix : p.qkvo.nk;
        return causal_end > prefix_end ? causal_end : prefix_end;
    }
    return p.qkvo.nk;
}

// A position in a work-group's key tiles: block-table entry e (a full entry below partial_begin, a partial one from
// there to end) and, in its key block, the tile of keys [n0, min(n0 + NA_BLOCK_N, k1)). Partial blocks are clipped to
// [clip_start, clip_end), the keys the predicate leaves any row of the work-group, so that tiles no row sees are
// never loaded.
typedef struct na_bsp_tiles
{
    int e;              // current block-table entry
    int partial_begin;  // first partial entry
    int end;            // one past the last entry
    int n0;             // first key of the current tile
    int k1;             // one past the last key of the current block (after clipping)
    int clip_start;     // partial blocks: first key any row of the work-group may see
    int clip_end;       // partial blocks: one past the last such key
} na_bsp_tiles;

NA_INLINE int na_bsp_more(const na_bsp_tiles* t) { return t->e < t->end; }
NA_INLINE int na_bsp_is_partial(const na_bsp_tiles* t) { return t->e >= t->partial_begin; }

// Moves to the first block at or after entry t->e that leaves a key to compute, or to the end.
NA_INLINE void na_bsp_settle(na_bsp_tiles* t, const NA_GLOBAL int* meta, int bk, int nk)
{
    for (; t->e < t->end; t->e++)
    {
        int k0 = meta[t->e] * bk;                  // a validated block index: k0 < nk
        int k1 = bk < nk - k0 ? k0 + bk : nk;      // the last block of the sequence may be short
        if (t->e >= t->partial_begin)
        {
            k0 = k0 > t->clip_start ? k0 : t->clip_start;
            k1 = k1 < t->clip_end ? k1 : t->clip_end;
        }
        if (k0 < k1)
        {
            t->n0 = k0;
            t->k1 = k1;
            return;
        }
    }
}

// The first tile of the work-group whose rows are [first, last] (rows of the query block only).
NA_INLINE na_bsp_tiles na_bsp_tiles_begin(const na_blocksparse_params p, const NA_GLOBAL int* meta, const na_bsp_group g, int first, int last)
{
    na_bsp_tiles t;
    // Split s takes entries [begin + n s / splits, begin + n (s + 1) / splits) of the row's n (full, then partial).
    const int row_begin = meta[g.meta_row], count = meta[g.meta_row + 2] - row_begin;
    t.e = row_begin + (int)((na_i64)count * g.split / p.splits);
    t.partial_begin = meta[g.meta_row + 1];
    t.end = row_begin + (int)((na_i64)count * (g.split + 1) / p.splits);
    t.n0 = 0;
    t.k1 = 0;
    t.clip_start = na_bsp_key_start(p, first);
    t.clip_end = na_bsp_key_end(p, g, last);
    na_bsp_settle(&t, meta, p.bk, p.qkvo.nk);
    return t;
}

// The next tile: the rest of the current block, else the next block that leaves a key to compute.
NA_INLINE void na_bsp_advance(na_bsp_tiles* t, const NA_GLOBAL int* meta, const na_blocksparse_params p)
{
    if (t->k1 - t->n0 > NA_BLOCK_N)
    {
        t->n0 += NA_BLOCK_N;
        return;
    }
    t->e++;
    na_bsp_settle(t, meta, p.bk, p.qkvo.nk);
}
