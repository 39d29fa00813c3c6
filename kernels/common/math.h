// Math constants and -inf conventions shared by every kernel. Softmax bookkeeping runs in base 2 (scores s2 = s log2 e,
// exp2 instead of exp); LSEs leave the kernels in natural-log units.
#define NA_LOG2E 1.4426950408889634f    // log2(e): a natural-unit score or bias times this is in base 2
#define NA_LN2 0.69314718055994531f     // ln(2): a base-2 log times this is a natural log

// The running max to subtract before exp2: 0 for a row that has seen no visible key yet (max -inf), so that
// exp2(-inf - 0) gives 0, never NaN.
NA_INLINE float na_max_or_zero(float m2) { return m2 == -NA_INFINITY ? 0.0f : m2; }

// The natural-log LSE of a row from its base-2 running max m2 and its sum l of exp2(s2 - m2): -inf for a row without a
// visible key (l == 0).
NA_INLINE float na_lse_from_base2(float m2, float l) { return l > 0.0f ? (m2 + NA_LOG2(l)) * NA_LN2 : -NA_INFINITY; }
