// Value parsers for options, with error messages that name the option and the value given.
using System.CommandLine.Parsing;
using System.Globalization;

namespace NativeAttention.Cli;

internal static class OptionParsers
{
    /// <summary>An integer of at least <paramref name="minimum"/>; otherwise a parse error naming <paramref name="name"/>.</summary>
    public static int Integer(ArgumentResult result, string name, int minimum)
    {
        string token = result.Tokens[^1].Value;
        if (!int.TryParse(token, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) || value < minimum)
            result.AddError($"{name} must be an integer of at least {minimum}, not '{token}'.");
        return value;
    }

    /// <summary>A positive finite number; otherwise a parse error naming <paramref name="name"/>.</summary>
    public static double Positive(ArgumentResult result, string name)
    {
        string token = result.Tokens[^1].Value;
        if (!double.TryParse(token, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !double.IsFinite(value) || value <= 0)
            result.AddError($"{name} must be a positive number, not '{token}'.");
        return value;
    }

    /// <summary>A comma-separated list (the option may also be repeated) of integers of at least <paramref name="minimum"/>.</summary>
    public static int[] IntegerList(ArgumentResult result, string name, int minimum)
    {
        var values = new List<int>();
        foreach (string item in Items(result))
        {
            if (!int.TryParse(item, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) || value < minimum)
            {
                result.AddError($"{name} takes integers of at least {minimum} separated by commas, not '{item}'.");
                return [];
            }
            values.Add(value);
        }
        return [.. values.Distinct()];
    }

    /// <summary>A comma-separated list of words, each mapped by <paramref name="map"/> (null for an unknown word).</summary>
    public static T[] WordList<T>(ArgumentResult result, string name, string allowed, Func<string, T?> map) where T : struct =>
        Map(result, name, allowed, word => map(word) is { } value ? (true, value) : (false, default));

    /// <summary>A comma-separated list of words, each mapped by <paramref name="map"/> to an object (null for an unknown word).</summary>
    public static T[] Words<T>(ArgumentResult result, string name, string allowed, Func<string, T?> map) where T : class =>
        Map(result, name, allowed, word => map(word) is { } value ? (true, value) : (false, null!));

    private static T[] Map<T>(ArgumentResult result, string name, string allowed, Func<string, (bool Known, T Value)> map)
    {
        var values = new List<T>();
        foreach (string item in Items(result))
        {
            var (known, value) = map(item.ToLowerInvariant());
            if (!known)
            {
                result.AddError($"{name} takes {allowed} separated by commas, not '{item}'.");
                return [];
            }
            values.Add(value);
        }
        return [.. values.Distinct()];
    }

    private static IEnumerable<string> Items(ArgumentResult result) =>
        result.Tokens.SelectMany(t => t.Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));
}
