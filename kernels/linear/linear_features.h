// The feature maps phi of linear attention and the decay kinds, as the host numbers them (FeatureMap, DecayKind).
// phi is evaluated one feature at a time straight from a Q or K row, so any feature size works: Taylor2's feature
// f = 0 is 1, f = 1 + i is x_i, f = 1 + D + i D + j is x_i x_j / sqrt(2).
#include "common/dtype.h"

#define NA_LINEAR_MAP_IDENTITY 0
#define NA_LINEAR_MAP_ELU 1
#define NA_LINEAR_MAP_RELU 2
#define NA_LINEAR_MAP_TAYLOR2 3
#define NA_LINEAR_MAP_PRECOMPUTED 4

#define NA_LINEAR_DECAY_NONE 0
#define NA_LINEAR_DECAY_HEAD 1
#define NA_LINEAR_DECAY_TOKEN 2
#define NA_LINEAR_DECAY_KEY 3

#if NA_CUDA
#define NA_LINEAR_UNROLL _Pragma("unroll")
#else
#define NA_LINEAR_UNROLL
#endif

// phi(x)[f] of the row of x that starts at element `row` (elements stride_d apart, d of them).
NA_INLINE float na_linear_phi(const NA_GLOBAL na_elem* x, na_i64 row, na_i64 stride_d, int d, int map, int f)
{
    if (map == NA_LINEAR_MAP_TAYLOR2)
    {
        if (f == 0) return 1.0f;
        if (f <= d) return na_load(x, row + (f - 1) * stride_d);
        const int pair = f - 1 - d;
        const int i = pair / d;
        const int j = pair - i * d;
        return (na_load(x, row + i * stride_d) * 0.70710678118654752f) * na_load(x, row + j * stride_d);
    }
    const float value = na_load(x, row + f * stride_d);
    if (map == NA_LINEAR_MAP_ELU) return value > 0.0f ? value + 1.0f : NA_EXP(value);
    if (map == NA_LINEAR_MAP_RELU) return value > 0.0f ? value : 0.0f;
    return value;
}

// The per-head log2 decay stored by bit pattern in meta.
NA_INLINE float na_linear_head_log2(const NA_GLOBAL int* meta, int index) { return NA_AS_FLOAT((na_u32)meta[index]); }
