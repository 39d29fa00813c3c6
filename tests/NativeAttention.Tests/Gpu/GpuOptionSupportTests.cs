// Options the GPU flash kernels do not implement yet are refused before any launch (issue 4 adds them).
using Xunit;

namespace NativeAttention.Tests.Gpu;

public sealed class GpuOptionSupportTests
{
    [SkippableTheory]
    [InlineData(Backend.OpenCl)]
    [InlineData(Backend.Cuda)]
    public void Flash_UnimplementedScoreOption_ThrowsNotSupportedBeforeLaunch(Backend backend)
    {
        using var context = TestBackend.CreateOrSkip(backend);
        var q = context.Allocate(ElementType.Float32, 1, 1, 4, 8);
        var o = context.Allocate(ElementType.Float32, 1, 1, 4, 8);
        Assert.Throws<NotSupportedException>(() => context.Flash(q, q, q, o, new FlashOptions { Softcap = 30 }));
    }
}
