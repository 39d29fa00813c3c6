// Reproducible score options (softcap, ALiBi, biases, sinks, sigmoid) for an AttentionCase, and their verification.
using System.Globalization;
using System.Text;

namespace NativeAttention;

/// <summary>How a generated option tensor is broadcast over batch and heads.</summary>
public enum OptionBroadcast
{
    /// <summary>One slice per batch and head: <c>[B, H, ...]</c>.</summary>
    None,
    /// <summary>Shared by every batch: <c>[1, H, ...]</c>.</summary>
    Batch,
    /// <summary>Shared by every head: <c>[B, 1, ...]</c>.</summary>
    Heads,
    /// <summary>Shared by all: <c>[1, 1, ...]</c>.</summary>
    Both,
}

/// <summary>
/// The score options of a flash call, described by sizes and a seed so a failing case can be rebuilt: <see cref="Build"/>
/// turns it into <see cref="FlashOptions"/> for a given <see cref="AttentionCase"/> (whose masking and scale it keeps).
/// Values are uniform in <c>[-Amplitude, Amplitude]</c> unless stated.
/// </summary>
public sealed record FlashOptionSpec
{
    /// <summary>Softcap c (0: off).</summary>
    public float Softcap { get; init; }
    /// <summary>ALiBi slopes, uniform in [0, 0.5]: absent, <c>[Hq]</c> or <c>[B, Hq]</c>.</summary>
    public int AlibiRank { get; init; }
    /// <summary>Add a dense bias.</summary>
    public bool DenseBias { get; init; }
    /// <summary>Broadcast of the dense bias.</summary>
    public OptionBroadcast DenseBiasBroadcast { get; init; }
    /// <summary>Element type of the dense bias.</summary>
    public ElementType DenseBiasType { get; init; } = ElementType.Float32;
    /// <summary>Store the dense bias key-major (<c>[.., Nk, Nq]</c> in memory), so its key stride is not 1.</summary>
    public bool DenseBiasTransposed { get; init; }
    /// <summary>Rank of the low-rank bias U W^T (0: off).</summary>
    public int LowRank { get; init; }
    /// <summary>Broadcast of U.</summary>
    public OptionBroadcast LowRankUBroadcast { get; init; }
    /// <summary>Broadcast of W.</summary>
    public OptionBroadcast LowRankWBroadcast { get; init; }
    /// <summary>Element type of U and W.</summary>
    public ElementType LowRankType { get; init; } = ElementType.Float32;
    /// <summary>Add attention sinks, uniform in <c>[-2, 2]</c> times <see cref="Amplitude"/>.</summary>
    public bool Sinks { get; init; }
    /// <summary>Use sigmoid scoring with this bias (null: softmax).</summary>
    public float? SigmoidBias { get; init; }
    /// <summary>Amplitude of the bias, U, W and sink values.</summary>
    public double Amplitude { get; init; } = 1.0;
    /// <summary>Seed of the option values.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Builds the options for <paramref name="case"/>, keeping its scale, causal flag and window.</summary>
    public FlashOptions Build(AttentionCase @case)
    {
        ArgumentNullException.ThrowIfNull(@case);
        var random = new Random(Seed);
        int b = @case.Batch, h = @case.QueryHeads, nq = @case.QueryLength, nk = @case.KeyLength;
        var options = @case.Flash with { Softcap = Softcap };
        if (AlibiRank == 1) options = options with { AlibiSlopes = Float32([h], random, 0, 0.5) };
        else if (AlibiRank == 2) options = options with { AlibiSlopes = Float32([b, h], random, 0, 0.5) };
        if (DenseBias)
        {
            var (bb, bh) = Sizes(DenseBiasBroadcast, b, h);
            var bias = Allocate(DenseBiasType, DenseBiasTransposed ? [bb, bh, nk, nq] : [bb, bh, nq, nk]);
            if (DenseBiasTransposed) bias = bias.Permute(0, 1, 3, 2);
            Fill(bias, random, -Amplitude, Amplitude);
            options = options with { Bias = bias };
        }
        if (LowRank > 0)
        {
            var (ub, uh) = Sizes(LowRankUBroadcast, b, h);
            var (wb, wh) = Sizes(LowRankWBroadcast, b, h);
            var u = Allocate(LowRankType, [ub, uh, nq, LowRank]);
            var w = Allocate(LowRankType, [wb, wh, nk, LowRank]);
            Fill(u, random, -Amplitude, Amplitude);
            Fill(w, random, -Amplitude, Amplitude);
            options = options with { LowRankBias = new LowRankBias(u, w) };
        }
        if (Sinks) options = options with { Sinks = Float32([h], random, -2 * Amplitude, 2 * Amplitude) };
        if (SigmoidBias is float sb) options = options with { ScoreFunction = ScoreFunction.Sigmoid, SigmoidBias = sb };
        return options;
    }

    /// <summary>A compact description, e.g. <c>softcap=5 alibi[B,H] bias(f16,heads) lowrank4 sinks seed=3</c>.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        if (Softcap > 0) sb.Append(CultureInfo.InvariantCulture, $"softcap={Softcap:R} ");
        if (AlibiRank > 0) sb.Append(AlibiRank == 1 ? "alibi[H] " : "alibi[B,H] ");
        if (DenseBias)
            sb.Append(CultureInfo.InvariantCulture, $"bias({AttentionCase.TypeName(DenseBiasType)},{DenseBiasBroadcast}{(DenseBiasTransposed ? ",key-major" : "")}) ");
        if (LowRank > 0)
            sb.Append(CultureInfo.InvariantCulture, $"lowrank{LowRank}({AttentionCase.TypeName(LowRankType)},U:{LowRankUBroadcast},W:{LowRankWBroadcast}) ");
        if (Sinks) sb.Append("sinks ");
        if (SigmoidBias is float s) sb.Append(CultureInfo.InvariantCulture, $"sigmoid(b={s:R}) ");
        if (Amplitude != 1.0) sb.Append(CultureInfo.InvariantCulture, $"amp={Amplitude:R} ");
        sb.Append(CultureInfo.InvariantCulture, $"optseed={Seed}");
        return sb.ToString();
    }

    /// <summary>
    /// The tensor options as case-spec tokens (<see cref="AttentionCase.SpecGrammar"/>), e.g.
    /// <c>alibi(bh) bias(f16,heads,kmajor) lowrank4(w=batch) sinks optamp=2 optseed=3</c>; defaults are left out.
    /// <see cref="Softcap"/> and <see cref="SigmoidBias"/> are not written (a case keeps them in its FlashOptions).
    /// </summary>
    public string ToSpecTokens()
    {
        var tokens = new List<string>();
        if (AlibiRank > 0) tokens.Add(AlibiRank == 2 ? "alibi(bh)" : "alibi");
        if (DenseBias)
        {
            var words = new List<string>();
            if (DenseBiasType != ElementType.Float32) words.Add(AttentionCase.TypeName(DenseBiasType));
            if (DenseBiasBroadcast != OptionBroadcast.None) words.Add(BroadcastName(DenseBiasBroadcast));
            if (DenseBiasTransposed) words.Add("kmajor");
            tokens.Add(words.Count == 0 ? "bias" : $"bias({string.Join(',', words)})");
        }
        if (LowRank > 0)
        {
            var words = new List<string>();
            if (LowRankType != ElementType.Float32) words.Add(AttentionCase.TypeName(LowRankType));
            if (LowRankUBroadcast != OptionBroadcast.None) words.Add("u=" + BroadcastName(LowRankUBroadcast));
            if (LowRankWBroadcast != OptionBroadcast.None) words.Add("w=" + BroadcastName(LowRankWBroadcast));
            string rank = LowRank.ToString(CultureInfo.InvariantCulture);
            tokens.Add(words.Count == 0 ? $"lowrank{rank}" : $"lowrank{rank}({string.Join(',', words)})");
        }
        if (Sinks) tokens.Add("sinks");
        if (Amplitude != 1.0) tokens.Add("optamp=" + Amplitude.ToString("R", CultureInfo.InvariantCulture));
        if (Seed != 1) tokens.Add("optseed=" + Seed.ToString(CultureInfo.InvariantCulture));
        return string.Join(' ', tokens);
    }

    /// <summary><paramref name="current"/> with one lower-case spec token applied, or null when the token is not an option-tensor token.</summary>
    internal static FlashOptionSpec? TryApplyToken(string token, FlashOptionSpec current)
    {
        switch (token)
        {
            case "alibi": return current with { AlibiRank = 1 };
            case "alibi(bh)": return current with { AlibiRank = 2 };
            case "bias": return current with { DenseBias = true };
            case "sinks": return current with { Sinks = true };
        }
        if (SpecTokens.TryDouble(SpecTokens.Value(token, "optamp="), out double amplitude)) return current with { Amplitude = amplitude };
        if (SpecTokens.Integer(SpecTokens.Value(token, "optseed=")) is int seed) return current with { Seed = seed };
        if (SpecTokens.Bracketed(token, "bias(") is { } biasWords)
        {
            var bias = current with { DenseBias = true };
            foreach (string word in biasWords.Split(','))
            {
                if (SpecTokens.Type(word) is { } type) bias = bias with { DenseBiasType = type };
                else if (Broadcast(word) is { } broadcast) bias = bias with { DenseBiasBroadcast = broadcast };
                else if (word == "kmajor") bias = bias with { DenseBiasTransposed = true };
                else return null;
            }
            return bias;
        }
        if (token.StartsWith("lowrank", StringComparison.Ordinal))
        {
            string rest = token["lowrank".Length..];
            int open = rest.IndexOf('(');
            if (SpecTokens.Integer(open < 0 ? rest : rest[..open]) is not int rank || rank < 1) return null;
            var lowRank = current with { LowRank = rank };
            if (open < 0) return lowRank;
            if (!rest.EndsWith(')')) return null;
            foreach (string word in rest[(open + 1)..^1].Split(','))
            {
                if (SpecTokens.Type(word) is { } type) lowRank = lowRank with { LowRankType = type };
                else if (SpecTokens.Value(word, "u=") is { } u && Broadcast(u) is { } ub) lowRank = lowRank with { LowRankUBroadcast = ub };
                else if (SpecTokens.Value(word, "w=") is { } w && Broadcast(w) is { } wb) lowRank = lowRank with { LowRankWBroadcast = wb };
                else return null;
            }
            return lowRank;
        }
        return null;
    }

    private static string BroadcastName(OptionBroadcast broadcast) => broadcast.ToString().ToLowerInvariant();

    private static OptionBroadcast? Broadcast(string word) => word switch
    {
        "none" => OptionBroadcast.None,
        "batch" => OptionBroadcast.Batch,
        "heads" => OptionBroadcast.Heads,
        "both" => OptionBroadcast.Both,
        _ => null,
    };

    private static (int Batch, int Heads) Sizes(OptionBroadcast broadcast, int batch, int heads) => broadcast switch
    {
        OptionBroadcast.Batch => (1, heads),
        OptionBroadcast.Heads => (batch, 1),
        OptionBroadcast.Both => (1, 1),
        _ => (batch, heads),
    };

    private static TensorView Allocate(ElementType type, int[] shape) => Gpu.TensorCopy.AllocateHost(type, shape);

    private static TensorView Float32(int[] shape, Random random, double low, double high)
    {
        var view = Allocate(ElementType.Float32, shape);
        Fill(view, random, low, high);
        return view;
    }

    private static void Fill(TensorView view, Random random, double low, double high)
    {
        var values = new double[view.ElementCount];
        for (long i = 0; i < values.Length; i++) values[i] = low + random.NextDouble() * (high - low);
        view.CopyFrom(values);
    }
}

/// <summary>Runs a case with generated score options and checks it against the float64 reference, as <see cref="CaseVerifier"/> does (through <see cref="CaseRunner"/>).</summary>
public static class OptionVerifier
{
    /// <summary>
    /// Runs <paramref name="case"/> with the options <paramref name="spec"/> builds on <paramref name="context"/>,
    /// and compares with the reference under <see cref="CaseVerifier"/>'s rule. The result's case carries the built
    /// options; <see cref="VerificationResult.Detail"/> names the spec when the check fails.
    /// </summary>
    public static VerificationResult Verify(AttentionContext context, AttentionCase @case, FlashOptionSpec spec)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(@case);
        ArgumentNullException.ThrowIfNull(spec);
        var withOptions = @case with { Flash = spec.Build(@case) };
        var tensors = withOptions.CreateTensors();
        CaseRunner.Run(context, withOptions, tensors);
        var result = CaseVerifier.Compare(context.Backend, withOptions, tensors);
        return result.Passed ? result : result with { Detail = $"options: {spec}; {result.Detail}" };
    }
}
