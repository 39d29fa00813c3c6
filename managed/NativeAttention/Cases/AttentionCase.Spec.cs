// The text form of the flash family: one line that names every field of an AttentionCase (and of the KvCacheCase and
// SplitKeysCase built on one), so a failing fuzz case, a benchmark row and a test can be replayed from a log, a
// command line or a JSON file.
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
    public const string SpecGrammar = "family (flash|neighborhood|blocksparse|linear), " + FamilyGrammar;

    /// <summary>The flash family's tokens, as <see cref="AttentionCaseSpec.Grammar"/> lists them.</summary>
    private const string FamilyGrammar =
        "dtype (f32|f16|bf16), B<batch>, H<q>/<kv> or H<h>, " +
        "N<q>x<k> or N<n>, D<qk>/<v> or D<d>, layout (bhnd|bnhd), kvcache, causal, window(<left>,<right>), scale=<x>, " +
        "softcap=<c>, sigmoid or sigmoid(<bias>), amp=<input scale>, qamp=<query scale>, seed=<int>; option tensors: alibi or alibi(bh), " +
        "bias or bias(<dtype>,<none|batch|heads|both>[,kmajor]), lowrank<r> or lowrank<r>(<dtype>,u=<broadcast>,w=<broadcast>), " +
        "sinks, optamp=<x>, optseed=<int>; with kvcache: cache=<capacity>, page=<tokens>, new=<tokens>, ragged; " +
        "split=<parts> (flash over key ranges, then MergeStates)";

    /// <summary>The built-in flash cases of <c>verify</c>: a spread over what kernels get wrong (see the CLI's documentation).</summary>
    private static IReadOnlyList<string> VerifySpecs =>
    [
        "flash f32 B1 H1/1 N1x1 D64/64 seed=1",
        "flash f32 B1 H2/2 N17x17 D31/31 seed=2",
        "flash f32 B2 H4/4 N64x64 D64/64 causal seed=3",
        "flash f32 B1 H8/2 N33x129 D64/64 causal seed=4",
        "flash f32 B1 H4/1 N1x257 D128/128 seed=5",
        "flash f32 B1 H2/2 N130x70 D64/64 causal seed=6",
        "flash f32 B1 H2/2 N200x200 D32/32 window(16,0) seed=7",
        "flash f32 B1 H2/1 N100x100 D16/48 window(8,8) seed=8",
        "flash f32 B1 H1/1 N129x129 D1/1 causal seed=9",
        "flash f32 B1 H1/1 N65x127 D256/256 seed=10",
        "flash f32 B2 H4/2 N48x80 D64/96 bnhd causal seed=11",
        "flash f32 B1 H2/2 N96x96 D64/64 amp=30 seed=12",
        "flash f32 B1 H2/2 N64x64 D64/64 scale=0.5 amp=4 seed=13",
        "flash f32 B1 H2/2 N64x64 D64/64 softcap=30 amp=4 seed=14",
        "flash f32 B1 H2/2 N64x64 D64/64 causal sigmoid(-4.1588831) seed=15",
        "flash f16 B1 H4/2 N65x65 D64/64 causal seed=16",
        "flash f16 B2 H4/2 N48x80 D64/96 bnhd seed=17",
        "flash f16 B1 H2/2 N1x200 D128/128 seed=18",
        "flash bf16 B1 H4/2 N65x97 D128/128 seed=19",
        "flash bf16 B1 H3/1 N31x31 D80/80 bnhd causal seed=20",
        "flash f32 B1 H2/2 N1024x1024 D64/64 causal seed=21",
        // Option tensors, generated from their own seed and placed on the device with the inputs.
        "flash f32 B2 H4/2 N40x56 D32/32 causal alibi(bh) sinks optseed=3 seed=26",
        "flash f16 B1 H2/2 N33x47 D64/64 softcap=20 bias(f16,heads) lowrank4(w=batch) optseed=4 seed=27",
        "flash bf16 B2 H2/1 N24x24 D16/16 bnhd bias(f32,batch,kmajor) optamp=3 optseed=5 seed=28",
        // Decoding through FlashKvCache: full caches, then a larger capacity, ragged lengths, paging and an append.
        "flash f16 B2 H8/2 N1x300 D128/128 kvcache seed=22",
        "flash bf16 B1 H4/4 N3x200 D64/64 kvcache causal seed=23",
        "flash f32 B1 H4/1 N1x1000 D64/64 kvcache softcap=20 seed=24",
        "flash f32 B1 H2/2 N80x120 D64/48 bnhd kvcache causal sigmoid seed=25",
        "flash f16 B3 H8/2 N1x150 D64/64 kvcache cache=200 ragged alibi sinks seed=29",
        "flash f32 B2 H4/2 N4x96 D32/32 kvcache page=16 new=4 ragged causal seed=30",
        // Split-KV: flash over 2 or 3 key ranges, then MergeStates, against the unsplit reference.
        "flash f32 B1 H2/2 N17x33 D31/31 split=2 seed=31",
        "flash f32 B2 H8/2 N64x200 D64/64 bnhd split=3 seed=32",
        "flash f32 B1 H4/1 N1x257 D128/128 split=2 seed=33",
        "flash f16 B1 H4/2 N33x129 D64/64 split=2 seed=34",
        "flash bf16 B1 H2/2 N16x96 D80/80 split=3 seed=35",
        // Small keys and values (binary16: 6 in 10^3 and 6 in 100 subnormal) with queries of the inverse magnitude.
        "flash f16 B1 H4/2 N65x97 D64/64 causal amp=0.001 qamp=1000 seed=36",
        "flash f16 B2 H8/2 N1x300 D128/128 kvcache amp=0.01 qamp=100 seed=37",
    ];

    /// <summary>
    /// The canonical text form, e.g. <c>flash f16 B1 H8/2 N128x512 D64/64 bnhd causal window(32,-1) seed=7</c>;
    /// <see cref="Parse"/> reads it back into an equal case. Fields at their defaults are left out, except the
    /// family, dtype, sizes and seed, which are always written.
    /// </summary>
    /// <exception cref="NotSupportedException">
    /// <see cref="Flash"/> carries tensor-valued options (ALiBi slopes, bias, low-rank bias, sinks), which have no text
    /// form (<see cref="OptionTensors"/> has one).
    /// </exception>
    public string ToSpec() => Spec(KvCache ? "kvcache" : null, null);

    /// <summary>The spec with <paramref name="decode"/> (kvcache tokens) and <paramref name="split"/> inserted where they belong.</summary>
    internal string Spec(string? decode, string? split)
    {
        var o = Flash;
        string? tensorOption = o.AlibiSlopes is not null ? nameof(o.AlibiSlopes)
            : o.Bias is not null ? nameof(o.Bias)
            : o.LowRankBias is not null ? nameof(o.LowRankBias)
            : o.Sinks is not null ? nameof(o.Sinks)
            : null;
        if (tensorOption is not null)
            throw new NotSupportedException($"FlashOptions.{tensorOption} is a tensor and has no text form; only cases without tensor-valued options in Flash can be written as a spec (OptionTensors has one).");

        var spec = new StringBuilder();
        spec.Append(CultureInfo.InvariantCulture,
            $"{FamilyName(Family)} {TypeName(ElementType)} B{Batch} H{QueryHeads}/{KeyValueHeads} N{QueryLength}x{KeyLength} D{HeadDim}/{ValueDim}");
        if (Layout == TensorLayout.SequenceFirst) spec.Append(" bnhd");
        if (decode is not null) spec.Append(' ').Append(decode);
        if (o.Causal) spec.Append(" causal");
        if (o.WindowLeft >= 0 || o.WindowRight >= 0) spec.Append(CultureInfo.InvariantCulture, $" window({o.WindowLeft},{o.WindowRight})");
        if (o.Scale is float scale) spec.Append(" scale=").Append(SpecTokens.Number(scale));
        if (o.Softcap != 0) spec.Append(" softcap=").Append(SpecTokens.Number(o.Softcap));
        if (o.ScoreFunction == ScoreFunction.Sigmoid)
            spec.Append(o.SigmoidBias == 0 ? " sigmoid" : $" sigmoid({SpecTokens.Number(o.SigmoidBias)})");
        if (OptionTensors is { } tensors) spec.Append(' ').Append(tensors.ToSpecTokens());
        if (split is not null) spec.Append(' ').Append(split);
        return SpecTokens.Finish(spec, InputScale, Seed, QueryScale);
    }

    /// <summary>Reads the text form written by <see cref="ToSpec"/> (or <see cref="ToString"/>); see <see cref="SpecGrammar"/>.</summary>
    /// <exception cref="FormatException">
    /// A token is not understood, the sizes do not form a valid problem, or the spec describes a
    /// <see cref="KvCacheCase"/> with cache tokens or a <see cref="SplitKeysCase"/> (read those with <see cref="AttentionCaseSpec.Parse"/>);
    /// the message names the token.
    /// </exception>
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
        if (!TryRead(SpecTokens.Split(spec), spec, allowFamilies: true, out var reader, out error)) return false;
        if (reader.Split > 0 || reader.HasCacheLayout)
        {
            error = $"Case spec \"{spec.Trim()}\" describes a {(reader.Split > 0 ? nameof(SplitKeysCase) : nameof(KvCacheCase))}, not a plain flash case; read it with AttentionCaseSpec.Parse.";
            return false;
        }
        result = reader.Case with { KvCache = reader.KvCache };
        if (result.Problem() is { } problem)
        {
            error = $"Case spec \"{spec.Trim()}\" is not a valid problem: {problem}.";
            result = null;
            return false;
        }
        return true;
    }

    /// <summary>The flash family's parser: an <see cref="AttentionCase"/>, a <see cref="KvCacheCase"/> (<c>kvcache</c>) or a <see cref="SplitKeysCase"/> (<c>split=</c>).</summary>
    private static bool ParseFamily(IReadOnlyList<string> tokens, string spec, [NotNullWhen(true)] out IAttentionCase? result, [NotNullWhen(false)] out string? error)
    {
        result = null;
        if (!TryRead(tokens, spec, allowFamilies: false, out var reader, out error)) return false;
        IAttentionCase built;
        string? problem;
        if (reader.Split > 0)
        {
            var split = new SplitKeysCase { Flash = reader.Case, Parts = reader.Split };
            (built, problem) = (split, reader.KvCache ? "split= runs Flash, not FlashKvCache; it does not combine with kvcache" : split.Problem());
        }
        else if (reader.KvCache)
        {
            var decode = new KvCacheCase
            {
                Attention = reader.Case, CacheCapacity = reader.Capacity, PageSize = reader.PageSize, NewTokens = reader.NewTokens, Ragged = reader.Ragged,
            };
            (built, problem) = (decode, decode.Problem());
        }
        else
            (built, problem) = (reader.Case, reader.Case.Problem());
        if (problem is not null)
        {
            error = $"Case spec \"{spec.Trim()}\" is not a valid problem: {problem}.";
            return false;
        }
        result = built;
        return true;
    }

    /// <summary>Why the sizes and options do not form a valid problem, or null when they do.</summary>
    internal string? Problem()
    {
        if (Batch < 1 || QueryHeads < 1 || KeyValueHeads < 1 || QueryLength < 1 || KeyLength < 1 || HeadDim < 1 || ValueDim < 1)
            return "every size must be at least 1";
        if (QueryHeads % KeyValueHeads != 0)
            return $"query heads ({QueryHeads}) must be a multiple of key/value heads ({KeyValueHeads})";
        if (Flash.WindowLeft < -1 || Flash.WindowRight < -1)
            return "window bounds must be -1 (unbounded) or non-negative";
        if (KvCache && Family != AttentionFamily.Flash)
            return "kvcache applies to flash cases only";
        if (SpecTokens.ScaleProblem(InputScale, QueryScale) is { } scaleProblem)
            return scaleProblem;
        if (KvCache && ToKvCacheCase().Problem() is { } decode)
            return decode;
        if (OptionTensors is { } t)
        {
            if (t.Softcap != 0 || t.SigmoidBias is not null)
                return "OptionTensors generates tensors only; softcap and sigmoid belong in Flash";
            if (t.AlibiRank is < 0 or > 2 || t.LowRank < 0)
                return "alibi takes rank 1 ([Hq]) or 2 ([B, Hq]) and lowrank a positive rank";
            if (!double.IsFinite(t.Amplitude) || t.Amplitude <= 0)
                return "optamp must be a positive number";
            if ((t.AlibiRank > 0 && Flash.AlibiSlopes is not null) || (t.DenseBias && Flash.Bias is not null)
                || (t.LowRank > 0 && Flash.LowRankBias is not null) || (t.Sinks && Flash.Sinks is not null))
                return "an option tensor is given both in Flash and in OptionTensors";
        }
        return null;
    }

    /// <summary>The family's name in specs and reports: flash, neighborhood, blocksparse, linear.</summary>
    public static string FamilyName(AttentionFamily family) => family.ToString().ToLowerInvariant();

    private static bool TryRead(IReadOnlyList<string> tokens, string spec, bool allowFamilies, out SpecReader reader, [NotNullWhen(false)] out string? error)
    {
        reader = new SpecReader();
        foreach (string token in tokens)
        {
            string t = token.ToLowerInvariant();
            bool family = t is "flash" or "neighborhood" or "blocksparse" or "linear";
            if ((family && !allowFamilies && t != "flash") || !reader.TryApply(t))
            {
                error = SpecTokens.Unknown(token, spec, SpecGrammar);
                return false;
            }
        }
        if (reader.HasCacheLayout && !reader.KvCache)
        {
            error = $"Case spec \"{spec.Trim()}\" gives cache=, page=, new= or ragged without kvcache.";
            return false;
        }
        reader.Finish();
        error = null;
        return true;
    }

    /// <summary>Accumulates the tokens of one flash-family spec.</summary>
    private sealed class SpecReader
    {
        private FlashOptions _options = new();
        private FlashOptionSpec _tensors = new();
        private bool _anyTensor;

        public AttentionCase Case { get; private set; } = new();
        public bool KvCache { get; private set; }
        public int Capacity { get; private set; }
        public int PageSize { get; private set; }
        public int NewTokens { get; private set; }
        public bool Ragged { get; private set; }
        public int Split { get; private set; }
        public bool HasCacheLayout => Capacity != 0 || PageSize != 0 || NewTokens != 0 || Ragged;

        public void Finish() => Case = Case with { Flash = _options, OptionTensors = _anyTensor ? _tensors : null };

        public bool TryApply(string token)
        {
            switch (token)
            {
                case "flash": Case = Case with { Family = AttentionFamily.Flash }; return true;
                case "neighborhood": Case = Case with { Family = AttentionFamily.Neighborhood }; return true;
                case "blocksparse": Case = Case with { Family = AttentionFamily.BlockSparse }; return true;
                case "linear": Case = Case with { Family = AttentionFamily.Linear }; return true;
                case "bhnd": Case = Case with { Layout = TensorLayout.HeadsFirst }; return true;
                case "bnhd": Case = Case with { Layout = TensorLayout.SequenceFirst }; return true;
                case "causal": _options = _options with { Causal = true }; return true;
                case "kvcache": KvCache = true; return true;
                case "ragged": Ragged = true; return true;
                case "sigmoid": _options = _options with { ScoreFunction = ScoreFunction.Sigmoid }; return true;
            }
            if (SpecTokens.Type(token) is { } type)
            {
                Case = Case with { ElementType = type };
                return true;
            }
            if (SpecTokens.Integer(SpecTokens.Value(token, "seed=")) is int seed)
            {
                Case = Case with { Seed = seed };
                return true;
            }
            if (SpecTokens.TryFloat(SpecTokens.Value(token, "scale="), out float scale))
            {
                _options = _options with { Scale = scale };
                return true;
            }
            if (SpecTokens.TryFloat(SpecTokens.Value(token, "softcap="), out float cap) && cap >= 0)
            {
                _options = _options with { Softcap = cap };
                return true;
            }
            if (SpecTokens.Value(token, "amp=") is { } ampText && double.TryParse(ampText, NumberStyles.Float, CultureInfo.InvariantCulture, out double amp))
            {
                Case = Case with { InputScale = amp };
                return true;
            }
            if (SpecTokens.Value(token, "qamp=") is { } queryText && double.TryParse(queryText, NumberStyles.Float, CultureInfo.InvariantCulture, out double queryAmp))
            {
                Case = Case with { QueryScale = queryAmp };
                return true;
            }
            if (SpecTokens.TryFloat(SpecTokens.Bracketed(token, "sigmoid("), out float bias))
            {
                _options = _options with { ScoreFunction = ScoreFunction.Sigmoid, SigmoidBias = bias };
                return true;
            }
            if (SpecTokens.Bracketed(token, "window(") is { } window && SpecTokens.Pair(window, ',') is var (left, right))
            {
                _options = _options with { WindowLeft = left, WindowRight = right };
                return true;
            }
            if (TryPositive(token, "cache=", out int capacity)) { Capacity = capacity; return true; }
            if (TryPositive(token, "page=", out int page)) { PageSize = page; return true; }
            if (TryPositive(token, "new=", out int added)) { NewTokens = added; return true; }
            if (TryPositive(token, "split=", out int parts)) { Split = parts; return true; }
            if (FlashOptionSpec.TryApplyToken(token, _tensors) is { } tensors)
            {
                _tensors = tensors;
                _anyTensor |= tensors.AlibiRank > 0 || tensors.DenseBias || tensors.LowRank > 0 || tensors.Sinks;
                return true;
            }
            if (SpecTokens.Size(token, 'b', '\0') is var (batch, _))
            {
                Case = Case with { Batch = batch };
                return true;
            }
            if (SpecTokens.Size(token, 'h', '/') is var (q, kv))
            {
                Case = Case with { QueryHeads = q, KeyValueHeads = kv };
                return true;
            }
            if (SpecTokens.Size(token, 'n', 'x') is var (nq, nk))
            {
                Case = Case with { QueryLength = nq, KeyLength = nk };
                return true;
            }
            if (SpecTokens.Size(token, 'd', '/') is var (dqk, dv))
            {
                Case = Case with { HeadDim = dqk, ValueDim = dv };
                return true;
            }
            return false;
        }

        private static bool TryPositive(string token, string prefix, out int value)
        {
            value = SpecTokens.Integer(SpecTokens.Value(token, prefix)) ?? 0;
            return value > 0;
        }
    }
}
