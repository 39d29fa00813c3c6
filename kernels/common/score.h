// Score primitives, family-neutral: the per-element score options every softmax family applies in the order of
// DESIGN.md (softcap, ALiBi, then additive terms), and sigmoid scoring's weight. Scores are in base 2 (s2 = s log2 e),
// so every additive term arrives scaled by log2(e).
#include "common/math.h"

// Softcap c tanh(s / c), with c2 = c log2(e) for a base-2 score.
NA_INLINE float na_softcap(float s2, float c2) { return c2 * NA_TANH(s2 / c2); }

// ALiBi: the score minus slope2 |distance|, slope2 = slope log2(e), distance = query position - key position.
NA_INLINE float na_alibi(float s2, float slope2, int distance)
{
    return s2 - slope2 * (float)(distance < 0 ? -distance : distance);
}

// Sigmoid scoring of a modified base-2 score: the weight sigmoid(x) and log2 of it, x = s2 ln 2 + b, from one exp
// so that neither overflows (x = -inf gives weight 0 and log -inf).
NA_INLINE float na_sigmoid_weight(float s2, float bias, float* log2_weight)
{
    const float x = s2 * NA_LN2 + bias;
    const float t = NA_EXP(-(x < 0.0f ? -x : x));   // exp(-|x|) in (0, 1]
    *log2_weight = ((x < 0.0f ? x : 0.0f) - NA_LOG1P(t)) * NA_LOG2E;
    return (x < 0.0f ? t : 1.0f) / (1.0f + t);
}
