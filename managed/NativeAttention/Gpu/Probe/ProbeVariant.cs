// The specialisations of kernels/probe/peak_probe.h: fp32 FMA, tensor-core mma (CUDA) and streaming read.
using System.Globalization;

namespace NativeAttention.Gpu;

/// <summary>What a peak probe measures.</summary>
internal enum ProbeKind
{
    /// <summary>fp32 FMA throughput.</summary>
    Fma = 0,
    /// <summary>Tensor-core throughput: mma.sync m16n8k16 with float accumulators (CUDA, sm_80 and later).</summary>
    TensorCore = 1,
    /// <summary>Streaming read bandwidth.</summary>
    Read = 2,
}

/// <summary>One peak probe kernel; <see cref="Storage"/> picks fp16 or bf16 inputs for <see cref="ProbeKind.TensorCore"/>.</summary>
internal readonly record struct ProbeVariant(ProbeKind Kind, ElementType Storage = ElementType.Float32) : IKernelVariant
{
    /// <summary>Work-items per work-group.</summary>
    public const int Threads = 256;

    /// <summary>Independent FMA chains or mma accumulators per work-item or warp.</summary>
    public const int Chains = 8;

    /// <summary>The kernel's entry point.</summary>
    public const string EntryPoint = "na_peak_probe";

    string IKernelVariant.EntryPoint => EntryPoint;

    public int DynamicSharedBytes => 0;

    /// <summary>The module name, e.g. <c>peak_probe.mma.f16</c>.</summary>
    public string Name => Kind switch
    {
        ProbeKind.Fma => "peak_probe.fma",
        ProbeKind.TensorCore => "peak_probe.mma." + AttentionCase.TypeName(Storage),
        _ => "peak_probe.read",
    };

    public IEnumerable<KeyValuePair<string, string>> Defines() =>
    [
        new("NA_PROBE_KIND", Str((int)Kind)), new("NA_DTYPE", Str((int)Storage)),
        new("NA_PROBE_THREADS", Str(Threads)), new("NA_PROBE_CHAINS", Str(Chains)),
    ];

    public string Source(KernelApi api) => KernelSource.Build(api, "probe/peak_probe.h", Defines());

    /// <summary>The probes a dialect compiles: tensor-core ones on CUDA only.</summary>
    public static IEnumerable<IKernelVariant> AllVariants(KernelApi api)
    {
        yield return new ProbeVariant(ProbeKind.Fma);
        yield return new ProbeVariant(ProbeKind.Read);
        if (api != KernelApi.Cuda) yield break;
        yield return new ProbeVariant(ProbeKind.TensorCore, ElementType.Float16);
        yield return new ProbeVariant(ProbeKind.TensorCore, ElementType.BFloat16);
    }

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);
}
