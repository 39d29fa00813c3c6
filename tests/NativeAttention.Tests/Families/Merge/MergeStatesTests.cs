// MergeStates properties: split-KV + merge == unsplit flash, and agreement with the float64 reference merge.
using FsCheck.Fluent;
using Xunit;

namespace NativeAttention.Tests;

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
                var q = on.Put(ToFloat(t.Query));
                var k = on.Put(ToFloat(t.Key.Slice(2, start, end - start)));
                var v = on.Put(ToFloat(t.Value.Slice(2, start, end - start)));
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

    [SkippableFact]
    public void Merge_MatchesReference_AndIgnoresPartialsWithNegativeInfinityLse()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var random = new Random(5);
        int s = 3, rows = 7, dv = 9;
        var partial = Enumerable.Range(0, s * rows * dv).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var lse = Enumerable.Range(0, s * rows).Select(_ => (float)(random.NextDouble() * 20 - 10)).ToArray();
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

    private static TensorView ToFloat(TensorView view)
    {
        var copy = TensorView.FromMemory(new float[view.ElementCount].AsMemory(), view.Shape);
        copy.CopyFrom(view.ToDoubleArray());
        return copy;
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
