// Merging softmax states through their log-sum-exps, family-neutral: split-KV combine (decode/decode_combine.h),
// MergeStates (merge/merge_states.h) and attention sinks all reduce to these. A state with LSE -inf saw no key: it
// gets weight exactly 0 and its output is never read.
#include "common/math.h"

// log(exp(a) + exp(b)) in natural units, around the larger of the two; -inf when both are -inf.
NA_INLINE float na_log_add_exp(float a, float b)
{
    const float top = NA_FMAX(a, b);
    if (top == -NA_INFINITY) return -NA_INFINITY;
    return top + NA_LOG2(NA_EXP(a - top) + NA_EXP(b - top)) * NA_LN2;
}

// The merged LSE log sum_s exp(LSE_s) of the n partial LSEs lse[base + s * stride], computed around their max; -inf
// when every partial is -inf.
NA_INLINE float na_lse_merge(const NA_GLOBAL float* lse, na_i64 base, na_i64 stride, int n)
{
    float m = -NA_INFINITY;
    for (int s = 0; s < n; s++) m = NA_FMAX(m, lse[base + s * stride]);
    if (m == -NA_INFINITY) return -NA_INFINITY;
    float sum = 0.0f;
    for (int s = 0; s < n; s++) sum += NA_EXP(lse[base + s * stride] - m);
    return m + NA_LOG2(sum) * NA_LN2;
}

// The weight exp(LSE_s - LSE) of a partial in a merged result whose LSE is `total`: 0 for a partial with LSE -inf and
// for every partial of a row whose merged LSE is -inf, so that callers can skip reading its output.
NA_INLINE float na_lse_weight(float lse_s, float total)
{
    return total == -NA_INFINITY ? 0.0f : NA_EXP(lse_s - total);
}

// Joins an attention sink (a logit sink2 in base 2 that enters the denominator only) to a row's base-2 running max m2
// and sum l. Returns the factor the row's accumulated output must be scaled by. A row without visible keys (l == 0)
// is left alone: it stays zeros with LSE -inf.
NA_INLINE float na_join_sink(float* m2, float* l, float sink2)
{
    if (!(*l > 0.0f)) return 1.0f;
    const float m_all = NA_FMAX(*m2, sink2);
    const float alpha = NA_EXP2(*m2 - m_all);
    *l = *l * alpha + NA_EXP2(sink2 - m_all);
    *m2 = m_all;
    return alpha;
}
