// Flash on the OpenCL backend (PoCL in CI) against the float64 computation, plus concurrency.
using Xunit;

namespace NativeAttention.Tests.Gpu;

public sealed class OpenClFlashTests
{
    private static readonly Lazy<AttentionContext> Context = new(() => AttentionContext.Create(Backend.OpenCl));

    [RuntimeTheory(TestRuntime.OpenCl)]
    [MemberData(nameof(GpuFlashCase.Portable), MemberType = typeof(GpuFlashCase))]
    public void Flash_MatchesFloat64(GpuFlashCase flashCase)
    {
        RuntimeAvailability.Require(TestRuntime.OpenCl);
        flashCase.Check(Context.Value);
    }

    [RuntimeFact(TestRuntime.OpenCl)]
    public void Flash_FromSeveralThreads_EachResultIsCorrect()
    {
        RuntimeAvailability.Require(TestRuntime.OpenCl);
        var flashCase = GpuFlashCase.PortableCases[0];
        Parallel.For(0, 4, i => flashCase.Check(Context.Value, seed: 10 * i));
    }

    [RuntimeFact(TestRuntime.OpenCl)]
    public void Flash_UnsupportedOption_ThrowsNotSupported()
    {
        RuntimeAvailability.Require(TestRuntime.OpenCl);
        var context = Context.Value;
        var q = context.Allocate(ElementType.Float32, 1, 1, 4, 8);
        var o = context.Allocate(ElementType.Float32, 1, 1, 4, 8);
        Assert.Throws<NotSupportedException>(() => context.Flash(q, q, q, o, new FlashOptions { Softcap = 30 }));
    }
}
