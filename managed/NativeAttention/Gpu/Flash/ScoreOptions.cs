// The score options a flash variant is specialised for: which option code is compiled in.
using System.Globalization;

namespace NativeAttention.Gpu;

/// <summary>
/// The score options a variant is specialised for (<c>kernels/flash/flash_score_mod.h</c>). Option tensors keep their
/// own element type (<see cref="BiasType"/>, <see cref="UType"/>, <see cref="WType"/>), so the kernel reads them
/// without a conversion pass. The default is plain softmax attention, whose kernels carry no option code at all.
/// </summary>
internal readonly record struct ScoreOptions(
    bool Softcap, bool Alibi, bool Bias, bool LowRank, bool Sinks, bool Sigmoid,
    ElementType BiasType = ElementType.Float32, ElementType UType = ElementType.Float32, ElementType WType = ElementType.Float32)
{
    /// <summary>The options of a validated call.</summary>
    public static ScoreOptions Of(FlashOptions o) => new(
        o.Softcap != 0, o.AlibiSlopes is not null, o.Bias is not null, o.LowRankBias is not null, o.Sinks is not null,
        o.ScoreFunction == ScoreFunction.Sigmoid,
        o.Bias?.ElementType ?? ElementType.Float32,
        o.LowRankBias?.U.ElementType ?? ElementType.Float32, o.LowRankBias?.W.ElementType ?? ElementType.Float32);

    /// <summary>The name suffix, e.g. <c>.softcap.bias.f16.sinks</c>; empty without options. Non-f32 option tensor types are named.</summary>
    public string Suffix =>
        (Softcap ? ".softcap" : "") + (Alibi ? ".alibi" : "") +
        (Bias ? ".bias" + TypeSuffix(BiasType) : "") +
        (LowRank ? ".lowrank" + (UType == ElementType.Float32 && WType == ElementType.Float32 ? "" : TypeSuffix(UType, always: true) + TypeSuffix(WType, always: true)) : "") +
        (Sinks ? ".sinks" : "") + (Sigmoid ? ".sigmoid" : "");

    /// <summary>The option defines (only those set: the kernel defaults every one to off).</summary>
    public IEnumerable<KeyValuePair<string, string>> Defines()
    {
        if (Softcap) yield return new("NA_SOFTCAP", "1");
        if (Alibi) yield return new("NA_ALIBI", "1");
        if (Bias)
        {
            yield return new("NA_BIAS", "1");
            yield return new("NA_BIAS_DTYPE", ((int)BiasType).ToString(CultureInfo.InvariantCulture));
        }
        if (LowRank)
        {
            yield return new("NA_LOWRANK", "1");
            yield return new("NA_U_DTYPE", ((int)UType).ToString(CultureInfo.InvariantCulture));
            yield return new("NA_W_DTYPE", ((int)WType).ToString(CultureInfo.InvariantCulture));
        }
        if (Sinks) yield return new("NA_SINKS", "1");
        if (Sigmoid) yield return new("NA_SIGMOID", "1");
    }

    /// <summary>
    /// Option sets the NVRTC test compiles for each kernel: every option alone, then everything a softmax call can
    /// combine (softcap, ALiBi, a bf16 dense bias, an f16/f32 low-rank bias, sinks) and sigmoid with every modifier.
    /// </summary>
    public static ScoreOptions[] CompileCoverage =>
    [
        new(true, false, false, false, false, false),
        new(false, true, false, false, false, false),
        new(false, false, true, false, false, false),
        new(false, false, false, true, false, false),
        new(false, false, false, false, true, false),
        new(false, false, false, false, false, true),
        new(true, true, true, true, true, false, ElementType.BFloat16, ElementType.Float16, ElementType.Float32),
        new(true, true, true, true, false, true, ElementType.Float16, ElementType.BFloat16, ElementType.BFloat16),
    ];

    private static string TypeSuffix(ElementType type, bool always = false) =>
        type == ElementType.Float32 && !always ? "" : "." + FlashVariant.TypeName(type);
}
