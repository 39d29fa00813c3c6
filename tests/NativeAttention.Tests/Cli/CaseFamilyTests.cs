// Every registered case family: specs that round-trip, tensors, references and FLOP counts that work without a
// kernel, samplers that draw valid cases, and the compatibility of the flash family's old forms.
using FsCheck.Fluent;
using Xunit;

namespace NativeAttention.Tests.CommandLine;

public class CaseFamilyTests
{
    public static TheoryData<string> VerifySpecs()
    {
        var data = new TheoryData<string>();
        foreach (var family in CaseFamilies.All)
            foreach (string spec in family.VerifySpecs) data.Add(spec);
        return data;
    }

    [Fact]
    public void Registry_NamesAreUnique_AndEveryFamilyListsVerifyCases()
    {
        Assert.Equal(CaseFamilies.All.Count, CaseFamilies.All.Select(f => f.Name).Distinct().Count());
        Assert.All(CaseFamilies.All, f => Assert.NotEmpty(f.VerifySpecs));
        Assert.All(CaseFamilies.All, f => Assert.True(f.HasKernels, $"{f.Name} has no kernel on some backend: every family runs on the CPU, OpenCL and CUDA"));
        Assert.Equal(new[] { "flash", "merge", "neighborhood", "blocksparse", "linear", "delta" }, CaseFamilies.All.Select(f => f.Name));
    }

    [Theory]
    [MemberData(nameof(VerifySpecs))]
    public void VerifySpec_ParsesIntoItsFamily_AndRoundTrips(string spec)
    {
        var parsed = AttentionCaseSpec.Parse(spec);
        Assert.StartsWith(parsed.FamilyName, spec, StringComparison.Ordinal);
        var again = AttentionCaseSpec.Parse(parsed.ToSpec());
        Assert.Equal(parsed, again);
        Assert.Equal(parsed.ToSpec(), again.ToSpec());
        Assert.Equal(parsed.GetType(), again.GetType());
    }

    [Theory]
    [MemberData(nameof(VerifySpecs))]
    public void VerifyCase_BuildsNamedTensors_RunsBothReferences_AndCountsItsWork(string spec)
    {
        var c = AttentionCaseSpec.Parse(spec);
        Assert.True(c.Flops() > 0, $"{spec}: FLOPs {c.Flops()}");
        Assert.True(c.MinimumBytes() > 0);
        if (c.Flops() > 2e8) return; // The long flash case: its reference alone takes seconds here.
        var tensors = c.CreateTensors();
        Assert.Equal(tensors.All.Count, tensors.All.Select(t => t.Name).Distinct().Count());
        Assert.Contains(tensors.All, t => t.Role == CaseTensorRole.Output);
        Assert.All(tensors.All, t => Assert.Equal(MemoryLocation.Host, t.View.Location));
        var exact = c.ExactReference(tensors);
        var naive = c.NaiveReference(tensors);
        Assert.Equal(exact.OutputShape, naive.OutputShape);
        Assert.DoesNotContain(exact.Output, double.IsNaN);
        Assert.DoesNotContain(naive.Output, double.IsNaN);
        // Equal cases build equal inputs.
        var second = c.CreateTensors();
        foreach (var t in tensors.All.Where(t => t.Role != CaseTensorRole.Output))
            Assert.Equal(t.View.ToDoubleArray(), second[t.Name].ToDoubleArray());
    }

    [Theory]
    [InlineData("neighborhood f32 grid=8 k=9", "k x dilation")]
    [InlineData("neighborhood f32 grid=8x8 k=3x3x3", "one entry per grid axis")]
    [InlineData("neighborhood f32 grid=8 window(1,1)", "window(1,1)")]
    [InlineData("blocksparse f32 N16 density=2", "fractions")]
    [InlineData("blocksparse f32 N16 bogus", "bogus")]
    [InlineData("linear f32 N16 noncausal state", "noncausal")]
    [InlineData("linear f32 phi=cosine", "phi=cosine")]
    [InlineData("merge f32 S0", "at least 1")]
    [InlineData("merge f32 H2/1", "H2/1")]
    [InlineData("flash f32 N8 kvcache new=9", "new=9")]
    [InlineData("flash f32 N8 page=4", "without kvcache")]
    [InlineData("flash f32 N8 causal split=2", "non-causal")]
    [InlineData("flash f32 N8 kvcache bias", "ALiBi and sinks")]
    [InlineData("flash f32 N8 lowrank0", "lowrank0")]
    [InlineData("flash f32 N8 qamp=0", "qamp must be a positive number")]
    [InlineData("neighborhood f32 grid=8 qamp=-1", "qamp must be a positive number")]
    [InlineData("blocksparse f32 N16 qamp=0", "qamp must be a positive number")]
    [InlineData("linear f32 N16 qamp=nan", "qamp=nan")]
    public void BadSpec_OfAnyFamily_ThrowsFormatExceptionNamingTheProblem(string spec, string expected)
    {
        var e = Assert.Throws<FormatException>(() => AttentionCaseSpec.Parse(spec));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FamilySamplers_DrawValidCasesThatRoundTrip()
    {
        foreach (var family in CaseFamilies.All.Where(f => f.Sample is not null))
        {
            var random = new Random(17);
            for (int i = 0; i < 300; i++)
            {
                var c = family.Sample!(random);
                Assert.Equal(family.Name, c.FamilyName);
                Assert.Equal(c, AttentionCaseSpec.Parse(c.ToSpec()));
                foreach (var smaller in c.Shrink().Take(20)) Assert.Equal(smaller, AttentionCaseSpec.Parse(smaller.ToSpec()));
            }
        }
        // The flash family's sampler reaches every case type it has.
        var flash = new Random(3);
        var kinds = Enumerable.Range(0, 400).Select(_ => AttentionCase.Registration.Sample!(flash)).ToList();
        Assert.Contains(kinds, c => c is KvCacheCase { PageSize: > 0 });
        Assert.Contains(kinds, c => c is KvCacheCase { NewTokens: > 0 });
        Assert.Contains(kinds, c => c is AttentionCase { OptionTensors: not null });
    }

    [Fact]
    public void SmallInputs_RoundTrip_Shrink_AndDrawQueriesAtTheInverseMagnitude()
    {
        foreach (var family in CaseFamilies.All.Where(f => f.Sample is not null))
        {
            var random = new Random(23);
            for (int i = 0; i < 100; i++)
            {
                var c = CaseSampler.WithSmallInputs(family.Sample!(random), 0.01);
                Assert.Equal(c, AttentionCaseSpec.Parse(c.ToSpec()));
                foreach (var smaller in c.Shrink().Take(20)) Assert.Equal(smaller, AttentionCaseSpec.Parse(smaller.ToSpec()));
            }
        }
        foreach (string spec in new[]
        {
            "flash f16 B1 H2/1 N40x64 D32/32 seed=3", "flash f32 B1 H2/1 N1x64 D32/32 kvcache cache=80 seed=3",
            "neighborhood f16 B1 H2 grid=8x8 k=3 D16 seed=3", "blocksparse f32 B1 H2 N64 D16 block=16 density=0.5 seed=3",
            "linear f32 B1 H2 N32 D16 phi=relu seed=3",
        })
        {
            var c = CaseSampler.WithSmallInputs(AttentionCaseSpec.Parse(spec), 0.001);
            Assert.EndsWith(" amp=0.001 qamp=1000 seed=3", c.ToSpec(), StringComparison.Ordinal);
            var tensors = c.CreateTensors();
            double MaxAbs(string name) => tensors[name].ToDoubleArray().Max(Math.Abs);
            bool cache = c is KvCacheCase;
            Assert.InRange(MaxAbs(CaseTensors.QueryName), 500, 1000);
            Assert.InRange(MaxAbs(cache ? KvCacheCase.KeyCacheName : CaseTensors.KeyName), 0.0005, 0.001);
            Assert.InRange(MaxAbs(cache ? KvCacheCase.ValueCacheName : CaseTensors.ValueName), 0.0005, 0.001);
            // Shrinking tries the magnitude-1 problem.
            Assert.Contains(c.Shrink(), s => !s.ToSpec().Contains("amp=", StringComparison.Ordinal));
        }
        // Families whose scores are not kept by the inverse scaling are left as they are.
        var taylor = AttentionCaseSpec.Parse("linear f32 B1 H2 N32 D4 phi=taylor seed=3");
        Assert.Same(taylor, CaseSampler.WithSmallInputs(taylor, 0.01));
        Assert.Throws<ArgumentOutOfRangeException>(() => CaseSampler.WithSmallInputs(taylor, 2));
    }

    [Fact]
    public void FlashSpecs_KeepTheirOldMeaning()
    {
        const string spec = "flash f16 B2 H8/2 N1x300 D128/128 kvcache seed=22";
        var flag = AttentionCase.Parse(spec);
        Assert.True(flag.KvCache);
        var decode = Assert.IsType<KvCacheCase>(AttentionCaseSpec.Parse(spec));
        Assert.Equal(flag with { KvCache = false }, decode.Attention);
        Assert.Equal(flag.ToKvCacheCase(), decode);
        Assert.Equal(spec, decode.ToSpec());
        Assert.Equal(spec, flag.ToSpec());
        // The flag and the decode case build the same tensors and run the same call.
        var a = flag.CreateTensors();
        var b = decode.CreateTensors();
        Assert.Equal(a.All.Select(t => t.Name), b.All.Select(t => t.Name));
        foreach (var t in a.All) Assert.Equal(t.View.ToDoubleArray(), b[t.Name].ToDoubleArray());
        Assert.Equal(flag.Flops(), decode.Flops());

        // Specs with the new tokens are not plain flash cases; the old parser says where to read them.
        var e = Assert.Throws<FormatException>(() => AttentionCase.Parse("flash f32 N8 kvcache page=4 seed=1"));
        Assert.Contains(nameof(AttentionCaseSpec), e.Message, StringComparison.Ordinal);
        Assert.IsType<SplitKeysCase>(AttentionCaseSpec.Parse("flash f32 N1x9 D8 split=3"));
        // A spec without a family is flash, as before.
        Assert.Equal(AttentionCase.Parse("f16 B2 H8 N512 D64 causal seed=5"), AttentionCaseSpec.Parse("f16 B2 H8 N512 D64 causal seed=5"));
    }

    [Fact]
    public void OptionTensors_HaveATextForm_AndComeFromTheirOwnSeed()
    {
        var c = Assert.IsType<AttentionCase>(AttentionCaseSpec.Parse(
            "flash f16 B2 H4/2 N7x9 D8 alibi(bh) bias(bf16,heads,kmajor) lowrank3(f16,u=batch,w=both) sinks optamp=2 optseed=9 seed=4"));
        Assert.Equal(new FlashOptionSpec
        {
            AlibiRank = 2, DenseBias = true, DenseBiasType = ElementType.BFloat16, DenseBiasBroadcast = OptionBroadcast.Heads, DenseBiasTransposed = true,
            LowRank = 3, LowRankType = ElementType.Float16, LowRankUBroadcast = OptionBroadcast.Batch, LowRankWBroadcast = OptionBroadcast.Both,
            Sinks = true, Amplitude = 2, Seed = 9,
        }, c.OptionTensors);
        var tensors = c.CreateTensors();
        Assert.Equal(new[] { 2, 4 }, tensors[AttentionCase.AlibiSlopesName].Shape.ToArray());
        Assert.Equal(new[] { 2, 1, 7, 9 }, tensors[AttentionCase.BiasName].Shape.ToArray());
        Assert.Equal(ElementType.BFloat16, tensors[AttentionCase.BiasName].ElementType);
        Assert.Equal(new[] { 1, 4, 7, 3 }, tensors[AttentionCase.LowRankUName].Shape.ToArray());
        Assert.Equal(new[] { 1, 1, 9, 3 }, tensors[AttentionCase.LowRankWName].Shape.ToArray());
        Assert.Equal(CaseTensorRole.Option, tensors.All.Single(t => t.Name == AttentionCase.SinksName).Role);
        // The inputs do not depend on the option tensors: the same seed gives the same Q, K, V with or without them.
        var plain = (c with { OptionTensors = null }).CreateTensors();
        Assert.Equal(plain.Query.ToDoubleArray(), tensors.Query.ToDoubleArray());
        // The effective options carry the generated tensors.
        var options = c.OptionsFor(tensors);
        Assert.NotNull(options.AlibiSlopes);
        Assert.NotNull(options.LowRankBias);
        // A caller's own option tensor still has no text form.
        Assert.Throws<NotSupportedException>(() => (c with { OptionTensors = null, Flash = options }).ToSpec());
    }

    [Fact]
    public void ReferenceOnlyFamilies_CountFlopsOnVisiblePairs()
    {
        // A neighborhood as large as its grid sees every key: the same FLOPs as full attention.
        var full = AttentionCaseSpec.Parse("neighborhood f32 B2 H4/2 grid=6x5 k=6x5 D16/8 seed=1");
        var flash = AttentionCaseSpec.Parse("flash f32 B2 H4/2 N30x30 D16/8 seed=1");
        Assert.Equal(flash.Flops(), full.Flops());
        // Every block listed and full: dense; causal partial blocks only: causal flash.
        Assert.Equal(AttentionCaseSpec.Parse("flash f32 B1 H2/1 N40x56 D16 seed=1").Flops(),
            AttentionCaseSpec.Parse("blocksparse f32 B1 H2/1 N40x56 D16 block=16 density=1 full=1 seed=1").Flops());
        Assert.Equal(AttentionCaseSpec.Parse("flash f32 B1 H2/1 N40x56 D16 causal seed=1").Flops(),
            AttentionCaseSpec.Parse("blocksparse f32 B1 H2/1 N40x56 D16 block=16 density=1 full=0 causal seed=1").Flops());
        // Linear attention: 4 F Dv per token and head.
        Assert.Equal(4.0 * 2 * 3 * 10 * 16 * 8, AttentionCaseSpec.Parse("linear f32 B2 H3 N10 D16/8 seed=1").Flops());
    }
}

/// <summary>Case types run through <see cref="CaseRunner"/> on one backend: the runner the CLI and the benchmarks use.</summary>
public abstract class CaseRunnerTests
{
    protected abstract Backend Backend { get; }

    private static void AssertPassed(VerificationResult result) => Assert.True(result.Passed, result.ToString());

    [SkippableFact]
    public void FlashCases_WithGeneratedOptionTensors_PassWhereverTheRunnerPlacesThem()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var cases = CaseGenerators.Flash(allowWindows: true).Select(c =>
        {
            var random = new Random(c.Seed);
            return (IAttentionCase)(c with { OptionTensors = CaseSampler.OptionTensors(random, c) });
        });
        Properties.Check(Arb.From(cases, c => c.Shrink()), c => AssertPassed(CaseVerifier.Verify(context, c)), count: 8);
    }

    [SkippableFact]
    public void KvCacheCases_WithRandomCacheLayouts_PassTheReferenceCheck()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var cases = CaseGenerators.Flash(allowWindows: true).Select(c => (IAttentionCase)KvCacheCase.Sample(new Random(c.Seed), c));
        Properties.Check(Arb.From(cases, c => c.Shrink()), c => AssertPassed(CaseVerifier.Verify(context, c)), count: 8);
    }

    [SkippableFact]
    public void MergeCases_PassTheReferenceCheck()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        Properties.Check(CaseGenerators.FamilyArbitrary(MergeCase.Registration), c => AssertPassed(CaseVerifier.Verify(context, c)), count: 10);
    }

    [SkippableFact]
    public void SplitKeysCases_EqualTheUnsplitReference()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var cases = CaseGenerators.Flash(allowWindows: false)
            .Where(c => c.KeyLength >= 2)
            .Select(c => (IAttentionCase)new SplitKeysCase { Flash = c with { Flash = new FlashOptions() }, Parts = 2 + c.Seed % 3 });
        Properties.Check(Arb.From(cases, c => c.Shrink()), c => AssertPassed(CaseVerifier.Verify(context, c)), count: 6);
    }

    [SkippableFact]
    public void ReferenceOnlyFamilies_ThrowTheContextsNotSupportedException()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        foreach (var family in CaseFamilies.All.Where(f => !f.RunsOn(Backend)))
            foreach (var c in family.VerifyCases())
            {
                var e = Assert.Throws<NotSupportedException>(() => CaseRunner.Run(context, c, c.CreateTensors()));
                Assert.Contains($"has no kernel on the {Backend} backend yet", e.Message, StringComparison.Ordinal);
            }
    }

    [SkippableFact]
    public void Runner_PlacesAStorageSharedByTwoViewsOnce_AndBringsOutputsBack()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        // K and V are two halves of one buffer, as a fused KV projection leaves them.
        var c = AttentionCase.Parse("flash f32 B1 H2/1 N9x13 D8/8 causal seed=3");
        var tensors = c.CreateTensors();
        var kv = TensorView.FromMemory(new float[2 * 13 * 8].AsMemory(), 2, 1, 1, 13, 8);
        var key = kv.Slice(0, 0, 1).Reshape(1, 1, 13, 8);
        var value = kv.Slice(0, 1, 1).Reshape(1, 1, 13, 8);
        key.CopyFrom(tensors.Key.ToDoubleArray());
        value.CopyFrom(tensors.Value.ToDoubleArray());
        var shared = tensors with { Key = key, Value = value };
        using (var run = CaseRunner.Place(context, c, shared))
        {
            Assert.Same(run.Placed.Key.Storage, run.Placed.Value.Storage);
            Assert.Equal(Backend == Backend.Cpu, ReferenceEquals(run.Placed.Query.Storage, shared.Query.Storage));
            run.Run();
            AssertPassed(CaseVerifier.Compare(Backend, c, run.Results()));
        }
        // Aligned host placement (the benchmarks' choice on the CPU) gives the same result.
        using var aligned = CaseRunner.Place(context, c, c.CreateTensors(), alignHostMemory: true);
        aligned.Run();
        AssertPassed(CaseVerifier.Compare(Backend, c, aligned.Results()));
    }
}

public sealed class CpuCaseRunnerTests : CaseRunnerTests
{
    protected override Backend Backend => Backend.Cpu;
}

public sealed class OpenClCaseRunnerTests : CaseRunnerTests
{
    protected override Backend Backend => Backend.OpenCl;
}
