// MergeStates properties: split-KV + merge == unsplit flash, and agreement with the float64 reference merge.
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace NativeAttention.Tests;

/// <summary>A random merge: S partials of [B, H, N] rows of Dv values, their storage types, how many LSEs are -inf.</summary>
public sealed record RandomMerge(int Splits, int Batch, int Heads, int Rows, int ValueDim, ElementType PartialType, ElementType OutputType,
    int InfinitePercent, bool StridedLse, int Seed)
{
    public override string ToString() =>
        $"merge S{Splits} [{Batch},{Heads},{Rows}] Dv{ValueDim} partials {AttentionCase.TypeName(PartialType)} output {AttentionCase.TypeName(OutputType)} " +
        $"-inf {InfinitePercent}%{(StridedLse ? " strided-lse" : "")} seed={Seed}";
}

public abstract class MergeStatesTests
{
    protected abstract Backend Backend { get; }

    [SkippableFact]
    public void SplitKeysThenMerge_EqualsUnsplitFlash()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var arbitrary = CaseGenerators.Flash(allowWindows: false)
            .Where(c => c.KeyLength >= 2)
            .SelectMany(c => Gen.Choose(2, Math.Min(4, c.KeyLength)).Select(s => (Case: c with { Flash = new FlashOptions() }, Splits: s)))
            .ToArbitrary();
        Properties.Check(arbitrary, x =>
        {
            var (c, splits) = x;
            using var on = new OnContext(context);
            var t = c.CreateTensors();
            int rows = c.Batch * c.QueryHeads * c.QueryLength;
            var partial = new float[splits * rows * c.ValueDim];
            var partialLse = new float[splits * rows];
            var partialView = TensorView.FromMemory(partial.AsMemory(), splits, c.Batch, c.QueryHeads, c.QueryLength, c.ValueDim);
            var partialLseView = TensorView.FromMemory(partialLse.AsMemory(), splits, c.Batch, c.QueryHeads, c.QueryLength);
            var placedPartial = on.Put(partialView);
            var placedPartialLse = on.Put(partialLseView);
            // Uneven split points derived from the seed.
            var cuts = Enumerable.Range(1, splits - 1).Select(i => i * c.KeyLength / splits).ToArray();
            int start = 0;
            for (int s = 0; s < splits; s++)
            {
                int end = s < splits - 1 ? cuts[s] : c.KeyLength;
                var output32 = placedPartial.Slice(0, s, 1).Reshape(c.Batch, c.QueryHeads, c.QueryLength, c.ValueDim);
                var lse32 = placedPartialLse.Slice(0, s, 1).Reshape(c.Batch, c.QueryHeads, c.QueryLength);
                // Partial outputs are kept in float32 whatever the input type, as split-KV kernels do.
                var q = on.Put(TestTensors.Copy(t.Query, ElementType.Float32));
                var k = on.Put(TestTensors.Copy(t.Key.Slice(2, start, end - start), ElementType.Float32));
                var v = on.Put(TestTensors.Copy(t.Value.Slice(2, start, end - start), ElementType.Float32));
                context.Flash(q, k, v, output32, c.Flash, lse32);
                start = end;
            }
            var merged = TensorView.FromMemory(new float[rows * c.ValueDim].AsMemory(), c.Batch, c.QueryHeads, c.QueryLength, c.ValueDim);
            var mergedLse = TensorView.FromMemory(new float[rows].AsMemory(), c.Batch, c.QueryHeads, c.QueryLength);
            var placedMerged = on.Put(merged);
            var placedMergedLse = on.Put(mergedLse);
            context.MergeStates(placedPartial, placedPartialLse, placedMerged, placedMergedLse);
            on.Back(placedMerged, merged);
            on.Back(placedMergedLse, mergedLse);

            var exact = Reference.Flash(t.Query, t.Key, t.Value, c.Flash);
            var f32 = c with { ElementType = ElementType.Float32 };
            double tolerance = 2 * CaseVerifier.Compare(Backend, f32, Unsplit(context, f32)).Tolerance + 1e-6;
            var error = exact.CompareOutput(merged);
            Assert.True(error.MaxAbsoluteError <= tolerance, $"{c} split {splits}: merged error {error.MaxAbsoluteError:G3} > {tolerance:G3}");
            var lseError = exact.CompareLogSumExp(mergedLse);
            Assert.True(lseError.MaxAbsoluteError <= 1e-5 * (1 + lseError.MaxAbsoluteExpected), $"{c} split {splits}: LSE error {lseError.MaxAbsoluteError:G3}");
        }, count: 15);
    }

    private static readonly Gen<ElementType> Types = Gen.Elements(ElementType.Float32, ElementType.Float16, ElementType.BFloat16);

    private static readonly Gen<RandomMerge> RandomMerges =
        from splits in Gen.Elements(1, 2, 2, 3, 4, 7)
        from batch in Gen.Choose(1, 3)
        from heads in Gen.Elements(1, 2, 5, 12)
        from rows in Gen.Elements(1, 2, 3, 17, 64, 65)
        from dv in Gen.Elements(1, 8, 13, 64, 128, 200)
        from partialType in Types
        from outputType in Types
        from infinite in Gen.Elements(0, 10, 30, 60)
        from strided in Gen.Elements(false, true)
        from seed in Gen.Choose(0, int.MaxValue)
        select new RandomMerge(splits, batch, heads, rows, dv, partialType, outputType, infinite, strided, seed);

    /// <summary>Runs a merge on the context: output in <paramref name="outputType"/>, LSE through <paramref name="lse"/>.</summary>
    private static TensorView Merge(AttentionContext context, TensorView partials, TensorView partialLse, ElementType outputType, TensorView lse)
    {
        var output = TestTensors.Zeros(outputType, partials.Shape[1..].ToArray());
        using var on = new OnContext(context);
        var (placedOutput, placedLse) = (on.Put(output), on.Put(lse));
        context.MergeStates(on.Put(partials), on.Put(partialLse), placedOutput, placedLse);
        on.Back(placedOutput, output);
        on.Back(placedLse, lse);
        return output;
    }

    /// <summary>
    /// Random merges against the float64 reference merge: partials in any type, outputs in any type, a share of
    /// partial LSEs -inf with garbage (NaN) outputs that must be ignored, and rows whose every partial is -inf (zeros,
    /// -inf). A 16-bit output must also be the float32 output of the same partials rounded once (<see cref="SixteenBit"/>).
    /// </summary>
    [SkippableFact]
    public void Merge_RandomPartials_WithNegativeInfinity_AnyTypes_MatchReference()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        Properties.Check(RandomMerges.ToArbitrary(), m =>
        {
            var random = new Random(m.Seed);
            int s = m.Splits, rows = m.Batch * m.Heads * m.Rows, dv = m.ValueDim;
            var lseValues = TestTensors.Values(random, (long)s * rows, 10);
            var outputValues = TestTensors.Values(random, (long)s * rows * dv);
            for (int r = 0; r < s * rows; r++)
            {
                // Every 7th row sees no key in any split; elsewhere a share of the splits saw none.
                bool none = r % rows % 7 == 3 || random.Next(100) < m.InfinitePercent;
                if (!none) continue;
                lseValues[r] = double.NegativeInfinity;
                Array.Fill(outputValues, double.NaN, r * dv, dv);
            }
            var partials = TestTensors.Zeros(m.PartialType, s, m.Batch, m.Heads, m.Rows, dv);
            partials.CopyFrom(outputValues);
            var partialLse = TestTensors.Of(ElementType.Float32, [s, m.Batch, m.Heads, m.Rows], lseValues);
            float[] lseStorage = new float[3 + 2 * rows];
            Array.Fill(lseStorage, 77.25f);
            var lse = m.StridedLse
                ? TensorView.FromMemory(lseStorage.AsMemory(), [m.Batch, m.Heads, m.Rows], [2L * m.Heads * m.Rows, 2L * m.Rows, 2], 3)
                : TestTensors.Zeros(ElementType.Float32, m.Batch, m.Heads, m.Rows);
            var output = Merge(context, partials, partialLse, m.OutputType, lse);

            var exact = Reference.MergeStates(partials, partialLse);
            double maxPartial = SixteenBit.MaxAbs(partials.ToDoubleArray());
            // The output's own rounding, plus float32 weights exp(LSE_s - LSE) whose arguments (|LSE| <= 10) carry ~1e-6 error.
            double tolerance = m.OutputType.UnitRoundoff() * SixteenBit.MaxAbs(exact.Output) + 1e-5 * maxPartial;
            var actual = output.ToDoubleArray();
            var lseActual = lse.ToDoubleArray();
            for (int r = 0; r < rows; r++)
            {
                double expectedLse = exact.LogSumExp![r];
                if (double.IsNegativeInfinity(expectedLse))
                {
                    Assert.True(double.IsNegativeInfinity(lseActual[r]), $"{m}: row {r} has no partial but LSE {lseActual[r]}");
                    for (int d = 0; d < dv; d++) Assert.True(actual[(long)r * dv + d] == 0, $"{m}: row {r} has no partial but output {actual[(long)r * dv + d]}");
                    continue;
                }
                Assert.True(Math.Abs(lseActual[r] - expectedLse) <= 1e-5 * (1 + Math.Abs(expectedLse)), $"{m}: row {r} LSE {lseActual[r]} vs {expectedLse}");
                for (int d = 0; d < dv; d++)
                {
                    double e = exact.Output[(long)r * dv + d], a = actual[(long)r * dv + d];
                    Assert.True(Math.Abs(a - e) <= tolerance, $"{m}: row {r} dim {d}: {a:G9} vs {e:G9} (tolerance {tolerance:G3})");
                }
            }
            if (m.StridedLse)
                for (int i = 0; i < lseStorage.Length; i++)
                    if (i < 3 || (i - 3) % 2 == 1) Assert.True(lseStorage[i] == 77.25f, $"{m}: LSE storage element {i} outside the view was written");
            if (m.OutputType != ElementType.Float32)
            {
                var thirtyTwo = Merge(context, partials, partialLse, ElementType.Float32, TestTensors.Zeros(ElementType.Float32, m.Batch, m.Heads, m.Rows));
                // Merge kernels run the same float32 arithmetic whatever the output type (no tensor cores on any backend).
                SixteenBit.AssertRoundedOnce(m.OutputType, actual, thirtyTwo.ToDoubleArray(), Math.ScaleB(maxPartial, -20), m.ToString());
            }
        }, count: 20);
    }

    /// <summary>Sampled merge cases (what `verify` and `fuzz` run) with partial outputs of magnitude 0.01 and 0.001, mostly binary16.</summary>
    [SkippableFact]
    public void Merge_SmallPartials_MatchReference()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        SmallInputs.Check(context, MergeCase.Registration, count: 12);
    }

    [SkippableFact]
    public void Merge_MatchesReference_AndIgnoresPartialsWithNegativeInfinityLse()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var random = new Random(5);
        int s = 3, rows = 7, dv = 9;
        var partial = TestTensors.Values(random, s * rows * dv).Select(v => (float)v).ToArray();
        var lse = TestTensors.Values(random, s * rows, 10).Select(v => (float)v).ToArray();
        // Row 0: split 1 saw no key (garbage output must be ignored). Row 1: no split saw a key.
        lse[1 * rows + 0] = float.NegativeInfinity;
        for (int d = 0; d < dv; d++) partial[(1 * rows + 0) * dv + d] = float.NaN;
        for (int i = 0; i < s; i++) lse[i * rows + 1] = float.NegativeInfinity;
        var pv = TensorView.FromMemory(partial.AsMemory(), s, 1, rows, dv);
        var lv = TensorView.FromMemory(lse.AsMemory(), s, 1, rows);
        var output = TensorView.FromMemory(new Half[rows * dv].AsMemory(), 1, rows, dv);
        var outLse = TensorView.FromMemory(new float[rows].AsMemory(), 1, rows);
        using (var on = new OnContext(context))
        {
            var (placedOutput, placedLse) = (on.Put(output), on.Put(outLse));
            context.MergeStates(on.Put(pv), on.Put(lv), placedOutput, placedLse);
            on.Back(placedOutput, output);
            on.Back(placedLse, outLse);
        }
        var exact = Reference.MergeStates(pv, lv);
        var error = exact.CompareOutput(output);
        Assert.True(error.MaxAbsoluteError <= 2 * ElementType.Float16.UnitRoundoff() * 1.01, $"error {error.MaxAbsoluteError}");
        Assert.True(exact.CompareLogSumExp(outLse).MaxAbsoluteError <= 1e-5);
        Assert.True(double.IsNegativeInfinity(outLse.GetDouble(0, 1)));
        for (int d = 0; d < dv; d++) Assert.Equal(0.0, output.GetDouble(0, 1, d));
        Assert.DoesNotContain(output.ToDoubleArray(), double.IsNaN);
    }

    [SkippableFact]
    public void Merge_ShapeMismatch_NamesTheTensor()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var pv = TensorView.FromMemory(new float[2 * 3 * 4].AsMemory(), 2, 3, 4);
        var e = Assert.ThrowsAny<ArgumentException>(() => context.MergeStates(pv, TensorView.FromMemory(new float[2 * 4].AsMemory(), 2, 4), TensorView.FromMemory(new float[12].AsMemory(), 3, 4)));
        Assert.Equal("partialLogSumExp", e.ParamName);
        e = Assert.ThrowsAny<ArgumentException>(() => context.MergeStates(pv, TensorView.FromMemory(new float[6].AsMemory(), 2, 3), TensorView.FromMemory(new float[15].AsMemory(), 3, 5)));
        Assert.Equal("output", e.ParamName);
    }

    private static CaseTensors Unsplit(AttentionContext context, AttentionCase c)
    {
        var t = c.CreateTensors();
        CaseRunner.Run(context, c, t);
        return t;
    }
}

[Trait("Backend", "Cpu")]
public sealed class CpuMergeStatesTests : MergeStatesTests
{
    protected override Backend Backend => Backend.Cpu;
}

[Trait("Backend", "OpenCl")]
public sealed class OpenClMergeStatesTests : MergeStatesTests
{
    protected override Backend Backend => Backend.OpenCl;
}

[Trait("Backend", "Cuda")]
public sealed class CudaMergeStatesTests : MergeStatesTests
{
    protected override Backend Backend => Backend.Cuda;
}
