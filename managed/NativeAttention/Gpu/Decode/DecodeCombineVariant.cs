// The split-KV combine kernel of the decode family (kernels/decode/decode_combine.h), one variant per element type.
using System.Globalization;

namespace NativeAttention.Gpu;

/// <summary>The combine kernel for outputs of <see cref="ElementType"/>: it merges the float32 partials of S &gt; 1 splits.</summary>
internal readonly record struct DecodeCombineVariant(ElementType ElementType) : IKernelVariant
{
    /// <summary>The kernel's entry point.</summary>
    public const string EntryPoint = "na_decode_combine";

    string IKernelVariant.EntryPoint => EntryPoint;

    public int DynamicSharedBytes => 0;

    /// <summary>The module name, e.g. <c>decode_combine.f16</c>.</summary>
    public string Name => $"decode_combine.{FlashVariant.TypeName(ElementType)}";

    public IEnumerable<KeyValuePair<string, string>> Defines() =>
        [new("NA_DTYPE", Str((int)ElementType)), new("NA_COMBINE_THREADS", Str(DecodeVariant.SmallThreads))];

    public string Source(KernelApi api) => KernelSource.Build(api, "decode/decode_combine.h", Defines());

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);
}
