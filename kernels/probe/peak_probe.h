// GPU peak probes, one kernel per NA_PROBE_KIND, timed by the host (Gpu/Probe/GpuPeakProbe.cs) so that reports give
// "% of peak" on GPUs as they do on the CPU:
//   0  fp32 FMA throughput: NA_PROBE_CHAINS independent FMA chains per thread (2 FLOPs each per trip);
//   1  tensor-core throughput (CUDA, sm_80+): NA_PROBE_CHAINS independent mma.sync m16n8k16 accumulators per warp,
//      fp16 or bf16 inputs (NA_DTYPE) with float accumulators, 2 * 16 * 8 * 16 FLOPs per mma;
//   2  streaming read bandwidth: a grid-stride sum over float4 elements, one partial per work-item.
// Each result is stored only if it equals p.sentinel, which it never does: the work stays live, the stores never
// happen, and the buffer `out` is never written.
#include "common/dtype.h"
#include "probe/probe_params.h"

#ifndef NA_PROBE_KIND
#define NA_PROBE_KIND 0
#endif
#ifndef NA_PROBE_THREADS
#define NA_PROBE_THREADS 256
#endif
#ifndef NA_PROBE_CHAINS
#define NA_PROBE_CHAINS 8
#endif

#if NA_PROBE_KIND == 1
#include "common/mma_sm80.h"
#endif

#if NA_CUDA
#define NA_PROBE_FMA(a, b, c) fmaf(a, b, c)
#else
#define NA_PROBE_FMA(a, b, c) fma(a, b, c)
#endif

NA_KERNEL NA_WORKGROUP(NA_PROBE_THREADS) void na_peak_probe(
    const NA_GLOBAL float* NA_RESTRICT src, NA_GLOBAL float* NA_RESTRICT out, const na_probe_params p)
{
    const int tid = NA_LOCAL_ID(0);
    const na_i64 item = (na_i64)NA_GROUP_ID(0) * NA_PROBE_THREADS + tid;
#if NA_PROBE_KIND == 0
    float acc[NA_PROBE_CHAINS];
    for (int c = 0; c < NA_PROBE_CHAINS; c++) acc[c] = (float)(tid + c) * 1e-3f;
    const float m = 0.9999f, a = 1e-7f;
    for (int i = 0; i < p.iterations; i++)
    {
#if NA_CUDA
#pragma unroll
#endif
        for (int c = 0; c < NA_PROBE_CHAINS; c++) acc[c] = NA_PROBE_FMA(acc[c], m, a);
    }
    float total = 0.0f;
    for (int c = 0; c < NA_PROBE_CHAINS; c++) total += acc[c];
    if (total == p.sentinel) out[item] = total;
#elif NA_PROBE_KIND == 1
#if NA_CUDA
    float acc[NA_PROBE_CHAINS][4];
    for (int c = 0; c < NA_PROBE_CHAINS; c++)
        for (int e = 0; e < 4; e++) acc[c][e] = 0.0f;
    // Fragments of small values; their content does not matter to the throughput.
    const unsigned fa[4] = { na_pack2(1e-3f * tid, 1e-3f), na_pack2(2e-3f, 1e-3f * tid), na_pack2(3e-3f, 1e-3f), na_pack2(1e-3f, 4e-3f) };
    const unsigned fb0 = na_pack2(1e-3f, 2e-3f), fb1 = na_pack2(1e-3f * tid, 1e-3f);
    for (int i = 0; i < p.iterations; i++)
    {
#pragma unroll
        for (int c = 0; c < NA_PROBE_CHAINS; c++) na_mma_16816(acc[c], fa, fb0, fb1);
    }
    float total = 0.0f;
    for (int c = 0; c < NA_PROBE_CHAINS; c++) total += acc[c][0] + acc[c][1] + acc[c][2] + acc[c][3];
    if (total == p.sentinel) out[item] = total;
#endif
#else
    const na_i64 stride = (na_i64)NA_NUM_GROUPS(0) * NA_PROBE_THREADS;
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    const NA_GLOBAL float4* NA_RESTRICT src4 = (const NA_GLOBAL float4*)src;
    for (na_i64 e = item; e < p.elements; e += stride)
    {
        const float4 v = src4[e];   // one 16-byte load per work-item, adjacent work-items adjacent
        s0 += v.x; s1 += v.y; s2 += v.z; s3 += v.w;
    }
    const float total = s0 + s1 + s2 + s3;
    if (total == p.sentinel) out[item] = total;
#endif
}
