// Layout probes of na_content_pool_params and na_content_select_params (blocksparse/content_params.h): each struct's
// size, then every field's offset in declaration order (common/layout_probe.h); checked against the C# mirrors
// (Gpu/BlockSparse/ContentParams.cs) by the layout tests.
#include "common/layout_probe.h"
#include "blocksparse/content_params.h"

NA_KERNEL void na_content_pool_params_layout(NA_GLOBAL int* out)
{
    NA_PROBE_BEGIN(na_content_pool_params);
#define NA_P(f) NA_PROBE(na_content_pool_params, f)
    NA_P(offset); NA_P(stride_b); NA_P(stride_h); NA_P(stride_n); NA_P(stride_d); NA_P(heads); NA_P(n); NA_P(d);
    NA_P(block_size); NA_P(blocks); NA_P(total); NA_P(reserved0); NA_P(reserved1);
#undef NA_P
}

NA_KERNEL void na_content_select_params_layout(NA_GLOBAL int* out)
{
    NA_PROBE_BEGIN(na_content_select_params);
#define NA_P(f) NA_PROBE(na_content_select_params, f)
    NA_P(hq); NA_P(hkv); NA_P(query_blocks); NA_P(key_blocks); NA_P(d); NA_P(rows); NA_P(nq); NA_P(nk); NA_P(bq); NA_P(bk);
    NA_P(causal); NA_P(keep_diagonal); NA_P(sink_blocks); NA_P(top_k); NA_P(gamma); NA_P(scale); NA_P(threshold); NA_P(reserved);
#undef NA_P
}
