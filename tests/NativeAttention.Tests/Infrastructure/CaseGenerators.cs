// FsCheck generators of valid attention problems, weighted towards the tails kernels get wrong.
using FsCheck;
using FsCheck.Fluent;

namespace NativeAttention.Tests;

/// <summary>Generators of valid <see cref="AttentionCase"/>s with shrinkers towards smaller problems.</summary>
public static class CaseGenerators
{
    private static readonly ElementType[] Types = [ElementType.Float32, ElementType.Float16, ElementType.BFloat16];

    /// <summary>Sequence lengths: mostly small, with tails around common tile sizes and N = 1.</summary>
    public static Gen<int> Length { get; } = Gen.Frequency(
        (3, Gen.Choose(1, 40)),
        (2, Gen.Elements(1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129)),
        (1, Gen.Choose(41, 200)));

    /// <summary>Head dimensions 1..256, biased to the common sizes and odd ones.</summary>
    public static Gen<int> HeadDim { get; } = Gen.Frequency(
        (3, Gen.Elements(16, 32, 64, 128)),
        (2, Gen.Choose(1, 80)),
        (1, Gen.Elements(96, 127, 160, 255, 256)));

    /// <summary>Random flash cases: any dtype, layout, GQA grouping, Nq != Nk, causal or not.</summary>
    public static Gen<AttentionCase> Flash(bool allowWindows) =>
        from type in Gen.Elements(Types)
        from layout in Gen.Elements(TensorLayout.HeadsFirst, TensorLayout.SequenceFirst)
        from batch in Gen.Choose(1, 2)
        from kvHeads in Gen.Choose(1, 3)
        from groupSize in Gen.Elements(1, 1, 2, 3)
        from nq in Length
        from nk in Gen.Frequency((2, Gen.Constant(nq)), (3, Length))
        from dqk in HeadDim
        from dv in Gen.Frequency((2, Gen.Constant(dqk)), (1, HeadDim))
        from causal in Gen.Elements(false, true)
        from window in allowWindows
            ? Gen.Frequency((3, Gen.Constant((-1, -1))), (1, Gen.Choose(-1, 40).Zip(Gen.Choose(-1, 40))))
            : Gen.Constant((-1, -1))
        from seed in Gen.Choose(0, int.MaxValue)
        select new AttentionCase
        {
            Family = AttentionFamily.Flash, ElementType = type, Layout = layout, Batch = batch,
            QueryHeads = kvHeads * groupSize, KeyValueHeads = kvHeads, QueryLength = nq, KeyLength = nk,
            HeadDim = dqk, ValueDim = dv, Seed = seed,
            Flash = new FlashOptions { Causal = causal, WindowLeft = window.Item1, WindowRight = window.Item2 },
        };

    /// <summary>Smaller variants of a case, so a failure reports a minimal problem.</summary>
    public static IEnumerable<AttentionCase> Shrink(AttentionCase c)
    {
        if (c.Batch > 1) yield return c with { Batch = 1 };
        if (c.QueryHeads > c.KeyValueHeads) yield return c with { QueryHeads = c.KeyValueHeads };
        if (c.KeyValueHeads > 1) yield return c with { KeyValueHeads = 1, QueryHeads = c.QueryHeads / c.KeyValueHeads };
        if (c.QueryLength > 1) yield return c with { QueryLength = c.QueryLength / 2 };
        if (c.KeyLength > 1) yield return c with { KeyLength = c.KeyLength / 2 };
        if (c.HeadDim > 1) yield return c with { HeadDim = c.HeadDim / 2 };
        if (c.ValueDim > 1) yield return c with { ValueDim = c.ValueDim / 2 };
        if (c.Layout != TensorLayout.HeadsFirst) yield return c with { Layout = TensorLayout.HeadsFirst };
        if (c.ElementType != ElementType.Float32) yield return c with { ElementType = ElementType.Float32 };
    }

    /// <summary>An arbitrary of flash cases with shrinking.</summary>
    public static Arbitrary<AttentionCase> FlashArbitrary(bool allowWindows) => Arb.From(Flash(allowWindows), Shrink);
}
