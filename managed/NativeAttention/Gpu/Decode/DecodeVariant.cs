// The compile-time shape of the KV-cache decode attention kernel (kernels/decode/decode_fwd.h) and the decode family's
// variant set.
using System.Globalization;

namespace NativeAttention.Gpu;

/// <summary>
/// The compile-time shape of the decode kernels: element type, head-dim bucket (one for Q/K and V) and rows per
/// work-group. Paging, rotary embedding and the score options are runtime flags of <see cref="DecodeParams"/>, so a
/// handful of variants covers every call. The append and combine kernels depend on the element type only
/// (<see cref="Append"/>, <see cref="Combine"/>).
/// </summary>
internal readonly record struct DecodeVariant(ElementType ElementType, int HeadDim, int Rows) : IKernelVariant
{
    /// <summary>Threads per work-group of the attention kernel.</summary>
    public const int Threads = 128;

    /// <summary>Threads per work-group of the append and combine kernels.</summary>
    public const int SmallThreads = 64;

    /// <summary>Keys per shared-memory tile: the tiles of K (padded), V and Q stay within 48 KB.</summary>
    public int BlockN => HeadDim switch { <= 64 => 64, <= 128 => 32, _ => 16 };

    /// <summary>The largest rows-per-work-group bucket for a head-dim bucket (the Q tile lives in shared memory).</summary>
    public static int MaxRows(int headDim) => headDim > 128 ? 8 : 16;

    /// <summary>
    /// The variant of a call: rows per work-group 1 for one query row per kv head (multi-head decoding), 4 for up to 4
    /// (small GQA groups, short multi-query steps), else the largest bucket, so that few rows do not pay for an idle tile.
    /// </summary>
    public static DecodeVariant For(ElementType type, int headDimQk, int valueDim, int groupRows)
    {
        int headDim = FlashVariant.Bucket(Math.Max(headDimQk, valueDim));
        return new DecodeVariant(type, headDim, groupRows switch { 1 => 1, <= 4 => 4, _ => MaxRows(headDim) });
    }

    /// <summary>The attention kernel's entry point.</summary>
    public const string EntryPoint = "na_decode_fwd";

    string IKernelVariant.EntryPoint => EntryPoint;

    public int DynamicSharedBytes => 0;

    /// <summary>The attention kernel's module name.</summary>
    public string Name => $"decode_fwd.hd{HeadDim}.{FlashVariant.TypeName(ElementType)}.r{Rows}";

    /// <summary>The split-KV combine kernel of the same element type.</summary>
    public DecodeCombineVariant Combine => new(ElementType);

    /// <summary>The cache append kernel of the same element type.</summary>
    public KvAppendVariant Append => new(ElementType);

    /// <summary>The combine kernel's module name.</summary>
    public string CombineName => Combine.Name;

    /// <summary>The append kernel's module name.</summary>
    public string AppendName => Append.Name;

    public IEnumerable<KeyValuePair<string, string>> Defines() =>
    [
        new("NA_DTYPE", Str((int)ElementType)), new("NA_HEAD_DIM_QK", Str(HeadDim)), new("NA_HEAD_DIM_V", Str(HeadDim)),
        new("NA_DECODE_ROWS", Str(Rows)), new("NA_DECODE_THREADS", Str(Threads)), new("NA_BLOCK_N", Str(BlockN)),
    ];

    public string Source(KernelApi api) => KernelSource.Build(api, "decode/decode_fwd.h", Defines());

    public string CombineSource(KernelApi api) => Combine.Source(api);

    public string AppendSource(KernelApi api) => Append.Source(api);

    /// <summary>Every attention variant a call can pick.</summary>
    public static IEnumerable<DecodeVariant> All()
    {
        foreach (var type in new[] { ElementType.Float32, ElementType.Float16, ElementType.BFloat16 })
            foreach (int d in FlashVariant.HeadDimBuckets.ToArray())
                foreach (int rows in new[] { 1, 4, MaxRows(d) })
                    yield return new DecodeVariant(type, d, rows);
    }

    /// <summary>Every kernel of the decode family: the attention variants, then append and combine per element type.</summary>
    public static IEnumerable<IKernelVariant> AllVariants(KernelApi api)
    {
        foreach (var variant in All()) yield return variant;
        foreach (var type in new[] { ElementType.Float32, ElementType.Float16, ElementType.BFloat16 })
        {
            yield return new KvAppendVariant(type);
            yield return new DecodeCombineVariant(type);
        }
    }

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);
}
