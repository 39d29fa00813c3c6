// The in-chunk cumulative log2 gate that the chunked linear and delta-rule kernels share (one work-item per token).
#ifndef NA_CHUNK_SCAN_H
#define NA_CHUNK_SCAN_H

#if NA_CUDA
#define NA_CHUNK_SCAN_PTR float*   // CUDA: a generic pointer reaches shared memory
#else
#define NA_CHUNK_SCAN_PTR __local float*
#endif

// b_t = sum_{r <= t} log2 g_r inside a chunk of l tokens, work-item t passing log2 g_t (0 past the chunk): every
// work-item adds the same terms in the same order, so the sums agree bit for bit, and past the chunk's end it gets
// b_{l-1}. On return b[t] holds b_t for every t of the group. Every work-item of the group calls it (it holds
// barriers), so the caller's stores to shared memory before the call are visible to the whole group after it.
NA_INLINE float na_chunk_log2_prefix(NA_CHUNK_SCAN_PTR b, int t, int l, float log2_gate)
{
    b[t] = log2_gate;
    NA_BARRIER();
    float bt = 0.0f;
    for (int r = 0; r < l; r++) bt += r <= t ? b[r] : 0.0f;
    NA_BARRIER();
    b[t] = bt;
    NA_BARRIER();
    return bt;
}

#endif
