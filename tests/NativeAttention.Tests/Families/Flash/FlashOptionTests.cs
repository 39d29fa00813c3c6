// Flash score options (softcap, ALiBi, dense and low-rank bias, sinks, sigmoid), written once and bound to each backend.
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace NativeAttention.Tests;

/// <summary>Each score option against the float64 reference, their combinations, and metamorphic properties.</summary>
public abstract class FlashOptionTests
{
    /// <summary>The backend under test.</summary>
    protected abstract Backend Backend { get; }

    /// <summary>Small random problems (any dtype, layout, GQA, Nq != Nk, causal, windows) to hang options on.</summary>
    protected static Gen<AttentionCase> SmallCases { get; } =
        from c in CaseGenerators.Flash(allowWindows: true)
        from lengthCap in Gen.Elements(40, 80, 140)
        select c with { QueryLength = Math.Min(c.QueryLength, lengthCap), KeyLength = Math.Min(c.KeyLength, lengthCap), HeadDim = Math.Min(c.HeadDim, 96) };

    private static readonly Gen<OptionBroadcast> Broadcasts = Gen.Elements(OptionBroadcast.None, OptionBroadcast.Batch, OptionBroadcast.Heads, OptionBroadcast.Both);
    private static readonly Gen<ElementType> Types = Gen.Elements(ElementType.Float32, ElementType.Float16, ElementType.BFloat16);

    /// <summary>Checks <paramref name="specs"/> on cases from <see cref="SmallCases"/>, failing with case, options and seed.</summary>
    protected void CheckOptions(Gen<FlashOptionSpec> specs, int count) =>
        CheckOptions(from c in SmallCases from s in specs select (c, s), count);

    /// <summary>Checks each generated case with its options against the reference.</summary>
    protected void CheckOptions(Gen<(AttentionCase Case, FlashOptionSpec Spec)> cases, int count)
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        Properties.Check(Arb.From(cases), x => AssertPassed(OptionVerifier.Verify(context, x.Case, x.Spec)), count);
    }

    /// <summary>Fails with the whole verification when it did not pass.</summary>
    protected static void AssertPassed(VerificationResult result)
    {
        if (!result.Passed) Assert.Fail(result.ToString());
    }

    private static Gen<int> Seeds => Gen.Choose(0, int.MaxValue);

    [SkippableFact]
    public void FlashOption_Softcap_MatchesReference() =>
        // Inputs up to 4 in magnitude give scores of several units, so the cap bends them well into tanh's flat part.
        CheckOptions(from c in SmallCases from cap in Gen.Elements(0.5f, 2f, 5f, 30f) from amp in Gen.Elements(1.0, 4.0) from seed in Seeds
                     select (c with { InputScale = amp }, new FlashOptionSpec { Softcap = cap, Seed = seed }), count: 24);

    [SkippableFact]
    public void FlashOption_Alibi_MatchesReference() =>
        CheckOptions(from rank in Gen.Elements(1, 2) from seed in Seeds select new FlashOptionSpec { AlibiRank = rank, Seed = seed }, count: 20);

    [SkippableFact]
    public void FlashOption_DenseBias_AnyTypeStrideAndBroadcast_MatchesReference() =>
        CheckOptions(from broadcast in Broadcasts from type in Types from transposed in Gen.Elements(false, true) from amp in Gen.Elements(1.0, 5.0) from seed in Seeds
                     select new FlashOptionSpec { DenseBias = true, DenseBiasBroadcast = broadcast, DenseBiasType = type, DenseBiasTransposed = transposed, Amplitude = amp, Seed = seed },
                     count: 24);

    [SkippableFact]
    public void FlashOption_LowRankBias_MatchesReference() =>
        CheckOptions(from rank in Gen.Elements(1, 3, 8, 16) from u in Broadcasts from w in Broadcasts from type in Types from seed in Seeds
                     select new FlashOptionSpec { LowRank = rank, LowRankUBroadcast = u, LowRankWBroadcast = w, LowRankType = type, Amplitude = 0.5, Seed = seed },
                     count: 24);

    [SkippableFact]
    public void FlashOption_Sinks_MatchReference() =>
        CheckOptions(from amp in Gen.Elements(1.0, 5.0) from seed in Seeds select new FlashOptionSpec { Sinks = true, Amplitude = amp, Seed = seed }, count: 20);

    [SkippableFact]
    public void FlashOption_Sigmoid_MatchesReference() =>
        CheckOptions(from bias in Gen.Elements(0f, -2f, -5f, -40f) from seed in Seeds select new FlashOptionSpec { SigmoidBias = bias, Seed = seed }, count: 20);

    [SkippableFact]
    public void FlashOption_Combinations_MatchReference() =>
        CheckOptions(
            from softcap in Gen.Elements(0f, 3f, 20f)
            from alibi in Gen.Elements(0, 1, 2)
            from dense in Gen.Elements(false, true)
            from denseBroadcast in Broadcasts
            from rank in Gen.Elements(0, 0, 2, 5)
            from w in Broadcasts
            from sinks in Gen.Elements(false, true)
            from sigmoid in Gen.Frequency((3, Gen.Constant<float?>(null)), (1, Gen.Constant<float?>(-3f)))
            from seed in Seeds
            select new FlashOptionSpec
            {
                Softcap = softcap, AlibiRank = alibi, DenseBias = dense, DenseBiasBroadcast = denseBroadcast, LowRank = rank, LowRankWBroadcast = w,
                Sinks = sinks && sigmoid is null, SigmoidBias = sigmoid, Seed = seed,
            }, count: 40);

    /// <summary>
    /// Every score option with head dims past 96 (128, 160, 256: the other cases cap them at 96), option tensors in
    /// float16/bfloat16 as well as float32, and U of the low-rank bias broadcast over batch, heads or both.
    /// </summary>
    [SkippableFact]
    public void FlashOption_LargeHeadDims_16BitOptionTensors_BroadcastU_MatchReference() =>
        CheckOptions(
            from c in CaseGenerators.Flash(allowWindows: true)
            from dqk in Gen.Elements(128, 160, 256)
            from dv in Gen.Elements(dqk, 64, 160)
            from softcap in Gen.Elements(0f, 0f, 5f)
            from alibi in Gen.Elements(0, 1, 2)
            from dense in Gen.Elements(false, true)
            from denseBroadcast in Broadcasts
            from denseType in Types
            from rank in Gen.Elements(0, 2, 5)
            from u in Broadcasts
            from w in Broadcasts
            from lowRankType in Types
            from sinks in Gen.Elements(false, true)
            from sigmoid in Gen.Frequency((3, Gen.Constant<float?>(null)), (1, Gen.Constant<float?>(-2f)))
            from seed in Seeds
            select (c with { QueryLength = Math.Min(c.QueryLength, 40), KeyLength = Math.Min(c.KeyLength, 70), HeadDim = dqk, ValueDim = dv },
                new FlashOptionSpec
                {
                    Softcap = softcap, AlibiRank = alibi, DenseBias = dense, DenseBiasBroadcast = denseBroadcast, DenseBiasType = denseType,
                    LowRank = rank, LowRankUBroadcast = u, LowRankWBroadcast = w, LowRankType = lowRankType,
                    Sinks = sinks && sigmoid is null, SigmoidBias = sigmoid, Seed = seed,
                }),
            count: 8);

    [SkippableFact]
    public void FlashOption_LowRankBias_EqualsTheSameBiasGivenDensely()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        Properties.Check(Arb.From(from c in SmallCases from rank in Gen.Elements(1, 4, 16) from softcap in Gen.Elements(0f, 4f) from seed in Seeds select (c, rank, softcap, seed)), x =>
        {
            var (raw, rank, softcap, seed) = x;
            var c = raw with { ElementType = ElementType.Float32 };
            var lowRank = new FlashOptionSpec { LowRank = rank, LowRankWBroadcast = OptionBroadcast.Batch, Softcap = softcap, Amplitude = 0.5, Seed = seed }.Build(c);
            var u = lowRank.LowRankBias!.U.ToDoubleArray();
            var w = lowRank.LowRankBias.W.ToDoubleArray();
            int b = c.Batch, h = c.QueryHeads, nq = c.QueryLength, nk = c.KeyLength;
            var dense = new float[(long)b * h * nq * nk];
            for (int bh = 0; bh < b * h; bh++)
                for (int i = 0; i < nq; i++)
                    for (int j = 0; j < nk; j++)
                    {
                        double sum = 0;
                        for (int t = 0; t < rank; t++) sum += u[((long)bh * nq + i) * rank + t] * w[((long)(bh % h) * nk + j) * rank + t];
                        dense[((long)bh * nq + i) * nk + j] = (float)sum;
                    }
            var viaLowRank = RunWith(context, c, lowRank);
            var viaDense = RunWith(context, c, lowRank with { LowRankBias = null, Bias = TensorView.FromMemory(dense.AsMemory(), b, h, nq, nk) });
            double tolerance = 4 * CaseVerifier.Compare(Backend, c with { Flash = lowRank }, viaLowRank).Tolerance + 1e-5;
            AssertClose(viaDense.Output.ToDoubleArray(), viaLowRank.Output.ToDoubleArray(), tolerance, c, "output");
            AssertClose(viaDense.LogSumExp.ToDoubleArray(), viaLowRank.LogSumExp.ToDoubleArray(), 1e-4, c, "LSE");
        }, count: 10);
    }

    [SkippableFact]
    public void FlashOption_SinksOfNegativeInfinity_EqualNoSinks()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        Properties.Check(Arb.From(SmallCases), c =>
        {
            var sinks = TensorView.FromMemory(Enumerable.Repeat(float.NegativeInfinity, c.QueryHeads).ToArray().AsMemory(), c.QueryHeads);
            var plain = RunWith(context, c, c.Flash);
            var withSinks = RunWith(context, c, c.Flash with { Sinks = sinks });
            Assert.Equal(plain.Output.ToDoubleArray(), withSinks.Output.ToDoubleArray());
            Assert.Equal(plain.LogSumExp.ToDoubleArray(), withSinks.LogSumExp.ToDoubleArray());
        }, count: 10);
    }

    [SkippableFact]
    public void FlashOption_BiasConstantAlongEachRow_ChangesOnlyLse()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        Properties.Check(Arb.From(SmallCases), raw =>
        {
            var c = raw with { ElementType = ElementType.Float32 };
            int b = c.Batch, h = c.QueryHeads, nq = c.QueryLength, nk = c.KeyLength;
            var shift = new double[(long)b * h * nq];
            var bias = new float[(long)b * h * nq * nk];
            for (long row = 0; row < shift.Length; row++)
            {
                shift[row] = (float)(((row * 7919 + c.Seed) % 1000) / 100.0 - 5);
                Array.Fill(bias, (float)shift[row], (int)(row * nk), nk);
            }
            var plain = RunWith(context, c, c.Flash);
            var shifted = RunWith(context, c, c.Flash with { Bias = TensorView.FromMemory(bias.AsMemory(), b, h, nq, nk) });
            double tolerance = 2 * CaseVerifier.Compare(Backend, c, plain).Tolerance + 1e-5;
            AssertClose(plain.Output.ToDoubleArray(), shifted.Output.ToDoubleArray(), tolerance, c, "output");
            var lse0 = plain.LogSumExp.ToDoubleArray();
            var lse1 = shifted.LogSumExp.ToDoubleArray();
            for (int row = 0; row < lse0.Length; row++)
            {
                if (double.IsNegativeInfinity(lse0[row])) { Assert.True(double.IsNegativeInfinity(lse1[row]), $"{c}: row {row}"); continue; }
                Assert.True(Math.Abs(lse1[row] - lse0[row] - shift[row]) <= 1e-4 * (1 + Math.Abs(lse1[row])), $"{c}: row {row} LSE {lse1[row]} vs {lse0[row]} + {shift[row]}");
            }
        }, count: 10);
    }

    [SkippableFact]
    public void FlashOption_SigmoidBias_EqualsTheBiasFoldedIntoTheDenseBias()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        Properties.Check(Arb.From(from c in SmallCases from b in Gen.Elements(-1f, -4f, 2f) select (c, b)), x =>
        {
            var (raw, sigmoidBias) = x;
            var c = raw with { ElementType = ElementType.Float32 };
            int n = c.Batch * c.QueryHeads * c.QueryLength * c.KeyLength;
            var baseBias = new FlashOptionSpec { DenseBias = true, Seed = c.Seed }.Build(c).Bias!.Value;
            var folded = baseBias.ToDoubleArray().Select(v => (float)(v + sigmoidBias)).ToArray();
            var viaOption = RunWith(context, c, c.Flash with { Bias = baseBias, ScoreFunction = ScoreFunction.Sigmoid, SigmoidBias = sigmoidBias });
            var viaBias = RunWith(context, c, c.Flash with
            {
                Bias = TensorView.FromMemory(folded.AsMemory(), c.Batch, c.QueryHeads, c.QueryLength, c.KeyLength), ScoreFunction = ScoreFunction.Sigmoid,
            });
            double tolerance = 4 * CaseVerifier.Compare(Backend, c with { Flash = c.Flash with { Bias = baseBias, ScoreFunction = ScoreFunction.Sigmoid, SigmoidBias = sigmoidBias } }, viaOption).Tolerance + 1e-5;
            AssertClose(viaBias.Output.ToDoubleArray(), viaOption.Output.ToDoubleArray(), tolerance, c, "output");
            AssertClose(viaBias.LogSumExp.ToDoubleArray(), viaOption.LogSumExp.ToDoubleArray(), 1e-4, c, "LSE");
        }, count: 10);
    }

    [SkippableTheory]
    [InlineData(false, null)]
    [InlineData(true, null)]
    [InlineData(false, -1f)]
    public void FlashOption_RowsWithNoVisibleKey_WriteZerosAndNegativeInfinityLse(bool sinks, float? sigmoidBias)
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        // Causal with Nq > Nk hides every key from the first rows; a -inf bias hides every key of head 1, row 40 and after.
        var c = new AttentionCase { QueryLength = 50, KeyLength = 30, HeadDim = 16, ValueDim = 16, QueryHeads = 2, KeyValueHeads = 1, Seed = 5 };
        var bias = new float[2 * 50 * 30];
        for (int i = 40; i < 50; i++) Array.Fill(bias, float.NegativeInfinity, (50 + i) * 30, 30);
        var spec = new FlashOptionSpec { Softcap = 5, AlibiRank = 1, LowRank = 2, Sinks = sinks, SigmoidBias = sigmoidBias, Seed = 9 };
        var options = spec.Build(c) with { Causal = true, Bias = TensorView.FromMemory(bias.AsMemory(), 1, 2, 50, 30) };
        var withOptions = c with { Flash = options };
        var tensors = withOptions.CreateTensors();
        CaseRunner.Run(context, withOptions, tensors);
        AssertPassed(CaseVerifier.Compare(Backend, withOptions, tensors));
        var output = tensors.Output.ToDoubleArray();
        var lse = tensors.LogSumExp.ToDoubleArray();
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < 50; i++)
            {
                bool hidden = i < 20 || (h == 1 && i >= 40);
                double rowLse = lse[h * 50 + i];
                Assert.True(hidden ? double.IsNegativeInfinity(rowLse) : double.IsFinite(rowLse), $"head {h} row {i}: LSE {rowLse}");
                if (hidden) for (int d = 0; d < 16; d++) Assert.Equal(0.0, output[(h * 50 + i) * 16 + d]);
            }
        Assert.DoesNotContain(output, double.IsNaN);
    }

    [SkippableFact]
    public void FlashOption_SigmoidWithVeryNegativeScores_KeepsAFiniteLse()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        // sigmoid(s - 200) underflows float32, but the log of the row's total weight is about -200 and must stay finite.
        var c = new AttentionCase { QueryLength = 20, KeyLength = 70, HeadDim = 32, ValueDim = 32, QueryHeads = 2, KeyValueHeads = 2, Seed = 8 };
        AssertPassed(OptionVerifier.Verify(context, c, new FlashOptionSpec { SigmoidBias = -200f }));
    }

    /// <summary>Runs <paramref name="c"/> with <paramref name="options"/> and returns its tensors.</summary>
    protected static CaseTensors RunWith(AttentionContext context, AttentionCase c, FlashOptions options)
    {
        var withOptions = c with { Flash = options };
        var tensors = withOptions.CreateTensors();
        CaseRunner.Run(context, withOptions, tensors);
        return tensors;
    }

    private static void AssertClose(double[] expected, double[] actual, double tolerance, AttentionCase c, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            if (double.IsNegativeInfinity(expected[i]) && double.IsNegativeInfinity(actual[i])) continue;
            if (!(Math.Abs(expected[i] - actual[i]) <= tolerance * (what == "LSE" ? 1 + Math.Abs(expected[i]) : 1)))
                Assert.Fail($"{c}: {what} element {i} is {actual[i]:G9}, expected {expected[i]:G9} (tolerance {tolerance:G3})");
        }
    }
}

[Trait("Backend", "Cpu")]
public sealed class CpuFlashOptionTests : FlashOptionTests
{
    protected override Backend Backend => Backend.Cpu;

    public static TheoryData<int> VectorWidths()
    {
        var widths = new TheoryData<int>();
        foreach (int bits in new[] { 512, 256, 128, 0 })
            if (bits <= Cpu.CpuFeatures.VectorBits) widths.Add(bits);
        return widths;
    }

    [Theory]
    [MemberData(nameof(VectorWidths))]
    public void FlashOption_EveryVectorWidth_MatchesReference(int bits)
    {
        using var context = new Cpu.CpuContext(new ContextOptions { Threads = 2 }) { ForcedVectorBits = bits };
        var arbitrary = Arb.From(
            from c in SmallCases
            from softcap in Gen.Elements(0f, 4f)
            from rank in Gen.Elements(0, 3)
            from sigmoid in Gen.Elements<float?>(null, null, -2f)
            from seed in Gen.Choose(0, int.MaxValue)
            select (c, new FlashOptionSpec
            {
                Softcap = softcap, AlibiRank = 1, DenseBias = true, DenseBiasBroadcast = OptionBroadcast.Batch, LowRank = rank,
                Sinks = sigmoid is null, SigmoidBias = sigmoid, Seed = seed,
            }));
        Properties.Check(arbitrary, x => AssertPassed(OptionVerifier.Verify(context, x.c, x.Item2)), count: 12);
    }

    [Fact]
    public void FlashOption_ResultsDoNotDependOnThreadCount()
    {
        var c = new AttentionCase { QueryLength = 150, KeyLength = 130, HeadDim = 40, ValueDim = 40, QueryHeads = 4, KeyValueHeads = 2, Batch = 2 };
        var options = new FlashOptionSpec { Softcap = 5, AlibiRank = 2, DenseBias = true, LowRank = 4, Sinks = true }.Build(c) with { Causal = true };
        using var one = AttentionContext.Create(Backend.Cpu, new ContextOptions { Threads = 1 });
        using var three = AttentionContext.Create(Backend.Cpu, new ContextOptions { Threads = 3 });
        Assert.Equal(RunWith(one, c, options).Output.ToDoubleArray(), RunWith(three, c, options).Output.ToDoubleArray());
    }
}

[Trait("Backend", "OpenCl")]
public sealed class OpenClFlashOptionTests : FlashOptionTests
{
    protected override Backend Backend => Backend.OpenCl;
}

[Trait("Backend", "Cuda")]
public sealed class CudaFlashOptionTests : FlashOptionTests
{
    protected override Backend Backend => Backend.Cuda;
}
