// The CPU kernel copies the dense bias in strips of up to 512 keys per column group: check key ranges that need
// several strips, a strip cut short by what a group can see (causal, windows), and every bias type, stride and width.
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace NativeAttention.Tests;

[Trait("Backend", "Cpu")]
public sealed class CpuFlashOptionTestsLongBias
{
    private static Gen<AttentionCase> LongKeyCases { get; } =
        from nk in Gen.Elements(513, 577, 1000, 1090)
        from nq in Gen.Elements(1, 5, 33, 70, 130)
        from heads in Gen.Elements((1, 1), (2, 2), (4, 2), (3, 1))
        from batch in Gen.Elements(1, 2)
        from d in Gen.Elements(8, 16, 33)
        from type in Gen.Elements(ElementType.Float32, ElementType.Float32, ElementType.Float16)
        from layout in Gen.Elements(TensorLayout.HeadsFirst, TensorLayout.SequenceFirst)
        from mask in Gen.Elements(0, 1, 2)
        from window in Gen.Elements(16, 100, 600)
        from seed in Gen.Choose(0, int.MaxValue)
        select new AttentionCase
        {
            Batch = batch, QueryHeads = heads.Item1, KeyValueHeads = heads.Item2, QueryLength = nq, KeyLength = nk,
            HeadDim = d, ValueDim = d, ElementType = type, Layout = layout, Seed = seed,
            Flash = mask switch
            {
                0 => FlashOptions.Default,
                1 => FlashOptions.Default with { Causal = true },
                _ => FlashOptions.Default with { Causal = true, WindowLeft = window },
            },
        };

    public static TheoryData<int> VectorWidths() => CpuFlashOptionTests.VectorWidths();

    [Theory]
    [MemberData(nameof(VectorWidths))]
    public void DenseBias_OverSeveralStrips_MatchesReference(int bits)
    {
        using var context = new Cpu.CpuContext(new ContextOptions { Threads = 2 }) { ForcedVectorBits = bits };
        var arbitrary = Arb.From(
            from c in LongKeyCases
            from broadcast in Gen.Elements(OptionBroadcast.None, OptionBroadcast.Batch, OptionBroadcast.Heads, OptionBroadcast.Both)
            from type in Gen.Elements(ElementType.Float32, ElementType.Float32, ElementType.Float16, ElementType.BFloat16)
            from transposed in Gen.Elements(false, false, true)
            from alibi in Gen.Elements(0, 1)
            from seed in Gen.Choose(0, int.MaxValue)
            select (c, new FlashOptionSpec
            {
                DenseBias = true, DenseBiasBroadcast = broadcast, DenseBiasType = type, DenseBiasTransposed = transposed,
                AlibiRank = alibi, Amplitude = 3.0, Seed = seed,
            }));
        Properties.Check(arbitrary, x =>
        {
            var result = OptionVerifier.Verify(context, x.c, x.Item2);
            if (!result.Passed) Assert.Fail(result.ToString());
        }, count: 6);
    }
}
