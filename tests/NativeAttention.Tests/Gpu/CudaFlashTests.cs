// Flash on the CUDA backend against the float64 computation: the portable kernel and the tensor-core kernel.
using Xunit;

namespace NativeAttention.Tests.Gpu;

[Trait("Backend", "Cuda")]
public sealed class CudaFlashTests
{
    private static readonly Lazy<AttentionContext> Context = new(() => AttentionContext.Create(Backend.Cuda));

    [RuntimeTheory(TestRuntime.Cuda)]
    [MemberData(nameof(GpuFlashCase.Portable), MemberType = typeof(GpuFlashCase))]
    public void Flash_MatchesFloat64(GpuFlashCase flashCase)
    {
        RuntimeAvailability.Require(TestRuntime.Cuda);
        flashCase.Check(Context.Value);
    }

    [RuntimeTheory(TestRuntime.Cuda)]
    [MemberData(nameof(GpuFlashCase.TensorCore), MemberType = typeof(GpuFlashCase))]
    public void Flash_TensorCores_MatchesFloat64(GpuFlashCase flashCase)
    {
        RuntimeAvailability.Require(TestRuntime.Cuda);
        flashCase.Check(Context.Value);
    }

    [RuntimeFact(TestRuntime.Cuda)]
    public void Flash_FromSeveralThreads_EachResultIsCorrect()
    {
        RuntimeAvailability.Require(TestRuntime.Cuda);
        var cases = GpuFlashCase.TensorCoreCases[..4];
        Parallel.For(0, 8, i => cases[i % cases.Length].Check(Context.Value, seed: i));
    }
}
