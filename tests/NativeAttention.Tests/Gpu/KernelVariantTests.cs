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

    /// <summary>CPU seconds this process spent since <paramref name="start"/> (NVRTC and PoCL compile in-process).</summary>
    private static double CpuSeconds(TimeSpan start) => (Process.GetCurrentProcess().TotalProcessorTime - start).TotalSeconds;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void VariantNames_AreUniquePerApi(bool cuda)
    {
        var api = cuda ? KernelApi.Cuda : KernelApi.OpenCl;
        // Contexts cache compiled modules by name: two variants with one name would share a module.
        var duplicates = KernelVariants.All(api).GroupBy(v => v.Name).Where(g => g.Count() > 1).Select(g => g.Key).ToArray();
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
