// OpenCL 1.2 entry points the OpenCL backend uses, bound to the ICD loader found by NativeLibraries.
using System.Runtime.InteropServices;

namespace NativeAttention.Interop.OpenCl;

/// <summary>Raw OpenCL API. Every function returns a <c>cl_int</c> status or reports it through <c>errcode</c>.</summary>
public static unsafe partial class OpenClNative
{
    private const string Lib = NativeLibraries.OpenClName;

    static OpenClNative() => NativeLibraries.EnsureRegistered();

    public const int Success = 0;
    public const ulong DeviceTypeAll = 0xFFFFFFFF;
    public const uint PlatformName = 0x0902;
    public const uint PlatformVersion = 0x0901;
    public const uint DeviceType = 0x1000;
    public const uint DeviceMaxWorkGroupSize = 0x1004;
    public const uint DeviceLocalMemSize = 0x1023;
    public const uint DeviceName = 0x102B;
    public const uint DeviceVendor = 0x102C;
    public const uint DriverVersion = 0x102D;
    public const uint DeviceVersion = 0x102F;
    public const ulong DeviceTypeGpu = 1 << 2;
    public const ulong MemReadWrite = 1 << 0;
    public const uint QueueContext = 0x1090;
    public const uint QueueDevice = 0x1091;
    public const uint MemSize = 0x1102;
    public const uint ProgramBinarySizes = 0x1165;
    public const uint ProgramBinaries = 0x1166;
    public const uint ProgramBuildLog = 0x1183;

    [LibraryImport(Lib)] public static partial int clGetPlatformIDs(uint numEntries, IntPtr* platforms, uint* numPlatforms);
    [LibraryImport(Lib)] public static partial int clGetPlatformInfo(IntPtr platform, uint name, nuint size, void* value, nuint* sizeReturned);
    [LibraryImport(Lib)] public static partial int clGetDeviceIDs(IntPtr platform, ulong type, uint numEntries, IntPtr* devices, uint* numDevices);
    [LibraryImport(Lib)] public static partial int clGetDeviceInfo(IntPtr device, uint name, nuint size, void* value, nuint* sizeReturned);

    [LibraryImport(Lib)] public static partial OpenClContextHandle clCreateContext(IntPtr* properties, uint numDevices, IntPtr* devices, IntPtr callback, IntPtr userData, int* errcode);
    [LibraryImport(Lib)] public static partial int clReleaseContext(IntPtr context);
    [LibraryImport(Lib)] public static partial OpenClQueueHandle clCreateCommandQueue(OpenClContextHandle context, IntPtr device, ulong properties, int* errcode);
    [LibraryImport(Lib)] public static partial int clReleaseCommandQueue(IntPtr queue);
    [LibraryImport(Lib)] public static partial int clGetCommandQueueInfo(IntPtr queue, uint name, nuint size, void* value, nuint* sizeReturned);
    [LibraryImport(Lib)] public static partial int clFinish(OpenClQueueHandle queue);

    [LibraryImport(Lib)] public static partial OpenClMemHandle clCreateBuffer(OpenClContextHandle context, ulong flags, nuint size, void* hostPointer, int* errcode);
    [LibraryImport(Lib)] public static partial int clReleaseMemObject(IntPtr memory);
    [LibraryImport(Lib)] public static partial int clGetMemObjectInfo(IntPtr memory, uint name, nuint size, void* value, nuint* sizeReturned);
    [LibraryImport(Lib)] public static partial int clEnqueueWriteBuffer(OpenClQueueHandle queue, OpenClMemHandle buffer, uint blocking, nuint offset, nuint size, void* source, uint numEvents, IntPtr* waitList, IntPtr* evt);
    [LibraryImport(Lib)] public static partial int clEnqueueReadBuffer(OpenClQueueHandle queue, OpenClMemHandle buffer, uint blocking, nuint offset, nuint size, void* destination, uint numEvents, IntPtr* waitList, IntPtr* evt);
    [LibraryImport(Lib)] public static partial int clEnqueueFillBuffer(OpenClQueueHandle queue, OpenClMemHandle buffer, void* pattern, nuint patternSize, nuint offset, nuint size, uint numEvents, IntPtr* waitList, IntPtr* evt);

    [LibraryImport(Lib)] public static partial OpenClProgramHandle clCreateProgramWithSource(OpenClContextHandle context, uint count, byte** strings, nuint* lengths, int* errcode);
    [LibraryImport(Lib)] public static partial OpenClProgramHandle clCreateProgramWithBinary(OpenClContextHandle context, uint numDevices, IntPtr* devices, nuint* lengths, byte** binaries, int* binaryStatus, int* errcode);
    [LibraryImport(Lib)] public static partial int clBuildProgram(OpenClProgramHandle program, uint numDevices, IntPtr* devices, byte* options, IntPtr callback, IntPtr userData);
    [LibraryImport(Lib)] public static partial int clGetProgramBuildInfo(OpenClProgramHandle program, IntPtr device, uint name, nuint size, void* value, nuint* sizeReturned);
    [LibraryImport(Lib)] public static partial int clGetProgramInfo(OpenClProgramHandle program, uint name, nuint size, void* value, nuint* sizeReturned);
    [LibraryImport(Lib)] public static partial int clReleaseProgram(IntPtr program);

    [LibraryImport(Lib)] public static partial OpenClKernelHandle clCreateKernel(OpenClProgramHandle program, byte* name, int* errcode);
    [LibraryImport(Lib)] public static partial int clReleaseKernel(IntPtr kernel);
    [LibraryImport(Lib)] public static partial int clSetKernelArg(OpenClKernelHandle kernel, uint index, nuint size, void* value);
    [LibraryImport(Lib)] public static partial int clGetKernelWorkGroupInfo(OpenClKernelHandle kernel, IntPtr device, uint name, nuint size, void* value, nuint* sizeReturned);
    [LibraryImport(Lib)] public static partial int clEnqueueNDRangeKernel(OpenClQueueHandle queue, OpenClKernelHandle kernel, uint workDim, nuint* globalOffset, nuint* globalSize, nuint* localSize, uint numEvents, IntPtr* waitList, IntPtr* evt);
}
