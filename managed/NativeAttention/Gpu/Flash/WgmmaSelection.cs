// Whether a flash call runs on the Hopper wgmma kernel or on the mma.sync / portable kernels, and why: a pure function
// of the device, the compiler, the call and its views, unit-tested without a GPU.
namespace NativeAttention.Gpu;

/// <summary>How a CUDA context treats the Hopper kernel (<see cref="WgmmaSelection.Variable"/>).</summary>
internal enum WgmmaMode
{
    /// <summary>Used on sm_90 where the call suits it, after the context's self-check passed (the default).</summary>
    Auto,
    /// <summary>Never used (<c>NATIVEATTENTION_CUDA_WGMMA=0</c>).</summary>
    Off,
    /// <summary>Used wherever the call suits it, without the self-check (<c>NATIVEATTENTION_CUDA_WGMMA=1</c>; tests).</summary>
    Forced,
}

/// <summary>The kernel choice of one call: <see cref="Use"/> the Hopper kernel or not, and the reason either way.</summary>
internal readonly record struct WgmmaChoice(bool Use, string Reason);

internal static class WgmmaSelection
{
    /// <summary>0 disables the Hopper kernel, 1 uses it without the self-check; unset (or anything else) is automatic.</summary>
    public const string Variable = "NATIVEATTENTION_CUDA_WGMMA";

    /// <summary>The oldest NVRTC the kernel was compiled and checked with (sm_90a CUBINs in CI).</summary>
    public static readonly (int Major, int Minor) MinimumNvrtc = (12, 4);

    /// <summary>The choice in <see cref="WgmmaMode.Off"/>.</summary>
    public static readonly WgmmaChoice Disabled = new(false, $"disabled by {Variable}=0");

    /// <summary>The choice on a device other than sm_90.</summary>
    public static WgmmaChoice NotHopper(int computeCapability) => new(false, $"wgmma needs sm_90; the device is sm_{computeCapability}");

    /// <summary>The mode an environment value asks for.</summary>
    public static WgmmaMode ModeFrom(string? value) => value?.Trim() switch
    {
        "0" => WgmmaMode.Off,
        "1" => WgmmaMode.Forced,
        _ => WgmmaMode.Auto,
    };

    /// <summary>The mode of this process's environment.</summary>
    public static WgmmaMode ModeFromEnvironment() => ModeFrom(Environment.GetEnvironmentVariable(Variable));

    /// <summary>
    /// Picks the kernel for a call. Checked in order: the mode; the device (sm_90 exactly: sm_90a code runs nowhere
    /// else); NVRTC (12.4 or later); the element type (f16/bf16); the head dims (Dqk == Dv in 64, 128, 256); the
    /// options the kernel is built for (<see cref="FlashVariant.WgmmaTakes"/>); the layout (feature stride 1, 16-byte
    /// aligned roots, TMA-describable Q/K/V, O rows and strides on 16 bytes); last, in <see cref="WgmmaMode.Auto"/>, the
    /// context's self-check (<paramref name="selfCheckFailure"/>: null when it passed or has not run yet, else why it
    /// failed).
    /// </summary>
    public static WgmmaChoice Choose(WgmmaMode mode, int computeCapability, (int Major, int Minor) nvrtc, ElementType type,
        int headDim, int valueDim, ScoreOptions options, in QkvoParams t, bool rootsAligned, string? selfCheckFailure)
    {
        if (mode == WgmmaMode.Off) return Disabled;
        if (computeCapability != 90) return NotHopper(computeCapability);
        if (nvrtc.CompareTo(MinimumNvrtc) < 0)
            return new(false, $"NVRTC {nvrtc.Major}.{nvrtc.Minor} is older than {MinimumNvrtc.Major}.{MinimumNvrtc.Minor}, the first checked to compile the sm_90a kernel");
        if (type is not (ElementType.Float16 or ElementType.BFloat16)) return new(false, $"{type} has no wgmma kernel (Float16 and BFloat16 only)");
        if (headDim != valueDim || !FlashVariant.WgmmaHeadDims.Contains(headDim))
            return new(false, $"head dims {headDim}/{valueDim}; the wgmma kernel takes Dqk == Dv in 64, 128, 256");
        if (!FlashVariant.WgmmaTakes(headDim, options)) return new(false, $"a dense bias at D = {headDim} does not fit the wgmma kernel's registers");
        if (t.QStrideD != 1 || t.KStrideD != 1 || t.VStrideD != 1 || t.OStrideD != 1) return new(false, "a feature stride is not 1");
        if (!rootsAligned) return new(false, "a Q, K, V or O buffer's root address is not 16-byte aligned");
        var variant = FlashVariant.ForWgmma(type, headDim, false, options);
        var (q, k, v) = WgmmaTensorMaps.For(variant, t);
        if ((WgmmaTensorMaps.Unsupported(q, "Q") ?? WgmmaTensorMaps.Unsupported(k, "K") ?? WgmmaTensorMaps.Unsupported(v, "V")) is { } tma)
            return new(false, tma);
        // O leaves in 16-byte stores: its offset and every stride of a dimension longer than 1 on 8 elements.
        if (t.OOffset % 8 != 0 || (t.Nq > 1 && t.OStrideN % 8 != 0) || (t.HeadsQ > 1 && t.OStrideH % 8 != 0) || (t.Batch > 1 && t.OStrideB % 8 != 0))
            return new(false, "O's offset or strides are not multiples of 8 elements (16-byte stores)");
        if (mode == WgmmaMode.Auto && selfCheckFailure is not null) return new(false, "this context's wgmma self-check failed: " + selfCheckFailure);
        return new(true, $"sm_90, NVRTC {nvrtc.Major}.{nvrtc.Minor}, {type} D = {headDim}{(mode == WgmmaMode.Forced ? ", forced" : "")}");
    }
}
