// Every flex kernel compiled by ILGPU to PTX in every run (no device, no driver), assembled to CUBINs for sm_80 and
// sm_90 by nvJitLink 12.4 when it is here (NATIVEATTENTION_REQUIRE=nvjitlink makes its absence fail), with register
// and spill counts read from the image and from ptxas's report; and the OpenCL C of each, checked for what PoCL lacks.
using System.Reflection;
using NativeAttention.Gpu;
using NativeAttention.Ilgpu.Flex.Gpu;
using Xunit;
using Xunit.Abstractions;

namespace NativeAttention.Ilgpu.Tests.FlexOnGpu;

public sealed class FlexPtxTests(ITestOutputHelper output)
{
    /// <summary>Every kernel method of FlexKernels, closed over the tests' modifications (plain, and the deepest composition).</summary>
    public static IEnumerable<(string Name, MethodInfo Kernel)> Kernels()
    {
        var forward = typeof(FlexKernels).GetMethod(nameof(FlexKernels.Forward))!;
        var mods = new (Type Score, Type Mask)[]
        {
            (typeof(NoScoreMod), typeof(NoMask)),
            (typeof(ThenScore<ThenScore<AlibiScore, DistanceScore>, SoftcapScore>), typeof(OrMask<AndMask<WindowMask, StripeMask>, PrefixLmMask>)),
            (typeof(BiasScore), typeof(DocumentMask)),
            (typeof(MixedFieldsScore), typeof(NoMask)),
        };
        var elements = new (Type Element, Type Codec)[] { (typeof(float), typeof(Fp32Element)), (typeof(ushort), typeof(Fp16Element)), (typeof(ushort), typeof(Bf16Element)) };
        foreach (var (score, mask) in mods)
        foreach (var tile in new[] { typeof(FlexTile64), typeof(FlexTile128), typeof(FlexTile256) })
        foreach (var (element, codec) in score == typeof(NoScoreMod) ? elements : elements[..1])
            yield return ($"forward<{score.Name},{mask.Name},{tile.Name},{codec.Name}>", forward.MakeGenericMethod(score, mask, tile, element, codec));
        var classify = typeof(FlexKernels).GetMethod(nameof(FlexKernels.Classify))!;
        yield return ("classify<NoMask>", classify.MakeGenericMethod(typeof(NoMask)));
        yield return ("classify<DocumentMask>", classify.MakeGenericMethod(typeof(DocumentMask)));
        yield return ("compact", typeof(FlexKernels).GetMethod(nameof(FlexKernels.Compact))!);
    }

    /// <summary>The tensor-core kernel (CUDA only), closed over the same modifications, both input types and both accumulators.</summary>
    public static IEnumerable<(string Name, MethodInfo Kernel)> MmaKernels()
    {
        var forward = typeof(FlexMmaKernels).GetMethod(nameof(FlexMmaKernels.Forward))!;
        var mods = new (Type Score, Type Mask)[]
        {
            (typeof(NoScoreMod), typeof(NoMask)),
            (typeof(ThenScore<ThenScore<AlibiScore, DistanceScore>, SoftcapScore>), typeof(OrMask<AndMask<WindowMask, StripeMask>, PrefixLmMask>)),
            (typeof(BiasScore), typeof(DocumentMask)),
        };
        var types = new (Type Codec, Type Mma)[] { (typeof(Fp16Element), typeof(MmaF16)), (typeof(Bf16Element), typeof(MmaBf16)) };
        foreach (var (score, mask) in mods)
        foreach (var accumulator in new[] { typeof(MmaAcc64), typeof(MmaAcc128) })
        foreach (var (codec, mma) in score == typeof(NoScoreMod) ? types : types[..1])
            yield return ($"mma<{score.Name},{mask.Name},{mma.Name},{accumulator.Name}>", forward.MakeGenericMethod(score, mask, codec, mma, accumulator));
    }

    [Fact]
    public void TensorCoreKernel_CompilesToPtx_WithMmaSync_AndNoLocalMemory()
    {
        foreach (var (name, kernel) in MmaKernels())
        {
            var ptx = FlexCompiler.Get(kernel, KernelApi.Cuda);
            Assert.Equal(FlexArguments.SizeOf(kernel.GetParameters()[0].ParameterType), ptx.ParameterBytes);
            bool bf16 = kernel.GetGenericArguments()[3] == typeof(MmaBf16);
            Assert.Contains(bf16 ? "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32" : "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32", ptx.Text, StringComparison.Ordinal);
            Assert.Contains(bf16 ? "cvt.rn.bf16x2.f32" : "cvt.rn.f16x2.f32", ptx.Text, StringComparison.Ordinal);
            // ILGPU passes CudaAsm operands through 4-byte local variables; ptxas keeps them in registers (the CUBIN test
            // below requires a zero stack frame for this kernel).
            int count = System.Text.RegularExpressions.Regex.Matches(ptx.Text, @"mma\.sync").Count;
            output.WriteLine($"{name,-90} PTX {ptx.Text.Length,7} chars, {count} mma.sync");
        }
    }

    [Fact]
    public void EveryFlexKernel_CompilesToPtx_AndPocLFriendlyOpenClC()
    {
        foreach (var (name, kernel) in Kernels())
        {
            var ptx = FlexCompiler.Get(kernel, KernelApi.Cuda);
            Assert.StartsWith(NativeAttention.Gpu.Cuda.CudaModule.PtxMarker, ptx.Text, StringComparison.Ordinal);
            Assert.Contains(".target sm_80", ptx.Text, StringComparison.Ordinal);
            // The parameter block CUDA launches pass (FlexArguments' layout) is the one ILGPU's PTX declares.
            Assert.Equal(FlexArguments.SizeOf(kernel.GetParameters()[0].ParameterType), ptx.ParameterBytes);
            var cl = FlexCompiler.Get(kernel, KernelApi.OpenCl);
            Assert.DoesNotContain("generic", cl.Text, StringComparison.Ordinal);
            Assert.DoesNotContain("work_group_barrier", cl.Text, StringComparison.Ordinal);
            Assert.DoesNotContain("sub_group", cl.Text, StringComparison.Ordinal);
            output.WriteLine($"{name,-80} PTX {ptx.Text.Length,7} chars ({ptx.ParameterBytes} B of parameters), OpenCL C {cl.Text.Length,7} chars");
        }
    }

    [SkippableTheory]
    [InlineData("sm_80")]
    [InlineData("sm_90")]
    public void EveryFlexKernel_AssemblesToCubin_WithoutSpills(string target)
    {
        if (!NvJitLink.IsAvailable(out string reason))
        {
            bool required = (Environment.GetEnvironmentVariable("NATIVEATTENTION_REQUIRE") ?? "").Split(',', StringSplitOptions.TrimEntries)
                .Any(n => n.Equals("nvjitlink", StringComparison.OrdinalIgnoreCase));
            if (required) throw new InvalidOperationException("NATIVEATTENTION_REQUIRE names nvjitlink, but it is not available: " + reason);
            Skip.If(true, reason);
        }
        var failures = new List<string>();
        foreach (var (name, kernel) in Kernels().Concat(MmaKernels()))
        {
            var text = FlexCompiler.Get(kernel, KernelApi.Cuda);
            var cubin = NvJitLink.Assemble(text.Text[NativeAttention.Gpu.Cuda.CudaModule.PtxMarker.Length..], target);
            var resources = cubin.Kernels.SingleOrDefault(k => k.Name == text.EntryPoint);
            if (resources is null)
            {
                failures.Add($"{name}: no {text.EntryPoint} in the {target} CUBIN");
                continue;
            }
            output.WriteLine($"{name,-80} {resources.Registers,3} regs, {resources.FrameBytes,4} B frame, spills {resources.SpillStoreBytes}/{resources.SpillLoadBytes} B");
            if (resources.ReportedRegisters != resources.Registers)
                failures.Add($"{name}: the image says {resources.Registers} registers, ptxas reported {resources.ReportedRegisters}:\n{cubin.PtxasLog}");
            if (resources.Spills || resources.SpillStoreBytes < 0)
                failures.Add($"{name}: spills {resources.SpillStoreBytes}/{resources.SpillLoadBytes} B on {target} (report:\n{cubin.PtxasLog})");
            if (name.StartsWith("mma<", StringComparison.Ordinal) && resources.FrameBytes != 0)
                failures.Add($"{name}: a {resources.FrameBytes}-byte stack frame on {target}: fragments or accumulators left in local memory (report:\n{cubin.PtxasLog})");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }
}
