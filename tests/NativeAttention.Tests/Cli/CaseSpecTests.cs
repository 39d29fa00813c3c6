// AttentionCase's text form and CaseSampler: what `fuzz --replay` and the case files rely on.
using Xunit;

namespace NativeAttention.Tests.CommandLine;

public class CaseSpecTests
{
    [Fact]
    public void Spec_OfSampledCases_RoundTripsToAnEqualCase()
    {
        var sampler = new CaseSampler(seed: 123);
        for (int i = 0; i < 500; i++)
        {
            var @case = sampler.Next();
            Assert.Equal(@case, AttentionCase.Parse(@case.ToSpec()));
        }
    }

    [Fact]
    public void Spec_WithEveryScalarOption_RoundTrips()
    {
        var @case = new AttentionCase
        {
            Family = AttentionFamily.Flash, ElementType = ElementType.BFloat16, Layout = TensorLayout.SequenceFirst, Batch = 3,
            QueryHeads = 6, KeyValueHeads = 2, QueryLength = 7, KeyLength = 300, HeadDim = 96, ValueDim = 40, Seed = 99,
            InputScale = 2.5, KvCache = true,
            Flash = new FlashOptions { Causal = true, WindowLeft = 5, WindowRight = 0, Scale = 0.1f, Softcap = 30, ScoreFunction = ScoreFunction.Sigmoid, SigmoidBias = -5.7f },
        };
        string spec = @case.ToSpec();
        Assert.Equal("flash bf16 B3 H6/2 N7x300 D96/40 bnhd kvcache causal window(5,0) scale=0.1 softcap=30 sigmoid(-5.7) amp=2.5 seed=99", spec);
        Assert.Equal(@case, AttentionCase.Parse(spec));
    }

    [Fact]
    public void Parse_ReadsToStringAndShortForms()
    {
        var @case = AttentionCase.ForFlash(2, 8, 512, 64, causal: true, ElementType.Float16, seed: 5);
        Assert.Equal(@case, AttentionCase.Parse(@case.ToString()));
        Assert.Equal(@case, AttentionCase.Parse("f16 B2 H8 N512 D64 causal seed=5"));
    }

    [Theory]
    [InlineData("flash f99", "f99")]
    [InlineData("flash H6/4", "multiple")]
    [InlineData("flash N0", "at least 1")]
    [InlineData("", "empty")]
    public void Parse_BadSpec_ThrowsFormatExceptionNamingTheProblem(string spec, string expected)
    {
        var e = Assert.Throws<FormatException>(() => AttentionCase.Parse(spec));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ToSpec_WithTensorOption_ThrowsNotSupported()
    {
        var slopes = TensorView.FromMemory(new float[2].AsMemory(), 2);
        var @case = AttentionCase.ForFlash(1, 2, 4, 8) with { Flash = new FlashOptions { AlibiSlopes = slopes } };
        Assert.Throws<NotSupportedException>(() => @case.ToSpec());
    }

    [Fact]
    public void Sampler_SameSeed_SameCases_AndEveryCaseIsAValidProblem()
    {
        var first = new CaseSampler(seed: 9);
        var second = new CaseSampler(seed: 9);
        for (int i = 0; i < 200; i++)
        {
            var @case = first.Next();
            Assert.Equal(@case, second.Next());
            Assert.Equal(0, @case.QueryHeads % @case.KeyValueHeads);
            Assert.InRange(@case.QueryLength, 1, 200);
            Assert.InRange(@case.KeyLength, 1, 200);
            Assert.InRange(@case.HeadDim, 1, 256);
            if (i < 40) _ = @case.CreateFlashProblem(@case.CreateTensors());
        }
    }

    [Fact]
    public void Sampler_DrawsSmallInputs_ForAQuarterOfTheCases_OnlyWhenAllowed()
    {
        foreach (var family in new[] { AttentionCase.Registration, global::NativeAttention.NeighborhoodCase.Registration, BlockSparseCase.Registration })
        {
            var plain = new CaseSampler(5, allowKvCache: true) { AllowCacheLayouts = true, AllowOptionTensors = true };
            var small = new CaseSampler(5, allowKvCache: true) { AllowCacheLayouts = true, AllowOptionTensors = true, AllowSmallInputs = true };
            int Drawn(CaseSampler sampler) => Enumerable.Range(0, 400).Count(_ => sampler.NextCase(family).ToSpec().Contains(" qamp=", StringComparison.Ordinal));
            Assert.Equal(0, Drawn(plain));
            Assert.InRange(Drawn(small), 60, 140);
        }
    }

    [Fact]
    public void Sampler_CoversTheTails()
    {
        var sampler = new CaseSampler(seed: 1);
        var cases = Enumerable.Range(0, 2000).Select(_ => sampler.Next()).ToList();
        Assert.Contains(cases, c => c.QueryLength == 1);
        Assert.Contains(cases, c => c.KeyLength == 129);
        Assert.Contains(cases, c => c.QueryLength != c.KeyLength);
        Assert.Contains(cases, c => c.QueryHeads > c.KeyValueHeads);
        Assert.Contains(cases, c => c.HeadDim % 2 == 1);
        Assert.Contains(cases, c => c.Flash.WindowLeft >= 0);
        Assert.Contains(cases, c => c.Flash.Causal);
        foreach (var type in Enum.GetValues<ElementType>()) Assert.Contains(cases, c => c.ElementType == type);
        Assert.Contains(cases, c => c.Layout == TensorLayout.SequenceFirst);
        var noWindows = new CaseSampler(seed: 1, allowWindows: false);
        Assert.All(Enumerable.Range(0, 500).Select(_ => noWindows.Next()), c => Assert.True(c.Flash.WindowLeft < 0 && c.Flash.WindowRight < 0));
    }

    [Fact]
    public void Shrink_GivesValidSmallerCases()
    {
        var sampler = new CaseSampler(seed: 4);
        for (int i = 0; i < 100; i++)
        {
            var @case = sampler.Next();
            foreach (var smaller in CaseSampler.Shrink(@case))
            {
                Assert.NotEqual(@case, smaller);
                Assert.Equal(0, smaller.QueryHeads % smaller.KeyValueHeads);
                Assert.True(smaller.QueryLength >= 1 && smaller.KeyLength >= 1 && smaller.HeadDim >= 1 && smaller.ValueDim >= 1);
                Assert.True(Size(smaller) <= Size(@case));
            }
        }
    }

    private static double Size(AttentionCase c) => (double)c.Batch * c.QueryHeads * c.QueryLength * c.KeyLength * c.HeadDim * c.ValueDim;

    [Fact]
    public void Minimize_FindsTheSmallestCaseOnTheFailureBoundary()
    {
        var failing = AttentionCase.Parse("flash f16 B2 H6/2 N100x150 D96/64 bnhd causal window(3,4) seed=8");
        var (smallest, _) = CaseSampler.Minimize(failing, c => c.KeyLength >= 30);
        Assert.Equal(AttentionCase.Parse("flash f32 B1 H1/1 N1x37 D1/1 seed=8"), smallest);
    }
}
