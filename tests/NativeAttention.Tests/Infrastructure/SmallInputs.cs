// Every family's random cases at small magnitudes, checked against the reference on one backend: the property each
// family's test class binds to every backend (CONTRIBUTING.md's checklist).
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace NativeAttention.Tests;

/// <summary>Random cases with small keys and values and queries of the inverse magnitude (<see cref="CaseSampler.WithSmallInputs"/>).</summary>
public static class SmallInputs
{
    /// <summary>
    /// A family's random cases at small magnitudes (<see cref="CaseSampler.WithSmallInputs"/>: keys and values at 0.01
    /// or 0.001, queries at the inverse), three in four stored as binary16, where such values are 6 in 10^3 and 6 in
    /// 100 subnormal; cases the family leaves unchanged (see there) are not drawn. Shrinks as the cases do.
    /// </summary>
    public static Arbitrary<IAttentionCase> Arbitrary(CaseFamily family) =>
        Arb.From(
            from c in CaseGenerators.Family(family)
            from amplitude in Gen.Elements(0.01, 0.001)
            from half in Gen.Elements(true, true, true, false)
            let small = CaseSampler.WithSmallInputs(c, amplitude, half ? ElementType.Float16 : null)
            where !ReferenceEquals(small, c)
            select small,
            c => c.Shrink());

    /// <summary>Runs <paramref name="count"/> of <see cref="Arbitrary"/>'s cases on <paramref name="context"/> and holds each to the reference.</summary>
    public static void Check(AttentionContext context, CaseFamily family, int count)
    {
        Properties.Check(Arbitrary(family), c =>
        {
            var result = CaseVerifier.Verify(context, c);
            Assert.True(result.Passed, result.ToString());
        }, count);
    }
}
