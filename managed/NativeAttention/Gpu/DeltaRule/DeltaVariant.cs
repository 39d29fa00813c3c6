// The specialisations of kernels/deltarule/: the recurrent kernel, and the two kernels of the chunked (UT) prefill, per
// element type. Variant, gates, L2 normalisation, state layout, varlen, beta type, chunk length and decode/verify are
// runtime fields of DeltaParams, so nine variants cover every call.
using System.Globalization;

namespace NativeAttention.Gpu;

/// <summary>
/// A delta-rule kernel storing <see cref="ElementType"/>: the recurrent one (prefill, decode step and verify), or, with
/// <see cref="Chunked"/>, a kernel of the chunked prefill through the UT transform: with <see cref="Prepare"/> the first,
/// which writes each chunk's column-independent quantities to scratch, else the second, which runs the chunks of every
/// block of value columns through the state.
/// </summary>
internal readonly record struct DeltaVariant(ElementType ElementType, bool Chunked = false, bool Prepare = false) : IKernelVariant
{
    /// <summary>Work-items of a recurrent work-group (NA_DELTA_THREADS), one per value column.</summary>
    public const int Threads = 32;

    /// <summary>The longest chunk of the chunked kernels, and the work-items of their work-groups (NA_DELTA_CHUNK).</summary>
    public const int Chunk = 64;

    /// <summary>Key dimensions per staged block of the chunked kernels (NA_DELTA_FB).</summary>
    public const int FeatureBlock = 16;

    /// <summary>Value columns per work-group of the second chunked kernel (NA_DELTA_CB).</summary>
    public const int ColumnBlock = 32;

    /// <summary>
    /// The local memory the first chunked kernel declares, in bytes, as delta_chunk_prepare.h lays it out: the
    /// L x (L + 1) matrix, the staged q, k and gate blocks of FB + 1 columns and four per-token vectors.
    /// </summary>
    public const int PrepareLocalBytes = sizeof(float) * (Chunk * (Chunk + 1) + 3 * Chunk * (FeatureBlock + 1) + 4 * Chunk);

    /// <summary>
    /// The local memory the second chunked kernel declares, in bytes, as delta_chunked.h lays it out: V/U of CB + 1
    /// columns, the larger of the FB x CB state block and the staged keys of FB + 1 columns, and the FB decays.
    /// </summary>
    public const int ColumnLocalBytes = sizeof(float) * (Chunk * (ColumnBlock + 1) + (FeatureBlock * ColumnBlock > Chunk * (FeatureBlock + 1)
        ? FeatureBlock * ColumnBlock : Chunk * (FeatureBlock + 1)) + FeatureBlock);

    /// <summary>The local memory a device needs for the chunked prefill: the larger of its two kernels' (under 32 KB).</summary>
    public const int ChunkedLocalBytes = PrepareLocalBytes > ColumnLocalBytes ? PrepareLocalBytes : ColumnLocalBytes;

    /// <summary>
    /// Floats of one chunk's scratch (na_delta_chunk_floats in delta_chunk_common.h): Tb and P (L x L each), W, the
    /// decayed queries and keys (Dk x L each) and the Dk decays.
    /// </summary>
    public static long ChunkScratchFloats(int chunk, int keyDim) => 2L * chunk * chunk + (3L * chunk + 1) * keyDim;

    /// <summary>The recurrent kernel's entry point.</summary>
    public const string Entry = "na_delta_recurrent";

    /// <summary>The second chunked kernel's entry point.</summary>
    public const string ChunkedEntry = "na_delta_chunked";

    /// <summary>The first chunked kernel's entry point.</summary>
    public const string PrepareEntry = "na_delta_chunk_prepare";

    public string EntryPoint => !Chunked ? Entry : Prepare ? PrepareEntry : ChunkedEntry;

    public int DynamicSharedBytes => 0;

    /// <summary>Work-items per work-group.</summary>
    public int WorkItems => Chunked ? Chunk : Threads;

    /// <summary>Value columns per work-group (the first chunked kernel's work-groups take every column).</summary>
    public int Columns => Chunked ? ColumnBlock : Threads;

    /// <summary>The local memory this kernel declares, in bytes.</summary>
    public int LocalBytes => !Chunked ? 4 * Threads * sizeof(float) : Prepare ? PrepareLocalBytes : ColumnLocalBytes;

    /// <summary>The module name, e.g. <c>delta_recurrent.bf16</c>, <c>delta_chunk_prepare.f32</c> or <c>delta_chunked.f16</c>.</summary>
    public string Name => $"{File}.{AttentionCase.TypeName(ElementType)}";

    private string File => !Chunked ? "delta_recurrent" : Prepare ? "delta_chunk_prepare" : "delta_chunked";

    public IEnumerable<KeyValuePair<string, string>> Defines() => Chunked
        ? Prepare
            ? [new("NA_DTYPE", Str((int)ElementType)), new("NA_DELTA_CHUNK", Str(Chunk)), new("NA_DELTA_FB", Str(FeatureBlock))]
            :
            [
                new("NA_DTYPE", Str((int)ElementType)), new("NA_DELTA_CHUNK", Str(Chunk)), new("NA_DELTA_FB", Str(FeatureBlock)),
                new("NA_DELTA_CB", Str(ColumnBlock)),
            ]
        : [new("NA_DTYPE", Str((int)ElementType)), new("NA_DELTA_THREADS", Str(Threads))];

    public string Source(KernelApi api) => KernelSource.Build(api, $"deltarule/{File}.h", Defines());

    /// <summary>Every delta-rule kernel: recurrent and both chunked ones, per element type.</summary>
    public static IEnumerable<IKernelVariant> AllVariants(KernelApi api)
    {
        _ = api;
        foreach (var type in new[] { ElementType.Float32, ElementType.Float16, ElementType.BFloat16 })
        {
            yield return new DeltaVariant(type);
            yield return new DeltaVariant(type, Chunked: true, Prepare: true);
            yield return new DeltaVariant(type, Chunked: true);
        }
    }

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);
}
