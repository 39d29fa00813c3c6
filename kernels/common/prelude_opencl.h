// The kernel vocabulary mapped to OpenCL C 1.2. Kernels never use OpenCL keywords directly.
#define NA_CUDA 0
#define NA_OPENCL 1

#define NA_KERNEL __kernel
#define NA_WORKGROUP(threads) __attribute__((reqd_work_group_size(threads, 1, 1)))
#define NA_GLOBAL __global
#define NA_SHARED __local
#define NA_RESTRICT restrict
#define NA_INLINE static inline
#define NA_BARRIER() barrier(CLK_LOCAL_MEM_FENCE)
#define NA_LOCAL_ID(d) ((int)get_local_id(d))
#define NA_GROUP_ID(d) ((int)get_group_id(d))
#define NA_NUM_GROUPS(d) ((int)get_num_groups(d))
#define NA_OFFSETOF(type, field) ((int)__builtin_offsetof(type, field))

#define NA_INFINITY INFINITY
#define NA_EXP2(x) exp2(x)
#define NA_LOG2(x) log2(x)
#define NA_FMAX(a, b) fmax(a, b)
#define NA_EXP(x) exp(x)
#define NA_LOG1P(x) log1p(x)
#define NA_TANH(x) tanh(x)
#define NA_AS_FLOAT(u) as_float(u)
#define NA_AS_UINT(f) as_uint(f)

typedef long na_i64;
typedef ushort na_u16;
typedef uint na_u32;
