// Score options of the flash kernels, applied per (query row, key) element in the order of DESIGN.md: softcap,
// ALiBi, dense bias, low-rank bias U W^T (read per element, never materialised); plus sigmoid scoring's weight.
// Scores are in base 2 (s2 = log2(e) s), so every additive term is scaled by log2(e).
#include "flash/flash_params.h"
#include "common/dtype.h"
#include "common/math.h"
#include "common/score.h"

#ifndef NA_SOFTCAP
#define NA_SOFTCAP 0        // 1: s = c tanh(s / c)
#endif
#ifndef NA_ALIBI
#define NA_ALIBI 0          // 1: s -= slope_h |i' - j|, slopes float32 [Hq] or [B, Hq]
#endif
#ifndef NA_BIAS
#define NA_BIAS 0           // 1: s += Bias[b, h, i, j] (strides may be 0: broadcast)
#endif
#ifndef NA_BIAS_DTYPE
#define NA_BIAS_DTYPE 0     // element type of Bias: 0 f32, 1 f16, 2 bf16
#endif
#ifndef NA_LOWRANK
#define NA_LOWRANK 0        // 1: s += U[b, h, i, :] . W[b, h, j, :]
#endif
#ifndef NA_U_DTYPE
#define NA_U_DTYPE 0        // element type of U
#endif
#ifndef NA_W_DTYPE
#define NA_W_DTYPE 0        // element type of W
#endif
#ifndef NA_SINKS
#define NA_SINKS 0          // 1: a per-head float32 logit joins the softmax max and denominator
#endif
#ifndef NA_SIGMOID
#define NA_SIGMOID 0        // 1: unnormalised sigmoid(s' + b) weights instead of softmax
#endif
#define NA_SCORE_MOD (NA_SOFTCAP || NA_ALIBI || NA_BIAS || NA_LOWRANK)

typedef NA_TYPE_AS(NA_BIAS_DTYPE) na_bias_elem;
typedef NA_TYPE_AS(NA_U_DTYPE) na_u_elem;
typedef NA_TYPE_AS(NA_W_DTYPE) na_w_elem;

// What one query row needs to modify its scores, computed once per row.
typedef struct na_score_row
{
    na_i64 bias;     // element offset of Bias[b, h, row, 0]
    na_i64 u;        // element offset of U[b, h, row, 0]
    na_i64 w;        // element offset of W[b, h, 0, 0]
    float alibi;     // slope_h * log2(e)
    int aligned;     // row + nk - nq, the row's absolute position
    int ok;          // row < nq: only then are Bias and U read
} na_score_row;

NA_INLINE na_score_row na_score_row_init(const na_flash_params p, const NA_GLOBAL float* slopes, int b, int h, int row)
{
    na_score_row r;
    r.ok = row < p.qkvo.nq;
    r.aligned = row + p.qkvo.nk - p.qkvo.nq;
    r.bias = p.bias_offset + b * p.bias_stride_b + h * p.bias_stride_h + (na_i64)row * p.bias_stride_n;
    r.u = p.u_offset + b * p.u_stride_b + h * p.u_stride_h + (na_i64)row * p.u_stride_n;
    r.w = p.w_offset + b * p.w_stride_b + h * p.w_stride_h;
#if NA_ALIBI
    r.alibi = slopes[p.alibi_offset + b * p.alibi_stride_b + h * p.alibi_stride_h] * NA_LOG2E;
#else
    r.alibi = 0.0f;
#endif
    return r;
}

// The base-2 score s2 of (row, key) after every score option; keys >= nk and rows >= nq are left alone (the
// caller masks them or never writes them).
NA_INLINE float na_score_mod(float s2, int key, const na_score_row r, const na_flash_params p,
                             const NA_GLOBAL na_bias_elem* bias, const NA_GLOBAL na_u_elem* u, const NA_GLOBAL na_w_elem* w)
{
#if NA_SOFTCAP
    s2 = na_softcap(s2, p.softcap_log2);
#endif
#if NA_ALIBI
    s2 = na_alibi(s2, r.alibi, r.aligned - key);
#endif
#if NA_BIAS || NA_LOWRANK
    if (r.ok && key < p.qkvo.nk)
    {
#if NA_BIAS
        s2 += NA_LOAD_AS(NA_BIAS_DTYPE, bias, r.bias + key * p.bias_stride_k) * NA_LOG2E;
#endif
#if NA_LOWRANK
        const na_i64 wk = r.w + key * p.w_stride_n;
        float dot = 0.0f;
        for (int c = 0; c < p.rank; c++)
            dot += NA_LOAD_AS(NA_U_DTYPE, u, r.u + c * p.u_stride_r) * NA_LOAD_AS(NA_W_DTYPE, w, wk + c * p.w_stride_r);
        s2 += dot * NA_LOG2E;
#endif
    }
#endif
    return s2;
}
