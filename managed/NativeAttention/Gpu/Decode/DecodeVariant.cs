// The compile-time shape of the KV-cache decode attention kernel (kernels/decode/decode_fwd.h) and the decode family's
// variant set.
using System.Globalization;

namespace NativeAttention.Gpu;

/// <summary>
/// The compile-time shape of the decode kernels: element type, head-dim bucket (one for Q/K and V) and rows per
/// work-group. Paging, rotary embedding and the score options are runtime flags of <see cref="DecodeParams"/>, so a
/// handful of variants covers every call. The append and combine kernels depend on the element type only
/// (<see cref="Append"/>, <see cref="Combine"/>). <see cref="SharedKv"/> stages V through K's buffer
/// (NA_DECODE_KV_SHARED): the variant for devices whose local memory is smaller than the plain one's
/// <see cref="LocalBytes"/> (OpenCL guarantees 32 KB; the plain variant declares up to 44 KB).
/// </summary>
internal readonly record struct DecodeVariant(ElementType ElementType, int HeadDim, int Rows, bool SharedKv = false) : IKernelVariant
{
    /// <summary>Threads per work-group of the attention kernel.</summary>
    public const int Threads = 128;

    /// <summary>Threads per work-group of the append and combine kernels.</summary>
    public const int SmallThreads = 64;

    /// <summary>Keys per shared-memory tile: the tiles of K (padded), V and Q stay within 48 KB (within 32 KB with <see cref="SharedKv"/>).</summary>
    public int BlockN => HeadDim switch { <= 64 => 64, <= 128 => 32, _ => 16 };

    /// <summary>
    /// The local (shared) memory the kernel declares, in bytes, as decode_fwd.h lays it out: the Q tile, K transposed
    /// with padded rows and V (beside it, or in the same buffer with <see cref="SharedKv"/>), the probabilities, two
    /// 64-bit slots per key and six floats or ints per row. OpenClKvCacheTests.DecodeKernels_DeclareTheLocalMemoryTheHostAssumes_AndTheSharedKvOnesFit32K
    /// checks it against what OpenCL reports for every variant.
    /// </summary>
    public int LocalBytes
    {
        get
        {
            int k = HeadDim * (BlockN + 1), v = BlockN * HeadDim;
            int floats = Rows * HeadDim + (SharedKv ? Math.Max(k, v) : k + v) + Rows * BlockN + 6 * Rows;
            return sizeof(float) * floats + 2 * sizeof(long) * BlockN;
        }
    }

    /// <summary>The largest rows-per-work-group bucket for a head-dim bucket (the Q tile lives in shared memory).</summary>
    public static int MaxRows(int headDim) => headDim > 128 ? 8 : 16;

    /// <summary>
    /// The variant of a call: rows per work-group 1 for one query row per kv head (multi-head decoding), 4 for up to 4
    /// (small GQA groups, short multi-query steps), else the largest bucket, so that few rows do not pay for an idle tile.
    /// </summary>
    /// <remarks>
    /// V shares K's buffer (<see cref="SharedKv"/>) only where the plain variant's <see cref="LocalBytes"/> exceed
    /// <paramref name="localMemoryBytes"/>, the device's local memory.
    /// </remarks>
    public static DecodeVariant For(ElementType type, int headDimQk, int valueDim, int groupRows, long localMemoryBytes)
    {
        int headDim = FlashVariant.Bucket(Math.Max(headDimQk, valueDim));
        var plain = new DecodeVariant(type, headDim, groupRows switch { 1 => 1, <= 4 => 4, _ => MaxRows(headDim) });
        return plain.LocalBytes <= localMemoryBytes ? plain : plain with { SharedKv = true };
    }

    /// <summary>The attention kernel's entry point.</summary>
    public const string EntryPoint = "na_decode_fwd";

    string IKernelVariant.EntryPoint => EntryPoint;

    public int DynamicSharedBytes => 0;

    /// <summary>The attention kernel's module name.</summary>
    public string Name => $"decode_fwd.hd{HeadDim}.{FlashVariant.TypeName(ElementType)}.r{Rows}{(SharedKv ? ".kv1" : "")}";

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
        new("NA_DECODE_KV_SHARED", SharedKv ? "1" : "0"),
    ];

    public string Source(KernelApi api) => KernelSource.Build(api, "decode/decode_fwd.h", Defines());

    public string CombineSource(KernelApi api) => Combine.Source(api);

    public string AppendSource(KernelApi api) => Append.Source(api);

    /// <summary>
    /// Every attention variant a call can pick: the plain ones, then on OpenCL the <see cref="SharedKv"/> ones of those
    /// that do not fit OpenCL's guaranteed 32 KB (CUDA's 48 KB of static shared memory holds every plain variant).
    /// </summary>
    public static IEnumerable<DecodeVariant> All(KernelApi api)
    {
        foreach (var type in new[] { ElementType.Float32, ElementType.Float16, ElementType.BFloat16 })
            foreach (int d in FlashVariant.HeadDimBuckets.ToArray())
                foreach (int rows in new[] { 1, 4, MaxRows(d) })
                {
                    var plain = new DecodeVariant(type, d, rows);
                    yield return plain;
                    if (api == KernelApi.OpenCl && plain.LocalBytes > MinimumLocalBytes) yield return plain with { SharedKv = true };
                }
    }

    /// <summary>The local memory every OpenCL device has (CL_DEVICE_LOCAL_MEM_SIZE is at least 32 KB).</summary>
    public const int MinimumLocalBytes = 32 * 1024;

    /// <summary>Every kernel of the decode family: the attention variants, then append and combine per element type.</summary>
    public static IEnumerable<IKernelVariant> AllVariants(KernelApi api)
    {
        foreach (var variant in All(api)) yield return variant;
        foreach (var type in new[] { ElementType.Float32, ElementType.Float16, ElementType.BFloat16 })
        {
            yield return new KvAppendVariant(type);
            yield return new DecodeCombineVariant(type);
        }
    }

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);
}
