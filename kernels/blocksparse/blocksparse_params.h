// Kernel arguments of block-sparse attention, passed by value: where Q, K, V, O and LSE live (the embedded
// na_qkvo_params), the block sizes, how a (batch, head, query block) finds its row of the block table, and the element
// predicate of partial blocks. Mirrored by managed/NativeAttention/Gpu/BlockSparse/BlockSparseParams.cs; a test runs
// blocksparse/blocksparse_layout_probe.h and checks that both sides agree on size and offsets.
//
// The block table lives in one int32 buffer `meta` (uploaded by the host with the call, any mask format flattened
// into it). Row r of the table, r = b' * mask_stride_b + h' * mask_stride_h + query block, with b' the batch and
// h' = h / mask_head_div the mask head (strides 0 broadcast), lists
//   full key blocks     meta[meta[2r]     .. meta[2r + 1])   computed without the predicate,
//   partial key blocks  meta[meta[2r + 1] .. meta[2r + 2])   computed where the predicate holds;
// offsets are absolute indices into meta. With splits > 1 every work-group takes one of `splits` contiguous ranges of
// its row's entries and writes a float32 partial output [splits, B, Hq, Nq, Dv] and its LSE [splits, B, Hq, Nq]
// (contiguous, from the partials buffers' bases) for MergeStates to combine. Document ids (predicate 3), when present, are meta[qdoc_offset + b * nq + i]
// per query and meta[kdoc_offset + b * nk + j] per key; prefix lengths (predicate 4) meta[prefix_offset + b * prefix_stride].
#include "common/qkvo_params.h"

// The Q/K/V/O block comes first, then an even number of 4-byte fields, so that no padding depends on the compiler.
typedef struct na_blocksparse_params
{
    na_qkvo_params qkvo;   // Q, K, V, O, LSE and the sizes (common/qkvo_params.h)
    int mask_stride_b;     // block-table rows between mask batches; 0 when the mask broadcasts over the batch
    int mask_stride_h;     // block-table rows between mask heads; 0 when the mask broadcasts over heads
    int mask_head_div;     // query heads per mask head: the mask head of query head h is h / mask_head_div
    int qdoc_offset;       // index in meta of the first query document id; unused unless predicate == 3
    int kdoc_offset;       // index in meta of the first key document id; unused unless predicate == 3
    int bq;                // query block size Bq
    int bk;                // key block size Bk
    int query_blocks;      // ceil(nq / bq)
    int row_tiles;         // work-groups per query block: ceil(bq / rows per work-group)
    int predicate;         // in partial blocks: 0 every element, 1 causal, 2 sliding window, 3 equal document ids,
                           // 4 prefix-LM (keys j < prefix[b] or j <= i')
    int window_left;       // predicate 2: keys j >= i' - window_left stay visible; -1 unbounded (i' = i + nk - nq)
    int window_right;      // predicate 2: keys j <= i' + window_right stay visible; -1 unbounded
    int window_causal;     // predicate 2: 1 also hides keys j > i'
    int prefix_offset;     // predicate 4: index in meta of the first prefix length
    int prefix_stride;     // predicate 4: meta elements between samples' prefix lengths; 0 when one length is shared
    int has_lse;           // 1: write LSE
    float scale_log2;      // scale * log2(e): scores are kept in base 2
    float softcap_log2;    // softcap c * log2(e), 0 without softcap: base-2 scores s2 become c2 tanh(s2 / c2)
    int splits;            // key splits per row: 1 writes O (and LSE) directly, more write partials
    int reserved;          // keeps the size a multiple of 8 without compiler padding
} na_blocksparse_params;
