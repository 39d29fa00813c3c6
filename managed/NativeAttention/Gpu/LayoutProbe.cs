// The layout probes: kernels that write sizeof and every field offset of a family's params struct, so a test can
// compare them with the C# mirror.
namespace NativeAttention.Gpu;

/// <summary>
/// The probe kernel <see cref="EntryPoint"/> of <see cref="File"/>: run on one work-item, it writes the size of its
/// params struct, then the offset of each field in declaration order (nested structs: the member, then its fields).
/// <see cref="Mirror"/> is the C# struct that must agree.
/// </summary>
internal sealed record LayoutProbe(string File, string EntryPoint, Type Mirror) : IKernelVariant
{
    /// <summary>Every family's probe.</summary>
    public static IReadOnlyList<LayoutProbe> All { get; } =
    [
        new("flash/flash_layout_probe.h", "na_flash_params_layout", typeof(FlashParams)),
        new("decode/decode_layout_probe.h", "na_decode_params_layout", typeof(DecodeParams)),
        new("merge/merge_layout_probe.h", "na_merge_params_layout", typeof(MergeParams)),
        new("deltarule/delta_layout_probe.h", "na_delta_params_layout", typeof(DeltaParams)),
        new("neighborhood/neighborhood_layout_probe.h", "na_nbh_params_layout", typeof(NeighborhoodParams)),
        new("probe/probe_layout_probe.h", "na_probe_params_layout", typeof(ProbeParams)),
        new("blocksparse/blocksparse_layout_probe.h", "na_blocksparse_params_layout", typeof(BlockSparseParams)),
        new("blocksparse/content_layout_probe.h", "na_content_pool_params_layout", typeof(ContentPoolParams)),
        new("blocksparse/content_layout_probe.h", "na_content_select_params_layout", typeof(ContentSelectParams)),
        new("linear/linear_layout_probe.h", "na_linear_params_layout", typeof(LinearParams)),
    ];

    /// <summary>The probe with entry point <paramref name="entryPoint"/>.</summary>
    /// <exception cref="ArgumentException">No probe has that entry point.</exception>
    public static LayoutProbe For(string entryPoint) =>
        All.FirstOrDefault(p => p.EntryPoint == entryPoint)
        ?? throw new ArgumentException($"No layout probe has the entry point {entryPoint}.", nameof(entryPoint));

    /// <summary>The module name, e.g. <c>layout_probe.na_flash_params_layout</c>.</summary>
    public string Name => "layout_probe." + EntryPoint;

    public int DynamicSharedBytes => 0;

    public IEnumerable<KeyValuePair<string, string>> Defines() => [];

    public string Source(KernelApi api) => KernelSource.Build(api, File, Defines());
}
