// Arguments of the neighborhood attention kernels (neighborhood/neighborhood_fwd.h), passed by value. Mirrored by
// managed/NativeAttention/Gpu/Neighborhood/NeighborhoodParams.cs; a test runs neighborhood/neighborhood_layout_probe.h and
// checks that both sides agree on size and offsets. The Q/K/V/O block first, then 64-bit fields, then an even number
// of 4-byte fields, so no padding depends on the compiler.
// The grid always has three internal axes (x, y, z): a 1-D or 2-D grid is padded in front with axes of length 1
// (kernel 1, dilation 1, stride 1, spatial strides 0). Rows of Q, K, V, O and LSE are addressed as
// b * stride_b + h * stride_h + sum over axes of position * stride_x[axis] (+ feature * stride_d).
// Padding: with has_extent, sample b's grid is the box [0, extents[3 b + a]) per axis; the query tiling still covers the
// whole grid, and the queries of a tile past the valid box are padding rows (written zero, LSE -inf).
#include "common/qkvo_params.h"

typedef struct na_nbh_params
{
    na_qkvo_params qkvo;   // Q, K, V, O, LSE and the sizes; nq = nk = the grid's token count; the *_stride_n fields
                           // hold the last spatial axis' strides (the kernels read q_stride_x and friends instead)
    na_i64 q_stride_x[3];  // Q element strides of the internal axes x, y, z
    na_i64 k_stride_x[3];  // K element strides of the internal axes
    na_i64 v_stride_x[3];  // V element strides of the internal axes
    na_i64 o_stride_x[3];  // O element strides of the internal axes
    na_i64 lse_stride_x[3];// LSE element strides of the internal axes; unused without has_lse
    na_i64 ek_offset;      // element offset of AdditionalKeys[0,0,0,0]; unused when n_extra == 0
    na_i64 ek_stride_b;    // AdditionalKeys element strides: batch, kv head, token, feature
    na_i64 ek_stride_h;
    na_i64 ek_stride_n;
    na_i64 ek_stride_d;
    na_i64 ev_offset;      // element offset of AdditionalValues[0,0,0,0]
    na_i64 ev_stride_b;    // AdditionalValues element strides: batch, kv head, token, feature
    na_i64 ev_stride_h;
    na_i64 ev_stride_n;
    na_i64 ev_stride_d;
    na_i64 rpb_offset;     // element offset of RelativePositionBias[0, 0..]; unused without has_rpb
    na_i64 rpb_stride_h;   // RelativePositionBias element strides: query head, then the offset axes (internal axes;
    na_i64 rpb_stride_x[3];// 0 for a padding axis, whose only offset is 0)
    int length[3];         // axis lengths
    int kernel_size[3];    // kernel size per axis, 1 <= k, k * dilation <= length
    int dilation[3];       // dilation per axis
    int stride[3];         // query stride per axis, 1 <= stride <= kernel
    int causal[3];         // 1: the axis is causal
    int tile[3];           // query tile extent per axis (group coordinates); their product is at most the block's rows
    int tiles[3];          // query tiles per axis, over every dilation group (neighborhood_window.h, na_nbh_axis_tile)
    int n_extra;           // additional key/value tokens, visible to every query
    int has_lse;           // 1: write LSE
    int has_rpb;           // 1: add the relative-position bias rpb[h, o_x + k_x - 1, ..] to grid keys' scores
    int has_extent;        // 1: `extents` holds the valid extent per sample and internal axis, [B][3]
    float scale_log2;      // scale * log2(e): scores are kept in base 2
} na_nbh_params;
