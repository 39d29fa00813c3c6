// How a family's cases are written down: its name in specs, its grammar, its parser, whether it has kernels yet and
// the cases `verify` checks by default. Each case type declares one; CaseFamilies lists them.
using System.Diagnostics.CodeAnalysis;

namespace NativeAttention;

/// <summary>
/// Reads the tokens of one spec (the family's name already removed, tokens as written) into a case, or says why not.
/// </summary>
/// <param name="tokens">The spec's tokens, in order.</param>
/// <param name="spec">The whole spec, for messages.</param>
/// <param name="result">The case.</param>
/// <param name="error">A one-line reason naming the token at fault.</param>
public delegate bool CaseSpecParser(IReadOnlyList<string> tokens, string spec, [NotNullWhen(true)] out IAttentionCase? result, [NotNullWhen(false)] out string? error);

/// <summary>One registered family of cases (see <see cref="CaseFamilies"/>).</summary>
/// <param name="Name">The family's token in specs and its name in reports, e.g. <c>flash</c>, <c>neighborhood</c>.</param>
/// <param name="Summary">One line for help texts.</param>
/// <param name="Grammar">The tokens its specs take, for help texts and parse errors.</param>
/// <param name="Parser">Reads a spec of this family.</param>
/// <param name="HasKernels">
/// False while the family has only its float64 reference: its cases build tensors, run references and count FLOPs, but
/// <see cref="IAttentionCase.Invoke"/> throws the context's <see cref="NotSupportedException"/>; benchmarks refuse them.
/// </param>
/// <param name="VerifySpecs">The cases <c>verify</c> checks by default, as specs of this family.</param>
/// <param name="KernelBackends">
/// While <paramref name="HasKernels"/> is false, the backends that already run the family (e.g. the CPU alone); null
/// when none does.
/// </param>
public sealed record CaseFamily(string Name, string Summary, string Grammar, CaseSpecParser Parser, bool HasKernels, IReadOnlyList<string> VerifySpecs,
    IReadOnlyList<Backend>? KernelBackends = null)
{
    /// <summary>True when <paramref name="backend"/> runs this family's cases (every backend once <see cref="HasKernels"/>).</summary>
    public bool RunsOn(Backend backend) => HasKernels || (KernelBackends?.Contains(backend) ?? false);

    /// <summary>
    /// Draws a random valid case of this family from a generator (same generator state, same case), for <c>fuzz</c>
    /// and the tests' generators; null when the family has no sampler yet.
    /// </summary>
    public Func<Random, IAttentionCase>? Sample { get; init; }

    /// <summary>The cases <see cref="VerifySpecs"/> lists, parsed.</summary>
    /// <exception cref="FormatException">A listed spec does not parse (a bug in the family's case type).</exception>
    public IEnumerable<IAttentionCase> VerifyCases() => VerifySpecs.Select(AttentionCaseSpec.Parse);
}
