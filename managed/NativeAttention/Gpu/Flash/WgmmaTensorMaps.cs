// The TMA tensor maps of the Hopper flash kernel (kernels/flash/flash_fwd_wgmma.h), computed without a device: what
// cuTensorMapEncodeTiled is asked for Q, K and V, and whether TMA can describe the views at all.
namespace NativeAttention.Gpu;

/// <summary>
/// The arguments of one <c>cuTensorMapEncodeTiled</c> call for a 4-D 16-bit tensor <c>[B][H][N][D]</c> (listed innermost
/// first, as the driver takes them): its byte offset from the root allocation, the four sizes, the three outer strides
/// in bytes, and the box the kernel copies (64 features x <see cref="BoxRows"/> tokens x 1 x 1, 128-byte swizzle,
/// out-of-bounds elements zero-filled).
/// </summary>
internal readonly record struct TensorMapSpec(
    int DataType, long ByteOffset, long Features, long Tokens, long Heads, long Batch,
    long TokenStrideBytes, long HeadStrideBytes, long BatchStrideBytes, int BoxFeatures, int BoxRows)
{
    /// <summary>CU_TENSOR_MAP_DATA_TYPE_FLOAT16.</summary>
    public const int DataTypeFloat16 = 6;
    /// <summary>CU_TENSOR_MAP_DATA_TYPE_BFLOAT16.</summary>
    public const int DataTypeBFloat16 = 9;
    /// <summary>CU_TENSOR_MAP_INTERLEAVE_NONE.</summary>
    public const int InterleaveNone = 0;
    /// <summary>CU_TENSOR_MAP_SWIZZLE_128B: the layout wgmma's 128-byte-swizzle descriptors read.</summary>
    public const int Swizzle128B = 3;
    /// <summary>CU_TENSOR_MAP_L2_PROMOTION_L2_256B.</summary>
    public const int L2Promotion256B = 3;
    /// <summary>CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE: out-of-bounds elements read as zeros.</summary>
    public const int OobFillZeros = 0;
    /// <summary>Dimensions of every map.</summary>
    public const int Rank = 4;

    /// <summary>Sizes, innermost first (cuuint64_t globalDim[4]).</summary>
    public ulong[] Dims() => [(ulong)Features, (ulong)Tokens, (ulong)Heads, (ulong)Batch];

    /// <summary>Strides of dims 1..3 in bytes (cuuint64_t globalStrides[3]).</summary>
    public ulong[] Strides() => [(ulong)TokenStrideBytes, (ulong)HeadStrideBytes, (ulong)BatchStrideBytes];

    /// <summary>The box (cuuint32_t boxDim[4]).</summary>
    public uint[] Box() => [(uint)BoxFeatures, (uint)BoxRows, 1, 1];
}

internal static class WgmmaTensorMaps
{
    /// <summary>Features per box: 64 16-bit elements, the 128 bytes a 128-byte swizzle allows in the inner dimension.</summary>
    public const int BoxFeatures = 64;

    /// <summary>
    /// The map of a <c>[batch][heads][tokens][features]</c> view of 16-bit elements with feature stride 1, at
    /// <paramref name="elementOffset"/> from its root allocation, copied in boxes of <paramref name="boxRows"/> tokens.
    /// The stride of a size-1 dimension is never used (its coordinate is always 0), so it is replaced by the dense one:
    /// TMA needs every stride to be a positive multiple of 16 bytes, and a view may give such a dimension any stride.
    /// </summary>
    public static TensorMapSpec For(ElementType type, long elementOffset, int features, int tokens, int heads, int batch,
        long strideN, long strideH, long strideB, int boxRows)
    {
        if (type is not (ElementType.Float16 or ElementType.BFloat16))
            throw new ArgumentException($"type is {type}; TMA maps of the wgmma kernel hold Float16 or BFloat16.", nameof(type));
        const long size = 2;
        long token = tokens > 1 ? strideN * size : features * size;
        long head = heads > 1 ? strideH * size : Math.Max(tokens, 1) * token;
        long batchStride = batch > 1 ? strideB * size : Math.Max(heads, 1) * head;
        return new TensorMapSpec(type == ElementType.Float16 ? TensorMapSpec.DataTypeFloat16 : TensorMapSpec.DataTypeBFloat16,
            elementOffset * size, features, tokens, heads, batch, token, head, batchStride, BoxFeatures, boxRows);
    }

    /// <summary>The Q, K and V maps of a call of <paramref name="variant"/> (a Hopper variant) on the views of <paramref name="t"/>.</summary>
    public static (TensorMapSpec Q, TensorMapSpec K, TensorMapSpec V) For(in FlashVariant variant, in QkvoParams t)
    {
        var (blockM, blockN) = variant.Tiles;
        var type = variant.ElementType;
        return (
            For(type, t.QOffset, t.Dqk, t.Nq, t.HeadsQ, t.Batch, t.QStrideN, t.QStrideH, t.QStrideB, blockM),
            For(type, t.KOffset, t.Dqk, t.Nk, t.HeadsKv, t.Batch, t.KStrideN, t.KStrideH, t.KStrideB, blockN),
            For(type, t.VOffset, t.Dv, t.Nk, t.HeadsKv, t.Batch, t.VStrideN, t.VStrideH, t.VStrideB, blockN));
    }

    /// <summary>
    /// Why TMA cannot describe <paramref name="spec"/> (the global address, relative to a 16-byte aligned root, and every
    /// stride must be a positive multiple of 16 bytes below 2^40; sizes below 2^32; the box at most 256 rows), or null.
    /// </summary>
    public static string? Unsupported(in TensorMapSpec spec, string name)
    {
        if (spec.ByteOffset % 16 != 0) return $"{name} starts {spec.ByteOffset} bytes into its buffer, not a multiple of 16";
        ReadOnlySpan<long> strides = [spec.TokenStrideBytes, spec.HeadStrideBytes, spec.BatchStrideBytes];
        foreach (long stride in strides)
            if (stride <= 0 || stride % 16 != 0 || stride >= 1L << 40)
                return $"{name} has a stride of {stride} bytes; TMA needs positive multiples of 16 below 2^40";
        ReadOnlySpan<long> dims = [spec.Features, spec.Tokens, spec.Heads, spec.Batch];
        foreach (long dim in dims)
            if (dim <= 0 || dim > uint.MaxValue) return $"{name} has a dimension of {dim}; TMA takes 1 to 2^32 - 1";
        if (spec.BoxRows is < 1 or > 256 || spec.BoxFeatures * 2 > 128) return $"{name}'s box {spec.BoxFeatures} x {spec.BoxRows} exceeds TMA's limits";
        return null;
    }
}
