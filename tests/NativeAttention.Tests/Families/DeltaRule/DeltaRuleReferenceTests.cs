// The delta-rule reference: hand-computed DeltaNet, Gated DeltaNet and KDA steps, layouts, normalisation and heads.
using Xunit;
using static NativeAttention.Tests.References.Tensors;

namespace NativeAttention.Tests.References;

public sealed class DeltaRuleReferenceTests
{
    [Fact]
    public void DeltaNet_TwoTokens_FollowTheHandComputedRecurrence()
    {
        // Dk = 2, Dv = 1, beta = 1, scale = 1, S0 = 0.
        // t1: k = [1, 0], v = 3: S1 = k v^T = [3, 0]; q = [1, 0] -> o1 = 3.
        // t2: k = [0.6, 0.8] (a unit key), v = 5: k^T S1 = 1.8, S2 = S1 + k (5 - 1.8) = [4.92, 2.56]; q = [0, 1] -> o2 = 2.56.
        // beta = 1 with a unit key writes v exactly into the k direction: k^T S2 = 0.6 * 4.92 + 0.8 * 2.56 = 5.
        var q = Of([1, 0, 0, 1], 1, 1, 2, 2);
        var k = Of([1, 0, 0.6, 0.8], 1, 1, 2, 2);
        var v = Of([3, 5], 1, 1, 2, 1);
        var beta = Of([1, 1], 1, 1, 2);
        var r = Reference.DeltaRuleChunked(q, k, v, beta, new DeltaRuleOptions { Scale = 1 });
        AssertClose([3, 2.56], r.Output, 1e-6);
        AssertClose([4.92, 2.56], r.FinalState, 1e-6);
        Assert.Equal(new[] { 1, 1, 2, 1 }, r.FinalStateShape);
        Assert.Null(r.LogSumExp);
    }

    [Fact]
    public void GatedDeltaNet_DecaysThenCorrects()
    {
        // Dk = Dv = 1, S0 = 2, scale 1.
        // t1: g = 1/2, beta = 1/2, k = 1, v = 4: S1 = g (1 - beta k k) S0 + beta k v = 0.5 * 0.5 * 2 + 2 = 2.5; q = 1 -> o1 = 2.5.
        // t2: g = 1/4, beta = 2, k = 1, v = 1: S2 = 0.25 * (1 - 2) * 2.5 + 2 = 1.375; q = 2 -> o2 = 2.75.
        var q = Of([1, 2], 1, 1, 2, 1);
        var k = Of([1, 1], 1, 1, 2, 1);
        var v = Of([4, 1], 1, 1, 2, 1);
        var beta = Of([0.5, 2], 1, 1, 2);
        var options = new DeltaRuleOptions { Variant = DeltaRuleVariant.GatedDeltaNet, LogGate = Of([Math.Log(0.5), Math.Log(0.25)], 1, 1, 2), Scale = 1 };
        var r = Reference.DeltaRuleChunked(q, k, v, beta, options, Of([2], 1, 1, 1, 1));
        AssertClose([2.5, 2.75], r.Output, 1e-6);
        AssertClose([1.375], r.FinalState, 1e-6);
    }

    [Fact]
    public void Kda_AppliesThePerKeyDecayBeforeTheDeltaUpdate()
    {
        // Dk = 2, Dv = 1, S0 = [1, 2], g = [1/2, 1/4], k = [1, 1], beta = 1, v = 0, q = [1, 0], scale 1:
        // G S0 = [0.5, 0.5], k^T G S0 = 1, S1 = G S0 - k (1 - 0) = [-0.5, -0.5] -> o1 = -0.5.
        // (Decaying after the update instead would give diag(g) (S0 - k (k^T S0)) = [-1, -0.25].)
        var q = Of([1, 0], 1, 1, 1, 2);
        var k = Of([1, 1], 1, 1, 1, 2);
        var v = Of([0], 1, 1, 1, 1);
        var options = new DeltaRuleOptions { Variant = DeltaRuleVariant.Kda, LogGate = Of([Math.Log(0.5), Math.Log(0.25)], 1, 1, 1, 2), Scale = 1 };
        var r = Reference.DeltaRuleChunked(q, k, v, Of([1], 1, 1, 1), options, Of([1, 2], 1, 1, 2, 1));
        AssertClose([-0.5], r.Output, 1e-6);
        AssertClose([-0.5, -0.5], r.FinalState, 1e-6);
    }

    [Fact]
    public void ZeroBeta_LeavesTheStateAndReadsIt()
    {
        // beta = 0: S stays S0, o = scale S0^T q with the default scale 1 / sqrt(Dk) = 1/2 for Dk = 4.
        const int Dk = 4, Dv = 3;
        var s0 = Random(81, 1, 1, 1, Dk, Dv);
        var q = Random(82, 1, 1, 1, 3, Dk);
        var r = Reference.DeltaRuleChunked(q, Random(83, 1, 1, 1, 3, Dk), Random(84, 1, 1, 1, 3, Dv), Zeros(1, 1, 3), null, s0);
        var s = s0.ToDoubleArray();
        var qq = q.ToDoubleArray();
        var expected = new double[3 * Dv];
        for (int t = 0; t < 3; t++)
        for (int e = 0; e < Dv; e++)
        for (int i = 0; i < Dk; i++)
            expected[t * Dv + e] += 0.5 * s[i * Dv + e] * qq[t * Dk + i];
        AssertClose(expected, r.Output, 1e-6);
        AssertClose(s, r.FinalState, 0);
    }

    [Fact]
    public void L2Normalisation_EqualsNormalisedInputs_AndValueMajorIsTheTranspose()
    {
        const int N = 5, Dk = 3, Dv = 2;
        var q = Random(91, 2, 1, 1, N, Dk);
        var k = Random(92, 2, 1, 1, N, Dk);
        var v = Random(93, 1, 1, 1, N, Dv);
        var beta = TestTensors.Of(ElementType.Float32, [1, 1, N], 0.3, 1.7, 1, 0.5, 2);
        static TensorView Normalised(TensorView x, int n, int d)
        {
            var values = x.ToDoubleArray();
            for (int t = 0; t < n; t++)
            {
                double norm = Math.Sqrt(values.Skip(t * d).Take(d).Sum(y => y * y) + 1e-6);
                for (int i = 0; i < d; i++) values[t * d + i] /= norm;
            }
            return Of(values, 1, 1, n, d);
        }
        var s0 = Random(94, 1, 1, 1, Dk, Dv);
        var normalised = Reference.DeltaRuleChunked(q, k, v, beta, new DeltaRuleOptions { L2NormalizeQueryKey = true }, s0);
        var by = Reference.DeltaRuleChunked(Normalised(q, N, Dk), Normalised(k, N, Dk), v, beta, null, s0);
        AssertClose(by.Output, normalised.Output, 1e-6);
        AssertClose(by.FinalState, normalised.FinalState, 1e-6);

        // The same call with V-major states: the initial state given transposed, the final state returned transposed.
        var s = s0.ToDoubleArray();
        var transposed = new double[Dk * Dv];
        for (int i = 0; i < Dk; i++)
        for (int e = 0; e < Dv; e++)
            transposed[e * Dk + i] = s[i * Dv + e];
        var valueMajor = Reference.DeltaRuleChunked(q, k, v, beta, new DeltaRuleOptions { L2NormalizeQueryKey = true, StateLayout = DeltaStateLayout.ValueMajor },
            Of(transposed, 1, 1, Dv, Dk));
        Assert.Equal(new[] { 1, 1, Dv, Dk }, valueMajor.FinalStateShape);
        AssertClose(normalised.Output, valueMajor.Output, 1e-12);
        for (int i = 0; i < Dk; i++)
        for (int e = 0; e < Dv; e++)
            Assert.Equal(normalised.FinalState![i * Dv + e], valueMajor.FinalState![e * Dk + i]);
    }

    [Fact]
    public void GroupedHeads_ReadTheirSharedHeads_AndPackedSequencesAreCallsOfTheirOwn()
    {
        // H = 4 output heads from 2 query/key heads and 4 value heads: head h reads q/k head h / 2.
        const int N = 6, Dk = 2, Dv = 2;
        var q = Random(101, 1, 1, 2, N, Dk);
        var k = Random(102, 1, 1, 2, N, Dk);
        var v = Random(103, 1, 1, 4, N, Dv);
        var beta = TestTensors.Uniform(ElementType.Float32, new Random(104), 1, [1, 4, N]);
        beta.CopyFrom(beta.ToDoubleArray().Select(x => Math.Abs(x) * 2).ToArray());
        var whole = Reference.DeltaRuleChunked(q, k, v, beta);
        for (int h = 0; h < 4; h++)
        {
            var single = Reference.DeltaRuleChunked(q.Slice(1, h / 2, 1), k.Slice(1, h / 2, 1), v.Slice(1, h, 1), beta.Slice(1, h, 1));
            AssertClose(single.Output, whole.Output.AsSpan(h * N * Dv, N * Dv), 0);
        }
        // Packed [2, 4]: the second sequence starts from zero, not from the first's state.
        var packed = Reference.DeltaRuleChunked(q, k, v, beta, new DeltaRuleOptions { CuSeqLens = new[] { 0, 2, 6 } });
        Assert.Equal(new[] { 2, 4, Dk, Dv }, packed.FinalStateShape);
        var second = Reference.DeltaRuleChunked(q.Slice(2, 2, 4), k.Slice(2, 2, 4), v.Slice(2, 2, 4), beta.Slice(2, 2, 4));
        for (int h = 0; h < 4; h++)
            AssertClose(second.Output.AsSpan(h * 4 * Dv, 4 * Dv), packed.Output.AsSpan((h * N + 2) * Dv, 4 * Dv), 0);
    }

    [Fact]
    public void DecodeAndVerify_ContinueThePrefill()
    {
        const int N = 7, Dk = 3, Dv = 2;
        var q = Random(111, 1, 1, 1, N, Dk);
        var k = Random(112, 1, 1, 1, N, Dk);
        var v = Random(113, 1, 1, 1, N, Dv);
        var beta = Of(Enumerable.Range(0, N).Select(t => 0.25 * t).ToArray(), 1, 1, N);
        var gate = Of(Enumerable.Range(0, N).Select(t => -0.1 * t).ToArray(), 1, 1, N);
        var options = new DeltaRuleOptions { Variant = DeltaRuleVariant.GatedDeltaNet, LogGate = gate };
        var whole = Reference.DeltaRuleChunked(q, k, v, beta, options);
        var prefix = Reference.DeltaRuleChunked(q.Slice(2, 0, 4), k.Slice(2, 0, 4), v.Slice(2, 0, 4), beta.Slice(2, 0, 4), options with { LogGate = gate.Slice(2, 0, 4) });
        var state = Of(prefix.FinalState!, 1, 1, Dk, Dv);
        var step = Reference.DeltaRuleDecodeStep(q.Slice(2, 4, 3), k.Slice(2, 4, 3), v.Slice(2, 4, 3), beta.Slice(2, 4, 3), state, options with { LogGate = gate.Slice(2, 4, 3) });
        AssertClose(whole.Output.AsSpan(4 * Dv), step.Output, 1e-6);
        AssertClose(whole.FinalState, step.FinalState, 1e-6);
        var verify = Reference.DeltaRuleVerify(q.Slice(2, 4, 3), k.Slice(2, 4, 3), v.Slice(2, 4, 3), beta.Slice(2, 4, 3), state, options with { LogGate = gate.Slice(2, 4, 3) });
        Assert.Equal(new[] { 1, 3, 1, Dk, Dv }, verify.FinalStateShape);
        AssertClose(whole.FinalState, verify.FinalState.AsSpan(2 * Dk * Dv), 1e-6);
    }

    [Fact]
    public void BadInput_IsNamed()
    {
        var x = Random(121, 1, 1, 1, 2, 2);
        void Names(string name, Action call) => Assert.Equal(name, Assert.ThrowsAny<ArgumentException>(call).ParamName);
        Names("beta", () => Reference.DeltaRuleChunked(x, x, x, Of([0.5, 2.5], 1, 1, 2)));
        Names("beta", () => Reference.DeltaRuleChunked(x, x, x, Of([-0.1, 1], 1, 1, 2)));
        Names("beta", () => Reference.DeltaRuleChunked(x, x, x, Zeros(1, 2, 2)));
        Names("options.LogGate", () => Reference.DeltaRuleChunked(x, x, x, Zeros(1, 1, 2), new DeltaRuleOptions { Variant = DeltaRuleVariant.GatedDeltaNet, LogGate = Of([-1, 0.5], 1, 1, 2) }));
        Names("options.LogGate", () => Reference.DeltaRuleChunked(x, x, x, Zeros(1, 1, 2), new DeltaRuleOptions { Variant = DeltaRuleVariant.Kda, LogGate = Zeros(1, 1, 2) }));
        Names("options.LogGate", () => Reference.DeltaRuleChunked(x, x, x, Zeros(1, 1, 2), new DeltaRuleOptions { LogGate = Zeros(1, 1, 2) }));
        Names("initialState", () => Reference.DeltaRuleChunked(x, x, Random(122, 1, 1, 1, 2, 3), Zeros(1, 1, 2), new DeltaRuleOptions { StateLayout = DeltaStateLayout.ValueMajor }, Zeros(1, 1, 2, 3)));
        Names("state", () => Reference.DeltaRuleDecodeStep(x, x, x, Zeros(1, 1, 2), Zeros(1, 1, 2, 3)));
        Names("query", () => Reference.DeltaRuleVerify(Random(123, 1, 1, 1, 9, 2), Random(123, 1, 1, 1, 9, 2), Random(123, 1, 1, 1, 9, 2), Zeros(1, 1, 9), Zeros(1, 1, 2, 2)));
    }
}
