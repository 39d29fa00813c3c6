// The device-side bounds checks of the views a modification reads (FlexViewChecks), on OpenCL (PoCL): a read out of
// range in a score modification, in a mask modification and in CreateBlockMask throws a FlexModificationException that
// names the struct, the view and the index; reads in range never throw and give the reference's result; and the cost of
// the checks (one process, checked against unchecked kernels) is measured.
using System.Diagnostics;
using NativeAttention.Ilgpu.Flex.Gpu;
using Xunit;
using Xunit.Abstractions;
using static NativeAttention.Ilgpu.Tests.FlexOnGpu.FlexCheck;

namespace NativeAttention.Ilgpu.Tests.FlexOnGpu;

public sealed class FlexViewCheckTests(OpenClFixture fixture, ITestOutputHelper output) : IClassFixture<OpenClFixture>
{
    private static readonly Shape Small = new(2, 4, 2, 37, 45, 32, 24);

    private static bool All(int b, int h, int q, int k) => true;
    private static double Same(double s, int b, int h, int q, int k) => s;

    private (TensorView Q, TensorView K, TensorView V, TensorView O) Tensors(Shape shape)
    {
        var context = fixture.Context;
        var random = new Random(3);
        var (b, hq, hkv, nq, nk, d, dv) = shape;
        return (Upload(context, Random(random, b * hq * nq * d), b, hq, nq, d), Upload(context, Random(random, b * hkv * nk * d), b, hkv, nk, d),
            Upload(context, Random(random, b * hkv * nk * dv), b, hkv, nk, dv), Upload(context, new float[b * hq * nq * dv], b, hq, nq, dv));
    }

    private FlexModificationException Fails<TScore, TMask>(TScore score, TMask mask, Shape shape, FlexBlockMask? blocks = null)
        where TScore : struct, IScoreMod where TMask : struct, IMaskMod
    {
        var (q, k, v, o) = Tensors(shape);
        return Assert.Throws<FlexModificationException>(() => fixture.Context.Flex(q, k, v, o, score, mask, new FlexOptions { BlockMask = blocks }));
    }

    [SkippableFact]
    public void ScoreModification_ReadingPastATablesEnd_Throws_NamingTheStructViewAndIndex()
    {
        var context = fixture.Context;
        var score = new KeyBiasScore { Bias = Floats(context, new float[Small.Nk - 1]) };   // one short: key Nk - 1 reads past the end
        var e = Fails(score, new NoMask(), Small);
        Assert.Equal(typeof(KeyBiasScore), e.ModificationType);
        Assert.Equal("score", e.Role);
        Assert.IsType<IndexOutOfRangeException>(e.InnerException);
        Assert.Contains($"Index {Small.Nk - 1} is outside the view scoreMod.Bias (length {Small.Nk - 1}", e.Message, StringComparison.Ordinal);
        Assert.Contains("KeyBiasScore.Score", e.Message, StringComparison.Ordinal);
        Assert.StartsWith($"The score modification {typeof(KeyBiasScore).FullName} threw IndexOutOfRangeException on the OpenCl device", e.Message, StringComparison.Ordinal);
        output.WriteLine(e.Message);
    }

    [SkippableFact]
    public void MaskModification_ReadingPastATablesEnd_Throws()
    {
        var context = fixture.Context;
        var (b, nq, nk) = (Small.B, Small.Nq, Small.Nk);
        var mask = new DocumentMask { QueryDocuments = Ints(context, new int[b * nq]), KeyDocuments = Ints(context, new int[b * nk - 1]), Nq = nq, Nk = nk };
        var e = Fails(new NoScoreMod(), mask, Small);
        Assert.Equal(typeof(DocumentMask), e.ModificationType);
        Assert.Equal("mask", e.Role);
        Assert.Contains($"Index {b * nk - 1} is outside the view maskMod.KeyDocuments (length {b * nk - 1}", e.Message, StringComparison.Ordinal);
        output.WriteLine(e.Message);
    }

    [SkippableFact]
    public void NegativeIndex_InANestedModification_Throws_NamingItsPath()
    {
        var context = fixture.Context;
        var mask = new AndMask<CausalMask, HeadGateMask> { First = new CausalMask { Shift = 8 }, Second = new HeadGateMask { Gates = Ints(context, [1, 0, 1, 0]), Offset = 1 } };
        var e = Fails(new NoScoreMod(), mask, Small);
        Assert.Equal(typeof(AndMask<CausalMask, HeadGateMask>), e.ModificationType);
        Assert.Contains("Index -1 is outside the view maskMod.Second.Gates (length 4", e.Message, StringComparison.Ordinal);
        output.WriteLine(e.Message);
    }

    [SkippableFact]
    public void CreateBlockMask_OnTheDevice_ReadingOutOfRange_Throws()
    {
        var context = fixture.Context;
        var mask = new DocumentMask { QueryDocuments = Ints(context, new int[Small.Nq - 1]), KeyDocuments = Ints(context, new int[Small.Nk]), Nq = Small.Nq, Nk = Small.Nk };
        var e = Assert.Throws<FlexModificationException>(() => context.CreateBlockMask(mask, 1, 1, Small.Nq, Small.Nk, 16, 16));
        Assert.Equal("mask", e.Role);
        Assert.Contains($"Index {Small.Nq - 1} is outside the view maskMod.QueryDocuments (length {Small.Nq - 1}", e.Message, StringComparison.Ordinal);
        Assert.Contains("CreateBlockMask", e.Message, StringComparison.Ordinal);
        output.WriteLine(e.Message);
    }

    [SkippableFact]
    public void AfterAFailure_TheNextCallStartsClean()
    {
        var context = fixture.Context;
        Fails(new KeyBiasScore { Bias = Floats(context, new float[Small.Nk - 1]) }, new NoMask(), Small);
        float[] bias = Enumerable.Range(0, Small.Nk).Select(i => 0.01f * i).ToArray();
        Check(context, Small, new KeyBiasScore { Bias = Floats(context, bias) }, new NoMask(), All, (s, b, h, q, k) => s + bias[k], null);
    }

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void ReadsOfEveryElement_InRange_NeverThrow(bool blockMask)
    {
        var context = fixture.Context;
        var (b, nq, nk) = (Small.B, Small.Nq, Small.Nk);
        // Tables exactly as long as the reads need: the last element of each is read.
        int[] queryDocs = Enumerable.Range(0, b * nq).Select(i => i % nq / 10).ToArray(), keyDocs = Enumerable.Range(0, b * nk).Select(i => i % nk / 12).ToArray();
        float[] bias = Enumerable.Range(0, nk).Select(i => 0.02f * (i % 7)).ToArray();
        var mask = new DocumentMask { QueryDocuments = Ints(context, queryDocs), KeyDocuments = Ints(context, keyDocs), Nq = nq, Nk = nk };
        var blocks = blockMask ? context.CreateBlockMask(mask, b, 1, nq, nk, 16, 16) : null;
        Check(context, Small, new KeyBiasScore { Bias = Floats(context, bias) }, mask,
            (bb, h, q, k) => queryDocs[bb * nq + q] == keyDocs[bb * nk + k], (s, bb, h, q, k) => s + bias[k], blocks);
    }

    [SkippableFact]
    public void EmptyView_ReadOutOfRange_Throws()
    {
        var e = Fails(new KeyBiasScore(), new NoMask(), Small);
        Assert.Contains("(length 0", e.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// The checks' cost on PoCL: the same call with checked and unchecked kernels, interleaved in one process, best of
    /// several runs each. A document mask and a per-key bias: two view reads per score. A measurement, not a check
    /// (speed is never asserted in unit tests): it runs only with NATIVEATTENTION_FLEX_CHECK_TIMING=1 and prints the
    /// ratio for bench/results/opencl-pocl.md.
    /// </summary>
    [SkippableFact]
    public void Cost_CheckedAgainstUnchecked()
    {
        Skip.IfNot(Environment.GetEnvironmentVariable("NATIVEATTENTION_FLEX_CHECK_TIMING") == "1", "A measurement: set NATIVEATTENTION_FLEX_CHECK_TIMING=1 to run it.");
        var context = fixture.Context;
        var shape = new Shape(1, 4, 4, 256, 256, 64, 64);
        var (b, nq, nk) = (shape.B, shape.Nq, shape.Nk);
        var mask = new DocumentMask
        {
            QueryDocuments = Ints(context, Enumerable.Range(0, nq).Select(i => i / 100).ToArray()),
            KeyDocuments = Ints(context, Enumerable.Range(0, nk).Select(i => i / 100).ToArray()), Nq = nq, Nk = nk,
        };
        var score = new KeyBiasScore { Bias = Floats(context, new float[nk]) };
        var (q, k, v, o) = Tensors(shape);
        double Time(bool checks)
        {
            var watch = Stopwatch.StartNew();
            FlexGpu.Run(context, q, k, v, o, null, 0.125f, null, score, mask, checks);
            context.Synchronize();
            return watch.Elapsed.TotalMilliseconds;
        }
        Time(true);
        Time(false);   // compile and build both first
        double best = double.MaxValue, bestUnchecked = double.MaxValue;
        for (int i = 0; i < 7; i++)
        {
            bestUnchecked = Math.Min(bestUnchecked, Time(false));
            best = Math.Min(best, Time(true));
        }
        output.WriteLine($"PoCL, B=1 H=4 N=256 D=64, document mask + key bias: checked {best:F2} ms, unchecked {bestUnchecked:F2} ms, ratio {best / bestUnchecked:F3}");
    }
}
