// The float64 flash reference on cases worked out by hand, and metamorphic cross-checks between its options.
using Xunit;
using static NativeAttention.Tests.References.Tensors;

namespace NativeAttention.Tests.References;

public sealed class FlashReferenceTests
{
    private static readonly double Ln2 = Math.Log(2), Ln3 = Math.Log(3);

    [Fact]
    public void Flash_ThreeTokensCausal_MatchesHandComputedWeights()
    {
        // D = 1, scale 1, q_i = 1 and k = [0, ln 2, ln 3]: the scores are 0, ln 2, ln 3, so exp(score) = 1, 2, 3.
        // Row 0 sees key 0 only: o = v0 = 6, LSE = log 1 = 0.
        // Row 1 sees keys 0..1 with weights 1, 2 (sum 3): o = (6 + 2 * 3) / 3 = 4, LSE = ln 3.
        // Row 2 sees keys 0..2 with weights 1, 2, 3 (sum 6): o = (6 + 2 * 3 + 3 * 12) / 6 = 8, LSE = ln 6.
        var q = Of([1, 1, 1], 1, 1, 3, 1);
        var k = Of([0, Ln2, Ln3], 1, 1, 3, 1);
        var v = Of([6, 3, 12], 1, 1, 3, 1);
        var r = Reference.Flash(q, k, v, new FlashOptions { Scale = 1, Causal = true });
        AssertClose([6, 4, 8], r.Output, 1e-6);
        AssertClose([0, Ln3, Math.Log(6)], r.LogSumExp, 1e-6);
        Assert.Equal(new[] { 1, 1, 3, 1 }, r.OutputShape);
        Assert.Equal(new[] { 1, 1, 3 }, r.LogSumExpShape);
    }

    [Fact]
    public void Flash_CausalWithFewerKeysThanQueries_WritesZerosAndNegativeInfinityLseForRowsWithoutKeys()
    {
        // Nq = 3, Nk = 1, bottom-right aligned: query i sits at i + 1 - 3, so queries 0 and 1 (positions -2, -1)
        // see no key; query 2 (position 0) sees key 0: o = v0 = 5 and LSE = score = 2 * 1.5 = 3.
        var q = Of([1, 1, 2], 1, 1, 3, 1);
        var k = Of([1.5], 1, 1, 1, 1);
        var v = Of([5], 1, 1, 1, 1);
        var r = Reference.Flash(q, k, v, new FlashOptions { Scale = 1, Causal = true });
        Assert.Equal(new double[] { 0, 0, 5 }, r.Output);
        Assert.Equal(new[] { double.NegativeInfinity, double.NegativeInfinity, 3 }, r.LogSumExp);
    }

    [Fact]
    public void Flash_Sink_JoinsTheDenominatorButAddsNoValue()
    {
        // One key with score 0 (weight 1) and a sink logit ln 3 (weight 3): p = 1 / 4, o = 8 / 4 = 2,
        // LSE = log(1 + 3) = ln 4, the log of the whole denominator.
        var q = Of([0], 1, 1, 1, 1);
        var k = Of([1], 1, 1, 1, 1);
        var v = Of([8], 1, 1, 1, 1);
        var r = Reference.Flash(q, k, v, new FlashOptions { Scale = 1, Sinks = Of([Ln3], 1) });
        AssertClose([2], r.Output, 1e-6);
        AssertClose([Math.Log(4)], r.LogSumExp, 1e-6);
    }

    [Fact]
    public void Flash_Sigmoid_WeighsEachKeyIndependentlyWithoutNormalising()
    {
        // Scores 0 and ln 3 with bias 0: sigmoid(0) = 1/2 and sigmoid(ln 3) = 3 / (1 + 3) = 3/4.
        // o = 4 / 2 + 8 * 3/4 = 8; LSE = log(1/2 + 3/4) = log 1.25 (log of the total weight).
        var q = Of([1], 1, 1, 1, 1);
        var k = Of([0, Ln3], 1, 1, 2, 1);
        var v = Of([4, 8], 1, 1, 2, 1);
        var r = Reference.Flash(q, k, v, new FlashOptions { Scale = 1, ScoreFunction = ScoreFunction.Sigmoid });
        AssertClose([8], r.Output, 1e-6);
        AssertClose([Math.Log(1.25)], r.LogSumExp, 1e-6);

        // A bias of -ln 3 turns the weights into sigmoid(-ln 3) = 1/4 and sigmoid(0) = 1/2: o = 1 + 4 = 5.
        var biased = Reference.Flash(q, k, v, new FlashOptions { Scale = 1, ScoreFunction = ScoreFunction.Sigmoid, SigmoidBias = (float)-Ln3 });
        AssertClose([5], biased.Output, 1e-6);
    }

    [Fact]
    public void Flash_Softcap_SquashesScoresWithTanhBeforeSoftmax()
    {
        // Scores 0 and 2 with cap 1 become tanh(0) = 0 and tanh(2); with V = [0, 1] the output is the second
        // probability, exp(tanh 2) / (1 + exp(tanh 2)) = sigmoid(tanh 2) ~ 0.7240.
        var q = Of([1], 1, 1, 1, 1);
        var k = Of([0, 2], 1, 1, 2, 1);
        var v = Of([0, 1], 1, 1, 2, 1);
        var r = Reference.Flash(q, k, v, new FlashOptions { Scale = 1, Softcap = 1 });
        double expected = 1 / (1 + Math.Exp(-Math.Tanh(2)));
        AssertClose([expected], r.Output, 1e-6);
        AssertClose([Math.Log(1 + Math.Exp(Math.Tanh(2)))], r.LogSumExp, 1e-6);
    }

    [Fact]
    public void Flash_Alibi_SubtractsSlopeTimesAlignedDistance()
    {
        // Zero queries, slope ln 2: weights are 2^-|i' - j|. V = [0, 1, 2].
        // Nq = Nk = 3, row 0: weights 1, 1/2, 1/4 (sum 7/4): o = (1/2 + 2/4) / (7/4) = 4/7.
        // Row 1: weights 1/2, 1, 1/2 (sum 2): o = (1 + 1) / 2 = 1.
        var k = Of([0, 0, 0], 1, 1, 3, 1);
        var v = Of([0, 1, 2], 1, 1, 3, 1);
        var slopes = Of([Ln2], 1);
        var r = Reference.Flash(Zeros(1, 1, 3, 1), k, v, new FlashOptions { AlibiSlopes = slopes });
        AssertClose([4.0 / 7, 1, 10.0 / 7], r.Output, 1e-6);

        // One query against three keys sits at aligned position 2: weights 1/4, 1/2, 1: o = (1/2 + 2) / (7/4) = 10/7.
        var single = Reference.Flash(Zeros(1, 1, 1, 1), k, v, new FlashOptions { AlibiSlopes = slopes });
        AssertClose([10.0 / 7], single.Output, 1e-6);
    }

    [Fact]
    public void Flash_LowRankBias_EqualsDenseBiasOfItsProduct()
    {
        var q = Random(1, 1, 2, 2, 5, 4);
        var k = Random(2, 1, 2, 1, 6, 4);
        var v = Random(3, 1, 2, 1, 6, 3);
        var u = Random(4, 1, 1, 2, 5, 2);
        var w = Random(5, 1, 1, 1, 6, 2); // broadcast over heads
        var uu = u.ToDoubleArray();
        var ww = w.ToDoubleArray();
        var dense = new double[2 * 5 * 6];
        for (int h = 0; h < 2; h++)
        for (int i = 0; i < 5; i++)
        for (int j = 0; j < 6; j++)
            dense[(h * 5 + i) * 6 + j] = uu[(h * 5 + i) * 2] * ww[j * 2] + uu[(h * 5 + i) * 2 + 1] * ww[j * 2 + 1];
        var lowRank = Reference.Flash(q, k, v, new FlashOptions { LowRankBias = new LowRankBias(u, w), Causal = true });
        var denseBias = Reference.Flash(q, k, v, new FlashOptions { Bias = Of(dense, 1, 2, 5, 6), Causal = true });
        AssertClose(denseBias.Output, lowRank.Output, 1e-6);
        AssertClose(denseBias.LogSumExp, lowRank.LogSumExp, 1e-6);
    }

    [Fact]
    public void Flash_BroadcastBias_EqualsTheSameBiasRepeatedOverBatchAndHeads()
    {
        var q = Random(6, 1, 2, 3, 4, 4);
        var k = Random(7, 1, 2, 3, 4, 4);
        var v = Random(8, 1, 2, 3, 4, 4);
        var bias = Random(9, 2, 1, 1, 4, 4);
        var one = bias.ToDoubleArray();
        var repeated = new double[2 * 3 * 16];
        for (int bh = 0; bh < 6; bh++) Array.Copy(one, 0, repeated, bh * 16, 16);
        var a = Reference.Flash(q, k, v, new FlashOptions { Bias = bias });
        var b = Reference.Flash(q, k, v, new FlashOptions { Bias = Of(repeated, 2, 3, 4, 4) });
        AssertClose(b.Output, a.Output, 1e-12);
    }

    [Fact]
    public void Flash_WindowCoveringEverythingToTheLeft_EqualsCausal()
    {
        var q = Random(10, 1, 1, 2, 5, 8);
        var k = Random(11, 1, 1, 2, 7, 8);
        var v = Random(12, 1, 1, 2, 7, 3);
        var causal = Reference.Flash(q, k, v, new FlashOptions { Causal = true });
        var window = Reference.Flash(q, k, v, new FlashOptions { WindowLeft = 7, WindowRight = 0 });
        AssertClose(causal.Output, window.Output, 1e-12);
        AssertClose(causal.LogSumExp, window.LogSumExp, 1e-12);
    }

    [Fact]
    public void Flash_GroupedQueryHeads_ReadTheirSharedKeyValueHead()
    {
        // Hq = 4 over Hkv = 2 must equal multi-head attention with kv head h / 2 repeated for query head h.
        var q = Random(13, 1, 2, 4, 3, 4);
        var k = Random(14, 1, 2, 2, 5, 4);
        var v = Random(15, 1, 2, 2, 5, 2);
        var kk = k.ToDoubleArray();
        var vv = v.ToDoubleArray();
        var kRepeated = new double[2 * 4 * 5 * 4];
        var vRepeated = new double[2 * 4 * 5 * 2];
        for (int b = 0; b < 2; b++)
        for (int h = 0; h < 4; h++)
        {
            Array.Copy(kk, (b * 2 + h / 2) * 20, kRepeated, (b * 4 + h) * 20, 20);
            Array.Copy(vv, (b * 2 + h / 2) * 10, vRepeated, (b * 4 + h) * 10, 10);
        }
        var gqa = Reference.Flash(q, k, v);
        var mha = Reference.Flash(q, Of(kRepeated, 2, 4, 5, 4), Of(vRepeated, 2, 4, 5, 2));
        AssertClose(mha.Output, gqa.Output, 1e-12);
    }

    [Fact]
    public void Flash_HugeScale_PicksTheBestKeyWithoutOverflow()
    {
        // Scale 1e4 makes score gaps of thousands; the max-subtracted softmax puts all weight on the best key.
        var q = Of([1, 0], 1, 1, 1, 2);
        var k = Of([0.5, 0, 0.9, 0, -1, 0], 1, 1, 3, 2);
        var v = Of([1, 2, 3], 1, 1, 3, 1);
        var r = Reference.Flash(q, k, v, new FlashOptions { Scale = 1e4f });
        Assert.Equal(2, r.Output[0], 12);
        // LSE = 1e4 * 0.9 (float32 0.9) + log(1 + tiny): finite.
        Assert.Equal(1e4 * (double)0.9f, r.LogSumExp![0], 6);
    }

    [Fact]
    public void Flash_MinusInfinityBiasOnEveryKey_WritesZerosAndNegativeInfinityLse()
    {
        // Zero queries: every score is 0 before the bias.
        var q = Zeros(1, 1, 2, 2);
        var k = Random(17, 1, 1, 1, 2, 2);
        var v = Random(18, 1, 1, 1, 2, 2);
        var bias = Of([double.NegativeInfinity, double.NegativeInfinity, 0, double.NegativeInfinity], 1, 1, 2, 2);
        var r = Reference.Flash(q, k, v, new FlashOptions { Bias = bias, Sinks = Of([0], 1) });
        Assert.Equal(new double[] { 0, 0 }, r.Output.AsSpan(0, 2).ToArray());
        Assert.Equal(double.NegativeInfinity, r.LogSumExp![0]);
        Assert.Equal(v.GetDouble(0, 0, 0, 0) / 2, r.Output[2], 7); // row 1: one key of weight 1 and the sink of weight 1
    }

    [Fact]
    public void Flash_PermutedBnhdInputs_EqualContiguousBhndInputs()
    {
        // The same numbers stored [B, N, H, D] and viewed as [B, H, N, D] through strides.
        var q = Random(22, 1, 2, 3, 5, 4);
        var k = Random(23, 1, 2, 3, 6, 4);
        var v = Random(24, 1, 2, 3, 6, 2);
        static TensorView AsBnhd(TensorView bhnd)
        {
            var s = bhnd.Shape;
            var x = bhnd.ToDoubleArray();
            var bnhd = new double[x.Length];
            for (int b = 0; b < s[0]; b++)
            for (int h = 0; h < s[1]; h++)
            for (int n = 0; n < s[2]; n++)
            for (int d = 0; d < s[3]; d++)
                bnhd[((b * s[2] + n) * s[1] + h) * s[3] + d] = x[((b * s[1] + h) * s[2] + n) * s[3] + d];
            return Of(bnhd, s[0], s[2], s[1], s[3]).Permute(0, 2, 1, 3);
        }
        var options = new FlashOptions { Causal = true };
        var contiguous = Reference.Flash(q, k, v, options);
        var strided = Reference.Flash(AsBnhd(q), AsBnhd(k), AsBnhd(v), options);
        Assert.Equal(contiguous.Output, strided.Output);
    }

    [Fact]
    public void Flash_HalfAndBFloat16Inputs_AreReadExactly()
    {
        // Values exactly representable in both 16-bit formats give the same float64 result as float32 storage.
        double[] qv = [0.5, -1, 2, 0.25], kv = [1, 0.75, -0.5, 1.5, -2, 0.125], vv = [3, -1, 0.5];
        var asFloat = Reference.Flash(Of(qv, 1, 1, 2, 2), Of(kv, 1, 1, 3, 2), Of(vv, 1, 1, 3, 1));
        var asHalf = Reference.Flash(
            TensorView.FromMemory<Half>(qv.Select(x => (Half)x).ToArray(), 1, 1, 2, 2),
            TensorView.FromMemory<Half>(kv.Select(x => (Half)x).ToArray(), 1, 1, 3, 2),
            TensorView.FromMemory<Half>(vv.Select(x => (Half)x).ToArray(), 1, 1, 3, 1));
        var asBf16 = Reference.Flash(
            TensorView.FromMemory<BFloat16>(qv.Select(x => (BFloat16)x).ToArray(), 1, 1, 2, 2),
            TensorView.FromMemory<BFloat16>(kv.Select(x => (BFloat16)x).ToArray(), 1, 1, 3, 2),
            TensorView.FromMemory<BFloat16>(vv.Select(x => (BFloat16)x).ToArray(), 1, 1, 3, 1));
        Assert.Equal(asFloat.Output, asHalf.Output);
        Assert.Equal(asFloat.Output, asBf16.Output);
    }

    [Fact]
    public void Flash_ConstantBias_ShiftsLseButNotTheOutput()
    {
        // Softmax is shift invariant: adding 2.5 to every score leaves o unchanged and adds 2.5 to the LSE.
        var q = Random(25, 1, 1, 1, 4, 4);
        var k = Random(26, 1, 1, 1, 6, 4);
        var v = Random(27, 1, 1, 1, 6, 3);
        var plain = Reference.Flash(q, k, v);
        var shifted = Reference.Flash(q, k, v, new FlashOptions { Bias = Of(Enumerable.Repeat(2.5, 24).ToArray(), 1, 1, 4, 6) });
        AssertClose(plain.Output, shifted.Output, 1e-12);
        AssertClose(plain.LogSumExp!.Select(x => x + 2.5).ToArray(), shifted.LogSumExp, 1e-12);
    }

    [Fact]
    public void Flash_PermutingKeysAndValuesTogether_DoesNotChangeNonCausalOutput()
    {
        var q = Random(28, 1, 1, 1, 3, 4);
        var k = Random(29, 1, 1, 1, 5, 4).ToDoubleArray();
        var v = Random(30, 1, 1, 1, 5, 2).ToDoubleArray();
        int[] order = [3, 0, 4, 1, 2];
        var kp = order.SelectMany(j => k.Skip(j * 4).Take(4)).ToArray();
        var vp = order.SelectMany(j => v.Skip(j * 2).Take(2)).ToArray();
        var a = Reference.Flash(q, Of(k, 1, 1, 5, 4), Of(v, 1, 1, 5, 2));
        var b = Reference.Flash(q, Of(kp, 1, 1, 5, 4), Of(vp, 1, 1, 5, 2));
        AssertClose(a.Output, b.Output, 1e-12);
        AssertClose(a.LogSumExp, b.LogSumExp, 1e-12);
    }

    [Fact]
    public void Flash_SplitKeysMergedThroughLse_EqualsUnsplit()
    {
        // Split-KV: o = (e^{LSE1} o1 + e^{LSE2} o2) / (e^{LSE1} + e^{LSE2}) and LSE = log(e^{LSE1} + e^{LSE2}).
        var q = Random(31, 1, 1, 1, 3, 4);
        var k = Random(32, 1, 1, 1, 7, 4);
        var v = Random(33, 1, 1, 1, 7, 2);
        var whole = Reference.Flash(q, k, v);
        var left = Reference.Flash(q, k.Slice(2, 0, 3), v.Slice(2, 0, 3));
        var right = Reference.Flash(q, k.Slice(2, 3, 4), v.Slice(2, 3, 4));
        var merged = new double[6];
        var mergedLse = new double[3];
        for (int i = 0; i < 3; i++)
        {
            double l1 = left.LogSumExp![i], l2 = right.LogSumExp![i];
            double m = Math.Max(l1, l2), w1 = Math.Exp(l1 - m), w2 = Math.Exp(l2 - m);
            mergedLse[i] = m + Math.Log(w1 + w2);
            for (int e = 0; e < 2; e++) merged[i * 2 + e] = (w1 * left.Output[i * 2 + e] + w2 * right.Output[i * 2 + e]) / (w1 + w2);
        }
        AssertClose(whole.Output, merged, 1e-12);
        AssertClose(whole.LogSumExp, mergedLse, 1e-12);
    }

    [Fact]
    public void FlashNaive_Float32_StaysWithinFloat32RoundingOfTheReference()
    {
        var q = Random(19, 2, 1, 2, 16, 16);
        var k = Random(20, 2, 1, 2, 16, 16);
        var v = Random(21, 1, 1, 2, 16, 8);
        var options = new FlashOptions { Causal = true, Softcap = 5, AlibiSlopes = Of([0.1, 0.2], 2) };
        var exact = Reference.Flash(q, k, v, options);
        var naive32 = Reference.FlashNaive(q, k, v, options, ElementType.Float32);
        var naiveBf16 = Reference.FlashNaive(q, k, v, options, ElementType.BFloat16);
        var error32 = Reference.Compare(naive32.Output, exact.Output);
        var errorBf16 = Reference.Compare(naiveBf16.Output, exact.Output);
        Assert.True(error32.MaxAbsoluteError is > 0 and < 1e-5, error32.ToString());
        Assert.True(errorBf16.MaxAbsoluteError > 10 * error32.MaxAbsoluteError && errorBf16.MaxAbsoluteError < 0.1, errorBf16.ToString());
    }

    [Fact]
    public void Compare_MatchingInfinitiesAreExactAndMismatchesAreInfinite()
    {
        var same = Reference.Compare([double.NegativeInfinity, 1.0], [double.NegativeInfinity, 1.5]);
        Assert.Equal(0.5, same.MaxAbsoluteError);
        Assert.Equal(1, same.WorstIndex);
        var mismatch = Reference.Compare([0.0, 1.0], [double.NegativeInfinity, 1.0]);
        Assert.Equal(double.PositiveInfinity, mismatch.MaxAbsoluteError);
        Assert.Equal(0, mismatch.WorstIndex);
    }

    [Fact]
    public void CompareOutput_ReadsStridedHalfTensors()
    {
        var r = new ReferenceResult([1, 2, 3, 4], [1, 1, 2, 2]);
        // Column-major storage of [[1, 2], [3, 4]] viewed with transposed strides.
        var half = TensorView.FromMemory<Half>(new[] { (Half)1, (Half)3, (Half)2, (Half)4.5f }, [1, 1, 2, 2], [4, 4, 1, 2]);
        var error = r.CompareOutput(half);
        Assert.Equal(0.5, error.MaxAbsoluteError);
        Assert.Equal(3, error.WorstIndex);
    }
}
