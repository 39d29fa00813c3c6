// The text form of an AttentionCase: one line that names every field, so a failing fuzz case, a benchmark row
// and a test can be replayed from a log, a command line or a JSON file.
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

namespace NativeAttention;

public sealed partial record AttentionCase
{
    /// <summary>
    /// The grammar of <see cref="Parse"/>, for help texts: space-separated tokens in any order, each optional
    /// (defaults: flash f32 B1 H1/1 N1x1 D64/64 bhnd seed=1).
    /// </summary>
    public const string SpecGrammar =
        "family (flash|neighborhood|blocksparse|linear), dtype (f32|f16|bf16), B<batch>, H<q>/<kv> or H<h>, " +
        "N<q>x<k> or N<n>, D<qk>/<v> or D<d>, layout (bhnd|bnhd), kvcache, causal, window(<left>,<right>), scale=<x>, " +
        "softcap=<c>, sigmoid or sigmoid(<bias>), amp=<input scale>, seed=<int>";

    /// <summary>
    /// The canonical text form, e.g. <c>flash f16 B1 H8/2 N128x512 D64/64 bnhd causal window(32,-1) seed=7</c>;
    /// <see cref="Parse"/> reads it back into an equal case. Fields at their defaults are left out, except the
    /// family, dtype, sizes and seed, which are always written.
    /// </summary>
    /// <exception cref="NotSupportedException">
    /// The case carries tensor-valued flash options (ALiBi slopes, bias, low-rank bias, sinks), which have no text form.
    /// </exception>
    public string ToSpec()
    {
        var o = Flash;
        string? tensorOption = o.AlibiSlopes is not null ? nameof(o.AlibiSlopes)
            : o.Bias is not null ? nameof(o.Bias)
            : o.LowRankBias is not null ? nameof(o.LowRankBias)
            : o.Sinks is not null ? nameof(o.Sinks)
            : null;
        if (tensorOption is not null)
            throw new NotSupportedException($"FlashOptions.{tensorOption} is a tensor and has no text form; only cases without tensor-valued options can be written as a spec.");

        var spec = new StringBuilder();
        spec.Append(CultureInfo.InvariantCulture,
            $"{FamilyName(Family)} {TypeName(ElementType)} B{Batch} H{QueryHeads}/{KeyValueHeads} N{QueryLength}x{KeyLength} D{HeadDim}/{ValueDim}");
        if (Layout == TensorLayout.SequenceFirst) spec.Append(" bnhd");
        if (KvCache) spec.Append(" kvcache");
        if (o.Causal) spec.Append(" causal");
        if (o.WindowLeft >= 0 || o.WindowRight >= 0) spec.Append(CultureInfo.InvariantCulture, $" window({o.WindowLeft},{o.WindowRight})");
        if (o.Scale is float scale) spec.Append(" scale=").Append(scale.ToString("R", CultureInfo.InvariantCulture));
        if (o.Softcap != 0) spec.Append(" softcap=").Append(o.Softcap.ToString("R", CultureInfo.InvariantCulture));
        if (o.ScoreFunction == ScoreFunction.Sigmoid)
            spec.Append(o.SigmoidBias == 0 ? " sigmoid" : $" sigmoid({o.SigmoidBias.ToString("R", CultureInfo.InvariantCulture)})");
        if (InputScale != 1.0) spec.Append(" amp=").Append(InputScale.ToString("R", CultureInfo.InvariantCulture));
        spec.Append(CultureInfo.InvariantCulture, $" seed={Seed}");
        return spec.ToString();
    }

    /// <summary>Reads the text form written by <see cref="ToSpec"/> (or <see cref="ToString"/>); see <see cref="SpecGrammar"/>.</summary>
    /// <exception cref="FormatException">A token is not understood, or the sizes do not form a valid problem; the message names the token.</exception>
    public static AttentionCase Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return TryParse(spec, out var result, out string? error) ? result : throw new FormatException(error);
    }

    /// <summary>Like <see cref="Parse"/>, but returns false with a one-line reason instead of throwing.</summary>
    public static bool TryParse(string? spec, [NotNullWhen(true)] out AttentionCase? result, [NotNullWhen(false)] out string? error)
    {
        result = null;
        if (string.IsNullOrWhiteSpace(spec))
        {
            error = "The case spec is empty.";
            return false;
        }
        var c = new AttentionCase();
        var o = new FlashOptions();
        foreach (string token in spec.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries))
        {
            if (!TryApply(token.ToLowerInvariant(), ref c, ref o))
            {
                error = $"Unknown token '{token}' in case spec \"{spec.Trim()}\"; expected {SpecGrammar}.";
                return false;
            }
        }
        c = c with { Flash = o };
        if (c.Problem() is { } problem)
        {
            error = $"Case spec \"{spec.Trim()}\" is not a valid problem: {problem}.";
            return false;
        }
        result = c;
        error = null;
        return true;
    }

    /// <summary>Why the sizes do not form a valid problem, or null when they do.</summary>
    private string? Problem()
    {
        if (Batch < 1 || QueryHeads < 1 || KeyValueHeads < 1 || QueryLength < 1 || KeyLength < 1 || HeadDim < 1 || ValueDim < 1)
            return "every size must be at least 1";
        if (QueryHeads % KeyValueHeads != 0)
            return $"query heads ({QueryHeads}) must be a multiple of key/value heads ({KeyValueHeads})";
        if (Flash.WindowLeft < -1 || Flash.WindowRight < -1)
            return "window bounds must be -1 (unbounded) or non-negative";
        if (KvCache && Family != AttentionFamily.Flash)
            return "kvcache applies to flash cases only";
        if (!double.IsFinite(InputScale) || InputScale <= 0)
            return "amp must be a positive number";
        return null;
    }

    /// <summary>The family's name in specs and reports: flash, neighborhood, blocksparse, linear.</summary>
    public static string FamilyName(AttentionFamily family) => family.ToString().ToLowerInvariant();

    private static bool TryApply(string token, ref AttentionCase c, ref FlashOptions o)
    {
        switch (token)
        {
            case "flash": c = c with { Family = AttentionFamily.Flash }; return true;
            case "neighborhood": c = c with { Family = AttentionFamily.Neighborhood }; return true;
            case "blocksparse": c = c with { Family = AttentionFamily.BlockSparse }; return true;
            case "linear": c = c with { Family = AttentionFamily.Linear }; return true;
            case "f32": c = c with { ElementType = ElementType.Float32 }; return true;
            case "f16": c = c with { ElementType = ElementType.Float16 }; return true;
            case "bf16": c = c with { ElementType = ElementType.BFloat16 }; return true;
            case "bhnd": c = c with { Layout = TensorLayout.HeadsFirst }; return true;
            case "bnhd": c = c with { Layout = TensorLayout.SequenceFirst }; return true;
            case "causal": o = o with { Causal = true }; return true;
            case "kvcache": c = c with { KvCache = true }; return true;
            case "sigmoid": o = o with { ScoreFunction = ScoreFunction.Sigmoid }; return true;
        }
        if (Value(token, "seed=") is { } seed && int.TryParse(seed, NumberStyles.Integer, CultureInfo.InvariantCulture, out int s))
        {
            c = c with { Seed = s };
            return true;
        }
        if (Value(token, "scale=") is { } scaleText && TryFloat(scaleText, out float scale))
        {
            o = o with { Scale = scale };
            return true;
        }
        if (Value(token, "softcap=") is { } capText && TryFloat(capText, out float cap) && cap >= 0)
        {
            o = o with { Softcap = cap };
            return true;
        }
        if (Value(token, "amp=") is { } ampText && double.TryParse(ampText, NumberStyles.Float, CultureInfo.InvariantCulture, out double amp))
        {
            c = c with { InputScale = amp };
            return true;
        }
        if (Bracketed(token, "sigmoid(") is { } biasText && TryFloat(biasText, out float bias))
        {
            o = o with { ScoreFunction = ScoreFunction.Sigmoid, SigmoidBias = bias };
            return true;
        }
        if (Bracketed(token, "window(") is { } window && Pair(window, ',') is var (left, right))
        {
            o = o with { WindowLeft = left, WindowRight = right };
            return true;
        }
        if (token.Length < 2) return false;
        string rest = token[1..];
        switch (token[0])
        {
            case 'b' when Integer(rest) is int batch:
                c = c with { Batch = batch };
                return true;
            case 'h' when Integer(rest) is int heads:
                c = c with { QueryHeads = heads, KeyValueHeads = heads };
                return true;
            case 'h' when Pair(rest, '/') is var (q, kv):
                c = c with { QueryHeads = q, KeyValueHeads = kv };
                return true;
            case 'n' when Integer(rest) is int length:
                c = c with { QueryLength = length, KeyLength = length };
                return true;
            case 'n' when Pair(rest, 'x') is var (nq, nk):
                c = c with { QueryLength = nq, KeyLength = nk };
                return true;
            case 'd' when Integer(rest) is int dim:
                c = c with { HeadDim = dim, ValueDim = dim };
                return true;
            case 'd' when Pair(rest, '/') is var (dqk, dv):
                c = c with { HeadDim = dqk, ValueDim = dv };
                return true;
            default:
                return false;
        }
    }

    private static string? Value(string token, string prefix) =>
        token.StartsWith(prefix, StringComparison.Ordinal) ? token[prefix.Length..] : null;

    private static string? Bracketed(string token, string prefix) =>
        token.StartsWith(prefix, StringComparison.Ordinal) && token.EndsWith(')') ? token[prefix.Length..^1] : null;

    private static bool TryFloat(string text, out float value) =>
        float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value) && float.IsFinite(value);

    private static int? Integer(string text) =>
        int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int value) ? value : null;

    private static (int, int)? Pair(string text, char separator)
    {
        int at = text.IndexOf(separator);
        if (at <= 0) return null;
        return Integer(text[..at]) is int first && Integer(text[(at + 1)..]) is int second ? (first, second) : null;
    }
}
