// Variable-length flash properties, written once and bound to every backend below.
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace NativeAttention.Tests;

/// <summary>A random variable-length batch: per-sequence lengths, optional used key lengths, heads and options.</summary>
public sealed record VarlenCase(
    ElementType Type, int[] QueryLengths, int[] KeyLengths, int[]? UsedKeys, int QueryHeads, int KeyValueHeads, int HeadDim, int ValueDim,
    bool Causal, int WindowLeft, int WindowRight, int Seed)
{
    public FlashOptions Options => new() { Causal = Causal, WindowLeft = WindowLeft, WindowRight = WindowRight };

    public VarlenLayout Layout
    {
        get
        {
            var layout = VarlenLayout.FromLengths(QueryLengths, KeyLengths);
            return UsedKeys is null ? layout : layout with { SeqUsedK = UsedKeys };
        }
    }

    public int TotalQueries => QueryLengths.Sum();
    public int TotalKeys => KeyLengths.Sum();

    public override string ToString() =>
        $"varlen {AttentionCase.TypeName(Type)} q[{string.Join(",", QueryLengths)}] k[{string.Join(",", KeyLengths)}]{(UsedKeys is null ? "" : $" used[{string.Join(",", UsedKeys)}]")} " +
        $"H{QueryHeads}/{KeyValueHeads} D{HeadDim}/{ValueDim}{(Causal ? " causal" : "")} window({WindowLeft},{WindowRight}) seed={Seed}";
}

/// <summary>Variable-length flash against the float64 reference, and packed == per-sequence.</summary>
public abstract class VarlenTests
{
    protected abstract Backend Backend { get; }

    /// <summary>Runs the packed call where the context reads tensors, leaving the results in the host views.</summary>
    private static void Run(AttentionContext context, VarlenCase c, TensorView q, TensorView k, TensorView v, TensorView o, TensorView lse)
    {
        using var on = new OnContext(context);
        var (po, pl) = (on.Put(o), on.Put(lse));
        context.FlashVarlen(on.Put(q), on.Put(k), on.Put(v), po, c.Layout, c.Options, pl);
        on.Back(po, o);
        on.Back(pl, lse);
    }

    private static readonly Gen<VarlenCase> Cases =
        from type in Gen.Elements(ElementType.Float32, ElementType.Float16, ElementType.BFloat16)
        from sequences in Gen.Choose(1, 4)
        from queryLengths in Gen.Frequency((4, Gen.Choose(1, 40)), (1, Gen.Constant(0)), (1, Gen.Choose(60, 130))).ArrayOf(sequences)
        from keyLengths in Gen.Frequency((4, Gen.Choose(1, 50)), (1, Gen.Constant(0)), (1, Gen.Choose(60, 150))).ArrayOf(sequences)
        from useSome in Gen.Elements(false, false, true)
        from fractions in Gen.Choose(0, 100).ArrayOf(sequences)
        from kvHeads in Gen.Choose(1, 2)
        from groupSize in Gen.Elements(1, 2, 3)
        from dqk in Gen.Elements(8, 16, 32, 64, 13, 80)
        from dv in Gen.Frequency((2, Gen.Constant(dqk)), (1, Gen.Elements(8, 24, 64)))
        from causal in Gen.Elements(false, true)
        from window in Gen.Frequency((3, Gen.Constant((-1, -1))), (1, Gen.Choose(0, 20).Zip(Gen.Choose(-1, 20))))
        from seed in Gen.Choose(0, int.MaxValue)
        where queryLengths.Sum() > 0 && keyLengths.Sum() > 0
        select new VarlenCase(type, queryLengths, keyLengths,
            useSome ? keyLengths.Select((k, b) => k * fractions[b] / 100).ToArray() : null,
            kvHeads * groupSize, kvHeads, dqk, dv, causal, window.Item1, window.Item2, seed);

    /// <summary>Packed inputs of a case, and zeroed outputs.</summary>
    protected static (TensorView Q, TensorView K, TensorView V, TensorView O, TensorView Lse) Tensors(VarlenCase c)
    {
        var random = new Random(c.Seed);
        var q = TestTensors.Uniform(c.Type, random, c.TotalQueries, c.QueryHeads, c.HeadDim);
        var k = TestTensors.Uniform(c.Type, random, c.TotalKeys, c.KeyValueHeads, c.HeadDim);
        var v = TestTensors.Uniform(c.Type, random, c.TotalKeys, c.KeyValueHeads, c.ValueDim);
        var o = TestTensors.Zeros(c.Type, c.TotalQueries, c.QueryHeads, c.ValueDim);
        var lse = TensorView.FromMemory(new float[c.QueryHeads * c.TotalQueries].AsMemory(), c.QueryHeads, c.TotalQueries);
        return (q, k, v, o, lse);
    }

    /// <summary>The reference's <c>[Hq, TotalQ]</c> LSE reordered to follow the output's <c>[TotalQ, Hq]</c> rows.</summary>
    private static ReferenceResult LseByOutputRow(ReferenceResult r)
    {
        int hq = r.LogSumExpShape![0], total = r.LogSumExpShape[1];
        var lse = new double[r.LogSumExp!.Length];
        for (int h = 0; h < hq; h++)
            for (int t = 0; t < total; t++) lse[t * hq + h] = r.LogSumExp[h * total + t];
        return r with { LogSumExp = lse, LogSumExpShape = [total, hq] };
    }

    private static ReferenceCheck Check(VarlenCase c, TensorView q, TensorView k, TensorView v, TensorView o, TensorView lse)
    {
        var exact = LseByOutputRow(Reference.FlashVarlen(q, k, v, c.Layout, c.Options));
        var naive = LseByOutputRow(Reference.FlashVarlenNaive(q, k, v, c.Layout, c.Options, c.Type));
        double valueScale = v.ToDoubleArray().Select(Math.Abs).DefaultIfEmpty(0).Max();
        return CaseVerifier.CompareToReference(exact, naive, o, lse.Permute(1, 0), c.Type, valueScale);
    }

    [SkippableFact]
    public void Varlen_MatchesReference_OnRandomBatches()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        Properties.Check(Cases.ToArbitrary(), c =>
        {
            var (q, k, v, o, lse) = Tensors(c);
            Run(context, c, q, k, v, o, lse);
            var check = Check(c, q, k, v, o, lse);
            Assert.True(check.Passed, $"{c}: {check}");
        }, count: 40);
    }

    /// <summary>A float16/bfloat16 batch equals the float32 batch of the same rounded inputs rounded once (see <see cref="SixteenBit"/>).</summary>
    [SkippableFact]
    public void Varlen_SixteenBitRun_IsTheFloat32RunRoundedOnce()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        Properties.Check(Cases.ToArbitrary(), raw =>
        {
            var type = raw.Type != ElementType.Float32 ? raw.Type : raw.Seed % 2 == 0 ? ElementType.Float16 : ElementType.BFloat16;
            var c = raw with { Type = type };
            var (q, k, v, o, lse) = Tensors(c);
            Run(context, c, q, k, v, o, lse);
            var o32 = TestTensors.Zeros(ElementType.Float32, o.Shape.ToArray());
            var lse32 = TestTensors.Zeros(ElementType.Float32, lse.Shape.ToArray());
            Run(context, c with { Type = ElementType.Float32 }, TestTensors.Copy(q, ElementType.Float32), TestTensors.Copy(k, ElementType.Float32),
                TestTensors.Copy(v, ElementType.Float32), o32, lse32);
            double slack = SixteenBit.Slack(Backend, type, SixteenBit.MaxAbs(v.ToDoubleArray()));
            SixteenBit.AssertRoundedOnce(type, o.ToDoubleArray(), o32.ToDoubleArray(), slack, c.ToString());
            SixteenBit.AssertSameLse(lse32.ToDoubleArray(), lse.ToDoubleArray(), c.ToString());
        }, count: 12);
    }

    [SkippableFact]
    public void Varlen_PackedBatch_EqualsFlashPerSequence()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        Properties.Check(Cases.ToArbitrary(), c =>
        {
            var (q, k, v, o, lse) = Tensors(c);
            Run(context, c, q, k, v, o, lse);
            double tolerance = Check(c, q, k, v, o, lse).Tolerance;
            var packed = o.ToDoubleArray();
            var packedLse = lse.ToDoubleArray();
            int q0 = 0, k0 = 0;
            for (int b = 0; b < c.QueryLengths.Length; b++)
            {
                int nq = c.QueryLengths[b], nk = c.UsedKeys?[b] ?? c.KeyLengths[b];
                if (nq > 0 && nk > 0)
                {
                    // Each sequence copied into its own contiguous [1, H, n, D] tensors and run through Flash.
                    var sq = Copy(q.Slice(0, q0, nq).Permute(1, 0, 2), c.Type);
                    var sk = Copy(k.Slice(0, k0, nk).Permute(1, 0, 2), c.Type);
                    var sv = Copy(v.Slice(0, k0, nk).Permute(1, 0, 2), c.Type);
                    var so = TestTensors.Zeros(c.Type, 1, c.QueryHeads, nq, c.ValueDim);
                    var sl = TensorView.FromMemory(new float[c.QueryHeads * nq].AsMemory(), 1, c.QueryHeads, nq);
                    using (var on = new OnContext(context))
                    {
                        var (po, pl) = (on.Put(so), on.Put(sl));
                        context.Flash(on.Put(sq), on.Put(sk), on.Put(sv), po, c.Options, pl);
                        on.Back(po, so);
                        on.Back(pl, sl);
                    }
                    var single = so.ToDoubleArray();
                    var singleLse = sl.ToDoubleArray();
                    for (int h = 0; h < c.QueryHeads; h++)
                        for (int i = 0; i < nq; i++)
                        {
                            for (int d = 0; d < c.ValueDim; d++)
                            {
                                double expected = single[(h * nq + i) * c.ValueDim + d], actual = packed[((q0 + i) * c.QueryHeads + h) * c.ValueDim + d];
                                Assert.True(Math.Abs(expected - actual) <= 2 * tolerance, $"{c}: sequence {b} head {h} row {i} dim {d}: {actual} vs {expected}");
                            }
                            double e = singleLse[h * nq + i], a = packedLse[h * c.TotalQueries + q0 + i];
                            Assert.True(e.Equals(a) || Math.Abs(e - a) <= 1e-5 * (1 + Math.Abs(e)), $"{c}: sequence {b} head {h} row {i} LSE {a} vs {e}");
                        }
                }
                q0 += nq;
                k0 += c.KeyLengths[b];
            }
        }, count: 15);
    }

    [SkippableTheory]
    [InlineData(ElementType.Float32)]
    [InlineData(ElementType.Float16)]
    [InlineData(ElementType.BFloat16)]
    public void Varlen_SequenceWithoutKeys_WritesZerosAndNegativeInfinityLse(ElementType type)
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var c = new VarlenCase(type, [3, 4, 2], [5, 0, 6], [5, 0, 0], 2, 1, 16, 16, false, -1, -1, 9);
        var (q, k, v, o, lse) = Tensors(c);
        // Outputs start as 7 and LSE as 5, so the rows without keys are checked as written, not as left.
        o.CopyFrom(Enumerable.Repeat(7.0, (int)o.ElementCount).ToArray());
        lse.CopyFrom(Enumerable.Repeat(5.0, (int)lse.ElementCount).ToArray());
        Run(context, c, q, k, v, o, lse);
        Assert.True(Check(c, q, k, v, o, lse).Passed);
        for (int h = 0; h < 2; h++)
            for (int t = 3; t < 9; t++)
            {
                Assert.True(double.IsNegativeInfinity(lse.GetDouble(h, t)), $"head {h} row {t}");
                for (int d = 0; d < 16; d++) Assert.Equal(0.0, o.GetDouble(t, h, d));
            }
    }

    /// <summary>
    /// Per-sequence ALiBi slopes <c>[B, Hq]</c> (a strided view: stored head-major) on batches that mix decode-shaped and
    /// longer sequences and a sequence without keys, two layouts one after the other on the same context and thread:
    /// each sequence reads its own row of slopes, on the flash and on the decode kernels, whatever the previous call read.
    /// </summary>
    [SkippableFact]
    public void Varlen_PerSequenceAlibi_MatchesReference()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        foreach (var (type, queries, keys, causal) in new (ElementType, int[], int[], bool)[]
                 {
                     (ElementType.Float32, [1, 40, 2, 0, 1, 33], [300, 40, 90, 5, 0, 70], false),
                     (ElementType.Float16, [20, 1, 3], [64, 120, 9], true),
                     (ElementType.Float32, [2, 17, 1, 5], [50, 30, 200, 5], true),
                 })
        {
            int hq = 4, hkv = 2, d = 32, b = queries.Length;
            var layout = VarlenLayout.FromLengths(queries, keys);
            var random = new Random(b * 10 + (causal ? 1 : 0));
            var q = TestTensors.Uniform(type, random, queries.Sum(), hq, d);
            var k = TestTensors.Uniform(type, random, keys.Sum(), hkv, d);
            var v = TestTensors.Uniform(type, random, keys.Sum(), hkv, d);
            // Distinct positive slopes per (sequence, head), stored as [Hq, B] and viewed as [B, Hq] (row stride 1).
            var slopes = TestTensors.Of(ElementType.Float32, [hq, b], [.. Enumerable.Range(0, hq * b).Select(i => 0.02 + 0.37 * ((i * 5) % 11) / 11.0)]).Permute(1, 0);
            var options = new FlashOptions { Causal = causal };
            var hostOutput = TestTensors.Zeros(type, queries.Sum(), hq, d);
            var hostLse = TestTensors.Zeros(ElementType.Float32, hq, queries.Sum());
            using (var on = new OnContext(context))
            {
                var (o, lse) = (on.Put(hostOutput), on.Put(hostLse));
                context.FlashVarlen(on.Put(q), on.Put(k), on.Put(v), o, layout, options with { AlibiSlopes = on.Put(slopes) }, lse);
                on.Back(o, hostOutput);
                on.Back(lse, hostLse);
            }
            var full = options with { AlibiSlopes = slopes };
            var exact = LseByOutputRow(Reference.FlashVarlen(q, k, v, layout, full));
            var naive = LseByOutputRow(Reference.FlashVarlenNaive(q, k, v, layout, full, type));
            double valueScale = v.ToDoubleArray().Select(Math.Abs).Max();
            var check = CaseVerifier.CompareToReference(exact, naive, hostOutput, hostLse.Permute(1, 0), type, valueScale);
            Assert.True(check.Passed, $"varlen {type} per-sequence alibi, queries [{string.Join(", ", queries)}], keys [{string.Join(", ", keys)}], causal={causal}: {check}");
        }
    }

    [SkippableFact]
    public void Varlen_BadLayouts_NameTheArgument()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var q = TestTensors.Zeros(ElementType.Float32, 6, 2, 8);
        var k = TestTensors.Zeros(ElementType.Float32, 7, 1, 8);
        var v = TestTensors.Zeros(ElementType.Float32, 7, 1, 8);
        var o = TestTensors.Zeros(ElementType.Float32, 6, 2, 8);
        void Expect(VarlenLayout layout, string name, string fragment, FlashOptions? options = null)
        {
            var e = Assert.ThrowsAny<ArgumentException>(() => context.FlashVarlen(q, k, v, o, layout, options));
            Assert.Equal(name, e.ParamName);
            Assert.Contains(fragment, e.Message);
        }
        Expect(new VarlenLayout(new[] { 0, 4, 6 }, new[] { 0, 5, 3, 7 }), "layout.CuSeqLensK", "entries");
        Expect(new VarlenLayout(new[] { 0, 4, 6 }, new[] { 0, 5, 4 }), "layout.CuSeqLensK", "decreases");
        Expect(new VarlenLayout(new[] { 0, 4, 5 }, new[] { 0, 5, 7 }), "layout.CuSeqLensQ", "TotalQ = 6");
        Expect(new VarlenLayout(new[] { 1, 4, 6 }, new[] { 0, 5, 7 }), "layout.CuSeqLensQ", "start at 0");
        Expect(new VarlenLayout(new[] { 0, 4, 6 }, new[] { 0, 5, 7 }, new[] { 5, 3 }), "layout.SeqUsedK", "SeqUsedK[1] is 3");
        Expect(new VarlenLayout(new[] { 0, 4, 6 }, new[] { 0, 5, 7 }, new[] { 5 }), "layout.SeqUsedK", "one per sequence");
        var bias = TensorView.FromMemory(new float[6 * 7].AsMemory(), 1, 1, 6, 7);
        Expect(new VarlenLayout(new[] { 0, 4, 6 }, new[] { 0, 5, 7 }), "options.Bias", "variable-length", new FlashOptions { Bias = bias });
        var e = Assert.ThrowsAny<ArgumentException>(() => context.FlashVarlen(q, k, v, TestTensors.Zeros(ElementType.Float32, 6, 2, 7), new VarlenLayout(new[] { 0, 6 }, new[] { 0, 7 })));
        Assert.Equal("output", e.ParamName);
    }

    [Fact]
    public void Reference_VarlenWithPerSequenceAlibi_EqualsFlashPerSequence()
    {
        var c = new VarlenCase(ElementType.Float32, [3, 5], [4, 6], null, 2, 2, 8, 8, true, -1, -1, 4);
        var (q, k, v, _, _) = Tensors(c);
        var slopes = TensorView.FromMemory(new float[] { 0.5f, 0.25f, 1f, 0.125f }.AsMemory(), 2, 2);
        var packed = Reference.FlashVarlen(q, k, v, c.Layout, c.Options with { AlibiSlopes = slopes });
        var second = Reference.Flash(
            Copy(q.Slice(0, 3, 5).Permute(1, 0, 2), c.Type), Copy(k.Slice(0, 4, 6).Permute(1, 0, 2), c.Type), Copy(v.Slice(0, 4, 6).Permute(1, 0, 2), c.Type),
            c.Options with { AlibiSlopes = slopes.Slice(0, 1, 1) });
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < 5; i++)
                for (int d = 0; d < 8; d++)
                    Assert.Equal(second.OutputAt(0, h, i, d), packed.OutputAt(3 + i, h, d));
    }

    /// <summary>A contiguous <c>[1, ...]</c> copy of a view.</summary>
    internal static TensorView Copy(TensorView view, ElementType type)
    {
        var copy = TestTensors.Zeros(type, [1, .. view.Shape.ToArray()]);
        copy.CopyFrom(view.ToDoubleArray());
        return copy;
    }
}

[Trait("Backend", "OpenCl")]
public sealed class OpenClVarlenTests : VarlenTests
{
    protected override Backend Backend => Backend.OpenCl;
}

[Trait("Backend", "Cuda")]
public sealed class CudaVarlenTests : VarlenTests
{
    protected override Backend Backend => Backend.Cuda;
}

[Trait("Backend", "Cpu")]
public sealed class CpuVarlenTests : VarlenTests
{
    protected override Backend Backend => Backend.Cpu;
}
