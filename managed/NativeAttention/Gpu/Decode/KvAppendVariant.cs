// The KV-cache append kernel of the decode family (kernels/decode/kv_append.h), one variant per element type.
using System.Globalization;

namespace NativeAttention.Gpu;

/// <summary>The append kernel for caches of <see cref="ElementType"/>: new keys (rotated) and values into their slots.</summary>
internal readonly record struct KvAppendVariant(ElementType ElementType) : IKernelVariant
{
    /// <summary>The kernel's entry point.</summary>
    public const string EntryPoint = "na_kv_append";

    string IKernelVariant.EntryPoint => EntryPoint;

    public int DynamicSharedBytes => 0;

    /// <summary>The module name, e.g. <c>kv_append.bf16</c>.</summary>
    public string Name => $"kv_append.{FlashVariant.TypeName(ElementType)}";

    public IEnumerable<KeyValuePair<string, string>> Defines() =>
        [new("NA_DTYPE", Str((int)ElementType)), new("NA_APPEND_THREADS", Str(DecodeVariant.SmallThreads))];

    public string Source(KernelApi api) => KernelSource.Build(api, "decode/kv_append.h", Defines());

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);
}
