// Flex attention on a CUDA context (run by run-device.sh where a GPU is lent; skipped here): both forward kernels, the
// tensor-core one (mma.sync, fp16/bf16, CC >= 8.0) and the scalar one, against the float64 reference; the tensor-core
// kernel's self-check; and the device-side view bounds checks on both kernels.
using NativeAttention.Gpu;
using NativeAttention.Gpu.Cuda;
using NativeAttention.Ilgpu.Flex.Gpu;
using NativeAttention.Ilgpu.Tests.Flex;
using Xunit;
using static NativeAttention.Ilgpu.Tests.FlexOnGpu.FlexCheck;

namespace NativeAttention.Ilgpu.Tests.FlexOnGpu;

public sealed class FlexCudaTests(FlexCudaContext fixture) : IClassFixture<FlexCudaContext>
{
    private GpuContext Context => (GpuContext)fixture.Context;

    private void SkipWithoutTensorCores(FlexPath path) =>
        Skip.If(path == FlexPath.Mma && Context is not CudaContext { ComputeCapability: >= 80 }, "the tensor-core flex kernel needs compute capability 8.0");

    /// <summary>The output's rounding (and, on the tensor-core kernel, P rounded to the input type before P V).</summary>
    private static double Tolerance(ElementType type, FlexPath path) =>
        type == ElementType.Float16 ? (path == FlexPath.Mma ? 4e-3 : 1.5e-3) : (path == FlexPath.Mma ? 3e-2 : 1e-2);

    [SkippableTheory]
    [InlineData(ElementType.Float16, 64, true)]
    [InlineData(ElementType.Float16, 64, false)]
    [InlineData(ElementType.BFloat16, 64, true)]
    [InlineData(ElementType.BFloat16, 64, false)]
    [InlineData(ElementType.Float16, 128, true)]
    [InlineData(ElementType.Float16, 128, false)]
    [InlineData(ElementType.BFloat16, 96, true)]
    [InlineData(ElementType.BFloat16, 96, false)]
    public void Alibi_Causal_BlockMask_BothKernels(ElementType type, int headDim, bool mma)
    {
        var path = mma ? FlexPath.Mma : FlexPath.Scalar;
        var context = Context;
        SkipWithoutTensorCores(path);
        var shape = new Shape(2, 4, 2, 37, 45, headDim, headDim - 8);   // GQA, ragged tiles, Dv < Dqk
        const int shift = 45 - 37;
        float[] slopes = [0.5f, 0.25f, 0.125f, 0.0625f];
        var score = new AlibiScore { Slopes = Floats(context, slopes), Shift = shift };
        var mask = new CausalMask { Shift = shift };
        foreach (bool blocks in new[] { false, true })
        {
            var blockMask = blocks ? FlexGpu.CreateBlockMask(context, mask, shape.B, shape.Hq, shape.Nq, shape.Nk, 16, 32) : null;
            Check(context, shape, score, mask, (b, h, q, k) => k <= q + shift, (s, b, h, q, k) => s + slopes[h] * (k - q - shift),
                blockMask, tolerance: Tolerance(type, path), type: type, path: path);
        }
    }

    [SkippableTheory]
    [InlineData(ElementType.Float16, true)]
    [InlineData(ElementType.Float16, false)]
    [InlineData(ElementType.BFloat16, true)]
    public void DocumentMask_DenseBias_ThroughViews(ElementType type, bool mma)
    {
        var path = mma ? FlexPath.Mma : FlexPath.Scalar;
        var context = Context;
        SkipWithoutTensorCores(path);
        var shape = new Shape(2, 2, 2, 50, 70, 64, 64);
        var (b, hq, nq, nk) = (shape.B, shape.Hq, shape.Nq, shape.Nk);
        int[] queryDocs = Enumerable.Range(0, b * nq).Select(i => i % nq / 17 + i / nq).ToArray();
        int[] keyDocs = Enumerable.Range(0, b * nk).Select(i => i % nk / 24 + i / nk).ToArray();
        var random = new Random(5);
        float[] bias = Random(random, b * hq * nq * nk);
        var mask = new DocumentMask { QueryDocuments = Ints(context, queryDocs), KeyDocuments = Ints(context, keyDocs), Nq = nq, Nk = nk };
        var score = new BiasScore { Bias = Floats(context, bias), Heads = hq, Nq = nq, Nk = nk };
        Check(context, shape, score, mask, (bb, h, q, k) => queryDocs[bb * nq + q] == keyDocs[bb * nk + k],
            (s, bb, h, q, k) => s + bias[((bb * hq + h) * nq + q) * nk + k], FlexGpu.CreateBlockMask(context, mask, b, 1, nq, nk, 16, 16),
            tolerance: Tolerance(type, path), type: type, path: path);
    }

    [SkippableFact]
    public void TensorCoreKernel_PassesItsSelfCheck_AndIsPickedByDefault()
    {
        var context = Context;
        SkipWithoutTensorCores(FlexPath.Mma);
        Skip.If(Environment.GetEnvironmentVariable(FlexMmaPath.Variable)?.Trim() == "0", $"{FlexMmaPath.Variable}=0 turns the tensor-core kernel off");
        var shape = new Shape(1, 2, 1, 33, 40, 64, 64);
        foreach (var type in new[] { ElementType.Float16, ElementType.BFloat16 })
        {
            Check(context, shape, new NoScoreMod(), new NoMask(), (b, h, q, k) => true, (s, b, h, q, k) => s, null,
                tolerance: Tolerance(type, FlexPath.Mma), type: type);
            Assert.True(FlexMmaPath.CheckResult(context, type == ElementType.Float16 ? typeof(Fp16Element) : typeof(Bf16Element), 64),
                $"the {type} tensor-core kernel failed its self-check on {context.DeviceName} (see the Trace output)");
        }
    }

    [SkippableTheory]
    [InlineData(true)]
    [InlineData(false)]
    public void ViewReadOutOfRange_Throws_OnBothKernels(bool mma)
    {
        var path = mma ? FlexPath.Mma : FlexPath.Scalar;
        var context = Context;
        SkipWithoutTensorCores(path);
        var shape = new Shape(1, 2, 1, 20, 30, 64, 64);
        var q = Upload(context, new float[20 * 2 * 64], ElementType.Float16, 1, 2, 20, 64);
        var k = Upload(context, new float[30 * 64], ElementType.Float16, 1, 1, 30, 64);
        var o = Upload(context, new float[20 * 2 * 64], ElementType.Float16, 1, 2, 20, 64);
        var score = new KeyBiasScore { Bias = Floats(context, new float[shape.Nk - 1]) };
        var e = Assert.Throws<FlexModificationException>(() => FlexGpu.Run(context, q, k, k, o, null, 0.125f, null, score, new NoMask(), path: path));
        Assert.Contains($"Index {shape.Nk - 1} is outside the view scoreMod.Bias", e.Message, StringComparison.Ordinal);
    }
}

/// <summary>Where the tensor-core kernel is not picked, checked without a GPU.</summary>
public sealed class FlexMmaSelectionTests(OpenClFixture fixture) : IClassFixture<OpenClFixture>
{
    [SkippableFact]
    public void OpenCl_AndFp32_AndWideHeads_UseTheScalarKernel()
    {
        var context = fixture.Context;
        Assert.Null(FlexMmaPath.Pick(context, typeof(Fp16Element), 64, force: true));
        Assert.Null(FlexMmaPath.Pick(context, typeof(Bf16Element), 128, force: false));
        Assert.Null(FlexMmaPath.CheckResult(context, typeof(Fp16Element), 64));
        // fp16 on OpenCL: the scalar kernel, whatever the path asked for.
        var shape = new Shape(1, 2, 1, 17, 21, 32, 32);
        Check(context, shape, new NoScoreMod(), new NoMask(), (b, h, q, k) => true, (s, b, h, q, k) => s, null,
            tolerance: 1.5e-3, type: ElementType.Float16, path: FlexPath.Mma);
    }
}
