// The kernel vocabulary mapped to CUDA C (NVRTC). Kernels never use CUDA keywords directly.
#define NA_CUDA 1
#define NA_OPENCL 0

#define NA_KERNEL extern "C" __global__
#define NA_WORKGROUP(threads) __launch_bounds__(threads)
#define NA_GLOBAL
#define NA_SHARED __shared__
#define NA_RESTRICT __restrict__
#define NA_INLINE static __device__ __forceinline__
#define NA_BARRIER() __syncthreads()
#define NA_LOCAL_ID(d) ((int)((d) == 0 ? threadIdx.x : (d) == 1 ? threadIdx.y : threadIdx.z))
#define NA_GROUP_ID(d) ((int)((d) == 0 ? blockIdx.x : (d) == 1 ? blockIdx.y : blockIdx.z))
#define NA_NUM_GROUPS(d) ((int)((d) == 0 ? gridDim.x : (d) == 1 ? gridDim.y : gridDim.z))
// NVRTC has no __builtin_offsetof and no <stddef.h>: the classic null-pointer form.
#define NA_OFFSETOF(type, field) ((int)(unsigned long long)&(((type*)0)->field))

#define NA_INFINITY __int_as_float(0x7f800000)
#define NA_EXP2(x) exp2f(x)
#define NA_LOG2(x) log2f(x)
#define NA_FMAX(a, b) fmaxf(a, b)
#define NA_EXP(x) expf(x)
#define NA_LOG1P(x) log1pf(x)
#define NA_TANH(x) tanhf(x)
#define NA_AS_FLOAT(u) __uint_as_float(u)
#define NA_AS_UINT(f) __float_as_uint(f)

typedef long long na_i64;
typedef unsigned short na_u16;
typedef unsigned int na_u32;
