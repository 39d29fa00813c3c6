// The KV-cache and rotary references: hand-worked rotations, and agreement with the flash reference on gathered keys.
using Xunit;

namespace NativeAttention.Tests.References;

public class KvCacheReferenceTests
{
    [Fact]
    public void ApplyRotary_TurnsEachPairByItsAngle()
    {
        // One token, D = 6, RotaryDim = 4: pairs get 90 and 180 degrees at position 1; dims 4, 5 are copied.
        var x = Tensors.Of([1, 2, 3, 4, 5, 6], 1, 1, 1, 6);
        var cos = Tensors.Of([1, 1, 0, -1], 2, 2);
        var sin = Tensors.Of([0, 0, 1, 0], 2, 2);
        // Interleaved pairs (0,1), (2,3): (1,2) by 90 -> (-2,1); (3,4) by 180 -> (-3,-4).
        Assert.Equal([-2, 1, -3, -4, 5, 6], Reference.ApplyRotary(x, cos, sin, [1], interleaved: true));
        // Half-split pairs (0,2), (1,3): (1,3) by 90 -> (-3,1); (2,4) by 180 -> (-2,-4).
        Assert.Equal([-3, -2, 1, -4, 5, 6], Reference.ApplyRotary(x, cos, sin, [1], interleaved: false));
        // Position 0 has angle 0: nothing moves.
        Assert.Equal([1, 2, 3, 4, 5, 6], Reference.ApplyRotary(x, cos, sin, [0], interleaved: true));
        var e = Assert.ThrowsAny<ArgumentException>(() => Reference.ApplyRotary(x, cos, sin, [2], interleaved: true));
        Assert.Equal("startPositions", e.ParamName);
    }

    [Fact]
    public void FlashKvCache_WithAppend_EqualsFlashOnTheGatheredKeys()
    {
        // Cache lengths 3 and 0, two new tokens each: element b attends to cache[b, :, :len] followed by the new tokens.
        int hkv = 1, capacity = 6, d = 4;
        var keyCache = Tensors.Random(1, 1, 2, hkv, capacity, d);
        var valueCache = Tensors.Random(2, 1, 2, hkv, capacity, d);
        var newKey = Tensors.Random(3, 1, 2, hkv, 2, d);
        var newValue = Tensors.Random(4, 1, 2, hkv, 2, d);
        var query = Tensors.Random(5, 1, 2, 2, 2, d);
        int[] lengths = [3, 0];
        var options = new FlashOptions { Causal = true };
        var result = Reference.FlashKvCache(query, keyCache, valueCache, new KvCacheOptions { CacheSeqLens = lengths, NewKey = newKey, NewValue = newValue }, options);
        for (int b = 0; b < 2; b++)
        {
            int n = lengths[b] + 2;
            var keys = Gather(keyCache, newKey, b, lengths[b]);
            var values = Gather(valueCache, newValue, b, lengths[b]);
            var expected = Reference.Flash(query.Slice(0, b, 1), Tensors.Of(keys, 1, hkv, n, d), Tensors.Of(values, 1, hkv, n, d), options);
            for (int h = 0; h < 2; h++)
                for (int i = 0; i < 2; i++)
                {
                    Assert.Equal(expected.LogSumExpAt(0, h, i), result.LogSumExpAt(b, h, i));
                    for (int k = 0; k < d; k++) Assert.Equal(expected.OutputAt(0, h, i, k), result.OutputAt(b, h, i, k));
                }
        }
        // The reference leaves the caller's caches alone.
        Assert.Equal(Tensors.Random(1, 1, 2, hkv, capacity, d).ToDoubleArray(), keyCache.ToDoubleArray());
    }

    private static double[] Gather(TensorView cache, TensorView appended, int b, int length) =>
        [.. cache.Slice(0, b, 1).Slice(2, 0, length).ToDoubleArray(), .. appended.Slice(0, b, 1).ToDoubleArray()];
}
