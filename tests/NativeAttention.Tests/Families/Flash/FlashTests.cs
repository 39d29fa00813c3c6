// Flash attention properties, written once and bound to every backend below.
using Xunit;

namespace NativeAttention.Tests;

/// <summary>Flash attention properties against the float64 reference, plus metamorphic properties.</summary>
public abstract class FlashTests
{
    /// <summary>The backend under test.</summary>
    protected abstract Backend Backend { get; }

    /// <summary>Runs <paramref name="case"/> and returns the verification against the reference.</summary>
    protected static VerificationResult Verify(AttentionContext context, AttentionCase @case) => CaseVerifier.Verify(context, @case);

    /// <summary>Fails with the whole verification (case, seed, errors) when it did not pass.</summary>
    protected static void AssertPassed(VerificationResult result)
    {
        if (!result.Passed) Assert.Fail(result.ToString());
    }

    [SkippableFact]
    public void Flash_MatchesReference_OnRandomProblems()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        Properties.Check(CaseGenerators.FlashArbitrary(allowWindows: true), c => AssertPassed(Verify(context, c)), count: 40);
    }

    [SkippableTheory]
    [InlineData(ElementType.Float32)]
    [InlineData(ElementType.Float16)]
    [InlineData(ElementType.BFloat16)]
    public void Flash_TilesAndTails_MatchReference(ElementType type)
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        foreach (var (nq, nk, d) in new[] { (1, 1, 1), (1, 300, 64), (300, 1, 64), (129, 257, 128), (64, 64, 256), (77, 33, 3) })
            foreach (bool causal in new[] { false, true })
                AssertPassed(Verify(context, new AttentionCase
                {
                    ElementType = type, Batch = 1, QueryHeads = 2, KeyValueHeads = 1, QueryLength = nq, KeyLength = nk,
                    HeadDim = d, ValueDim = d == 1 ? 5 : d, Seed = nq * 1000 + nk, Flash = new FlashOptions { Causal = causal },
                }));
    }

    /// <summary>
    /// Hand-picked cases, each aimed at one kernel path: GPU tensor-core tiles (f16/bf16, Dqk == Dv in {64, 128}),
    /// GQA/MQA with Nq != Nk, permuted layouts, fully masked rows, windows, head dims near the 256 limit.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, AttentionCase> NamedCases = new Dictionary<string, AttentionCase>
    {
        ["f32 causal GQA Nq!=Nk Dqk!=Dv"] = Case(ElementType.Float32, 2, 4, 2, 37, 53, 40, 24, causal: true),
        ["f32 causal bnhd MQA"] = Case(ElementType.Float32, 1, 3, 1, 37, 53, 40, 24, causal: true) with { Layout = TensorLayout.SequenceFirst },
        ["f32 fully masked rows"] = Case(ElementType.Float32, 1, 2, 2, 8, 3, 8, 8, causal: true),
        ["f16 even tiles"] = Case(ElementType.Float16, 1, 2, 2, 64, 64, 64, 64),
        ["bf16 window"] = Case(ElementType.BFloat16, 1, 2, 1, 20, 30, 16, 16) with { Flash = new FlashOptions { WindowLeft = 5, WindowRight = 3 } },
        ["f16 head dims 200/256"] = Case(ElementType.Float16, 1, 1, 1, 9, 17, 200, 256),
        ["f16 d64 B2"] = Case(ElementType.Float16, 2, 4, 4, 256, 256, 64, 64),
        ["f16 d128 causal GQA uneven"] = Case(ElementType.Float16, 1, 4, 2, 200, 333, 128, 128, causal: true),
        ["bf16 d128"] = Case(ElementType.BFloat16, 1, 2, 1, 130, 190, 128, 128),
        ["bf16 d64 causal Nq>Nk"] = Case(ElementType.BFloat16, 1, 2, 2, 100, 70, 64, 64, causal: true),
        ["f16 d64 window"] = Case(ElementType.Float16, 1, 2, 2, 300, 300, 64, 64) with { Flash = new FlashOptions { WindowLeft = 40, WindowRight = 7 } },
        ["f16 d128 bnhd"] = Case(ElementType.Float16, 2, 2, 2, 128, 128, 128, 128) with { Layout = TensorLayout.SequenceFirst },
    };

    /// <summary>The names of <see cref="NamedCases"/>, for xunit.</summary>
    public static TheoryData<string> NamedCaseNames => new(NamedCases.Keys);

    private static AttentionCase Case(ElementType type, int batch, int hq, int hkv, int nq, int nk, int dqk, int dv, bool causal = false) => new()
    {
        ElementType = type, Batch = batch, QueryHeads = hq, KeyValueHeads = hkv, QueryLength = nq, KeyLength = nk,
        HeadDim = dqk, ValueDim = dv, Seed = nq * 31 + nk, Flash = new FlashOptions { Causal = causal },
    };

    [SkippableTheory]
    [MemberData(nameof(NamedCaseNames))]
    public void Flash_NamedCase_MatchesReference(string name)
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        AssertPassed(Verify(context, NamedCases[name]));
    }

    [SkippableFact]
    public void Flash_OneContextFromSeveralThreads_GivesCorrectResults()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var cases = NamedCases.Values.Take(6).ToArray();
        var results = new VerificationResult[12];
        Parallel.For(0, results.Length, i => results[i] = Verify(context, cases[i % cases.Length] with { Seed = i }));
        Assert.All(results, AssertPassed);
    }

    [SkippableFact]
    public void Flash_FullyMaskedRows_WriteZerosAndNegativeInfinityLse()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        // Causal with Nq > Nk: query i sits at i + Nk - Nq, so the first Nq - Nk rows see no key.
        var causal = new AttentionCase { QueryLength = 40, KeyLength = 7, HeadDim = 32, ValueDim = 32, QueryHeads = 2, KeyValueHeads = 2, Flash = new FlashOptions { Causal = true } };
        var result = Verify(context, causal);
        AssertPassed(result);
        var tensors = causal.CreateTensors();
        CaseRunner.Run(context, causal, tensors);
        var lse = tensors.LogSumExp.ToDoubleArray();
        var output = tensors.Output.ToDoubleArray();
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < 40; i++)
            {
                double rowLse = lse[h * 40 + i];
                if (i < 33)
                {
                    Assert.True(double.IsNegativeInfinity(rowLse), $"head {h} row {i}: LSE {rowLse}");
                    for (int d = 0; d < 32; d++) Assert.Equal(0.0, output[(h * 40 + i) * 32 + d]);
                }
                else Assert.True(double.IsFinite(rowLse), $"head {h} row {i}: LSE {rowLse}");
            }
        Assert.DoesNotContain(output, double.IsNaN);
    }

    [SkippableTheory]
    [InlineData(ElementType.Float32, 1e4)]
    [InlineData(ElementType.Float32, 300.0)]
    [InlineData(ElementType.BFloat16, 1e4)]
    [InlineData(ElementType.Float16, 1e3)]
    public void Flash_HugeScale_StaysFiniteAndInsideTheValueRange(ElementType type, double scale)
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        foreach (bool causal in new[] { false, true })
        {
            var c = new AttentionCase
            {
                ElementType = type, QueryLength = 70, KeyLength = 90, HeadDim = 64, ValueDim = 48, QueryHeads = 2, KeyValueHeads = 1,
                Seed = 7, Flash = new FlashOptions { Causal = causal, Scale = (float)scale },
            };
            var tensors = c.CreateTensors();
            CaseRunner.Run(context, c, tensors);
            var exact = Reference.Flash(tensors.Query, tensors.Key, tensors.Value, c.Flash);
            var output = tensors.Output.ToDoubleArray();
            var lse = tensors.LogSumExp.ToDoubleArray();
            var values = tensors.Value.ToDoubleArray();
            double lo = values.Min(), hi = values.Max(), slack = 4 * type.UnitRoundoff() * Math.Max(Math.Abs(lo), Math.Abs(hi));
            Assert.All(output, o => Assert.InRange(o, lo - slack, hi + slack));
            for (int r = 0; r < lse.Length; r++)
            {
                if (double.IsNegativeInfinity(exact.LogSumExp![r])) { Assert.True(double.IsNegativeInfinity(lse[r])); continue; }
                // At this scale a float32 score is off by about 1e-7 * |score|, so the LSE is too.
                Assert.True(Math.Abs(lse[r] - exact.LogSumExp[r]) <= 1e-5 * Math.Abs(exact.LogSumExp[r]) + 1e-3,
                    $"{c}: row {r} LSE {lse[r]} vs {exact.LogSumExp[r]}");
            }
        }
    }

    [SkippableFact]
    public void Flash_PermutingKeysAndValues_LeavesNonCausalOutputUnchanged()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        Properties.Check(CaseGenerators.FlashArbitrary(allowWindows: false), raw =>
        {
            var c = raw with { Flash = new FlashOptions() };
            var first = c.CreateTensors();
            CaseRunner.Run(context, c, first);
            var permuted = c.CreateTensors();
            var order = Enumerable.Range(0, c.KeyLength).OrderBy(j => (j * 7919L + c.Seed) % 104729).ToArray();
            Permute(first.Key, permuted.Key, order);
            Permute(first.Value, permuted.Value, order);
            CaseRunner.Run(context, c, permuted);
            var tolerance = CaseVerifier.Compare(Backend, c, first).Tolerance;
            AssertClose(first.Output.ToDoubleArray(), permuted.Output.ToDoubleArray(), 2 * tolerance, c);
        }, count: 15);
    }

    [SkippableFact]
    public void Flash_AddingOneVectorToEveryKey_ShiftsLseButNotOutput()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        // q.(k + w) = q.k + q.w: every score of a row moves by the same amount, which softmax ignores.
        Properties.Check(CaseGenerators.FlashArbitrary(allowWindows: true), raw =>
        {
            var c = raw with { ElementType = ElementType.Float32 };
            var first = c.CreateTensors();
            CaseRunner.Run(context, c, first);
            var shifted = c.CreateTensors();
            var keys = first.Key.ToDoubleArray();
            var w = Enumerable.Range(0, c.HeadDim).Select(d => 0.25 * ((d % 3) - 1)).ToArray();
            for (int n = 0; n < keys.Length; n++) keys[n] += w[n % c.HeadDim];
            shifted.Key.CopyFrom(keys);
            CaseRunner.Run(context, c, shifted);
            double tolerance = CaseVerifier.Compare(Backend, c, first).Tolerance;
            AssertClose(first.Output.ToDoubleArray(), shifted.Output.ToDoubleArray(), 2 * tolerance + 1e-5, c);

            var queries = first.Query.ToDoubleArray();
            var lse0 = first.LogSumExp.ToDoubleArray();
            var lse1 = shifted.LogSumExp.ToDoubleArray();
            float scale = c.Flash.Scale ?? (float)(1 / Math.Sqrt(c.HeadDim));
            for (int row = 0; row < lse0.Length; row++)
            {
                if (double.IsNegativeInfinity(lse0[row])) { Assert.True(double.IsNegativeInfinity(lse1[row])); continue; }
                double qw = 0;
                for (int d = 0; d < c.HeadDim; d++) qw += queries[(long)row * c.HeadDim + d] * w[d];
                Assert.True(Math.Abs(lse1[row] - lse0[row] - scale * qw) <= 1e-4 * (1 + Math.Abs(lse0[row])), $"{c}: row {row}");
            }
        }, count: 15);
    }

    [SkippableFact]
    public void Flash_WindowCoveringEverything_EqualsCausalAndFull()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var c = new AttentionCase { QueryLength = 50, KeyLength = 70, HeadDim = 24, ValueDim = 24, QueryHeads = 2, KeyValueHeads = 2, Seed = 3 };
        var full = Run(context, c with { Flash = new FlashOptions() });
        var wideWindow = Run(context, c with { Flash = new FlashOptions { WindowLeft = 70, WindowRight = 70 } });
        var causal = Run(context, c with { Flash = new FlashOptions { Causal = true } });
        var causalWindow = Run(context, c with { Flash = new FlashOptions { Causal = true, WindowLeft = 1000, WindowRight = 0 } });
        AssertClose(full, wideWindow, 1e-6, c);
        AssertClose(causal, causalWindow, 1e-6, c);
    }

    [SkippableFact]
    public void Flash_SameInputs_GiveBitIdenticalResults()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var c = new AttentionCase { QueryLength = 200, KeyLength = 300, HeadDim = 64, ValueDim = 64, QueryHeads = 4, KeyValueHeads = 2, Batch = 2, Flash = new FlashOptions { Causal = true } };
        var a = Run(context, c);
        var b = Run(context, c);
        Assert.Equal(a, b);
    }

    [SkippableFact]
    public void Flash_StridedOutputInsideALargerBuffer_WritesOnlyItsOwnElements()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        // The output is a strided window into a larger buffer: everything outside the view must stay untouched.
        var c = new AttentionCase { QueryLength = 33, KeyLength = 45, HeadDim = 16, ValueDim = 20, QueryHeads = 2, KeyValueHeads = 1, Seed = 11 };
        var tensors = c.CreateTensors();
        var big = new float[2 * 33 * 64 + 100];
        Array.Fill(big, 123.5f);
        var output = TensorView.FromMemory(big.AsMemory(), [1, 2, 33, 20], [2 * 33 * 64, 33 * 64, 64, 2], 7);
        var wrapped = tensors with { Output = output };
        CaseRunner.Run(context, c, wrapped);
        var touched = new bool[big.Length];
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < 33; i++)
                for (int d = 0; d < 20; d++) touched[7 + h * 33 * 64 + i * 64 + d * 2] = true;
        for (int n = 0; n < big.Length; n++)
            if (!touched[n]) Assert.Equal(123.5f, big[n]);
        AssertPassed(CaseVerifier.Compare(Backend, c, wrapped));
    }

    /// <summary>Runs a case and returns its output as doubles.</summary>
    protected static double[] Run(AttentionContext context, AttentionCase c)
    {
        var t = c.CreateTensors();
        CaseRunner.Run(context, c, t);
        return t.Output.ToDoubleArray();
    }

    private static void Permute(TensorView source, TensorView target, int[] order)
    {
        var s = source.ToDoubleArray();
        var t = new double[s.Length];
        int n = source.Shape[2], d = source.Shape[3];
        for (int bh = 0; bh < source.Shape[0] * source.Shape[1]; bh++)
            for (int j = 0; j < n; j++)
                Array.Copy(s, ((long)bh * n + order[j]) * d, t, ((long)bh * n + j) * d, d);
        target.CopyFrom(t);
    }

    private static void AssertClose(double[] expected, double[] actual, double tolerance, AttentionCase c)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (!(Math.Abs(expected[i] - actual[i]) <= tolerance))
                Assert.Fail($"{c}: element {i} is {actual[i]:G9}, expected {expected[i]:G9} (tolerance {tolerance:G3})");
    }
}

[Trait("Backend", "Cpu")]
public sealed class CpuFlashTests : FlashTests
{
    protected override Backend Backend => Backend.Cpu;

    [Fact]
    public void Flash_ResultsDoNotDependOnThreadCount()
    {
        var c = new AttentionCase { QueryLength = 300, KeyLength = 260, HeadDim = 40, ValueDim = 40, QueryHeads = 3, KeyValueHeads = 1, Batch = 2, Flash = new FlashOptions { Causal = true } };
        using var one = AttentionContext.Create(Backend.Cpu, new ContextOptions { Threads = 1 });
        using var three = AttentionContext.Create(Backend.Cpu, new ContextOptions { Threads = 3 });
        Assert.Equal(Run(one, c), Run(three, c));
    }
}

[Trait("Backend", "OpenCl")]
public sealed class OpenClFlashTests : FlashTests
{
    protected override Backend Backend => Backend.OpenCl;
}

[Trait("Backend", "Cuda")]
public sealed class CudaFlashTests : FlashTests
{
    protected override Backend Backend => Backend.Cuda;
}
