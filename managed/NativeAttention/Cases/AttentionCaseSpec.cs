// The text form of any case: a family name followed by that family's tokens, so a failing fuzz case, a benchmark
// row, a verify line or a saved case file can be replayed from one line.
using System.Diagnostics.CodeAnalysis;

namespace NativeAttention;

/// <summary>Reads case specs of every registered family (<see cref="CaseFamilies"/>).</summary>
public static class AttentionCaseSpec
{
    /// <summary>
    /// The grammar, for help texts: a family name (default flash) and that family's space-separated tokens in any order.
    /// </summary>
    public static string Grammar =>
        $"a family ({CaseFamilies.Names()}; default flash) and its tokens: " +
        string.Join("; ", CaseFamilies.All.Select(f => $"{f.Name}: {f.Grammar}"));

    /// <summary>Reads a spec written by <see cref="IAttentionCase.ToSpec"/> (or a flash case's <see cref="AttentionCase.ToString"/>).</summary>
    /// <exception cref="FormatException">A token is not understood, or the sizes do not form a valid problem; the message names the token.</exception>
    public static IAttentionCase Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return TryParse(spec, out var result, out string? error) ? result : throw new FormatException(error);
    }

    /// <summary>Like <see cref="Parse"/>, but returns false with a one-line reason instead of throwing.</summary>
    public static bool TryParse(string? spec, [NotNullWhen(true)] out IAttentionCase? result, [NotNullWhen(false)] out string? error)
    {
        result = null;
        if (string.IsNullOrWhiteSpace(spec))
        {
            error = "The case spec is empty.";
            return false;
        }
        var tokens = SpecTokens.Split(spec);
        CaseFamily? family = null;
        int at = -1;
        for (int i = 0; i < tokens.Length && family is null; i++)
            if (CaseFamilies.Find(tokens[i]) is { } named) (family, at) = (named, i);
        family ??= AttentionCase.Registration;
        var rest = at < 0 ? tokens : [.. tokens[..at], .. tokens[(at + 1)..]];
        return family.Parser(rest, spec, out result, out error);
    }
}
