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
        // Found by random runs (issue 10): Nk = 129 leaves one key in the last 64-key tile, and these rows see up to it.
        ["f32 causal Nq=1 Nk=129 D=1"] = Case(ElementType.Float32, 1, 1, 1, 1, 129, 1, 1, causal: true),
        ["f32 causal Nq=2 Nk=129 D=1"] = Case(ElementType.Float32, 1, 2, 1, 2, 129, 1, 1, causal: true),
        ["f32 causal Nq=3 Nk=129 D=1"] = Case(ElementType.Float32, 1, 1, 1, 3, 129, 1, 1, causal: true),
        ["f32 window(4,0) Nq=3 Nk=129 D=1"] = Case(ElementType.Float32, 1, 1, 1, 3, 129, 1, 1) with { Flash = new FlashOptions { WindowLeft = 4, WindowRight = 0 } },
        ["f32 window(70,2) Nq=2 Nk=129 D=1"] = Case(ElementType.Float32, 1, 2, 2, 2, 129, 1, 1) with { Flash = new FlashOptions { WindowLeft = 70, WindowRight = 2 } },
        ["f32 causal window(1,-1) Nq=1 Nk=129 D=1"] = Case(ElementType.Float32, 1, 1, 1, 1, 129, 1, 1) with { Flash = new FlashOptions { Causal = true, WindowLeft = 1 } },
        ["f16 N=2x8 D=16 causal ALiBi"] = Case(ElementType.Float16, 1, 2, 2, 2, 8, 16, 16) with
        {
            Flash = new FlashOptions { Causal = true, AlibiSlopes = TestTensors.Of(ElementType.Float32, [2], 0.5, 0.0625) },
        },
        // More (batch, head) pairs than the random cases draw (at most 2 x 9 = 18).
        ["f16 B3 H24/8 causal (B x H = 72)"] = Case(ElementType.Float16, 3, 24, 8, 33, 47, 32, 32, causal: true),
        ["bf16 B1 H70/1 MQA (B x H = 70)"] = Case(ElementType.BFloat16, 1, 70, 1, 9, 65, 16, 16),
        ["f32 B5 H12/4 window (B x H = 60)"] = Case(ElementType.Float32, 5, 12, 4, 17, 40, 24, 24) with { Flash = new FlashOptions { WindowLeft = 6, WindowRight = 6 } },
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

    /// <summary>
    /// Which keys each query sees, checked against the masking rule written out here in its plainest form (query i
    /// sits at position i + Nk - Nq; causal keeps j &lt;= that position; a window (left, right) keeps
    /// position - left &lt;= j &lt;= position + right), independently of the library's masking code and of the
    /// reference: with Q = 0 every visible key gets the same weight, and with V one-hot per key (Dv = Nk) output row i
    /// is 1/|visible| at the visible keys and 0 elsewhere.
    /// </summary>
    /// <summary>
    /// The flash family's random cases (Flash and FlashKvCache, option tensors, cache layouts, split keys as sampled) at
    /// small magnitudes, mostly binary16 with frequent subnormals: keys and values small, queries large, so the scores
    /// keep magnitude 1 and a wrong score or a flushed subnormal still moves the output.
    /// </summary>
    [SkippableFact]
    public void Flash_SmallInputs_MatchReference()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        SmallInputs.Check(context, AttentionCase.Registration, count: 16);
    }

    [SkippableFact]
    public void Flash_VisibleKeys_FollowThePlainMaskRule()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var masks = new (bool Causal, int Left, int Right)[] { (true, -1, -1), (false, 3, 0), (false, 0, 2), (true, 5, -1), (false, 70, 70), (false, 1, -1) };
        foreach (var (nq, nk) in new[] { (5, 9), (9, 9), (12, 9), (1, 129), (3, 129), (40, 129), (129, 129), (150, 129) })
            foreach (var (causal, left, right) in masks)
            {
                var options = new FlashOptions { Causal = causal, WindowLeft = left, WindowRight = right };
                var q = TestTensors.Zeros(ElementType.Float32, 1, 1, nq, 8);
                var k = TestTensors.Uniform(ElementType.Float32, nq + nk, 1.0, [1, 1, nk, 8]);
                var v = TestTensors.Zeros(ElementType.Float32, 1, 1, nk, nk);
                for (int j = 0; j < nk; j++) v.SetDouble(1.0, 0, 0, j, j);
                var o = TestTensors.Zeros(ElementType.Float32, 1, 1, nq, nk);
                using (var on = new OnContext(context))
                {
                    var placed = on.Put(o);
                    context.Flash(on.Put(q), on.Put(k), on.Put(v), placed, options);
                    on.Back(placed, o);
                }
                var output = o.ToDoubleArray();
                for (int i = 0; i < nq; i++)
                {
                    int position = i + nk - nq, visible = 0;
                    var sees = new bool[nk];
                    for (int j = 0; j < nk; j++)
                    {
                        sees[j] = (!causal || j <= position) && (left < 0 || j >= position - left) && (right < 0 || j <= position + right);
                        if (sees[j]) visible++;
                    }
                    for (int j = 0; j < nk; j++)
                    {
                        double expected = sees[j] ? 1.0 / visible : 0.0, actual = output[(long)i * nk + j];
                        if (!(Math.Abs(actual - expected) <= 1e-6))
                            Assert.Fail($"Nq {nq} Nk {nk} causal {causal} window ({left},{right}): query {i} (position {position}) key {j}: weight {actual:G6}, expected {expected:G6}");
                    }
                }
            }
    }

    /// <summary>
    /// A float16/bfloat16 run equals the float32 run on the same (already rounded) inputs rounded once to nearest:
    /// within half an ulp of the output type plus <see cref="SixteenBit.Slack"/>. The error rule against the float64
    /// reference cannot see a truncating output conversion (it is at most one ulp, about what a naive 16-bit
    /// implementation's own rounding costs); this can.
    /// </summary>
    [SkippableFact]
    public void Flash_SixteenBitRun_IsTheFloat32RunRoundedOnce()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        Properties.Check(CaseGenerators.FlashArbitrary(allowWindows: true), raw =>
        {
            var type = raw.ElementType != ElementType.Float32 ? raw.ElementType : raw.Seed % 2 == 0 ? ElementType.Float16 : ElementType.BFloat16;
            var c = raw with { ElementType = type };
            var sixteen = c.CreateTensors();
            CaseRunner.Run(context, c, sixteen);
            var f32 = c with { ElementType = ElementType.Float32 };
            // The float32 case's own tensors (same layout and options), holding the 16-bit inputs' values exactly.
            var thirtyTwo = f32.CreateTensors();
            thirtyTwo.Query.CopyFrom(sixteen.Query.ToDoubleArray());
            thirtyTwo.Key.CopyFrom(sixteen.Key.ToDoubleArray());
            thirtyTwo.Value.CopyFrom(sixteen.Value.ToDoubleArray());
            CaseRunner.Run(context, f32, thirtyTwo);
            double slack = SixteenBit.Slack(Backend, type, SixteenBit.MaxAbs(sixteen.Value.ToDoubleArray()));
            SixteenBit.AssertRoundedOnce(type, sixteen.Output.ToDoubleArray(), thirtyTwo.Output.ToDoubleArray(), slack, c.ToString());
            SixteenBit.AssertSameLse(thirtyTwo.LogSumExp.ToDoubleArray(), sixteen.LogSumExp.ToDoubleArray(), c.ToString());
        }, count: 15);
    }

    /// <summary>The log-sum-exp written through a strided view at an offset: right values, nothing outside the view touched.</summary>
    [SkippableFact]
    public void Flash_StridedLseAtAnOffset_MatchesReferenceAndWritesOnlyItsElements()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        foreach (var c in new[]
        {
            new AttentionCase { QueryLength = 37, KeyLength = 50, HeadDim = 16, ValueDim = 16, QueryHeads = 4, KeyValueHeads = 2, Batch = 2, Seed = 3, Flash = new FlashOptions { Causal = true } },
            new AttentionCase { ElementType = ElementType.BFloat16, QueryLength = 9, KeyLength = 70, HeadDim = 32, ValueDim = 8, QueryHeads = 3, KeyValueHeads = 1, Seed = 4 },
        })
        {
            var tensors = c.CreateTensors();
            // LSE [B, H, N] stored N-major ([N, B, H] in memory) with every element two floats apart, after 5 unused floats.
            int b = c.Batch, h = c.QueryHeads, n = c.QueryLength;
            var storage = new float[5 + 2 * b * h * n + 3];
            Array.Fill(storage, 77.25f);
            var lse = TensorView.FromMemory(storage.AsMemory(), [b, h, n], [2L * h, 2, 2L * b * h], 5);
            CaseRunner.Run(context, c, tensors with { LogSumExp = lse });
            var result = CaseVerifier.Compare(Backend, c, tensors with { LogSumExp = lse });
            AssertPassed(result);
            var touched = new bool[storage.Length];
            for (int i = 0; i < b * h * n; i++) touched[5 + 2 * i] = true;
            for (int i = 0; i < storage.Length; i++)
                if (!touched[i]) Assert.Equal(77.25f, storage[i]);
        }
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

    /// <summary>
    /// Peaked softmax: scores with a standard deviation of 5 to 20 (q.k of inputs uniform in [-1, 1] has standard
    /// deviation sqrt(D)/3, so scale = 3 sigma / sqrt(D)), where a few keys take almost all the weight and the running
    /// max's rescaling and exp's range matter, and one extreme (sigma = 1000) where float32 score errors dominate.
    /// Compared with the float64 reference under the usual rule, not just for staying inside the value range.
    /// </summary>
    [SkippableTheory]
    [InlineData(ElementType.Float32)]
    [InlineData(ElementType.Float16)]
    [InlineData(ElementType.BFloat16)]
    public void Flash_PeakedSoftmax_MatchesReference(ElementType type)
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        foreach (double sigma in new[] { 5.0, 10.0, 20.0, 1000.0 })
            foreach (bool causal in new[] { false, true })
                AssertPassed(Verify(context, new AttentionCase
                {
                    ElementType = type, QueryLength = 70, KeyLength = 90, HeadDim = 64, ValueDim = 48, QueryHeads = 2, KeyValueHeads = 1,
                    Seed = 7 + (int)sigma, Flash = new FlashOptions { Causal = causal, Scale = (float)(3 * sigma / Math.Sqrt(64)) },
                }));
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
