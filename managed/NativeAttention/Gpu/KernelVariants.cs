// The registry of every kernel variant of every family: what CI compiles with NVRTC and builds on OpenCL.
namespace NativeAttention.Gpu;

/// <summary>
/// Every variant a backend may compile, per dialect. A family registers here with one line: its
/// <c>AllVariants(api)</c>.
/// </summary>
internal static class KernelVariants
{
    /// <summary>Every variant of every family for <paramref name="api"/>, then the layout probes.</summary>
    public static IEnumerable<IKernelVariant> All(KernelApi api) =>
    [
        .. FlashVariant.AllVariants(api),
        .. DecodeVariant.AllVariants(api),
        .. MergeVariant.AllVariants(api),
        .. DeltaVariant.AllVariants(api),
        .. NeighborhoodVariant.AllVariants(api),
        .. ProbeVariant.AllVariants(api),
        .. BlockSparseVariant.AllVariants(api),
        .. ContentVariant.AllVariants(api),
        .. LinearVariant.AllVariants(api),
        .. LayoutProbe.All,
    ];
}
