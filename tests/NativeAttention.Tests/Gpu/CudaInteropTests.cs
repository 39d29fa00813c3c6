// The CUDA runtime layer and NVRTC: build logs surface (KernelVariantTests compiles every variant), and on a GPU the
// params layouts match and external memory/streams are used without being freed.
using NativeAttention.Gpu;
using NativeAttention.Gpu.Cuda;
using NativeAttention.Interop.Cuda;
using Xunit;

namespace NativeAttention.Tests.Gpu;

[Trait("Backend", "Cuda")]
public sealed unsafe class CudaInteropTests
{
    /// <summary>The architecture the build-log test compiles for (KernelVariantTests compiles every variant).</summary>
    private const int CompileArch = 80;

    [RuntimeFact(TestRuntime.Nvrtc)]
    public void BadKernelSource_SurfacesTheBuildLog()
    {
        RuntimeAvailability.Require(TestRuntime.Nvrtc);
        string source = KernelSource.Build(KernelApi.Cuda, "broken.cu", "NA_KERNEL void broken(float* x) { x[0] = undefined_name; }\n", []);
        var error = Assert.Throws<NvrtcException>(() => CudaCompiler.CompileToPtx(source, "broken", CompileArch));
        Assert.Equal("NVRTC_ERROR_COMPILATION", error.ErrorName);
        Assert.Contains("undefined_name", error.BuildLog);
        Assert.Contains("broken.cu", error.BuildLog);
    }

    [RuntimeFact(TestRuntime.Cuda)]
    public void KernelParams_LayoutsMatchTheKernelStructs()
    {
        RuntimeAvailability.Require(TestRuntime.Cuda);
        using var context = (CudaContext)AttentionContext.Create(Backend.Cuda);
        foreach (var probe in LayoutProbe.All) OpenClInteropTests.AssertLayout(probe.Mirror, context.ParamsLayout(probe.EntryPoint));
    }

    [RuntimeFact(TestRuntime.Cuda)]
    public void ExternalPointerAndStream_AreUsedWithoutBeingFreed()
    {
        RuntimeAvailability.Require(TestRuntime.Cuda);
        using var owner = (CudaContext)AttentionContext.Create(Backend.Cuda);
        using var memory = owner.AllocateBuffer(ElementType.Float32, 64);
        using (var borrowed = CudaContext.FromStream(owner.Stream))
        {
            var wrapped = borrowed.WrapBuffer(memory.DevicePointer, ElementType.Float32, 64);
            wrapped.Write<float>(Enumerable.Range(0, 64).Select(i => (float)i).ToArray());
            wrapped.Dispose();
        }
        var read = new float[64];
        memory.Read<float>(read);
        Assert.Equal(63f, read[63]);
        owner.Synchronize();
    }

    [RuntimeFact(TestRuntime.Cuda)]
    public void DisposedBuffer_ThrowsObjectDisposedException()
    {
        RuntimeAvailability.Require(TestRuntime.Cuda);
        using var context = (CudaContext)AttentionContext.Create(Backend.Cuda);
        var buffer = context.AllocateBuffer(ElementType.Float32, 64);
        var q = buffer.Slice(0, 32).View(1, 1, 4, 8);
        var o = context.Allocate(ElementType.Float32, 1, 1, 4, 8);
        buffer.Dispose();
        Assert.Throws<ObjectDisposedException>(() => context.Flash(q, q, q, o));
    }
}
