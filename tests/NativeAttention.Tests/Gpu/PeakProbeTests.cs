// The GPU peak probes (kernels/probe/peak_probe.h) on each GPU backend: they build, run, and give rates a device can
// have. A probe whose work the compiler removed would time an empty kernel and report an impossible rate, which
// fails here; so would a probe that never ran (zero or non-finite rate).
using NativeAttention.Gpu;
using Xunit;
using Xunit.Abstractions;

namespace NativeAttention.Tests;

/// <summary>Peak probes on a GPU backend, bound below.</summary>
public abstract class PeakProbeTests(ITestOutputHelper output)
{
    // No device of this decade reaches these: 10 PFLOP/s, 100 TB/s.
    private const double ImpossibleGflops = 1e7, ImpossibleGBs = 1e5;

    /// <summary>The backend under test.</summary>
    protected abstract Backend Backend { get; }

    [SkippableFact]
    public void Probes_GivePossibleRates()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var peaks = GpuPeakProbe.Measure((GpuContext)context, readBytes: 32L << 20);
        output.WriteLine($"{peaks.Device}: fp32 {peaks.Fp32Gflops:F1} GFLOP/s, tensor cores {peaks.TensorGflops?.ToString("F1") ?? "-"} GFLOP/s, read {peaks.ReadGBs:F1} GB/s over {peaks.ReadBytes >> 20} MiB");
        Assert.InRange(peaks.Fp32Gflops, 1e-3, ImpossibleGflops);
        Assert.InRange(peaks.ReadGBs, 1e-3, ImpossibleGBs);
        if (peaks.TensorGflops is { } tensor)
        {
            Assert.InRange(tensor, 1e-3, ImpossibleGflops);
            Assert.True(tensor > peaks.Fp32Gflops, $"tensor cores {tensor:F0} GFLOP/s should beat fp32 FMA {peaks.Fp32Gflops:F0} GFLOP/s");
        }
        else
        {
            Assert.False(context is NativeAttention.Gpu.Cuda.CudaContext { UsesTensorCores: true }, "an sm_80+ CUDA device must report its tensor-core peak");
        }
    }
}

public sealed class OpenClPeakProbeTests(ITestOutputHelper output) : PeakProbeTests(output)
{
    protected override Backend Backend => Backend.OpenCl;
}

[Trait("Backend", "Cuda")]
public sealed class CudaPeakProbeTests(ITestOutputHelper output) : PeakProbeTests(output)
{
    protected override Backend Backend => Backend.Cuda;
}
