// Host side of the content builder on OpenCL and CUDA (kernels/blocksparse/content.h): pools Q and K per block on the
// device, scores, softmaxes, gates and selects per row on the device, then downloads one flag per (row, key block) and
// lists the kept blocks as the CPU builder does.
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

internal static class GpuContentBuilder
{
    /// <summary>
    /// Builds <see cref="BlockMasks.FromContent(AttentionContext, TensorView, TensorView, ContentMaskOptions)"/>'s mask
    /// from validated device tensors of <paramref name="context"/>. Waits for the device (the flags are read back).
    /// </summary>
    /// <exception cref="NotSupportedException">More rows or elements than one launch indexes.</exception>
    public static ContentMask Build(GpuContext context, in TensorView query, in TensorView key, BlockGrid grid, ContentMaskOptions options, float scale)
    {
        IGpuKernelHost host = context;
        int batch = query.Shape[0], hq = query.Shape[1], hkv = key.Shape[1], d = query.Shape[3];
        int queryBlocks = grid.QueryBlocks, keyBlocks = grid.KeyBlocks;
        long queryItems = (long)batch * hq * queryBlocks, keyItems = (long)batch * hkv * keyBlocks;
        long flagCount = queryItems * keyBlocks;
        if (queryItems * d > int.MaxValue || keyItems * d > int.MaxValue || flagCount > int.MaxValue)
            throw new NotSupportedException($"The GPU content builder handles at most {int.MaxValue} (block, dimension) and (row, key block) pairs; this call has {queryItems} query blocks and {keyItems} key blocks of {d} dimensions, {keyBlocks} key blocks per row.");

        // The seven temporaries live in the context's scratch slots 0-6 (grown geometrically, kept between calls): a
        // repeated build allocates no device memory. The flags are read back before the gate is released.
        var scratch = host.Scratch;
        lock (scratch.Gate)
        {
            var queryMeans = scratch.Take(0, queryItems * d);
            var querySimilar = scratch.Take(1, queryItems);
            var keyMeans = scratch.Take(2, keyItems * d);
            var keySimilar = scratch.Take(3, keyItems);
            var unit = scratch.Take(4, Math.Max(queryItems, keyItems) * d);
            var probabilities = scratch.Take(5, flagCount);
            var kept = scratch.Take(6, flagCount);
            Pool(host, query, grid.QueryBlockSize, queryBlocks, queryMeans, unit, querySimilar);
            Pool(host, key, grid.KeyBlockSize, keyBlocks, keyMeans, unit, keySimilar);
            var p = new ContentSelectParams
            {
                Hq = hq, Hkv = hkv, QueryBlocks = queryBlocks, KeyBlocks = keyBlocks, D = d, Rows = (int)queryItems,
                Nq = grid.QueryLength, Nk = grid.KeyLength, Bq = grid.QueryBlockSize, Bk = grid.KeyBlockSize,
                Causal = options.Causal ? 1 : 0, KeepDiagonal = options.KeepDiagonal ? 1 : 0, SinkBlocks = options.SinkBlocks,
                TopK = options.TopK ?? -1, Gamma = (float)(options.Gamma ?? 0), Scale = scale,
                Threshold = options.SimilarityThreshold is double t ? (float)t : float.NegativeInfinity,
            };
            var select = new ContentVariant(true, ElementType.Float32);
            var api = host.Api;
            host.Launch(select.Name, () => select.Source(api), select.EntryPoint,
                [queryMeans, querySimilar, keyMeans, keySimilar, probabilities, kept],
                MemoryMarshal.AsBytes(new ReadOnlySpan<ContentSelectParams>(in p)), Groups(queryItems), 1, ContentVariant.Threads);
            var flags = new float[flagCount];
            kept.Read<float>(flags);
            return List(MemoryMarshal.Cast<float, int>(flags), batch, hq, grid, options.Causal);
        }
    }

    /// <summary>Block means and self-similarity of one [B, H, N, D] tensor, one work-item per (b, h, block).</summary>
    private static void Pool(IGpuKernelHost host, in TensorView x, int blockSize, int blocks, DeviceBuffer means, DeviceBuffer unit, DeviceBuffer similarity)
    {
        long total = (long)x.Shape[0] * x.Shape[1] * blocks;
        var p = new ContentPoolParams
        {
            Offset = GpuFlash.ElementOffset(x), StrideB = x.Strides[0], StrideH = x.Strides[1], StrideN = x.Strides[2], StrideD = x.Strides[3],
            Heads = x.Shape[1], N = x.Shape[2], D = x.Shape[3], BlockSize = blockSize, Blocks = blocks, Total = (int)total,
        };
        var variant = new ContentVariant(false, x.ElementType);
        var api = host.Api;
        host.Launch(variant.Name, () => variant.Source(api), variant.EntryPoint, [GpuFlash.Buffer(x), means, unit, similarity],
            MemoryMarshal.AsBytes(new ReadOnlySpan<ContentPoolParams>(in p)), Groups(total), 1, ContentVariant.Threads);
    }

    private static int Groups(long items) => (int)((items + ContentVariant.Threads - 1) / ContentVariant.Threads);

    /// <summary>Lists the flagged blocks per row: under causal selection those crossing the diagonal partial, the rest full.</summary>
    internal static ContentMask List(ReadOnlySpan<int> flags, int batch, int hq, BlockGrid grid, bool causal)
    {
        int queryBlocks = grid.QueryBlocks, keyBlocks = grid.KeyBlocks;
        var partial = new int[(long)batch * hq * queryBlocks][];
        var full = new int[partial.Length][];
        long kept = 0, candidates = 0;
        var p = new List<int>();
        var f = new List<int>();
        for (int row = 0; row < partial.Length; row++)
        {
            int qb = row % queryBlocks;
            var (seen, frontier) = causal ? grid.Causal(qb) : (keyBlocks, keyBlocks);
            p.Clear();
            f.Clear();
            var rowFlags = flags.Slice(row * keyBlocks, keyBlocks);
            for (int c = 0; c < seen; c++)
            {
                if (rowFlags[c] == 0) continue;
                (causal && c >= frontier ? p : f).Add(c);
            }
            partial[row] = [.. p];
            full[row] = [.. f];
            kept += p.Count + f.Count;
            candidates += seen;
        }
        var mask = BlockMasks.Build(batch, hq, queryBlocks, grid.QueryBlockSize, grid.KeyBlockSize, partial, full);
        return new ContentMask(mask, kept, candidates);
    }
}
