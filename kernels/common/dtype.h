// Storage element types: loads widen to float, stores round to nearest even. NA_DTYPE: 0 f32, 1 f16, 2 bf16.
#ifndef NA_DTYPE
#define NA_DTYPE 0
#endif

#if NA_DTYPE == 0
typedef float na_elem;
NA_INLINE float na_load(const NA_GLOBAL na_elem* p, na_i64 i) { return p[i]; }
NA_INLINE void na_store(NA_GLOBAL na_elem* p, na_i64 i, float v) { p[i] = v; }
#elif NA_DTYPE == 1 && NA_OPENCL
// vload_half/vstore_half need no cl_khr_fp16: half is only a storage type here.
typedef half na_elem;
NA_INLINE float na_load(const NA_GLOBAL na_elem* p, na_i64 i) { return vload_half((size_t)i, p); }
NA_INLINE void na_store(NA_GLOBAL na_elem* p, na_i64 i, float v) { vstore_half_rte(v, (size_t)i, p); }
#elif NA_DTYPE == 1
// Inline PTX instead of cuda_fp16.h, which older NVRTC releases do not ship as a built-in header.
typedef unsigned short na_elem;
NA_INLINE float na_load(const na_elem* p, na_i64 i)
{
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(p[i]));
    return f;
}
NA_INLINE void na_store(na_elem* p, na_i64 i, float v)
{
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    p[i] = h;
}
#else
typedef na_u16 na_elem;
NA_INLINE float na_load(const NA_GLOBAL na_elem* p, na_i64 i) { return NA_AS_FLOAT(((na_u32)p[i]) << 16); }
NA_INLINE void na_store(NA_GLOBAL na_elem* p, na_i64 i, float v)
{
    na_u32 u = NA_AS_UINT(v);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u)
        p[i] = (na_u16)((u >> 16) | 0x40u); // quiet NaN, sign kept
    else
        p[i] = (na_u16)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}
#endif

// Loads of option tensors (bias, low-rank factors), whose element type need not be NA_DTYPE:
// NA_LOAD_AS(t, p, i) reads element i of a na_t<t> array (t: 0 f32, 1 f16, 2 bf16) as float.
typedef float na_t0;
NA_INLINE float na_load_t0(const NA_GLOBAL na_t0* p, na_i64 i) { return p[i]; }
#if NA_OPENCL
typedef half na_t1;
NA_INLINE float na_load_t1(const NA_GLOBAL na_t1* p, na_i64 i) { return vload_half((size_t)i, p); }
#else
typedef unsigned short na_t1;
NA_INLINE float na_load_t1(const na_t1* p, na_i64 i)
{
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(p[i]));
    return f;
}
#endif
typedef na_u16 na_t2;
NA_INLINE float na_load_t2(const NA_GLOBAL na_t2* p, na_i64 i) { return NA_AS_FLOAT(((na_u32)p[i]) << 16); }
#define NA_CAT_(a, b) a##b
#define NA_CAT(a, b) NA_CAT_(a, b)
#define NA_TYPE_AS(t) NA_CAT(na_t, t)
#define NA_LOAD_AS(t, p, i) NA_CAT(na_load_t, t)(p, i)
