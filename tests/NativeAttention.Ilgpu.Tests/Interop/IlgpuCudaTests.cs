// ILGPU's CUDA accelerator: our CUDA context inside ILGPU's own context, on its stream (runs where a CUDA GPU is present).
using ILGPU;
using ILGPU.Runtime.Cuda;
using NativeAttention.Gpu.Cuda;
using Xunit;
using Xunit.Abstractions;

namespace NativeAttention.Ilgpu.Tests.Interop;

public sealed class IlgpuCudaTests(ITestOutputHelper output)
{
    [SkippableFact]
    public void FlashRunsInIlgpusCudaContextOrderedOnItsStream()
    {
        bool required = (Environment.GetEnvironmentVariable("NATIVEATTENTION_REQUIRE") ?? "").Split(',').Contains("cuda", StringComparer.OrdinalIgnoreCase);
        using var context = Context.Create(builder => builder.Cuda());
        var devices = context.GetCudaDevices();
        if (required) Assert.True(devices.Count > 0, "NATIVEATTENTION_REQUIRE names cuda, but ILGPU finds no CUDA device.");
        Skip.If(devices.Count == 0, "ILGPU finds no CUDA device here.");
        using var accelerator = context.CreateCudaAccelerator(0);
        IlgpuGpuChecks.Run<CudaContext>(accelerator, output);
    }
}
