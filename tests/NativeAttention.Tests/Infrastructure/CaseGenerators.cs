// FsCheck generators of valid attention problems. The distribution and the shrinker are CaseSampler's, the same
// ones the command-line tool's `fuzz` uses, so a failure found by either reproduces in the other.
using FsCheck;
using FsCheck.Fluent;

namespace NativeAttention.Tests;

/// <summary>Generators of valid <see cref="AttentionCase"/>s with shrinkers towards smaller problems.</summary>
public static class CaseGenerators
{
    /// <summary>Random flash cases (see <see cref="CaseSampler.Flash"/>): any dtype, layout, GQA grouping, Nq != Nk, causal or not.</summary>
    public static Gen<AttentionCase> Flash(bool allowWindows) =>
        Gen.Choose(0, int.MaxValue).Select(seed => CaseSampler.Flash(new Random(seed), allowWindows));

    /// <summary>An arbitrary of flash cases that shrinks with <see cref="CaseSampler.Shrink"/>.</summary>
    public static Arbitrary<AttentionCase> FlashArbitrary(bool allowWindows) =>
        Arb.From(Flash(allowWindows), c => CaseSampler.Shrink(c).Where(s => allowWindows || (s.Flash.WindowLeft < 0 && s.Flash.WindowRight < 0)));
}
