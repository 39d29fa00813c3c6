// A loaded CUDA module and its kernel, compiled by NVRTC or read from the on-disk PTX cache.
using System.Text;
using NativeAttention.Interop.Cuda;
using static NativeAttention.Interop.Cuda.CudaNative;

namespace NativeAttention.Gpu.Cuda;

internal sealed unsafe class CudaModule : IDisposable
{
    private readonly CudaModuleHandle _module;

    private CudaModule(CudaModuleHandle module, IntPtr function)
    {
        _module = module;
        Function = function;
    }

    /// <summary>The kernel's <c>CUfunction</c>; valid while the module is.</summary>
    public IntPtr Function { get; }

    /// <summary>Compiles (or reads cached PTX for) <paramref name="source"/>, loads it into the current context and looks up <paramref name="entryPoint"/>.</summary>
    public static CudaModule Load(IntPtr context, string source, string name, string entryPoint, int arch, int driverVersion, int dynamicSharedBytes)
    {
        var (major, minor) = CudaCompiler.Version;
        string key = KernelDiskCache.Key(".ptx", source, $"compute_{arch}", $"nvrtc {major}.{minor}", $"driver {driverVersion}");
        byte[]? ptx = KernelDiskCache.TryRead(key);
        if (ptx is null)
        {
            ptx = Encoding.ASCII.GetBytes(CudaCompiler.CompileToPtx(source, name, arch) + "\0");
            KernelDiskCache.TryWrite(key, ptx);
        }
        IntPtr module;
        fixed (byte* image = ptx) CudaException.Check(cuModuleLoadData(&module, image), $"cuModuleLoadData({name})");
        var handle = new CudaModuleHandle(module, context);
        IntPtr function;
        var entry = Encoding.ASCII.GetBytes(entryPoint + "\0");
        int result;
        fixed (byte* e = entry) result = cuModuleGetFunction(&function, module, e);
        if (result == Success && dynamicSharedBytes > 48 * 1024)
            result = cuFuncSetAttribute(function, FunctionAttributeMaxDynamicSharedSizeBytes, dynamicSharedBytes);
        if (result != Success)
        {
            handle.Dispose();
            throw new CudaException(result, $"cuModuleGetFunction({entryPoint})");
        }
        return new CudaModule(handle, function);
    }

    public void Dispose() => _module.Dispose();
}
