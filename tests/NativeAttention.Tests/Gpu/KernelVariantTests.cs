// Every kernel variant of every family (KernelVariants.All) compiles with NVRTC and builds on OpenCL, and the registry
// reaches every embedded kernel file. Compiled PTX and OpenCL binaries go through the on-disk kernel cache, so a
// repeated run only re-checks what changed.
using System.Collections.Concurrent;
using System.Diagnostics;
using NativeAttention.Gpu;
using NativeAttention.Gpu.Cuda;
using NativeAttention.Gpu.OpenCl;
using Xunit;
using Xunit.Abstractions;

namespace NativeAttention.Tests.Gpu;

public sealed class KernelVariantTests(ITestOutputHelper output)
{
    /// <summary>The architecture CI compiles for: Ampere (mma.sync m16n8k16), which NVRTC 11.2 and later all support.</summary>
    private const int CompileArch = 80;

    [RuntimeFact(TestRuntime.Nvrtc)]
    [Trait("Backend", "Cuda")]
    public void EveryVariant_CompilesToPtx()
    {
        RuntimeAvailability.Require(TestRuntime.Nvrtc);
        Assert.Contains(CompileArch, CudaCompiler.Architectures);
        var variants = KernelVariants.All(KernelApi.Cuda).ToArray();
        var failures = new ConcurrentBag<string>();
        var clock = Stopwatch.StartNew();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        Parallel.ForEach(variants, variant =>
        {
            try
            {
                // The sm_80 CUBIN first: its compilation leaves the compute_80 PTX in the disk cache too (CudaCompiler),
                // so a cold cache runs NVRTC once per variant for this test and the sm_80 CUBIN test together.
                CudaCompiler.CompileToCubin(variant, $"sm_{CompileArch}");
                string ptx = CudaCompiler.CompileToPtx(variant, CompileArch);
                if (!ptx.Contains(".entry " + variant.EntryPoint)) failures.Add($"{variant.Name}: no {variant.EntryPoint} in the PTX");
                if (variant is FlashVariant { TensorCores: true } or BlockSparseVariant { TensorCores: true } && !ptx.Contains("mma.sync.aligned.m16n8k16"))
                    failures.Add($"{variant.Name}: no mma.sync in the PTX");
            }
            catch (NvrtcException e)
            {
                failures.Add($"{variant.Name}: {e.Message}\n{e.BuildLog}");
            }
        });
        output.WriteLine($"{variants.Length} CUDA variants compiled to compute_{CompileArch} in {clock.Elapsed.TotalSeconds:F1} s, {CpuSeconds(cpu):F1} s CPU (cache: {KernelDiskCache.Directory ?? "off"}).");
        Assert.True(failures.IsEmpty, $"{failures.Count} of {variants.Length} failed:\n" + string.Join("\n\n", failures.Take(3)));
    }

    [RuntimeFact(TestRuntime.OpenCl)]
    public void EveryVariant_BuildsOnOpenCl()
    {
        RuntimeAvailability.Require(TestRuntime.OpenCl);
        using var context = (OpenClContext)AttentionContext.Create(Backend.OpenCl);
        var variants = KernelVariants.All(KernelApi.OpenCl).ToArray();
        var failures = new ConcurrentBag<string>();
        var clock = Stopwatch.StartNew();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        Parallel.ForEach(variants, variant =>
        {
            try
            {
                // Building creates the kernel too, so a missing entry point fails here.
                using var module = context.BuildSource(variant.Source(KernelApi.OpenCl), variant.EntryPoint);
            }
            catch (OpenClException e)
            {
                failures.Add($"{variant.Name}: {e.Message}\n{e.BuildLog}");
            }
        });
        output.WriteLine($"{variants.Length} OpenCL variants built on {context.DeviceName} in {clock.Elapsed.TotalSeconds:F1} s, {CpuSeconds(cpu):F1} s CPU (cache: {KernelDiskCache.Directory ?? "off"}).");
        Assert.True(failures.IsEmpty, $"{failures.Count} of {variants.Length} failed:\n" + string.Join("\n\n", failures.Take(3)));
    }

    /// <summary>Every variant to a CUBIN for Ampere, with whatever NVRTC is loaded (Debian's 11.8 in CI's main run).</summary>
    [RuntimeFact(TestRuntime.Nvrtc)]
    [Trait("Backend", "Cuda")]
    public void EveryVariant_CompilesToCubin_ForSm80_WithoutSpills() => CompileEveryVariantToCubin("sm_80", TestRuntime.Nvrtc);

    /// <summary>
    /// Every variant, plus the Hopper wgmma flash variants (<see cref="FlashVariant.WgmmaVariants"/>), to a CUBIN for Hopper
    /// with NVRTC 12 (CI's second run, NVRTC 12.4 from Debian 13).
    /// </summary>
    [RuntimeFact(TestRuntime.Nvrtc12)]
    [Trait("Backend", "Cuda")]
    public void EveryVariant_CompilesToCubin_ForSm90a_WithoutSpills() =>
        CompileEveryVariantToCubin("sm_90a", TestRuntime.Nvrtc12, FlashVariant.WgmmaVariants().Cast<IKernelVariant>());

    /// <summary>
    /// The wgmma variants alone (a quick local check of what <see cref="EveryVariant_CompilesToCubin_ForSm90a_WithoutSpills"/>
    /// covers): each issues wgmma, hands registers from the producer to the consumers with setmaxnreg, and ptxas gives
    /// the kernel the 168 registers a 384-thread block may hold (65536 / 384 rounded down to 8), which is exactly what
    /// one 24-register producer and two 240-register consumer warpgroups need; a consumer that needed more than 240
    /// would spill, which the shared check fails. ptxas must not have serialized the wgmma instructions.
    /// </summary>
    [RuntimeFact(TestRuntime.Nvrtc12)]
    [Trait("Backend", "Cuda")]
    public void WgmmaVariants_CompileToCubin_ForSm90a_WithinTheirRegisterBudgets()
    {
        RuntimeAvailability.Require(TestRuntime.Nvrtc12);
        var failures = new ConcurrentBag<string>();
        var lines = new ConcurrentBag<string>();
        var variants = FlashVariant.WgmmaVariants().ToArray();
        Parallel.ForEach(variants, variant =>
        {
            var cubin = CudaCompiler.CompileToCubin(variant, "sm_90a");
            var kernel = cubin.Kernels.Single(k => k.Name == FlashVariant.EntryPoint);
            lines.Add($"{variant.Name,-56} {kernel.Registers,3} regs, spills {kernel.SpillStoreBytes}/{kernel.SpillLoadBytes} B");
            if (!cubin.Ptx.Contains("wgmma.mma_async.sync.aligned.m64n", StringComparison.Ordinal)) failures.Add($"{variant.Name}: no wgmma in the PTX");
            if (!cubin.Ptx.Contains("cp.async.bulk.tensor.4d", StringComparison.Ordinal)) failures.Add($"{variant.Name}: no TMA load in the PTX");
            if (!cubin.Ptx.Contains("setmaxnreg.dec.sync.aligned.u32 24", StringComparison.Ordinal) || !cubin.Ptx.Contains("setmaxnreg.inc.sync.aligned.u32 240", StringComparison.Ordinal))
                failures.Add($"{variant.Name}: no setmaxnreg 24/240 pair in the PTX");
            if (kernel.Registers != 168) failures.Add($"{variant.Name}: {kernel.Registers} registers at launch, expected 168 (384 threads, one block per SM)");
            if (kernel.Spills) failures.Add($"{variant.Name}: spills {kernel.SpillStoreBytes}/{kernel.SpillLoadBytes} B");
            // ptxas warns when it has to serialize wgmma (e.g. accumulators touched between issue and wait): a silent 2x.
            if (cubin.PtxasLog.Contains("serialized", StringComparison.OrdinalIgnoreCase))
                failures.Add($"{variant.Name}: ptxas serialized wgmma:\n{cubin.PtxasLog}");
        });
        foreach (string line in lines.Order(StringComparer.Ordinal)) output.WriteLine(line);
        Assert.True(128 * 24 + 256 * 240 <= 168 * 384);
        Assert.True(failures.IsEmpty, string.Join("\n", failures));
    }

    /// <summary>
    /// Compiles every CUDA variant to a CUBIN for <paramref name="target"/> and reads each kernel's resources from the
    /// image and from ptxas's report: the two must agree on registers, and a tensor-core kernel (one whose PTX issues
    /// mma or wgmma) must not spill. Every kernel's registers, frame and spills are printed.
    /// </summary>
    private void CompileEveryVariantToCubin(string target, TestRuntime runtime, IEnumerable<IKernelVariant>? extra = null)
    {
        RuntimeAvailability.Require(runtime);
        var variants = KernelVariants.All(KernelApi.Cuda).Concat(extra ?? []).ToArray();
        var failures = new ConcurrentBag<string>();
        var lines = new ConcurrentBag<string>();
        var clock = Stopwatch.StartNew();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        Parallel.ForEach(variants, variant =>
        {
            try
            {
                var cubin = CudaCompiler.CompileToCubin(variant, target);
                bool tensorCores = cubin.UsesTensorCores;
                var kernel = cubin.Kernels.FirstOrDefault(k => k.Name == variant.EntryPoint);
                if (kernel is null)
                {
                    failures.Add($"{variant.Name}: no {variant.EntryPoint} in the {target} CUBIN (kernels: {string.Join(", ", cubin.Kernels.Select(k => k.Name))})");
                    return;
                }
                lines.Add($"{variant.Name,-48} {kernel.Registers,3} regs, {kernel.FrameBytes,5} B frame, spills {kernel.SpillStoreBytes}/{kernel.SpillLoadBytes} B{(tensorCores ? ", tensor cores" : "")}");
                if (kernel.ReportedRegisters != kernel.Registers)
                    failures.Add($"{variant.Name}: the image says {kernel.Registers} registers, ptxas reported {kernel.ReportedRegisters}:\n{cubin.PtxasLog}");
                if (kernel.SpillStoreBytes < 0)
                    failures.Add($"{variant.Name}: ptxas's report has no spill line for {kernel.Name}:\n{cubin.PtxasLog}");
                if (tensorCores && kernel.Spills)
                    failures.Add($"{variant.Name}: tensor-core kernel spills on {target}: {kernel.SpillStoreBytes} B stores, {kernel.SpillLoadBytes} B loads, {kernel.Registers} registers");
            }
            catch (NvrtcException e)
            {
                failures.Add($"{variant.Name}: {e.Message}\n{e.BuildLog}");
            }
        });
        foreach (string line in lines.Order(StringComparer.Ordinal)) output.WriteLine(line);
        output.WriteLine($"{variants.Length} CUDA variants compiled to {target} CUBIN by NVRTC {CudaCompiler.Version.Major}.{CudaCompiler.Version.Minor} in {clock.Elapsed.TotalSeconds:F1} s, {CpuSeconds(cpu):F1} s CPU.");
        Assert.True(failures.IsEmpty, $"{failures.Count} of {variants.Length} failed:\n" + string.Join("\n\n", failures.Take(3)));
    }

    /// <summary>CPU seconds this process spent since <paramref name="start"/> (NVRTC and PoCL compile in-process).</summary>
    private static double CpuSeconds(TimeSpan start) => (Process.GetCurrentProcess().TotalProcessorTime - start).TotalSeconds;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void VariantNames_AreUniquePerApi(bool cuda)
    {
        var api = cuda ? KernelApi.Cuda : KernelApi.OpenCl;
        // Contexts cache compiled modules by name: two variants with one name would share a module.
        var duplicates = KernelVariants.All(api).Concat(cuda ? FlashVariant.WgmmaVariants().Cast<IKernelVariant>() : []).GroupBy(v => v.Name).Where(g => g.Count() > 1).Select(g => g.Key).ToArray();
        Assert.True(duplicates.Length == 0, "Duplicate variant names: " + string.Join(", ", duplicates));
    }

    [Fact]
    public void EveryEmbeddedKernelFile_IsReachedByAVariant()
    {
        // A family registered in KernelVariants reaches its files through #include; a file no variant includes is
        // either dead or belongs to a family the registry (and so CI's compile tests) misses.
        var reached = new HashSet<string>(StringComparer.Ordinal);
        foreach (var api in new[] { KernelApi.OpenCl, KernelApi.Cuda })
            foreach (var variant in KernelVariants.All(api))
                foreach (string line in variant.Source(api).Split('\n'))
                    if (line.StartsWith("#line 1 \"", StringComparison.Ordinal))
                        reached.Add(line["#line 1 \"".Length..^1]);
        var missed = KernelSource.EmbeddedFiles.Where(f => !reached.Contains(f)).ToArray();
        Assert.True(missed.Length == 0, "No variant includes: " + string.Join(", ", missed));
    }
}
