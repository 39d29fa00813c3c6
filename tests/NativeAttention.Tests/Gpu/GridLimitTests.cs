// More (batch, head) pairs than CUDA's grid y holds (65535): the kernels take them on grid x, so flash, neighborhood
// attention and KV-cache decoding (append, split attention, combine) stay exact there. Tiny heads keep the calls cheap.
using Xunit;

namespace NativeAttention.Tests;

/// <summary>Calls with B x H above 65535, against the float64 reference, bound to each GPU backend below.</summary>
public abstract class GridLimitTests
{
    /// <summary>The backend under test.</summary>
    protected abstract Backend Backend { get; }

    [SkippableFact]
    public void Flash_MoreThan65535BatchHeads_MatchesReference()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        // B x Hq = 35000 x 2 = 70000 (GQA pairs share a kv head); Nq != Nk aligns the causal mask bottom-right.
        var result = CaseVerifier.Verify(context, new AttentionCase
        {
            ElementType = ElementType.Float16, Batch = 35000, QueryHeads = 2, KeyValueHeads = 1, QueryLength = 2, KeyLength = 3,
            HeadDim = 2, ValueDim = 3, Seed = 70000, Flash = new FlashOptions { Causal = true },
        });
        if (!result.Passed) Assert.Fail(result.ToString());
    }

    [SkippableFact]
    public void Neighborhood_MoreThan65535BatchHeads_MatchesReference()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        // B x Hq = 35000 x 2 = 70000 on a 2-D grid with additional keys (the tiled kernel, not the dense shortcut).
        var result = CaseVerifier.Verify(context, AttentionCaseSpec.Parse(
            "neighborhood f16 B35000 H2/1 grid=3x2 k=2x1 D2/3 extra=1 seed=70000"));
        if (!result.Passed) Assert.Fail(result.ToString());
    }

    [SkippableFact]
    public void KvCache_MoreThan65535BatchKvHeads_AppendsAndMatchesReference()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        // B x Hkv = 2 x 35000 = 70000 kv heads, one new token each (the append kernel), two splits (the combine kernel).
        var c = new KvCase(ElementType.Float32, [3, 5], 35000, 1, 1, 1, 4, 4, 0, RotaryMode.None, 0, true, -1, -1, 0, false, 0, 2, 65536);
        var data = KvData.Create(c, paged: false);
        var newValues = data.Cache.NewValue!.Value.ToDoubleArray();
        data.Run(context);
        var check = data.Check(c);
        Assert.True(check.Passed, $"{c}: {check}");
        foreach (int h in new[] { 0, 34999 })
            for (int b = 0; b < 2; b++)
            {
                long row = (long)b * c.KeyValueHeads + h;
                Assert.Equal(newValues.AsSpan((int)(row * 4), 4).ToArray(), data.CacheRow(data.ValueCache, b, h, c.CacheLengths[b]));
            }
    }
}

[Trait("Backend", "OpenCl")]
public sealed class OpenClGridLimitTests : GridLimitTests
{
    protected override Backend Backend => Backend.OpenCl;
}

[Trait("Backend", "Cuda")]
public sealed class CudaGridLimitTests : GridLimitTests
{
    protected override Backend Backend => Backend.Cuda;
}
