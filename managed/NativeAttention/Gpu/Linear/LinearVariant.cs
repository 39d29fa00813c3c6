// The specialisations of kernels/linear/: the chunked kernel per (element type, per-key gates or not) and the decode
// kernel per element type. Feature maps, decay kinds, normalisation, causality and states are runtime flags of
// LinearParams, so nine variants cover every call.
using System.Globalization;

namespace NativeAttention.Gpu;

/// <summary>
/// One linear-attention kernel: the chunked forward (<see cref="Decode"/> false; <see cref="PerKey"/> selects per-key
/// gates) or the recurrent decode step, storing <see cref="ElementType"/>.
/// </summary>
internal readonly record struct LinearVariant(ElementType ElementType, bool PerKey, bool Decode) : IKernelVariant
{
    /// <summary>The longest chunk and the work-items of a chunked work-group (NA_LINEAR_CHUNK).</summary>
    public const int Chunk = 64;

    /// <summary>Features per block of the chunked kernel (NA_LINEAR_FB).</summary>
    public const int FeatureBlock = 16;

    /// <summary>Value columns per chunked work-group (NA_LINEAR_CB); each also carries the normaliser column.</summary>
    public const int ColumnBlock = 32;

    /// <summary>Work-items of a decode work-group (NA_LINEAR_DECODE_THREADS), one per value column.</summary>
    public const int DecodeThreads = 64;

    /// <summary>The chunked kernel's entry point.</summary>
    public const string ChunkedEntryPoint = "na_linear_fwd";

    /// <summary>The decode kernel's entry point.</summary>
    public const string DecodeEntryPoint = "na_linear_decode";

    public string EntryPoint => Decode ? DecodeEntryPoint : ChunkedEntryPoint;

    public int DynamicSharedBytes => 0;

    /// <summary>Work-items per work-group.</summary>
    public int Threads => Decode ? DecodeThreads : Chunk;

    /// <summary>The module name, e.g. <c>linear_fwd.f16.perkey</c> or <c>linear_decode.bf16</c>.</summary>
    public string Name => Decode
        ? $"linear_decode.{AttentionCase.TypeName(ElementType)}"
        : $"linear_fwd.{AttentionCase.TypeName(ElementType)}{(PerKey ? ".perkey" : "")}";

    public IEnumerable<KeyValuePair<string, string>> Defines() => Decode
        ? [new("NA_DTYPE", Str((int)ElementType)), new("NA_LINEAR_DECODE_THREADS", Str(DecodeThreads))]
        :
        [
            new("NA_DTYPE", Str((int)ElementType)), new("NA_LINEAR_CHUNK", Str(Chunk)), new("NA_LINEAR_FB", Str(FeatureBlock)),
            new("NA_LINEAR_CB", Str(ColumnBlock)), new("NA_LINEAR_PER_KEY", PerKey ? "1" : "0"),
        ];

    public string Source(KernelApi api) => KernelSource.Build(api, Decode ? "linear/linear_decode.h" : "linear/linear_fwd.h", Defines());

    /// <summary>Every linear kernel: the chunked forward with and without per-key gates, and the decode step, per element type.</summary>
    public static IEnumerable<IKernelVariant> AllVariants(KernelApi api)
    {
        foreach (var type in new[] { ElementType.Float32, ElementType.Float16, ElementType.BFloat16 })
        {
            yield return new LinearVariant(type, PerKey: false, Decode: false);
            yield return new LinearVariant(type, PerKey: true, Decode: false);
            yield return new LinearVariant(type, PerKey: false, Decode: true);
        }
    }

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);
}
