// Arguments of the content builder's kernels (blocksparse/content.h), passed by value. Mirrored by
// managed/NativeAttention/Gpu/BlockSparse/ContentParams.cs. 64-bit fields first, so no padding depends on the compiler.
typedef struct na_content_pool_params
{
    na_i64 offset;           // element offset of [0, 0, 0, 0] from the buffer's base
    na_i64 stride_b;         // strides of the [B, H, N, D] tensor, in elements
    na_i64 stride_h;
    na_i64 stride_n;
    na_i64 stride_d;
    int heads;               // H of this tensor
    int n;                   // N
    int d;                   // head dim
    int block_size;          // rows per block
    int blocks;              // ceil(N / block_size)
    int total;               // B x H x blocks: one work-item each
    int reserved0;
    int reserved1;
} na_content_pool_params;

typedef struct na_content_select_params
{
    int hq;                  // query heads
    int hkv;                 // key heads (divides hq)
    int query_blocks;
    int key_blocks;
    int d;                   // head dim (the means' row stride)
    int rows;                // B x hq x query_blocks: one work-item each
    int nq;                  // query length
    int nk;                  // key length
    int bq;                  // query block size
    int bk;                  // key block size
    int causal;              // 1: only causally visible blocks are candidates
    int keep_diagonal;       // 1: diagonal blocks (causal: those crossing the diagonal) are forced
    int sink_blocks;         // the first key blocks are forced
    int top_k;               // >= 0: top-k selection; -1: cumulative-mass selection with gamma
    float gamma;             // mass threshold (top_k == -1)
    float scale;             // pooled score scale
    float threshold;         // similarity gate; -inf when there is none
    int reserved;
} na_content_select_params;
