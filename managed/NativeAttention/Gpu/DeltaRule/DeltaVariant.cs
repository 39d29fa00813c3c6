// The specialisations of kernels/deltarule/: the recurrent kernel and the chunked (UT) kernel per element type.
// Variant, gates, L2 normalisation, state layout, varlen, beta type, chunk length and decode/verify are runtime fields
// of DeltaParams, so six variants cover every call.
using System.Globalization;

namespace NativeAttention.Gpu;

/// <summary>
/// A delta-rule kernel storing <see cref="ElementType"/>: the recurrent one (prefill, decode step and verify), or, with
/// <see cref="Chunked"/>, the chunked prefill through the UT transform.
/// </summary>
internal readonly record struct DeltaVariant(ElementType ElementType, bool Chunked = false) : IKernelVariant
{
    /// <summary>Work-items of a recurrent work-group (NA_DELTA_THREADS), one per value column.</summary>
    public const int Threads = 32;

    /// <summary>The longest chunk of the chunked kernel, and the work-items of its work-group (NA_DELTA_CHUNK).</summary>
    public const int Chunk = 64;

    /// <summary>Key dimensions per staged block of the chunked kernel (NA_DELTA_FB).</summary>
    public const int FeatureBlock = 16;

    /// <summary>Value columns per chunked work-group (NA_DELTA_CB).</summary>
    public const int ColumnBlock = 32;

    /// <summary>
    /// The local memory the chunked kernel declares, in bytes, as delta_chunked.h lays it out: the L x (L + 1) matrix,
    /// the work area (the larger of that matrix and the staged q/k/gate blocks of FB + 1 columns plus the FB x CB
    /// decay block), R/U of CB + 1 columns, three per-token vectors and the FB per-key decays.
    /// </summary>
    public static int ChunkedLocalBytes
    {
        get
        {
            int matrix = Chunk * (Chunk + 1);
            int stage = 3 * Chunk * (FeatureBlock + 1) + FeatureBlock * ColumnBlock;
            return sizeof(float) * (matrix + Math.Max(matrix, stage) + Chunk * (ColumnBlock + 1) + 3 * Chunk + FeatureBlock);
        }
    }

    /// <summary>The recurrent kernel's entry point.</summary>
    public const string Entry = "na_delta_recurrent";

    /// <summary>The chunked kernel's entry point.</summary>
    public const string ChunkedEntry = "na_delta_chunked";

    public string EntryPoint => Chunked ? ChunkedEntry : Entry;

    public int DynamicSharedBytes => 0;

    /// <summary>Work-items per work-group.</summary>
    public int WorkItems => Chunked ? Chunk : Threads;

    /// <summary>Value columns per work-group.</summary>
    public int Columns => Chunked ? ColumnBlock : Threads;

    /// <summary>The module name, e.g. <c>delta_recurrent.bf16</c> or <c>delta_chunked.f16</c>.</summary>
    public string Name => $"{(Chunked ? "delta_chunked" : "delta_recurrent")}.{AttentionCase.TypeName(ElementType)}";

    public IEnumerable<KeyValuePair<string, string>> Defines() => Chunked
        ?
        [
            new("NA_DTYPE", Str((int)ElementType)), new("NA_DELTA_CHUNK", Str(Chunk)), new("NA_DELTA_FB", Str(FeatureBlock)),
            new("NA_DELTA_CB", Str(ColumnBlock)),
        ]
        : [new("NA_DTYPE", Str((int)ElementType)), new("NA_DELTA_THREADS", Str(Threads))];

    public string Source(KernelApi api) => KernelSource.Build(api, Chunked ? "deltarule/delta_chunked.h" : "deltarule/delta_recurrent.h", Defines());

    /// <summary>Every delta-rule kernel: recurrent and chunked, per element type.</summary>
    public static IEnumerable<IKernelVariant> AllVariants(KernelApi api)
    {
        _ = api;
        foreach (var type in new[] { ElementType.Float32, ElementType.Float16, ElementType.BFloat16 })
        {
            yield return new DeltaVariant(type);
            yield return new DeltaVariant(type, Chunked: true);
        }
    }

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);
}
