// The specialisations of kernels/merge/merge_states.h: one per (output type, partial output type).
using System.Globalization;

namespace NativeAttention.Gpu;

/// <summary>MergeStates writing <see cref="Output"/> elements from partial outputs of <see cref="Partial"/> elements.</summary>
internal readonly record struct MergeVariant(ElementType Output, ElementType Partial) : IKernelVariant
{
    /// <summary>Rows per work-group (NA_MERGE_THREADS).</summary>
    public const int Threads = 64;

    /// <summary>The kernel's entry point.</summary>
    public const string EntryPoint = "na_merge_states";

    string IKernelVariant.EntryPoint => EntryPoint;

    public int DynamicSharedBytes => 0;

    /// <summary>The module name, e.g. <c>merge_states.f16.f32</c> (output type, partial type).</summary>
    public string Name => $"merge_states.{AttentionCase.TypeName(Output)}.{AttentionCase.TypeName(Partial)}";

    public IEnumerable<KeyValuePair<string, string>> Defines() =>
    [
        new("NA_DTYPE", Str((int)Output)), new("NA_PARTIAL_DTYPE", Str((int)Partial)), new("NA_MERGE_THREADS", Str(Threads)),
    ];

    public string Source(KernelApi api) => KernelSource.Build(api, "merge/merge_states.h", Defines());

    /// <summary>Every (output, partial) pair of element types.</summary>
    public static IEnumerable<IKernelVariant> AllVariants(KernelApi api)
    {
        ElementType[] types = [ElementType.Float32, ElementType.Float16, ElementType.BFloat16];
        foreach (var output in types)
            foreach (var partial in types)
                yield return new MergeVariant(output, partial);
    }

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);
}
