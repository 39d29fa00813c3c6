// Measures a GPU's peaks with the probe kernels (kernels/probe/peak_probe.h): fp32 FMA and, on CUDA sm_80+, tensor-core
// throughput, and streaming read bandwidth, each the best of a few timed launches, so that reports can give "% of peak"
// on GPUs as they do on the CPU.
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

/// <summary>A GPU's measured peaks.</summary>
/// <param name="Device">The context's device name.</param>
/// <param name="Fp32Gflops">fp32 FMA throughput in GFLOP/s (an FMA is two FLOPs).</param>
/// <param name="TensorGflops">fp16 tensor-core throughput in GFLOP/s (mma.sync m16n8k16, float accumulators), or null
/// where the device has none the kernels use (OpenCL, CUDA before sm_80).</param>
/// <param name="ReadGBs">Streaming read bandwidth in GB/s (10^9 bytes per second).</param>
/// <param name="ReadBytes">The size of the buffer the bandwidth was read from.</param>
internal sealed record GpuPeaks(string Device, double Fp32Gflops, double? TensorGflops, double ReadGBs, long ReadBytes);

/// <summary>Runs the peak probes on a context.</summary>
internal static class GpuPeakProbe
{
    private const double MinSeconds = 0.05;
    private const int Repeats = 3;
    private const float Sentinel = -1.2345e38f;   // the probes' results are small positive numbers, never this

    /// <summary>
    /// Measures <paramref name="context"/>'s peaks: a second or so on a GPU (longer on a CPU OpenCL device). The read
    /// probe streams <paramref name="readBytes"/> (default 1 GiB on CUDA, well past any L2; 256 MiB on OpenCL).
    /// </summary>
    public static GpuPeaks Measure(GpuContext context, long? readBytes = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        IGpuKernelHost host = context;
        int units = Math.Max(1, host.ComputeUnits);
        bool cuda = host.Api == KernelApi.Cuda;
        bool tensorCores = context is Cuda.CudaContext { UsesTensorCores: true };
        long bytes = readBytes ?? (cuda ? 1L << 30 : 256L << 20);
        long elements = bytes / 16;

        var sink = context.Allocate(ElementType.Float32, units * 64 * ProbeVariant.Threads);
        var source = context.Allocate(ElementType.Float32, checked((int)(elements * 4)));
        try
        {
            var sinkBuffer = (DeviceBuffer)sink.Storage!;
            var sourceBuffer = (DeviceBuffer)source.Storage!;

            // Arithmetic probes: enough work-groups to fill every unit several times over.
            int groups = units * 8;
            double fmaFlopsPerTrip = (double)groups * ProbeVariant.Threads * ProbeVariant.Chains * 2;
            double fp32 = Rate(context, new ProbeVariant(ProbeKind.Fma), sourceBuffer, sinkBuffer, groups, 0, fmaFlopsPerTrip) / 1e9;
            double? tensor = null;
            if (tensorCores)
            {
                double mmaFlopsPerTrip = (double)groups * (ProbeVariant.Threads / 32) * ProbeVariant.Chains * (2.0 * 16 * 8 * 16);
                tensor = Rate(context, new ProbeVariant(ProbeKind.TensorCore, ElementType.Float16), sourceBuffer, sinkBuffer, groups, 0, mmaFlopsPerTrip) / 1e9;
            }

            // Read probe: one pass over the buffer per launch; the grid is capped by the sink's size.
            int readGroups = units * 64;
            double read = BestSeconds(context, new ProbeVariant(ProbeKind.Read), sourceBuffer, sinkBuffer, readGroups,
                new ProbeParams { Elements = elements, Iterations = 0, Sentinel = Sentinel });
            return new GpuPeaks(context.DeviceName, fp32, tensor, bytes / read / 1e9, bytes);
        }
        finally
        {
            (source.Storage as IDisposable)?.Dispose();
            (sink.Storage as IDisposable)?.Dispose();
        }
    }

    /// <summary>Operations per second of an arithmetic probe, its trip count grown until a launch takes <see cref="MinSeconds"/>.</summary>
    private static double Rate(GpuContext context, ProbeVariant variant, DeviceBuffer source, DeviceBuffer sink, int groups, long elements, double opsPerTrip)
    {
        int iterations = 64;
        while (true)
        {
            var p = new ProbeParams { Elements = elements, Iterations = iterations, Sentinel = Sentinel };
            double seconds = BestSeconds(context, variant, source, sink, groups, p);
            if (seconds >= MinSeconds || iterations >= 1 << 24) return opsPerTrip * iterations / seconds;
            iterations = (int)Math.Min(1 << 24, iterations * Math.Max(2.0, Math.Ceiling(MinSeconds / Math.Max(seconds, 1e-6))));
        }
    }

    /// <summary>The fastest of <see cref="Repeats"/> timed launches, after one untimed launch that also builds the module.</summary>
    private static double BestSeconds(GpuContext context, ProbeVariant variant, DeviceBuffer source, DeviceBuffer sink, int groups, ProbeParams p)
    {
        IGpuKernelHost host = context;
        var api = host.Api;
        void Launch()
        {
            var copy = p;
            host.Launch(variant.Name, () => variant.Source(api), ProbeVariant.EntryPoint, [source, sink],
                MemoryMarshal.AsBytes(new ReadOnlySpan<ProbeParams>(in copy)), groups, 1, ProbeVariant.Threads);
        }
        Launch();
        context.Synchronize();
        double best = double.MaxValue;
        for (int r = 0; r < Repeats; r++)
        {
            long start = Stopwatch.GetTimestamp();
            Launch();
            context.Synchronize();
            best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
        }
        return best;
    }
}
