// The linear-attention reference: hand-computed decayed recurrences and equality with the explicit sums.
using Xunit;
using static NativeAttention.Tests.References.Tensors;

namespace NativeAttention.Tests.References;

public sealed class LinearReferenceTests
{
    private static readonly float LogHalf = (float)Math.Log(0.5);

    [Fact]
    public void Linear_PerHeadDecay_ThreeTokens_FollowsTheHandComputedRecurrence()
    {
        // D = Dv = 1, identity features, g = 1/2, q = [1, 1, 2], k = [1, 2, 1], v = [1, 1, 3]:
        // S1 = 1 * 1 = 1            -> o1 = 1 * 1 = 1
        // S2 = 1/2 * 1 + 2 * 1 = 2.5 -> o2 = 1 * 2.5 = 2.5
        // S3 = 1/2 * 2.5 + 1 * 3 = 4.25 -> o3 = 2 * 4.25 = 8.5; the final state is 4.25.
        var q = Of([1, 1, 2], 1, 1, 3, 1);
        var k = Of([1, 2, 1], 1, 1, 3, 1);
        var v = Of([1, 1, 3], 1, 1, 3, 1);
        var options = new LinearOptions { Decay = DecayKind.PerHead, HeadLogDecay = new[] { LogHalf } };
        var r = Reference.LinearChunked(q, k, v, options);
        AssertClose([1, 2.5, 8.5], r.Output, 1e-6);
        AssertClose([4.25], r.FinalState, 1e-6);
        Assert.Equal(new[] { 1, 1, 1, 1 }, r.FinalStateShape);
        Assert.Null(r.LogSumExp);

        // Normalised: z1 = 1, z2 = 1/2 + 2 = 2.5, z3 = 1.25 + 1 = 2.25, so o = [1/1, 2.5/2.5, 8.5/(2 * 2.25)], and
        // the state gains a column holding z: [4.25, 2.25].
        var normalised = Reference.LinearChunked(q, k, v, options with { Normalize = true, Epsilon = 0 });
        AssertClose([1, 1, 8.5 / 4.5], normalised.Output, 1e-6);
        AssertClose([4.25, 2.25], normalised.FinalState, 1e-6);
        Assert.Equal(new[] { 1, 1, 1, 2 }, normalised.FinalStateShape);
    }

    [Fact]
    public void Linear_PerTokenGates_DecayTheInitialStateByEveryGate()
    {
        // S0 = 2, gates g = [1/2, 1/4], q = k = v = 1:
        // S1 = 1/2 * 2 + 1 = 2 -> o1 = 2;  S2 = 1/4 * 2 + 1 = 1.5 -> o2 = 1.5 (scale 3 triples both).
        var ones = Of([1, 1], 1, 1, 2, 1);
        var gates = Of([Math.Log(0.5), Math.Log(0.25)], 1, 1, 2);
        var options = new LinearOptions { Decay = DecayKind.PerToken, LogGate = gates, Scale = 3 };
        var r = Reference.LinearChunked(ones, ones, ones, options, Of([2], 1, 1, 1, 1));
        AssertClose([6, 4.5], r.Output, 1e-6);
        AssertClose([1.5], r.FinalState, 1e-6);
    }

    [Theory]
    [InlineData(FeatureMap.Identity, DecayKind.None, false)]
    [InlineData(FeatureMap.EluPlusOne, DecayKind.PerHead, true)]
    [InlineData(FeatureMap.Relu, DecayKind.PerToken, false)]
    [InlineData(FeatureMap.Taylor2, DecayKind.PerToken, true)]
    [InlineData(FeatureMap.Precomputed, DecayKind.PerHead, false)]
    public void Linear_Causal_EqualsTheExplicitDecayedSum(FeatureMap map, DecayKind decay, bool normalize)
    {
        // o_t = sum_{s<=t} exp(sum_{r=s+1..t} log g_r) * scale * K(q_t, k_s) v_s with the feature kernel K written
        // out independently of the reference: Taylor2's is 1 + q.k + (q.k)^2 / 2.
        const int B = 2, H = 2, N = 7, D = 3, Dv = 2;
        var q = Random(70, 1, B, H, N, D);
        var k = Random(71, 1, B, H, N, D);
        var v = Random(72, 1, B, H, N, Dv);
        var gate = Random(73, 0.5, B, H, N).ToDoubleArray().Select(x => -Math.Abs(x)).ToArray();
        float[] headDecay = [-0.1f, -0.7f];
        var options = new LinearOptions
        {
            FeatureMap = map, Decay = decay, Normalize = normalize, Scale = 0.8f, Epsilon = 0.01f,
            HeadLogDecay = decay == DecayKind.PerHead ? headDecay : ReadOnlyMemory<float>.Empty,
            LogGate = decay == DecayKind.PerToken ? Of(gate, B, H, N) : null,
        };
        var r = Reference.LinearChunked(q, k, v, options);

        var qq = q.ToDoubleArray();
        var kk = k.ToDoubleArray();
        var vv = v.ToDoubleArray();
        var expected = new double[B * H * N * Dv];
        for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
        for (int t = 0; t < N; t++)
        {
            int bh = b * H + h;
            var numerator = new double[Dv];
            double denominator = 0;
            for (int s = 0; s <= t; s++)
            {
                double logDecay = 0;
                for (int u = s + 1; u <= t; u++)
                    logDecay += decay switch { DecayKind.PerHead => headDecay[h], DecayKind.PerToken => (float)gate[bh * N + u], _ => 0 };
                double weight = Math.Exp(logDecay) * 0.8f * FeatureKernel(map, qq, kk, (bh * N + t) * D, (bh * N + s) * D, D);
                for (int e = 0; e < Dv; e++) numerator[e] += weight * vv[(bh * N + s) * Dv + e];
                denominator += weight;
            }
            for (int e = 0; e < Dv; e++)
                expected[(bh * N + t) * Dv + e] = normalize ? numerator[e] / (denominator + 0.01f) : numerator[e];
        }
        AssertClose(expected, r.Output, 1e-10);
    }

    private static double FeatureKernel(FeatureMap map, double[] q, double[] k, int qOffset, int kOffset, int d)
    {
        double dot = 0;
        for (int i = 0; i < d; i++)
        {
            double a = q[qOffset + i], b = k[kOffset + i];
            dot += map switch
            {
                FeatureMap.EluPlusOne => (a > 0 ? a + 1 : Math.Exp(a)) * (b > 0 ? b + 1 : Math.Exp(b)),
                FeatureMap.Relu => Math.Max(a, 0) * Math.Max(b, 0),
                _ => a * b,
            };
        }
        return map == FeatureMap.Taylor2 ? 1 + dot + dot * dot / 2 : dot;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Linear_NonCausal_EqualsPhiQTimesPhiKTransposeV(bool normalize)
    {
        // elu+1 features: o = scale phi(Q) (phi(K)^T V), normalised by scale phi(Q) (phi(K)^T 1) + eps.
        const int N = 5, D = 3, Dv = 2;
        var q = Random(74, 1, 1, 1, N, D);
        var k = Random(75, 1, 1, 1, N, D);
        var v = Random(76, 1, 1, 1, N, Dv);
        var options = new LinearOptions { Causal = false, FeatureMap = FeatureMap.EluPlusOne, Normalize = normalize, Scale = 0.5f, Epsilon = 0.25f };
        var r = Reference.LinearChunked(q, k, v, options);
        Assert.Null(r.FinalState);

        static double Phi(double x) => x > 0 ? x + 1 : Math.Exp(x);
        var qq = q.ToDoubleArray();
        var kk = k.ToDoubleArray();
        var vv = v.ToDoubleArray();
        var kv = new double[D, Dv];
        var kSum = new double[D];
        for (int s = 0; s < N; s++)
        for (int i = 0; i < D; i++)
        {
            kSum[i] += Phi(kk[s * D + i]);
            for (int e = 0; e < Dv; e++) kv[i, e] += Phi(kk[s * D + i]) * vv[s * Dv + e];
        }
        var expected = new double[N * Dv];
        for (int t = 0; t < N; t++)
        {
            double z = 0;
            for (int i = 0; i < D; i++) z += Phi(qq[t * D + i]) * kSum[i];
            for (int e = 0; e < Dv; e++)
            {
                double o = 0;
                for (int i = 0; i < D; i++) o += Phi(qq[t * D + i]) * kv[i, e];
                expected[t * Dv + e] = normalize ? 0.5 * o / (0.5 * z + 0.25) : 0.5 * o;
            }
        }
        AssertClose(expected, r.Output, 1e-12);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Linear_PrefillSplitInTwo_EqualsOneShot(bool normalize)
    {
        // Tokens 0..5 then 6..10 continuing from the first call's final state (stored as float32, as a kernel would).
        const int N = 11, Split = 6;
        var q = Random(77, 1, 2, 2, N, 3);
        var k = Random(78, 1, 2, 2, N, 3);
        var v = Random(79, 1, 2, 2, N, 4);
        var gate = Of(Random(80, 1, 2, 2, N).ToDoubleArray().Select(x => -Math.Abs(x)).ToArray(), 2, 2, N);
        var options = new LinearOptions { FeatureMap = FeatureMap.Taylor2, Decay = DecayKind.PerToken, LogGate = gate, Normalize = normalize, Epsilon = 0 };
        // The initial state is a real one, left by 3 earlier tokens, so normalisers stay positive as in use.
        var history = Reference.LinearChunked(Random(82, 1, 2, 2, 3, 3), Random(83, 1, 2, 2, 3, 3), Random(84, 1, 2, 2, 3, 4),
            options with { Decay = DecayKind.None, LogGate = null });
        var initial = Of(history.FinalState!, history.FinalStateShape!);
        var whole = Reference.LinearChunked(q, k, v, options, initial);
        var first = Reference.LinearChunked(q.Slice(2, 0, Split), k.Slice(2, 0, Split), v.Slice(2, 0, Split),
            options with { LogGate = gate.Slice(2, 0, Split) }, initial);
        var middle = Of(first.FinalState!, first.FinalStateShape!);
        var second = Reference.LinearChunked(q.Slice(2, Split, N - Split), k.Slice(2, Split, N - Split), v.Slice(2, Split, N - Split),
            options with { LogGate = gate.Slice(2, Split, N - Split) }, middle);
        // Stitch the halves back along N: output [B, H, N, Dv].
        var stitched = new double[whole.Output.Length];
        for (int bh = 0; bh < 4; bh++)
        {
            Array.Copy(first.Output, bh * Split * 4, stitched, bh * N * 4, Split * 4);
            Array.Copy(second.Output, bh * (N - Split) * 4, stitched, (bh * N + Split) * 4, (N - Split) * 4);
        }
        AssertClose(whole.Output, stitched, 1e-5);
        AssertClose(whole.FinalState, second.FinalState, 1e-5);
    }

    [Fact]
    public void Linear_Taylor2Features_DotToOnePlusDotPlusHalfSquare()
    {
        double[] x = [0.5, -1, 2], y = [1.5, 0.25, -0.5];
        var fx = Reference.Features(FeatureMap.Taylor2, x, 0, 3, new double[13]);
        var fy = Reference.Features(FeatureMap.Taylor2, y, 0, 3, new double[13]);
        double dot = 0.75 - 0.25 - 1; // x . y = -0.5
        Assert.Equal(1 + dot + dot * dot / 2, fx.Zip(fy, (a, b) => a * b).Sum(), 12);
    }

    [Fact]
    public void Linear_PerKeyGate_DecaysEachStateRowByItsOwnGate()
    {
        // Dk = 2, Dv = 1, identity features. Gates per key dimension: token 1 [1/2, 1], token 2 [1/4, 1/2].
        // k1 = [1, 1], v1 = 2 -> S1 = [2, 2];  k2 = [1, 0], v2 = 1 -> S2 = [1/4 * 2 + 1, 1/2 * 2 + 0] = [1.5, 1].
        // q1 = [1, 0] -> o1 = 2; q2 = [1, 1] -> o2 = 2.5. The initial state would decay row-wise too.
        var q = Of([1, 0, 1, 1], 1, 1, 2, 2);
        var k = Of([1, 1, 1, 0], 1, 1, 2, 2);
        var v = Of([2, 1], 1, 1, 2, 1);
        var gates = Of([Math.Log(0.5), 0, Math.Log(0.25), Math.Log(0.5)], 1, 1, 2, 2);
        var options = new LinearOptions { Decay = DecayKind.PerTokenPerKey, LogGate = gates };
        var r = Reference.LinearChunked(q, k, v, options);
        AssertClose([2, 2.5], r.Output, 1e-6);
        AssertClose([1.5, 1], r.FinalState, 1e-6);
        // From S0 = [4, 4]: S1 = [2 + 2, 4 + 2] = [4, 6], S2 = [1 + 1, 3] = [2, 3]; o1 = 4, o2 = 5.
        var fromState = Reference.LinearChunked(q, k, v, options, Of([4, 4], 1, 1, 2, 1));
        AssertClose([4, 5], fromState.Output, 1e-6);
        AssertClose([2, 3], fromState.FinalState, 1e-6);
    }

    [Fact]
    public void Linear_GroupedHeads_MapOutputHeadsToQueryKeyAndValueHeads()
    {
        // One token, D = Dv = 1. GQA: q heads [1, 2, 3, 4], one key head k = 1, one value head v = 5 -> o = 5 q.
        var gqa = Reference.LinearChunked(Of([1, 2, 3, 4], 1, 4, 1, 1), Of([1], 1, 1, 1, 1), Of([5], 1, 1, 1, 1));
        AssertClose([5, 10, 15, 20], gqa.Output, 1e-12);
        Assert.Equal(new[] { 1, 4, 1, 1 }, gqa.FinalStateShape);
        // Grouped value heads: q, k heads [1, 2] (H = 4 from v), v heads [1, 2, 3, 4]: head h uses q, k head h / 2,
        // so o = q k v = [1*1*1, 1*1*2, 2*2*3, 2*2*4].
        var gva = Reference.LinearChunked(Of([1, 2], 1, 2, 1, 1), Of([1, 2], 1, 2, 1, 1), Of([1, 2, 3, 4], 1, 4, 1, 1));
        AssertClose([1, 2, 12, 16], gva.Output, 1e-12);
        AssertClose([1, 2, 6, 8], gva.FinalState, 1e-12);
    }

    [Fact]
    public void Linear_PackedSequences_EachStartFromTheirOwnState()
    {
        // Three sequences of lengths 2, 0 and 1 packed along N = 3, D = Dv = 1, q = k = 1, v = [1, 2, 3],
        // initial states [10, 20, 30]: sequence 0 gives o = [11, 13] and state 13; sequence 1 keeps 20; sequence 2 gives 33.
        var ones = Of([1, 1, 1], 1, 1, 3, 1);
        var options = new LinearOptions { CuSeqLens = new[] { 0, 2, 2, 3 } };
        var r = Reference.LinearChunked(ones, ones, Of([1, 2, 3], 1, 1, 3, 1), options, Of([10, 20, 30], 3, 1, 1, 1));
        AssertClose([11, 13, 33], r.Output, 1e-12);
        AssertClose([13, 20, 33], r.FinalState, 1e-12);
        Assert.Equal(new[] { 3, 1, 1, 1 }, r.FinalStateShape);
        // Non-causal packed: each sequence sums only its own tokens.
        var nc = Reference.LinearChunked(ones, ones, Of([1, 2, 3], 1, 1, 3, 1), options with { Causal = false });
        AssertClose([3, 3, 3], nc.Output, 1e-12);
        Assert.Throws<ArgumentException>(() => Reference.LinearChunked(ones, ones, ones, options with { CuSeqLens = new[] { 0, 2, 1, 3 } }));
    }

    [Fact]
    public void Linear_DecodeAndVerify_FollowTheRecurrenceFromTheState()
    {
        // State 2, g = 1/2, q = k = 1, v = [1, 3]: S = 1/2 * 2 + 1 = 2, then 1/2 * 2 + 3 = 4.
        var ones = Of([1, 1], 1, 1, 2, 1);
        var options = new LinearOptions { Decay = DecayKind.PerHead, HeadLogDecay = new[] { LogHalf } };
        var step = Reference.LinearDecodeStep(ones, ones, Of([1, 3], 1, 1, 2, 1), Of([2], 1, 1, 1, 1), options);
        AssertClose([2, 4], step.Output, 1e-6);
        AssertClose([4], step.FinalState, 1e-6);
        var verify = Reference.LinearVerify(ones, ones, Of([1, 3], 1, 1, 2, 1), Of([2], 1, 1, 1, 1), options);
        AssertClose([2, 4], verify.Output, 1e-6);
        AssertClose([2, 4], verify.FinalState, 1e-6);
        Assert.Equal(new[] { 1, 2, 1, 1, 1 }, verify.FinalStateShape);
    }

    [Fact]
    public void Linear_PositiveOrInfiniteLogGates_NameLogGate()
    {
        var x = Zeros(1, 1, 2, 2);
        foreach (double bad in new[] { 0.5, double.NegativeInfinity, double.NaN })
        {
            var e = Assert.ThrowsAny<ArgumentException>(() => Reference.LinearChunked(x, x, x,
                new LinearOptions { Decay = DecayKind.PerToken, LogGate = Of([-1, bad], 1, 1, 2) }));
            Assert.Equal("options.LogGate", e.ParamName);
        }
        var perKey = Assert.ThrowsAny<ArgumentException>(() => Reference.LinearChunked(x, x, x,
            new LinearOptions { Decay = DecayKind.PerTokenPerKey, LogGate = Of([-1, 0, 0.1, 0], 1, 1, 2, 2) }));
        Assert.Equal("options.LogGate", perKey.ParamName);
    }
}
