// The CUDA runtime layer and NVRTC: every kernel variant compiles to PTX (no device needed), build logs surface,
// and on a GPU the params layout matches and external memory/streams are used without being freed.
using NativeAttention.Gpu;
using NativeAttention.Gpu.Cuda;
using NativeAttention.Interop.Cuda;
using Xunit;

namespace NativeAttention.Tests.Gpu;

[Trait("Backend", "Cuda")]
public sealed unsafe class CudaInteropTests
{
    /// <summary>The architecture CI compiles for: Ampere, which NVRTC 11.2 and later all support.</summary>
    private const int CompileArch = 80;

    [RuntimeFact(TestRuntime.Nvrtc)]
    public void EveryFlashVariant_CompilesToPtx()
    {
        RuntimeAvailability.Require(TestRuntime.Nvrtc);
        Assert.Contains(CompileArch, CudaCompiler.Architectures);
        var variants = FlashVariant.All(tensorCores: true).ToArray();
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.ForEach(variants, variant =>
        {
            try
            {
                string ptx = CudaCompiler.CompileToPtx(variant, CompileArch);
                if (!ptx.Contains(".entry " + FlashVariant.EntryPoint)) failures.Add($"{variant.Name}: no entry point in the PTX");
                if (variant.TensorCores && !ptx.Contains("mma.sync.aligned.m16n8k16")) failures.Add($"{variant.Name}: no mma.sync in the PTX");
            }
            catch (NvrtcException e)
            {
                failures.Add($"{variant.Name}: {e.Message}");
            }
        });
        Assert.True(failures.IsEmpty, string.Join("\n\n", failures.Take(3)));
    }

    [RuntimeFact(TestRuntime.Nvrtc)]
    public void EveryMergeStatesVariant_CompilesToPtx()
    {
        RuntimeAvailability.Require(TestRuntime.Nvrtc);
        ElementType[] types = [ElementType.Float32, ElementType.Float16, ElementType.BFloat16];
        foreach (var output in types)
            foreach (var partial in types)
            {
                string ptx = CudaCompiler.CompileToPtx(GpuMerge.Source(KernelApi.Cuda, output, partial), GpuMerge.Name(output, partial), CompileArch);
                Assert.Contains(".entry " + GpuMerge.EntryPoint, ptx);
            }
    }

    [Fact]
    public void MergeParams_HasTheLayoutOfTheKernelStruct() =>
        // 8 scalar 64-bit fields, four 4-entry 64-bit stride arrays, a 4-entry int shape and 4 ints (merge_states.h).
        Assert.Equal(8 * 8 + 4 * 4 * 8 + 4 * 4 + 4 * 4, System.Runtime.InteropServices.Marshal.SizeOf<MergeParams>());

    [RuntimeFact(TestRuntime.Nvrtc)]
    public void LayoutProbe_CompilesToPtx()
    {
        RuntimeAvailability.Require(TestRuntime.Nvrtc);
        string ptx = CudaCompiler.CompileToPtx(KernelSource.Build(KernelApi.Cuda, "common/layout_probe.h", []), "layout_probe", CompileArch);
        Assert.Contains(".entry na_flash_params_layout", ptx);
        Assert.Contains(".entry na_decode_params_layout", ptx);
    }

    [RuntimeFact(TestRuntime.Nvrtc)]
    public void EveryDecodeKernel_CompilesToPtx()
    {
        RuntimeAvailability.Require(TestRuntime.Nvrtc);
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.ForEach(DecodeVariant.All(), variant =>
        {
            foreach (var (name, source, entry) in new[]
            {
                (variant.Name, variant.Source(KernelApi.Cuda), "na_decode_fwd"),
                (variant.CombineName, variant.CombineSource(KernelApi.Cuda), "na_decode_combine"),
                (variant.AppendName, variant.AppendSource(KernelApi.Cuda), "na_kv_append"),
            })
            {
                try
                {
                    if (!CudaCompiler.CompileToPtx(source, name, CompileArch).Contains(".entry " + entry)) failures.Add($"{name}: no {entry} in the PTX");
                }
                catch (NvrtcException e)
                {
                    failures.Add($"{name}: {e.Message}\n{e.BuildLog}");
                }
            }
        });
        Assert.True(failures.IsEmpty, string.Join("\n\n", failures.Take(3)));
    }

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
        OpenClInteropTests.AssertLayout<FlashParams>(context.ParamsLayout("na_flash_params_layout"));
        OpenClInteropTests.AssertLayout<DecodeParams>(context.ParamsLayout("na_decode_params_layout"));
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
