// Flex attention on OpenCL (PoCL in CI): every built-in option written as a modification, compositions, block masks
// made on the device, against the float64 reference; modifications ILGPU cannot compile fail before anything runs.
using NativeAttention.Ilgpu.Flex.Gpu;
using Xunit;
using static NativeAttention.Ilgpu.Tests.FlexOnGpu.FlexCheck;

namespace NativeAttention.Ilgpu.Tests.FlexOnGpu;

public sealed class FlexOpenClTests(OpenClFixture fixture) : IClassFixture<OpenClFixture>
{
    private static readonly Shape Small = new(2, 4, 2, 37, 45, 32, 24);

    private static bool All(int b, int h, int q, int k) => true;
    private static double Same(double s, int b, int h, int q, int k) => s;

    [SkippableFact]
    public void NoModification_IsPlainAttention() =>
        Check(fixture.Context, Small, new NoScoreMod(), new NoMask(), All, Same, null);

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void Causal_BottomRightAligned(bool blockMask)
    {
        var context = fixture.Context;
        var mask = new CausalMask { Shift = Small.Nk - Small.Nq };
        var blocks = blockMask ? FlexGpu.CreateBlockMask(context, mask, Small.B, Small.Hq, Small.Nq, Small.Nk, 16, 16) : null;
        Check(context, Small, new NoScoreMod(), mask, (b, h, q, k) => k <= q + 8, Same, blocks);
    }
}
