// The visible key range [start, end) of query row i: bottom-right causal alignment plus sliding window.
// Both bounds are non-decreasing in i, so a block of rows sees the union [start(first), end(last)).
NA_INLINE int na_key_start(int i, int nq, int nk, int window_left)
{
    na_i64 aligned = (na_i64)i + nk - nq;
    na_i64 start = window_left >= 0 ? aligned - window_left : 0;
    return (int)(start < 0 ? 0 : start > nk ? nk : start);
}

NA_INLINE int na_key_end(int i, int nq, int nk, int window_right, int causal)
{
    na_i64 aligned = (na_i64)i + nk - nq;
    na_i64 end = nk;
    if (window_right >= 0 && aligned + window_right + 1 < end) end = aligned + window_right + 1;
    if (causal && aligned + 1 < end) end = aligned + 1;
    return (int)(end < 0 ? 0 : end);
}
