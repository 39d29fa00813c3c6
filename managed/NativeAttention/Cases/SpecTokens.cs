// The pieces of the case-spec grammar every family shares: dtype words, sizes (B4, H8/2, N128x512, D64/32),
// key=value numbers, bracketed lists, and the canonical way numbers are written back.
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

namespace NativeAttention;

/// <summary>Readers and writers of spec tokens shared by every family's parser (which lower-case tokens first).</summary>
internal static class SpecTokens
{
    /// <summary>Splits a spec into its tokens (space or tab separated, as written; parsers lower-case them).</summary>
    public static string[] Split(string spec) => spec.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries);

    /// <summary>f32, f16 or bf16.</summary>
    public static ElementType? Type(string token) => token switch
    {
        "f32" => ElementType.Float32,
        "f16" => ElementType.Float16,
        "bf16" => ElementType.BFloat16,
        _ => null,
    };

    /// <summary>The value after <paramref name="prefix"/> (e.g. <c>seed=</c>), or null.</summary>
    public static string? Value(string token, string prefix) =>
        token.StartsWith(prefix, StringComparison.Ordinal) ? token[prefix.Length..] : null;

    /// <summary>The text inside <c>prefix(...)</c>, or null.</summary>
    public static string? Bracketed(string token, string prefix) =>
        token.StartsWith(prefix, StringComparison.Ordinal) && token.EndsWith(')') ? token[prefix.Length..^1] : null;

    public static bool TryFloat(string? text, out float value)
    {
        value = 0;
        return text is not null && float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value) && float.IsFinite(value);
    }

    public static bool TryDouble(string? text, out double value)
    {
        value = 0;
        return text is not null && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value) && double.IsFinite(value);
    }

    /// <summary>Why <c>amp=</c> or <c>qamp=</c> is out of range (each must be a positive finite number), or null.</summary>
    public static string? ScaleProblem(double inputScale, double? queryScale) =>
        !double.IsFinite(inputScale) || inputScale <= 0 ? "amp must be a positive number"
        : queryScale is double q && (!double.IsFinite(q) || q <= 0) ? "qamp must be a positive number"
        : null;

    public static int? Integer(string? text) =>
        text is not null && int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int value) ? value : null;

    /// <summary><c>a{separator}b</c> as two integers, or null.</summary>
    public static (int, int)? Pair(string text, char separator)
    {
        int at = text.IndexOf(separator);
        if (at <= 0) return null;
        return Integer(text[..at]) is int first && Integer(text[(at + 1)..]) is int second ? (first, second) : null;
    }

    /// <summary><c>a{separator}b{separator}...</c> as integers (at least one), or null.</summary>
    public static int[]? List(string? text, char separator)
    {
        if (string.IsNullOrEmpty(text)) return null;
        var parts = text.Split(separator);
        var values = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (Integer(parts[i]) is not int v) return null;
            values[i] = v;
        }
        return values;
    }

    /// <summary>A size token <c>{letter}n</c> or <c>{letter}a{separator}b</c> (e.g. <c>h8</c>, <c>h8/2</c>): the pair, equal when one number is given.</summary>
    public static (int First, int Second)? Size(string token, char letter, char separator)
    {
        if (token.Length < 2 || token[0] != letter) return null;
        string rest = token[1..];
        if (Integer(rest) is int single) return (single, single);
        return Pair(rest, separator);
    }

    /// <summary>A number as specs write it: shortest round-trip form, invariant culture.</summary>
    public static string Number(float value) => value.ToString("R", CultureInfo.InvariantCulture);

    /// <inheritdoc cref="Number(float)"/>
    public static string Number(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>
    /// Appends the tokens every spec ends with (<c>amp=</c> when not 1, <c>qamp=</c> when the queries have their own
    /// magnitude, then <c>seed=</c>) and returns the spec.
    /// </summary>
    public static string Finish(StringBuilder spec, double inputScale, int seed, double? queryScale = null)
    {
        if (inputScale != 1.0) spec.Append(" amp=").Append(Number(inputScale));
        if (queryScale is double q) spec.Append(" qamp=").Append(Number(q));
        return spec.Append(CultureInfo.InvariantCulture, $" seed={seed}").ToString();
    }

    /// <summary>Integers joined by <paramref name="separator"/>, e.g. <c>8x8</c>.</summary>
    public static string Join(IEnumerable<int> values, char separator) =>
        string.Join(separator, values.Select(v => v.ToString(CultureInfo.InvariantCulture)));

    /// <summary>
    /// The body of a family's parser: applies each lower-cased token to the case built so far (<paramref name="apply"/>
    /// returns null for a token it does not understand), lets <paramref name="finish"/> settle what depends on several
    /// tokens, and rejects a case <paramref name="problem"/> finds invalid; messages quote the spec and the token.
    /// </summary>
    public static bool Read<T>(IReadOnlyList<string> tokens, string spec, string grammar, T start, Func<T, string, T?> apply, Func<T, string?> problem,
        [NotNullWhen(true)] out IAttentionCase? result, [NotNullWhen(false)] out string? error, Func<T, T>? finish = null) where T : class, IAttentionCase
    {
        result = null;
        var c = start;
        foreach (string token in tokens)
        {
            if (apply(c, token.ToLowerInvariant()) is not { } next)
            {
                error = Unknown(token, spec, grammar);
                return false;
            }
            c = next;
        }
        if (finish is not null) c = finish(c);
        if (problem(c) is { } reason)
        {
            error = $"Case spec \"{spec.Trim()}\" is not a valid problem: {reason}.";
            return false;
        }
        result = c;
        error = null;
        return true;
    }

    /// <summary>The message for a token no rule of <paramref name="grammar"/> understood.</summary>
    public static string Unknown(string token, string spec, string grammar) =>
        $"Unknown token '{token}' in case spec \"{spec.Trim()}\"; expected {grammar}.";
}
