// A loaded CUDA module and its kernel, from PTX that NVRTC compiled or the on-disk kernel cache held.
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

    /// <summary>First line of a module source that is PTX already, not CUDA C for NVRTC.</summary>
    internal const string PtxMarker = "// NativeAttention: PTX\n";

    /// <summary>The kernel's <c>CUfunction</c>; valid while the module is.</summary>
    public IntPtr Function { get; }

    /// <summary>
    /// Compiles (or reads cached PTX for) <paramref name="source"/>, loads it into the current context and looks up
    /// <paramref name="entryPoint"/>; <paramref name="arch"/> follows <c>compute_</c> (<c>80</c>, <c>90a</c>). <paramref name="driverVersion"/> only explains load failures: a driver older than
    /// the NVRTC that wrote the PTX rejects its ISA version.
    /// </summary>
    public static CudaModule Load(IntPtr context, string source, string name, string entryPoint, string arch, int driverVersion, int dynamicSharedBytes)
    {
        // PTX from elsewhere (NativeAttention.Ilgpu's flex kernels, compiled by ILGPU) loads as it is.
        string text = source.StartsWith(PtxMarker, StringComparison.Ordinal) ? source : CudaCompiler.CompileToPtx(source, name, arch);
        byte[] ptx = Encoding.ASCII.GetBytes(text + "\0");
        IntPtr module;
        var (major, minor) = CudaCompiler.Version;
        fixed (byte* image = ptx)
            CudaException.Check(cuModuleLoadData(&module, image),
                $"cuModuleLoadData({name}; PTX from NVRTC {major}.{minor}, driver {driverVersion / 1000}.{driverVersion % 1000 / 10})");
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
