// Bad input to Flash: a clear ArgumentException naming the tensor, before any kernel runs.
using Xunit;

namespace NativeAttention.Tests;

public class FlashValidationTests
{
    private static TensorView F32(params int[] shape) => TensorView.FromMemory(new float[Math.Max(1, shape.Aggregate(1, (a, b) => a * b))].AsMemory(), shape);

    private static ArgumentException Throws(Action call, string parameter, string fragment)
    {
        var e = Assert.ThrowsAny<ArgumentException>(call);
        Assert.Equal(parameter, e.ParamName);
        Assert.Contains(fragment, e.Message);
        return e;
    }

    private static void Flash(TensorView q, TensorView k, TensorView v, TensorView o, FlashOptions? options = null, TensorView? lse = null)
    {
        using var context = AttentionContext.Create(Backend.Cpu);
        context.Flash(q, k, v, o, options, lse);
    }

    [Fact]
    public void Flash_QueryOfWrongRank_NamesQueryAndLayout() =>
        Throws(() => Flash(F32(2, 4, 8), F32(1, 2, 4, 8), F32(1, 2, 4, 8), F32(1, 2, 4, 8)), "query", "[B, Hq, Nq, Dqk]");

    [Fact]
    public void Flash_KeyHeadDimMismatch_NamesKey() =>
        Throws(() => Flash(F32(1, 2, 4, 8), F32(1, 2, 4, 7), F32(1, 2, 4, 8), F32(1, 2, 4, 8)), "key", "head dim 7");

    [Fact]
    public void Flash_QueryHeadsNotMultipleOfKeyHeads_NamesKey() =>
        Throws(() => Flash(F32(1, 3, 4, 8), F32(1, 2, 4, 8), F32(1, 2, 4, 8), F32(1, 3, 4, 8)), "key", "Hq % Hkv");

    [Fact]
    public void Flash_ValueLengthMismatch_NamesValue() =>
        Throws(() => Flash(F32(1, 2, 4, 8), F32(1, 2, 5, 8), F32(1, 2, 4, 8), F32(1, 2, 4, 8)), "value", "[1, 2, 5, Dv]");

    [Fact]
    public void Flash_OutputShapeMismatch_NamesOutputAndExpectedShape() =>
        Throws(() => Flash(F32(1, 2, 4, 8), F32(1, 2, 5, 8), F32(1, 2, 5, 6), F32(1, 2, 4, 8)), "output", "[1, 2, 4, 6]");

    [Fact]
    public void Flash_ZeroLength_IsRejected() =>
        Throws(() => Flash(F32(1, 2, 0, 8), F32(1, 2, 5, 8), F32(1, 2, 5, 8), F32(1, 2, 0, 8)), "query", "must be positive");

    [Fact]
    public void Flash_HeadDimAbove256_IsRejected() =>
        Throws(() => Flash(F32(1, 1, 2, 257), F32(1, 1, 2, 257), F32(1, 1, 2, 8), F32(1, 1, 2, 8)), "query", "at most 256");

    [Fact]
    public void Flash_MixedElementTypes_NamesTheOddOneOut()
    {
        var half = TensorView.FromMemory(new Half[64].AsMemory(), 1, 2, 4, 8);
        Throws(() => Flash(F32(1, 2, 4, 8), half, F32(1, 2, 4, 8), F32(1, 2, 4, 8)), "key", "Float16");
    }

    [Fact]
    public void Flash_OutputAliasingQuery_IsRejected()
    {
        var q = F32(1, 2, 4, 8);
        Throws(() => Flash(q, F32(1, 2, 4, 8), F32(1, 2, 4, 8), q), "output", "alias");
    }

    [Fact]
    public void Flash_OutputOverlappingPartOfValue_IsRejected()
    {
        var buffer = new float[128];
        var v = TensorView.FromMemory(buffer.AsMemory(0, 64), 1, 2, 4, 8);
        var o = TensorView.FromMemory(buffer.AsMemory(60, 64), 1, 2, 4, 8);
        Throws(() => Flash(F32(1, 2, 4, 8), F32(1, 2, 4, 8), v, o), "output", "overlaps value");
    }

    [Fact]
    public void Flash_OutputWithOverlappingStrides_IsRejected()
    {
        var o = TensorView.FromMemory(new float[64].AsMemory(), [1, 2, 4, 8], [64, 32, 4, 1]);
        Throws(() => Flash(F32(1, 2, 4, 8), F32(1, 2, 4, 8), F32(1, 2, 4, 8), o), "output", "overlap");
    }

    [Fact]
    public void Flash_BroadcastKeyStrides_AreAccepted()
    {
        // Inputs may repeat elements (stride 0): only outputs need distinct elements.
        var k = TensorView.FromMemory(new float[8].AsMemory(), [1, 2, 4, 8], [0, 0, 0, 1]);
        Flash(F32(1, 2, 4, 8), k, F32(1, 2, 4, 8), F32(1, 2, 4, 8));
    }

    [Fact]
    public void Flash_LseOfWrongShapeOrType_IsRejected()
    {
        Throws(() => Flash(F32(1, 2, 4, 8), F32(1, 2, 4, 8), F32(1, 2, 4, 8), F32(1, 2, 4, 8), lse: F32(1, 2, 5)), "logSumExp", "[1, 2, 4]");
        var halfLse = TensorView.FromMemory(new Half[8].AsMemory(), 1, 2, 4);
        Throws(() => Flash(F32(1, 2, 4, 8), F32(1, 2, 4, 8), F32(1, 2, 4, 8), F32(1, 2, 4, 8), lse: halfLse), "logSumExp", "Float32");
    }

    [Fact]
    public void Flash_WindowBelowMinusOne_IsRejected() =>
        Throws(() => Flash(F32(1, 2, 4, 8), F32(1, 2, 4, 8), F32(1, 2, 4, 8), F32(1, 2, 4, 8), new FlashOptions { WindowLeft = -2 }), "options", "WindowLeft");

    [Fact]
    public void Flash_NonFiniteScale_IsRejected() =>
        Throws(() => Flash(F32(1, 2, 4, 8), F32(1, 2, 4, 8), F32(1, 2, 4, 8), F32(1, 2, 4, 8), new FlashOptions { Scale = float.NaN }), "options", "Scale");

    [Fact]
    public void Flash_DefaultTensorView_IsRejected() =>
        Throws(() => Flash(default, F32(1, 2, 4, 8), F32(1, 2, 4, 8), F32(1, 2, 4, 8)), "query", "default");

    [Fact]
    public void Flash_AfterDispose_ThrowsObjectDisposed()
    {
        var context = AttentionContext.Create(Backend.Cpu);
        context.Dispose();
        Assert.Throws<ObjectDisposedException>(() => context.Flash(F32(1, 1, 1, 1), F32(1, 1, 1, 1), F32(1, 1, 1, 1), F32(1, 1, 1, 1)));
    }

    [Fact]
    public void Flash_BiasThatDoesNotBroadcast_IsRejected() =>
        Throws(() => Flash(F32(1, 2, 4, 8), F32(1, 2, 5, 8), F32(1, 2, 5, 8), F32(1, 2, 4, 8), new FlashOptions { Bias = F32(1, 3, 4, 5) }), "options.Bias", "head size 3");
}

public class TensorViewTests
{
    [Fact]
    public void View_ReachingPastItsStorage_IsRejected()
    {
        var e = Assert.Throws<ArgumentException>(() => TensorView.FromMemory(new float[10].AsMemory(), [2, 3], [4, 3]));
        Assert.Contains("reaches element 10", e.Message);
        Assert.Throws<ArgumentException>(() => TensorView.FromMemory(new float[10].AsMemory(), [2, 3], [6, 2]));
        _ = TensorView.FromMemory(new float[10].AsMemory(), [2, 3], [4, 2]); // last element 8 fits
    }

    [Fact]
    public void View_NegativeStride_IsRejected() =>
        Assert.Throws<ArgumentException>(() => TensorView.FromMemory(new float[10].AsMemory(), [2], [-1], 5));

    [Fact]
    public void Permute_SwapsShapeAndStrides()
    {
        var v = TensorView.FromMemory(new float[2 * 3 * 4 * 5].AsMemory(), 2, 3, 4, 5).Permute(0, 2, 1, 3);
        Assert.Equal([2, 4, 3, 5], v.Shape.ToArray());
        Assert.Equal([60L, 5, 20, 1], v.Strides.ToArray());
        Assert.False(v.IsContiguous);
        Assert.True(v.HasNonOverlappingElements);
    }

    [Fact]
    public void CopyFromAndToDoubleArray_RoundTripThroughAPermutedView()
    {
        var v = TensorView.FromMemory(new Half[24].AsMemory(), 2, 3, 4).Permute(2, 0, 1);
        var values = Enumerable.Range(0, 24).Select(i => (double)i).ToArray();
        v.CopyFrom(values);
        Assert.Equal(values, v.ToDoubleArray());
        Assert.Equal(9.0, v.GetDouble(1, 1, 0));
    }

    [Fact]
    public void Permute_WithRepeatedAxis_IsRejected() =>
        Assert.Throws<ArgumentException>(() => TensorView.FromMemory(new float[6].AsMemory(), 2, 3).Permute(0, 0));
}
