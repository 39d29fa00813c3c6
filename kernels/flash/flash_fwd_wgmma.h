// Flash attention forward for Hopper (CUDA sm_90a only, f16/bf16 storage, float accumulation, Dqk == Dv in
// {64, 128, 256}), in the FlashAttention-3 style. Not run on a GPU yet: the host checks it against the mma.sync kernel
// once per context before using it (Gpu/Flash/WgmmaSelfCheck.cs).
//
// Block: 128 query rows of one (batch, head), 384 threads = three warpgroups.
// - Warpgroup 0 is the producer. It gives registers back (setmaxnreg.dec to 24) and one thread issues every load as a
//   TMA box copy (cp.async.bulk.tensor, 4-D tensor maps over [B][H][N][D] with arbitrary batch/head/token strides,
//   passed in the __grid_constant__ parameter): Q once, then K and V tiles of NA_BLOCK_N keys into an
//   NA_WGMMA_STAGES-deep ring. Each stage has "K full" and "V full" mbarriers (expect_tx of the box bytes, completed
//   by the copy) and "K free" and "V free" mbarriers the 256 consumer threads arrive on when their Q K^T (resp. P V)
//   no longer reads the tile; the producer waits for them before refilling, so the next K streams in while the
//   previous V is still being read. Rows past Nq and keys past Nk come back as zeros (TMA bounds).
// - Warpgroups 1 and 2 are consumers (setmaxnreg.inc to 240), each owning 64 query rows. Shared tiles are stored as
//   64-element (128-byte) column blocks of rows x 128 bytes with the 128-byte swizzle TMA writes and wgmma reads
//   (1024-byte atoms of 8 rows). S = Q K^T is wgmma m64nNk16 with both operands in shared memory (K-major
//   descriptors); O += P V is wgmma with P from registers (the S accumulators packed to 16 bits are exactly the A
//   fragments) and V through a transposed (N-major) descriptor.
// - Intra-warpgroup overlap: in iteration j a consumer issues S_j = Q K_j^T, then O += P_{j-1} V_{j-1}, waits only
//   for S_j (and frees K_j), runs the scores/mask/softmax statistics of tile j while P V is still in flight, then
//   waits for P V, frees V_{j-1}, rescales O and packs P_j.
// - Inter-warpgroup ping-pong: named barriers 1 and 2 make the two consumers issue their GEMMs in turn, so one
//   consumer's softmax runs while the other's GEMMs occupy the tensor cores.
// - Masking and score options are the shared ones (common/masking.h, flash/flash_score_mod.h, the softmax steps of
//   common/mma_attention.h): the same code the mma.sync kernel and, for masking and scores, the OpenCL path run.
//   Tiles outside the block's visible key range are never loaded; tiles inside every row's range skip the mask.
// - Epilogue: O (normalised, sinks joined) goes through the warpgroup's own Q rows of shared memory (swizzled) and
//   leaves as coalesced 16-byte stores, rows past Nq skipped; LSE is written by one lane per row.
// Host requirements (GpuFlash / WgmmaSelection): feature stride 1, 16-byte aligned base addresses and strides.
#if NA_CUDA
#if !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "the wgmma flash kernel needs --gpu-architecture=sm_90a or compute_90a (NVRTC 12)"
#endif
#include "common/mma_sm80.h"
#include "common/sm90.h"

#ifndef NA_WGMMA_STAGES
#define NA_WGMMA_STAGES 2
#endif
// flash_fwd_mma.h, which includes this file, has included common/mma_attention.h with NA_D = NA_HEAD_DIM_QK, NA_MT = 1
// (16 rows per warp) and NA_Q_IN_REGS = 0.
#include "common/mma_attention.h"

#define NA_WG_BM 128                              // query rows per block: two consumer warpgroups x 64
#define NA_WG_THREADS 384                         // producer + two consumers
#define NA_WG_CB (NA_D / 64)                      // 128-byte column blocks per row
#define NA_WG_Q_BYTES (NA_WG_BM * NA_D * 2)
#define NA_WG_KV_BYTES (NA_BLOCK_N * NA_D * 2)    // one K or V tile
#define NA_WG_SS NA_CAT(na_wgmma_ss_, NA_BLOCK_N)
#define NA_WG_RS NA_CAT(na_wgmma_rs_, NA_D)

#if NA_D % 64 != 0 || NA_D > 256 || NA_HEAD_DIM_V != NA_D
#error "the wgmma flash kernel needs Dqk == Dv in {64, 128, 256}"
#endif
#if NA_BLOCK_N != 64 && NA_BLOCK_N != 128
#error "the wgmma flash kernel takes 64- or 128-key tiles"
#endif

// The kernel's by-value parameter: the Q, K and V tensor maps (cuTensorMapEncodeTiled, box 64 x rows x 1 x 1,
// 128-byte swizzle), then the flash parameters. Mirrored by managed/NativeAttention/Gpu/Flash/WgmmaTensorMaps.cs.
typedef struct na_flash_wgmma_params
{
    na_tensor_map q;
    na_tensor_map k;
    na_tensor_map v;
    na_flash_params p;
} na_flash_wgmma_params;
// The host (GpuFlash.WgmmaParamBytes) writes the maps at 0, 128 and 256, the flash parameters at 384 and pads the whole
// to the maps' 64-byte alignment.
static_assert(sizeof(na_tensor_map) == 128 && alignof(na_tensor_map) == 64, "CUtensorMap is 128 bytes, 64-byte aligned");
static_assert(sizeof(na_flash_wgmma_params) == (3 * 128 + sizeof(na_flash_params) + 63) / 64 * 64, "na_flash_wgmma_params layout");

// S = Q K^T of this warpgroup's 64 rows (qa: their first row in column block 0) against the tile kt, issued and
// committed as one wgmma group.
NA_INLINE void na_wg_scores(float sacc[NA_BLOCK_N / 8][4], unsigned qa, unsigned kt)
{
    NA_WG_KEEP_ALL(sacc, NA_BLOCK_N);
    na_wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < NA_D / 16; kk++)
    {
        // 16 features = 32 bytes inside a 128-byte swizzled row; every 4 steps the next column block.
        const unsigned long long da = na_wgmma_desc(qa + (kk >> 2) * (NA_WG_BM * 128) + (kk & 3) * 32, 16, 1024);
        const unsigned long long db = na_wgmma_desc(kt + (kk >> 2) * (NA_BLOCK_N * 128) + (kk & 3) * 32, 16, 1024);
        NA_WG_SS(sacc, da, db, kk > 0);
    }
    na_wgmma_commit();
    NA_WG_KEEP_ALL(sacc, NA_BLOCK_N);
}

// O += P V over the tile vt (keys x features, N-major for wgmma: 16 keys = two 8-row atom groups 1024 bytes apart,
// column blocks NA_BLOCK_N x 128 bytes apart), issued and committed as one wgmma group.
NA_INLINE void na_wg_pv(float oacc[NA_D / 8][4], unsigned pf[NA_BLOCK_N / 16][4], unsigned vt)
{
    NA_WG_KEEP_ALL(oacc, NA_D);
    na_wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < NA_BLOCK_N / 16; kk++)
        NA_WG_RS(oacc, pf[kk], na_wgmma_desc(vt + kk * 16 * 128, NA_BLOCK_N * 128, 1024));
    na_wgmma_commit();
    NA_WG_KEEP_ALL(oacc, NA_D);
}

// Keeps the P fragments live (unchanged, in place) until the P V group that reads them has completed.
NA_INLINE void na_wg_keep_p(unsigned pf[NA_BLOCK_N / 16][4])
{
#pragma unroll
    for (int kk = 0; kk < NA_BLOCK_N / 16; kk++)
        asm volatile("" : "+r"(pf[kk][0]), "+r"(pf[kk][1]), "+r"(pf[kk][2]), "+r"(pf[kk][3]) :: "memory");
}

// Scales, modifies and masks the scores of the tile at key n0 (the mma.sync kernel's per-element step), then runs
// the softmax statistics (or sigmoid weights); alpha gets the factor O still needs.
NA_INLINE void na_wg_score_tile(float sacc[NA_BLOCK_N / 8][4], int n0, int lane, int full, const int rs[2], const int re[2],
#if NA_SCORE_MOD
    const na_score_row sr[2],
#endif
    const na_flash_params& p, const na_bias_elem* NA_RESTRICT bias, const na_u_elem* NA_RESTRICT lr_u,
    const na_w_elem* NA_RESTRICT lr_w, float mrow[2], float lrow[2], float alpha[2])
{
#pragma unroll
    for (int i = 0; i < NA_BLOCK_N / 8; i++)
#pragma unroll
        for (int e = 0; e < 4; e++)
        {
            const int key = n0 + i * 8 + 2 * (lane & 3) + (e & 1);
            float s = sacc[i][e] * p.scale_log2;
#if NA_SCORE_MOD
            s = na_score_mod(s, key, sr[e >> 1], p, bias, lr_u, lr_w);
#endif
            if (!full && (key < rs[e >> 1] || key >= re[e >> 1])) s = -NA_INFINITY;
            sacc[i][e] = s;
        }
#if NA_SIGMOID
    na_mma_sigmoid(sacc, mrow, lrow, p.sigmoid_bias);
    alpha[0] = alpha[1] = 1.0f;
#else
    na_mma_softmax_stats(sacc, mrow, lrow, alpha);
#endif
}

NA_KERNEL void __launch_bounds__(NA_WG_THREADS, 1) na_flash_fwd(
    const na_elem* NA_RESTRICT q, const na_elem* NA_RESTRICT k, const na_elem* NA_RESTRICT v,
    na_elem* NA_RESTRICT o, float* NA_RESTRICT lse,
    const na_bias_elem* NA_RESTRICT bias, const na_u_elem* NA_RESTRICT lr_u, const na_w_elem* NA_RESTRICT lr_w,
    const float* NA_RESTRICT slopes, const float* NA_RESTRICT sinks, const __grid_constant__ na_flash_wgmma_params w)
{
    extern __shared__ __align__(1024) unsigned char na_smem_raw[];
    __shared__ __align__(8) unsigned long long na_bars[1 + 4 * NA_WGMMA_STAGES];
    const na_flash_params& p = w.p;

    // 128-byte swizzle atoms must sit on 1024-byte boundaries: the host asks for 1 KiB of slack.
    const unsigned raw = na_smem_address(na_smem_raw);
    const unsigned base = (raw + 1023u) & ~1023u;
    unsigned char* const smem = na_smem_raw + (base - raw);
    const unsigned qs = base;                                          // [NA_WG_CB][128 rows][64]
    const unsigned ks = qs + NA_WG_Q_BYTES;                            // [stage][NA_WG_CB][NA_BLOCK_N][64]
    const unsigned vs = ks + NA_WGMMA_STAGES * NA_WG_KV_BYTES;
    const unsigned bar_q = na_smem_address(&na_bars[0]);
#define NA_BAR_K(s) (bar_q + 8u * (1 + (s)))
#define NA_BAR_V(s) (bar_q + 8u * (1 + NA_WGMMA_STAGES + (s)))
#define NA_BAR_K_FREE(s) (bar_q + 8u * (1 + 2 * NA_WGMMA_STAGES + (s)))
#define NA_BAR_V_FREE(s) (bar_q + 8u * (1 + 3 * NA_WGMMA_STAGES + (s)))

    const int tid = threadIdx.x, wg = tid >> 7;
    // Grid x holds (b * Hq + h, query block), query blocks fastest; causal blocks near the end start first.
    const int blocks_m = (p.qkvo.nq + NA_WG_BM - 1) / NA_WG_BM;
    const int bh = (int)blockIdx.x / blocks_m;
    const int b = bh / p.qkvo.heads_q;
    const int h = bh - b * p.qkvo.heads_q;
    const int hk = h / p.qkvo.group;
    const int m0 = (blocks_m - 1 - ((int)blockIdx.x - bh * blocks_m)) * NA_WG_BM;
#if NA_MASKED
    const int last = (m0 + NA_WG_BM < p.qkvo.nq ? m0 + NA_WG_BM : p.qkvo.nq) - 1;
    const int tile_start = na_key_start(m0, p.qkvo.nq, p.qkvo.nk, p.window_left);
    const int tile_end = na_key_end(last, p.qkvo.nq, p.qkvo.nk, p.window_right, p.causal);
    const int full_start = na_key_start(last, p.qkvo.nq, p.qkvo.nk, p.window_left);
    const int full_end = na_key_end(m0, p.qkvo.nq, p.qkvo.nk, p.window_right, p.causal);
#else
    const int tile_start = 0, tile_end = p.qkvo.nk, full_start = 0, full_end = p.qkvo.nk;
#endif
    const int n_first = (tile_start / NA_BLOCK_N) * NA_BLOCK_N;
    const int tiles = n_first < tile_end ? (tile_end - n_first + NA_BLOCK_N - 1) / NA_BLOCK_N : 0;

    if (tid == 0)
    {
        na_mbar_init(bar_q, 1);
#pragma unroll
        for (int s = 0; s < NA_WGMMA_STAGES; s++)
        {
            na_mbar_init(NA_BAR_K(s), 1);
            na_mbar_init(NA_BAR_V(s), 1);
            na_mbar_init(NA_BAR_K_FREE(s), 2 * 128);
            na_mbar_init(NA_BAR_V_FREE(s), 2 * 128);
        }
        na_mbar_init_fence();
    }
    __syncthreads();

    if (wg == 0)
    {
        // Producer: one thread issues every copy; the rest of the warpgroup only gives its registers back.
        NA_SETMAXNREG_DEC(24);
        if (tid == 0 && tiles > 0)
        {
            na_tma_prefetch_map(&w.q);
            na_tma_prefetch_map(&w.k);
            na_tma_prefetch_map(&w.v);
            na_mbar_arrive_expect_tx(bar_q, NA_WG_Q_BYTES);
#pragma unroll
            for (int cb = 0; cb < NA_WG_CB; cb++) na_tma_load_4d(qs + cb * (NA_WG_BM * 128), &w.q, bar_q, cb * 64, m0, h, b);
            for (int j = 0; j < tiles; j++)
            {
                const int s = j % NA_WGMMA_STAGES, n0 = n_first + j * NA_BLOCK_N;
                const unsigned freed = (unsigned)((j / NA_WGMMA_STAGES - 1) & 1);
                if (j >= NA_WGMMA_STAGES) na_mbar_wait(NA_BAR_K_FREE(s), freed);
                na_mbar_arrive_expect_tx(NA_BAR_K(s), NA_WG_KV_BYTES);
#pragma unroll
                for (int cb = 0; cb < NA_WG_CB; cb++)
                    na_tma_load_4d(ks + s * NA_WG_KV_BYTES + cb * (NA_BLOCK_N * 128), &w.k, NA_BAR_K(s), cb * 64, n0, hk, b);
                if (j >= NA_WGMMA_STAGES) na_mbar_wait(NA_BAR_V_FREE(s), freed);
                na_mbar_arrive_expect_tx(NA_BAR_V(s), NA_WG_KV_BYTES);
#pragma unroll
                for (int cb = 0; cb < NA_WG_CB; cb++)
                    na_tma_load_4d(vs + s * NA_WG_KV_BYTES + cb * (NA_BLOCK_N * 128), &w.v, NA_BAR_V(s), cb * 64, n0, hk, b);
            }
        }
        return;
    }

    NA_SETMAXNREG_INC(240);
    const int c = wg - 1;                     // consumer index: block rows 64 c .. 64 c + 63
    const int t = tid - 128 * wg, warp = t >> 5, lane = t & 31;
    const int wrow = 64 * c + 16 * warp;      // this warp's first block row; lane rows + lane / 4 (+ 8)
    int rs[2], re[2];
#pragma unroll
    for (int hf = 0; hf < 2; hf++)
    {
        const int row = m0 + wrow + 8 * hf + (lane >> 2);
#if NA_MASKED
        rs[hf] = na_key_start(row, p.qkvo.nq, p.qkvo.nk, p.window_left);
        re[hf] = row < p.qkvo.nq ? na_key_end(row, p.qkvo.nq, p.qkvo.nk, p.window_right, p.causal) : 0;
#else
        rs[hf] = 0;
        re[hf] = row < p.qkvo.nq ? p.qkvo.nk : 0;
#endif
    }
#if NA_SCORE_MOD
    na_score_row sr[2];
#pragma unroll
    for (int hf = 0; hf < 2; hf++) sr[hf] = na_score_row_init(p, slopes, b, h, m0 + wrow + 8 * hf + (lane >> 2));
#define NA_WG_SR sr,
#else
#define NA_WG_SR
#endif

    float oacc[NA_MT][NA_D / 8][4];
    float mrow[NA_MT][2], lrow[NA_MT][2];
    na_mma_init_state(oacc, mrow, lrow);

    if (tiles > 0)
    {
        const unsigned qa = qs + 64 * c * 128;
        float sacc[NA_BLOCK_N / 8][4];
        unsigned pf[NA_BLOCK_N / 16][4];
        float alpha[2];
        na_mbar_wait(bar_q, 0);
        if (c == 1) na_named_arrive(1, 256);   // consumer 0 issues first

        // Tile 0: scores only (O is still zero).
        na_mbar_wait(NA_BAR_K(0), 0);
        na_named_sync(1 + c, 256);
        na_wg_scores(sacc, qa, ks);
        if (c == 0 || tiles > 1) na_named_arrive(2 - c, 256);
        NA_WGMMA_WAIT(0);
        NA_WG_KEEP_ALL(sacc, NA_BLOCK_N);
        na_mbar_arrive(NA_BAR_K_FREE(0));   // K of tile 0 is no longer read
        na_wg_score_tile(sacc, n_first, lane, n_first >= full_start && n_first + NA_BLOCK_N <= full_end, rs, re, NA_WG_SR
                         p, bias, lr_u, lr_w, mrow[0], lrow[0], alpha);
        na_mma_pack_p(pf, sacc);

        for (int j = 1; j < tiles; j++)
        {
            const int s = j % NA_WGMMA_STAGES, prev = (j - 1) % NA_WGMMA_STAGES, n0 = n_first + j * NA_BLOCK_N;
            na_mbar_wait(NA_BAR_K(s), (unsigned)((j / NA_WGMMA_STAGES) & 1));
            na_named_sync(1 + c, 256);
            na_wg_scores(sacc, qa, ks + s * NA_WG_KV_BYTES);
            na_mbar_wait(NA_BAR_V(prev), (unsigned)(((j - 1) / NA_WGMMA_STAGES) & 1));
            na_wg_pv(oacc[0], pf, vs + prev * NA_WG_KV_BYTES);
            if (c == 0 || j < tiles - 1) na_named_arrive(2 - c, 256);
            NA_WGMMA_WAIT(1);   // S_j is ready; P_{j-1} V_{j-1} may still run
            NA_WG_KEEP_ALL(sacc, NA_BLOCK_N);
            na_mbar_arrive(NA_BAR_K_FREE(s));   // K of tile j is no longer read: the producer may refill it
            na_wg_score_tile(sacc, n0, lane, n0 >= full_start && n0 + NA_BLOCK_N <= full_end, rs, re, NA_WG_SR
                             p, bias, lr_u, lr_w, mrow[0], lrow[0], alpha);
            NA_WGMMA_WAIT(0);
            NA_WG_KEEP_ALL(oacc[0], NA_D);
            na_wg_keep_p(pf);
            na_mbar_arrive(NA_BAR_V_FREE(prev));   // V of tile j - 1 is no longer read
#if !NA_SIGMOID
            na_mma_rescale(oacc[0], alpha);
#endif
            na_mma_pack_p(pf, sacc);
        }
        const int s_last = (tiles - 1) % NA_WGMMA_STAGES;
        na_mbar_wait(NA_BAR_V(s_last), (unsigned)(((tiles - 1) / NA_WGMMA_STAGES) & 1));
        na_wg_pv(oacc[0], pf, vs + s_last * NA_WG_KV_BYTES);
        NA_WGMMA_WAIT(0);
        NA_WG_KEEP_ALL(oacc[0], NA_D);
        na_wg_keep_p(pf);
    }

    // Epilogue: normalise, stage O in this warpgroup's Q rows (swizzled like them), then coalesced 16-byte stores.
    na_named_sync(3 + c, 128);   // every warp of this warpgroup is past its last wgmma read of Q
    na_fence_proxy_async();
#pragma unroll
    for (int hf = 0; hf < 2; hf++)
    {
        const int r = wrow + 8 * hf + (lane >> 2);   // block row
        const int row = m0 + r;
#if NA_SIGMOID
        const float m = na_quad_max(mrow[0][hf]);
        const float l = na_quad_sum(lrow[0][hf] > 0.0f ? lrow[0][hf] * na_fast_exp2(mrow[0][hf] - m) : 0.0f);
        const float inv = 1.0f;
#else
        float m = mrow[0][hf];
        float l = na_quad_sum(lrow[0][hf]);
#if NA_SINKS
        // The sink joins max and denominator only; a row without visible keys stays zeros and LSE = -inf.
        const float alpha_s = na_join_sink(&m, &l, sinks[p.sinks_offset + h * p.sinks_stride_h] * NA_LOG2E);
        const float inv = l > 0.0f ? alpha_s / l : 0.0f;
#else
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#endif
#endif
#pragma unroll
        for (int i = 0; i < NA_D / 8; i++)
        {
            unsigned char* at = smem + (i >> 3) * (NA_WG_BM * 128) + r * 128 + (((i & 7) ^ (r & 7)) << 4) + 4 * (lane & 3);
            *(unsigned*)at = na_pack2(oacc[0][i][2 * hf] * inv, oacc[0][i][2 * hf + 1] * inv);
        }
        if (p.has_lse && (lane & 3) == 0 && row < p.qkvo.nq)
            lse[p.qkvo.lse_offset + b * p.qkvo.lse_stride_b + h * p.qkvo.lse_stride_h + row * p.qkvo.lse_stride_n] = na_lse_from_base2(m, l);
    }
    na_named_sync(3 + c, 128);
    na_elem* ob = o + p.qkvo.o_offset + b * p.qkvo.o_stride_b + h * p.qkvo.o_stride_h;
#pragma unroll 4
    for (int idx = t; idx < 64 * (NA_D / 8); idx += 128)
    {
        const int r = 64 * c + idx / (NA_D / 8), ch = idx % (NA_D / 8);
        const int row = m0 + r;
        if (row >= p.qkvo.nq) continue;
        const uint4 value = *(const uint4*)(smem + (ch >> 3) * (NA_WG_BM * 128) + r * 128 + (((ch & 7) ^ (r & 7)) << 4));
        *(uint4*)(ob + row * p.qkvo.o_stride_n + ch * 8) = value;
    }
#undef NA_WG_SR
#undef NA_BAR_K
#undef NA_BAR_V
#undef NA_BAR_K_FREE
#undef NA_BAR_V_FREE
}

#endif
