// Arguments of the KV-cache decode kernels (decode/kv_append.h, decode/decode_fwd.h), passed by value. Options are
// runtime flags here (uniform branches cost nothing next to reading the cache) so that few variants need compiling. Mirrored by
// managed/NativeAttention/Gpu/Decode/DecodeParams.cs; a test runs decode/decode_layout_probe.h and checks that both sides
// agree on size and offsets. The Q/K/V/O block first, then 64-bit fields, then an even number of 4-byte fields, so no
// padding depends on the compiler.
// Cache lengths travel inside the struct for up to NA_INLINE_LENGTHS batch elements, so a decode step needs no
// upload (and no host synchronisation) unless its block table changed; the int32 `meta` buffer beside it holds the
// block table [B, blocks_per_seq], preceded by the lengths [B] when there are more (lengths_in_meta == 1).
// Cache rows are addressed as (block or batch) * stride_b + head * stride_h + slot * stride_n + d * stride_d.
#include "common/qkvo_params.h"

#define NA_INLINE_LENGTHS 64

typedef struct na_decode_params
{
    na_qkvo_params qkvo;   // Q, keyCache (K), valueCache (V), O, LSE and the sizes; K/V batch strides step blocks when
                           // paged; qkvo.nk is 0 (lengths vary per batch element: L_b = cache length + nnew)
    na_i64 nk_offset;      // element offset of NewKey[0,0,0,0]; unused when nnew == 0
    na_i64 nv_offset;      // element offset of NewValue[0,0,0,0]
    na_i64 cos_offset;     // element offset of RotaryCos[0,0]; unused when rotary == 0
    na_i64 sin_offset;     // element offset of RotarySin[0,0]
    na_i64 alibi_offset;   // element offset of the first float32 ALiBi slope; unused when has_alibi == 0
    na_i64 sinks_offset;   // element offset of the first float32 sink logit; unused when has_sinks == 0
    na_i64 nk_stride_b;    // NewKey element strides: batch, kv head, token, feature
    na_i64 nk_stride_h;
    na_i64 nk_stride_n;
    na_i64 nk_stride_d;
    na_i64 nv_stride_b;    // NewValue element strides: batch, kv head, token, feature
    na_i64 nv_stride_h;
    na_i64 nv_stride_n;
    na_i64 nv_stride_d;
    na_i64 cos_stride_p;   // RotaryCos element strides: position, pair
    na_i64 cos_stride_i;
    na_i64 sin_stride_p;   // RotarySin element strides: position, pair
    na_i64 sin_stride_i;
    na_i64 alibi_stride_b; // slope strides: batch (0 for [Hq] slopes), head
    na_i64 alibi_stride_h;
    na_i64 sinks_stride_h; // sink stride over heads
    int nnew;              // tokens appended per batch element
    int page_size;         // tokens per block when paged, else the cache capacity
    int blocks_per_seq;    // block-table columns (1 when contiguous)
    int rotary_half;       // RotaryDim / 2; 0 without rotary
    int window_left;       // -1 unbounded
    int window_right;      // -1 unbounded
    int causal;            // 1: bottom-right causal against L_b
    int has_lse;           // 1: write LSE
    int splits;            // key-axis splits S; > 1 writes float32 partials that na_decode_combine merges
    int row_chunks;        // work-groups per (b, kv head, split) along the G * Nq rows
    int paged;             // 1: caches are [NumBlocks, Hkv, PageSize, D] addressed through the block table
    int rotary;            // 0 none, 1 half-split pairs (i, i + R/2) (GPT-NeoX), 2 interleaved pairs (2i, 2i + 1) (GPT-J)
    int has_alibi;         // 1: s -= slope_h |i' - j|
    int has_sinks;         // 1: a per-head logit joins the softmax denominator
    int sigmoid;           // 1: unnormalised sigmoid(s' + b) weights instead of softmax
    int has_softcap;       // 1: s = c tanh(s / c)
    int lengths_in_meta;   // 1: the cache lengths are meta[0 .. B) and the block table follows; 0: they are `lengths`
    float scale_log2;      // scale * log2(e)
    float softcap_log2;    // softcap c * log2(e); unused when has_softcap == 0
    float sigmoid_bias;    // b of sigmoid(s' + b); unused when sigmoid == 0
    int lengths[NA_INLINE_LENGTHS];  // CacheSeqLens[b] when lengths_in_meta == 0
} na_decode_params;

// Tokens in the cache of batch element b before the append.
NA_INLINE int na_cache_length(const NA_GLOBAL int* meta, const na_decode_params p, int b)
{
    return p.lengths_in_meta ? meta[b] : p.lengths[b];
}

// The element offset of (batch element b, position pos) inside a cache, before the head and feature terms: through
// the block table when paged. `meta` holds the lengths [B] then the table.
NA_INLINE na_i64 na_cache_slot(const NA_GLOBAL int* meta, const na_decode_params p, int b, int pos, na_i64 stride_b, na_i64 stride_n)
{
    if (!p.paged) return (na_i64)b * stride_b + (na_i64)pos * stride_n;
    const int block = meta[(p.lengths_in_meta ? p.qkvo.batch : 0) + b * p.blocks_per_seq + pos / p.page_size];
    return (na_i64)block * stride_b + (na_i64)(pos % p.page_size) * stride_n;
}

// Rotary embedding of feature d of a row (mode 1: pairs (i, i + R/2), GPT-NeoX; 2: pairs (2i, 2i + 1), GPT-J),
// given the row's element d (`self`) and its partner (`other`): pair i turns (x, y) -> (x cos - y sin, x sin + y cos).
// Features d >= R are returned unchanged. `pair` and `second` say which pair d is in and whether it is the y of it.
NA_INLINE int na_rotary_partner(int mode, int d, int pairs, int* pair, int* second)
{
    if (mode == 2)
    {
        *pair = d >> 1;
        *second = d & 1;
        return d ^ 1;
    }
    *second = d >= pairs;
    *pair = *second ? d - pairs : d;
    return *second ? d - pairs : d + pairs;
}

NA_INLINE float na_rotate(float self, float other, int second, float c, float s)
{
    // first: x = self, y = other -> x c - y s; second: x = other, y = self -> x s + y c.
    return second ? other * s + self * c : self * c - other * s;
}
