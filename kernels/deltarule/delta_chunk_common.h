// What the two chunked delta-rule kernels share (deltarule/delta_chunk_prepare.h writes a chunk's column-independent
// quantities into a float32 scratch buffer, deltarule/delta_chunked.h reads them): sizes, helpers and the scratch layout.
//
// Per chunk of L tokens (L = p.chunk, the last chunk of a sequence may hold fewer, l) with B_t[f] the cumulative log2
// gate of token t inside the chunk (b_t for a scalar gate, 0 for DeltaNet; sums restarted every chunk, so every exponent
// taken is a difference B_t - B_s <= 0 or a B_t <= 0: nothing overflows and no cumulative product is ever formed):
//   A[t][s] = beta_t sum_f k_t[f] k_s[f] 2^(B_t[f] - B_s[f])      (s < t)
//   T       = (I + A)^-1, by forward substitution in float32;  Tb = T diag(beta)
//   W       = Tb (K . 2^B)                                         (L x Dk)
//   P[t][s] = scale sum_f q_t[f] k_s[f] 2^(B_t[f] - B_s[f])        (s <= t)
// (with per-key gates, A and P split 2^(B_t - B_s) at sub-chunk starts into two factors <= 1: delta_chunk_prepare.h)
// and, with S the state (Dk x Dv) at the chunk's start,
//   U   = Tb V - W S                       (the corrected values u_t of the token recurrence)
//   O   = scale (Q . 2^B) S + P U
//   S' = diag(2^(B_L)) S + (K . 2^(B_L - B))^T U
// which is S_t = G_t S_{t-1} + k_t u_t^T, u_t = beta_t (v_t - (G_t S_{t-1})^T k_t), o_t = scale S_t^T q_t unrolled
// over the chunk (fla's WY form: W = T diag(beta) K_decayed, U = T diag(beta) V - W S). Keys and queries are
// L2-normalised first when asked.
//
// Scratch of one (sequence, chunk of the launch's window, head), na_delta_chunk_floats(L, Dk) floats at
// ((sequence * p.chunk_count + chunk - p.chunk_first) * H + head) times that, every matrix token-minor so that the
// work-items of a work-group (one per token) read consecutive words:
//   TB [L][L]   Tb[t][s] at s L + t          (s <= t)
//   PT [L][L]   P[t][s] at s L + t           (s <= t)
//   WT [Dk][L]  W[t][f] at f L + t
//   QT [Dk][L]  scale q_t[f] 2^(B_t[f]) at f L + t
//   KT [Dk][L]  k_s[f] 2^(B_L[f] - B_s[f]) at f L + s
//   DL [Dk]     2^(B_L[f])
// Entries past the chunk's l tokens are never read.
#include "deltarule/delta_params.h"
#include "common/dtype.h"
#include "common/math.h"

#ifndef NA_DELTA_CHUNK
#define NA_DELTA_CHUNK 64   // the longest chunk = work-items per work-group of both kernels
#endif
#ifndef NA_DELTA_FB
#define NA_DELTA_FB 16      // key dimensions per staged block
#endif

#define NA_DELTA_LDM (NA_DELTA_CHUNK + 1)   // row stride of the L x L matrix (odd: no bank conflicts down a column)
#define NA_DELTA_LDF (NA_DELTA_FB + 1)      // row stride of the staged q, k and gate blocks

#if NA_CUDA
#define NA_DELTA_RSQRT(x) rsqrtf(x)
#define NA_DELTA_SHARED_PTR float*   // CUDA: a generic pointer reaches shared memory
#define NA_DELTA_UNROLL _Pragma("unroll")
#else
#define NA_DELTA_RSQRT(x) rsqrt(x)
#define NA_DELTA_SHARED_PTR __local float*
#define NA_DELTA_UNROLL
#endif

#define NA_DELTA_L2_EPS 1e-6f

// 2^x for an exponent that is <= 0 in exact arithmetic (clamped, so that rounding can never make it grow).
NA_INLINE float na_delta_decay(float x) { return NA_EXP2(x < 0.0f ? x : 0.0f); }

// Floats of one chunk's scratch: two L x L matrices, three Dk x L ones and the Dk decays.
NA_INLINE na_i64 na_delta_chunk_floats(int chunk, int dk) { return 2 * (na_i64)chunk * chunk + (3 * (na_i64)chunk + 1) * dk; }

// Where the scratch of window slot w (chunk p.chunk_first + w of its sequence) of sequence seq, head h starts, for a
// launch window of `count` chunks per sequence over `heads` heads.
NA_INLINE na_i64 na_delta_chunk_at(int seq, int w, int h, int count, int heads, int chunk, int dk)
{
    return (((na_i64)seq * count + w) * heads + h) * na_delta_chunk_floats(chunk, dk);
}
