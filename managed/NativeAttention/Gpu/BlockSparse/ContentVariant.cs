// The specialisations of kernels/blocksparse/content.h: the pooling stage per storage type, and the selection stage.
using System.Globalization;

namespace NativeAttention.Gpu;

/// <summary>
/// One stage of the content builder: <c>content_pool.f16</c> (block means and self-similarity of a tensor of
/// <see cref="ElementType"/>) or <c>content_select</c> (pooled scores, softmax, gate and selection; float32 only).
/// </summary>
internal readonly record struct ContentVariant(bool Select, ElementType ElementType) : IKernelVariant
{
    /// <summary>Work-items per work-group (NA_CONTENT_THREADS).</summary>
    public const int Threads = 64;

    public string EntryPoint => Select ? "na_content_select" : "na_content_pool";

    public int DynamicSharedBytes => 0;

    public string Name => Select ? "content_select" : $"content_pool.{FlashVariant.TypeName(ElementType)}";

    public IEnumerable<KeyValuePair<string, string>> Defines() =>
    [
        new("NA_DTYPE", Str((int)(Select ? ElementType.Float32 : ElementType))), new("NA_CONTENT_STAGE", Select ? "1" : "0"),
        new("NA_CONTENT_THREADS", Str(Threads)),
    ];

    public string Source(KernelApi api) => KernelSource.Build(api, "blocksparse/content.h", Defines());

    /// <summary>The pooling stage for every storage type, and the selection stage.</summary>
    public static IEnumerable<IKernelVariant> AllVariants(KernelApi api)
    {
        foreach (var type in new[] { ElementType.Float32, ElementType.Float16, ElementType.BFloat16 })
            yield return new ContentVariant(false, type);
        yield return new ContentVariant(true, ElementType.Float32);
    }

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);
}
