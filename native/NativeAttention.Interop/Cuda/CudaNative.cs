// CUDA driver API entry points the CUDA backend uses (the _v2 ABI), bound to libcuda / nvcuda.
using System.Runtime.InteropServices;

namespace NativeAttention.Interop.Cuda;

/// <summary>Raw CUDA driver API. Every function returns a <c>CUresult</c>; 0 is success.</summary>
public static unsafe partial class CudaNative
{
    private const string Lib = NativeLibraries.CudaName;

    static CudaNative() => NativeLibraries.EnsureRegistered();

    public const int Success = 0;
    public const int AttributeMaxSharedMemoryPerBlockOptin = 97;
    public const int AttributeComputeCapabilityMajor = 75;
    public const int AttributeComputeCapabilityMinor = 76;
    public const int AttributeMultiprocessorCount = 16;
    public const int FunctionAttributeMaxDynamicSharedSizeBytes = 8;
    public const uint StreamNonBlocking = 1;

    [LibraryImport(Lib)] public static partial int cuInit(uint flags);
    [LibraryImport(Lib)] public static partial int cuDriverGetVersion(int* version);
    [LibraryImport(Lib)] public static partial int cuGetErrorName(int error, byte** name);
    [LibraryImport(Lib)] public static partial int cuDeviceGetCount(int* count);
    [LibraryImport(Lib)] public static partial int cuDeviceGet(int* device, int ordinal);
    [LibraryImport(Lib)] public static partial int cuDeviceGetName(byte* name, int length, int device);
    [LibraryImport(Lib)] public static partial int cuDeviceGetAttribute(int* value, int attribute, int device);
    [LibraryImport(Lib, EntryPoint = "cuDeviceTotalMem_v2")] public static partial int cuDeviceTotalMem(nuint* bytes, int device);

    [LibraryImport(Lib)] public static partial int cuDevicePrimaryCtxRetain(IntPtr* context, int device);
    [LibraryImport(Lib, EntryPoint = "cuDevicePrimaryCtxRelease_v2")] public static partial int cuDevicePrimaryCtxRelease(int device);
    [LibraryImport(Lib)] public static partial int cuCtxSetCurrent(IntPtr context);
    [LibraryImport(Lib)] public static partial int cuCtxGetCurrent(IntPtr* context);
    [LibraryImport(Lib)] public static partial int cuCtxGetDevice(int* device);
    [LibraryImport(Lib, EntryPoint = "cuCtxPushCurrent_v2")] public static partial int cuCtxPushCurrent(IntPtr context);
    [LibraryImport(Lib, EntryPoint = "cuCtxPopCurrent_v2")] public static partial int cuCtxPopCurrent(IntPtr* context);

    [LibraryImport(Lib)] public static partial int cuStreamCreate(IntPtr* stream, uint flags);
    [LibraryImport(Lib, EntryPoint = "cuStreamDestroy_v2")] public static partial int cuStreamDestroy(IntPtr stream);
    [LibraryImport(Lib)] public static partial int cuStreamSynchronize(IntPtr stream);

    [LibraryImport(Lib, EntryPoint = "cuMemAlloc_v2")] public static partial int cuMemAlloc(ulong* devicePointer, nuint bytes);
    [LibraryImport(Lib, EntryPoint = "cuMemFree_v2")] public static partial int cuMemFree(ulong devicePointer);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyHtoDAsync_v2")] public static partial int cuMemcpyHtoDAsync(ulong destination, void* source, nuint bytes, IntPtr stream);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyDtoHAsync_v2")] public static partial int cuMemcpyDtoHAsync(void* destination, ulong source, nuint bytes, IntPtr stream);
    [LibraryImport(Lib)] public static partial int cuMemsetD8Async(ulong destination, byte value, nuint count, IntPtr stream);
    [LibraryImport(Lib)] public static partial int cuMemsetD16Async(ulong destination, ushort value, nuint count, IntPtr stream);
    [LibraryImport(Lib)] public static partial int cuMemsetD32Async(ulong destination, uint value, nuint count, IntPtr stream);

    [LibraryImport(Lib)] public static partial int cuModuleLoadData(IntPtr* module, void* image);
    [LibraryImport(Lib)] public static partial int cuModuleUnload(IntPtr module);
    [LibraryImport(Lib)] public static partial int cuModuleGetFunction(IntPtr* function, IntPtr module, byte* name);
    [LibraryImport(Lib)] public static partial int cuFuncSetAttribute(IntPtr function, int attribute, int value);
    /// <summary>
    /// Encodes a TMA tensor map (CUDA 12.0+ drivers). Bound on first call like every entry here, so older drivers only
    /// fail (EntryPointNotFoundException) if a caller uses it; the wgmma flash kernel runs only on sm_90 devices.
    /// </summary>
    [LibraryImport(Lib)] public static partial int cuTensorMapEncodeTiled(void* tensorMap, int dataType, uint rank, void* globalAddress,
        ulong* globalDims, ulong* globalStrides, uint* boxDims, uint* elementStrides, int interleave, int swizzle, int l2Promotion, int oobFill);
    [LibraryImport(Lib)] public static partial int cuLaunchKernel(IntPtr function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ, uint sharedBytes, IntPtr stream, void** parameters, void** extra);
}
