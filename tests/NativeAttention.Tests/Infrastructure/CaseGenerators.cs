// FsCheck generators of valid attention problems. The distribution and the shrinker are CaseSampler's (and each
// family's registered sampler), the same ones the command-line tool's `fuzz` uses, so a failure found by either
// reproduces in the other.
using FsCheck;
using FsCheck.Fluent;

namespace NativeAttention.Tests;

/// <summary>Generators of valid cases with shrinkers towards smaller problems.</summary>
public static class CaseGenerators
{
    /// <summary>Random flash cases (see <see cref="CaseSampler.Flash"/>): any dtype, layout, GQA grouping, Nq != Nk, causal or not.</summary>
    public static Gen<AttentionCase> Flash(bool allowWindows) =>
        Gen.Choose(0, int.MaxValue).Select(seed => CaseSampler.Flash(new Random(seed), allowWindows));

    /// <summary>An arbitrary of flash cases that shrinks with <see cref="CaseSampler.Shrink"/>.</summary>
    public static Arbitrary<AttentionCase> FlashArbitrary(bool allowWindows) =>
        Arb.From(Flash(allowWindows), c => CaseSampler.Shrink(c).Where(s => allowWindows || (s.Flash.WindowLeft < 0 && s.Flash.WindowRight < 0)));

    /// <summary>Random cases of a registered family, drawn by its <see cref="CaseFamily.Sample"/> (for flash: option tensors and cache layouts included).</summary>
    public static Gen<IAttentionCase> Family(CaseFamily family)
    {
        var sample = family.Sample ?? throw new ArgumentException($"The {family.Name} family has no sampler.", nameof(family));
        return Gen.Choose(0, int.MaxValue).Select(seed => sample(new Random(seed)));
    }

    /// <summary>An arbitrary of a family's cases that shrinks with each case's <see cref="IAttentionCase.Shrink"/>.</summary>
    public static Arbitrary<IAttentionCase> FamilyArbitrary(CaseFamily family) => Arb.From(Family(family), c => c.Shrink());
}
