// CUDA-only Hopper (sm_90a) primitives: mbarriers, TMA tensor loads, warpgroup register reallocation, named barriers
// and wgmma (warpgroup MMA, m64nNk16, f16/bf16 inputs by NA_DTYPE, float accumulators). Fragment layouts follow the
// PTX ISA's "Asynchronous Warpgroup Level Matrix" sections: accumulator d[i][e] of thread t of a warpgroup is row
// 16 (t / 32) + (t % 32) / 4 + 8 (e / 2), column 8 i + 2 (t % 4) + (e % 2), i.e. each warp holds the same fragment
// as an mma.sync m16n8 accumulator for its 16 rows; a register A operand is the m16n8k16 A fragment of those rows.
#ifndef NA_SM90_H
#define NA_SM90_H
#if NA_CUDA

// The opaque 128-byte CUtensorMap the driver's cuTensorMapEncodeTiled fills (64-byte aligned in parameter space).
typedef struct __align__(64) na_tensor_map
{
    unsigned long long opaque[16];
} na_tensor_map;

NA_INLINE void na_mbar_init(unsigned bar, unsigned count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" :: "r"(bar), "r"(count) : "memory");
}
// Makes mbarrier initialisation visible to the async proxy (TMA) before any thread uses the barriers.
NA_INLINE void na_mbar_init_fence() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
// One arrival that also announces bytes TMA will deliver to this phase.
NA_INLINE void na_mbar_arrive_expect_tx(unsigned bar, unsigned bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" :: "r"(bar), "r"(bytes) : "memory");
}
NA_INLINE void na_mbar_arrive(unsigned bar) { asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" :: "r"(bar) : "memory"); }
NA_INLINE int na_mbar_try_wait(unsigned bar, unsigned parity)
{
    unsigned done;
    asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(done) : "r"(bar), "r"(parity) : "memory");
    return (int)done;
}
// Waits until the phase with parity `parity` of the barrier has completed.
NA_INLINE void na_mbar_wait(unsigned bar, unsigned parity) { while (!na_mbar_try_wait(bar, parity)) { } }

NA_INLINE void na_tma_prefetch_map(const na_tensor_map* map)
{
    asm volatile("prefetch.tensormap [%0];\n" :: "l"((unsigned long long)map) : "memory");
}
// Loads the box at coordinates (c0 innermost .. c3) of a 4-D tensor map into shared memory at dst; completion (the
// box's bytes, out-of-bounds elements zero-filled) is signalled on the mbarrier bar.
NA_INLINE void na_tma_load_4d(unsigned dst, const na_tensor_map* map, unsigned bar, int c0, int c1, int c2, int c3)
{
    asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];\n"
                 :: "r"(dst), "l"((unsigned long long)map), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar) : "memory");
}

// Warpgroup register reallocation: every thread of the warpgroup executes it with the same constant.
#define NA_SETMAXNREG_DEC(n) asm volatile("setmaxnreg.dec.sync.aligned.u32 " #n ";\n" ::: "memory")
#define NA_SETMAXNREG_INC(n) asm volatile("setmaxnreg.inc.sync.aligned.u32 " #n ";\n" ::: "memory")

// Named barriers (ids 1..15; 0 is __syncthreads): sync waits for `threads` arrivals, arrive only adds its own.
NA_INLINE void na_named_sync(int id, int threads) { asm volatile("bar.sync %0, %1;\n" :: "r"(id), "r"(threads) : "memory"); }
NA_INLINE void na_named_arrive(int id, int threads) { asm volatile("bar.arrive %0, %1;\n" :: "r"(id), "r"(threads) : "memory"); }

// Orders this thread's generic-proxy shared-memory accesses with later async-proxy ones (and vice versa).
NA_INLINE void na_fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// A wgmma shared-memory matrix descriptor: start address, leading and stride byte offsets (all in 16-byte units, 14
// bits each) and the layout (bits 62-63; 1 = 128-byte swizzle, whose 8-row x 128-byte atoms must be 1024-byte aligned).
NA_INLINE unsigned long long na_wgmma_desc(unsigned address, unsigned leading_bytes, unsigned stride_bytes)
{
    return (unsigned long long)((address & 0x3FFFFu) >> 4) | ((unsigned long long)((leading_bytes >> 4) & 0x3FFFu) << 16) |
           ((unsigned long long)((stride_bytes >> 4) & 0x3FFFu) << 32) | (1ull << 62);
}

NA_INLINE void na_wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
NA_INLINE void na_wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// Waits until at most n committed wgmma groups of this warpgroup are pending.
#define NA_WGMMA_WAIT(n) asm volatile("wgmma.wait_group.sync.aligned " #n ";\n" ::: "memory")

// Keeps the compiler from moving reads or writes of accumulator registers across wgmma issue and wait points.
#define NA_WG_KEEP(x) asm volatile("" : "+f"(x) :: "memory")
#define NA_WG_KEEP_ALL(a, n)                                                                                           \
    do {                                                                                                               \
        _Pragma("unroll") for (int na_i_ = 0; na_i_ < (n) / 8; na_i_++)                                                 \
        {                                                                                                              \
            NA_WG_KEEP(a[na_i_][0]); NA_WG_KEEP(a[na_i_][1]); NA_WG_KEEP(a[na_i_][2]); NA_WG_KEEP(a[na_i_][3]);         \
        }                                                                                                              \
    } while (0)

#if NA_DTYPE == 2
#define NA_WG_TYPES ".f32.bf16.bf16"
#else
#define NA_WG_TYPES ".f32.f16.f16"
#endif

// Operand numbers of the accumulator lists below.
#define NA_WG_OPS_0_31 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define NA_WG_OPS_32_63 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define NA_WG_OPS_64_127 "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
// The "+f" operands of n/2 accumulators d[n/8][4] (n = 64, 128, 256).
#define NA_WG_ACC_64(d)                                                                                                \
    "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), \
    "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), \
    "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), \
    "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
#define NA_WG_ACC_128(d) NA_WG_ACC_64(d), NA_WG_ACC_64((d + 8))
#define NA_WG_ACC_256(d) NA_WG_ACC_128(d), NA_WG_ACC_128((d + 16))
#define NA_WG_D_64 "{" NA_WG_OPS_0_31 "}"
#define NA_WG_D_128 "{" NA_WG_OPS_0_31 ", " NA_WG_OPS_32_63 "}"
#define NA_WG_D_256 "{" NA_WG_OPS_0_31 ", " NA_WG_OPS_32_63 ", " NA_WG_OPS_64_127 "}"

// d (64 x n) (+)= A (64 x 16, K-major in shared memory) B^T (B n x 16, K-major in shared memory); scale_d = 0 ignores
// the old d. Operands after the n/2 accumulators: A descriptor, B descriptor, scale_d.
#define NA_WGMMA_SS(n, a0, a1, a2)                                                                                     \
    NA_INLINE void na_wgmma_ss_##n(float d[n / 8][4], unsigned long long da, unsigned long long db, int scale_d)      \
    {                                                                                                                  \
        asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %" #a2 ", 0;\n"                                                \
                     " wgmma.mma_async.sync.aligned.m64n" #n "k16" NA_WG_TYPES " " NA_WG_D_##n ", %" #a0 ", %" #a1      \
                     ", p, 1, 1, 0, 0;\n}\n"                                                                           \
                     : NA_WG_ACC_##n(d) : "l"(da), "l"(db), "r"(scale_d));                                             \
    }
NA_WGMMA_SS(64, 32, 33, 34)
NA_WGMMA_SS(128, 64, 65, 66)

// d (64 x n) += A (64 x 16 in registers, the m16n8k16 A fragment of each warp's rows) B (16 x n in shared memory,
// N-major: row k holds n contiguous elements, so transposed for wgmma). Operands after the accumulators: a[0..3],
// the B descriptor, then scale_d (always 1).
#define NA_WGMMA_RS(n, a0, a1, a2, a3, b, s)                                                                             \
    NA_INLINE void na_wgmma_rs_##n(float d[n / 8][4], const unsigned a[4], unsigned long long db)                      \
    {                                                                                                                  \
        asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %" #s ", 0;\n"                                                 \
                     " wgmma.mma_async.sync.aligned.m64n" #n "k16" NA_WG_TYPES " " NA_WG_D_##n ", {%" #a0 ", %" #a1     \
                     ", %" #a2 ", %" #a3 "}, %" #b ", p, 1, 1, 1;\n}\n"                                                 \
                     : NA_WG_ACC_##n(d) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));                \
    }
NA_WGMMA_RS(64, 32, 33, 34, 35, 36, 37)
NA_WGMMA_RS(128, 64, 65, 66, 67, 68, 69)
NA_WGMMA_RS(256, 128, 129, 130, 131, 132, 133)

#endif
#endif
