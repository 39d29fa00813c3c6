// The specialisations of kernels/deltarule/: the recurrent kernel per element type. Variant, gates, L2 normalisation,
// state layout, varlen, beta type and decode/verify are runtime fields of DeltaParams, so three variants cover every call.
using System.Globalization;

namespace NativeAttention.Gpu;

/// <summary>The recurrent delta-rule kernel (prefill, decode step and verify) storing <see cref="ElementType"/>.</summary>
internal readonly record struct DeltaVariant(ElementType ElementType) : IKernelVariant
{
    /// <summary>Work-items of a work-group (NA_DELTA_THREADS), one per value column.</summary>
    public const int Threads = 32;

    /// <summary>The kernel's entry point.</summary>
    public const string Entry = "na_delta_recurrent";

    public string EntryPoint => Entry;

    public int DynamicSharedBytes => 0;

    /// <summary>The module name, e.g. <c>delta_recurrent.bf16</c>.</summary>
    public string Name => $"delta_recurrent.{AttentionCase.TypeName(ElementType)}";

    public IEnumerable<KeyValuePair<string, string>> Defines() =>
        [new("NA_DTYPE", Str((int)ElementType)), new("NA_DELTA_THREADS", Str(Threads))];

    public string Source(KernelApi api) => KernelSource.Build(api, "deltarule/delta_recurrent.h", Defines());

    /// <summary>Every delta-rule kernel: one per element type.</summary>
    public static IEnumerable<IKernelVariant> AllVariants(KernelApi api)
    {
        _ = api;
        foreach (var type in new[] { ElementType.Float32, ElementType.Float16, ElementType.BFloat16 })
            yield return new DeltaVariant(type);
    }

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);
}
