// CUDA-only tensor-core helpers (sm_80+): cp.async, ldmatrix, mma.sync m16n8k16 with float accumulators.
// Fragment layouts follow the PTX ISA's "Matrix Fragments for mma.m16n8k16".
#if NA_CUDA

NA_INLINE unsigned na_smem_address(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }

// Copies 16 bytes global -> shared without staging in registers; src_bytes = 0 writes zeros instead.
NA_INLINE void na_cp_async_16(unsigned dst, const void* src, int src_bytes)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
NA_INLINE void na_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
NA_INLINE void na_cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }
// Waits for all but the most recently committed group.
NA_INLINE void na_cp_async_wait_all_but_one() { asm volatile("cp.async.wait_group 1;\n" ::: "memory"); }

NA_INLINE void na_ldmatrix_x4(unsigned r[4], unsigned address)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address) : "memory");
}
NA_INLINE void na_ldmatrix_x4_trans(unsigned r[4], unsigned address)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address) : "memory");
}

// c += a (16x16, row-major) * b (16x8, column-major), float accumulators; storage type by NA_DTYPE.
NA_INLINE void na_mma_16816(float c[4], const unsigned a[4], unsigned b0, unsigned b1)
{
#if NA_DTYPE == 2
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
#else
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
#endif
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats rounded to the storage type, lo in the low half.
NA_INLINE unsigned na_pack2(float lo, float hi)
{
    unsigned r;
#if NA_DTYPE == 2
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
#else
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
#endif
    return r;
}

NA_INLINE float na_fast_exp2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

NA_INLINE float na_quad_max(float x)
{
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
NA_INLINE float na_quad_sum(float x)
{
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

#endif
