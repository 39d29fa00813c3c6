// ILGPU's CUDA accelerator: buffers the user allocated through ILGPU as view fields of flex modifications, on the context
// IlgpuAttention created from that accelerator (its device pointers reach the kernel). Runs where a CUDA GPU is present
// (run-device.sh); skipped here.
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using Xunit;
using static NativeAttention.Ilgpu.Tests.Flex.FlexTests;

namespace NativeAttention.Ilgpu.Tests.Flex;

public sealed class FlexIlgpuCudaTests
{
    [SkippableFact]
    public void CudaAcceleratorBuffersAreViewFieldsOfItsContext()
    {
        bool required = (Environment.GetEnvironmentVariable("NATIVEATTENTION_REQUIRE") ?? "").Split(',').Contains("cuda", StringComparer.OrdinalIgnoreCase);
        using var ilgpu = ILGPU.Context.Create(builder => builder.Cuda());
        var devices = ilgpu.GetCudaDevices();
        if (required) Assert.True(devices.Count > 0, "NATIVEATTENTION_REQUIRE names cuda, but ILGPU finds no CUDA device.");
        Skip.If(devices.Count == 0, "ILGPU finds no CUDA device here.");
        using var accelerator = ilgpu.CreateCudaAccelerator(0);
        using var attention = IlgpuAttention.Create(accelerator);
        var context = attention.Context;
        var p = MakeProblem(new Random(41), 2, 4, 2, 45, 70, 32, 24, ElementType.Float32);
        int shift = p.KeyLength - p.QueryLength;
        float[] slopes = [0.5f, 0.25f, 0.0625f, 0.0078125f];
        // The slopes three elements into the ILGPU buffer: the view's index must reach the kernel.
        using var slopesBuffer = accelerator.Allocate1D(new float[] { 9, 9, 9 }.Concat(slopes).ToArray());
        using var prefixBuffer = accelerator.Allocate1D(new[] { 12, 51 });
        accelerator.Synchronize();
        var alibi = new ViewAlibiScore { Slopes = slopesBuffer.View.AsContiguous().SubView(3, 4), Shift = shift };
        var flash = RunFlash(context, p, new FlashOptions { Causal = true, AlibiSlopes = context.Upload(TensorView.FromMemory<float>(slopes.ToArray(), 4)) });
        AssertClose(flash, RunFlex(context, p, alibi, new ViewCausalMask { Shift = shift }), 1e-4, 1e-4, "ALiBi slopes in an ILGPU CUDA buffer");

        var prefix = new ViewPrefixLmMask { Prefixes = prefixBuffer.View.AsContiguous(), Shift = shift };
        var builtIn = RunBlockSparse(context, p, ElementPredicate.PrefixLM([12, 51]));
        var blocks = new FlexOptions { BlockMask = context.CreateBlockMask(prefix, p.Batch, 1, p.QueryLength, p.KeyLength, 16, 32) };
        AssertClose(builtIn, RunFlex(context, p, new NoScoreMod(), prefix, blocks), 1e-4, 1e-4, "prefix-LM lengths in an ILGPU CUDA buffer, device block mask");

        // A buffer of another accelerator is refused, naming the field.
        using var cpu = ILGPU.Context.Create(builder => builder.CPU());
        using var cpuAccelerator = cpu.CreateCPUAccelerator(0);
        using var hostBuffer = cpuAccelerator.Allocate1D(slopes);
        var e = Assert.ThrowsAny<ArgumentException>(() =>
            RunFlex(context, p, new ViewAlibiScore { Slopes = hostBuffer.View.AsContiguous(), Shift = shift }, new ViewCausalMask { Shift = shift }));
        Assert.Equal("scoreMod", e.ParamName);
        Assert.Contains("scoreMod.Slopes", e.Message);
    }
}
