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
}
