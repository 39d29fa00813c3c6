// Host side of the KV-cache decode kernels (kernels/decode/), shared by OpenCL and CUDA: plan, arguments, variants,
// and the launch sequence append -> split-KV attention -> combine.
using System.Globalization;
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

/// <summary>
/// Growable device scratch of one context, in numbered slots of float32 elements (int32 data is stored by bit
/// pattern). A call holds <see cref="Gate"/> from its uploads to its last launch; uploads are ordered after every kernel
/// enqueued before them on the context's in-order queue, so a later call never overwrites what an earlier kernel still
/// reads.
/// </summary>
internal sealed class GpuScratch(Func<ElementType, long, DeviceBuffer> allocate, Action synchronize) : IDisposable
{
    private readonly DeviceBuffer?[] _slots = new DeviceBuffer?[4];
    private readonly int[]?[] _uploaded = new int[]?[4];

    /// <summary>Held by one call from its first upload to its last launch.</summary>
    public Lock Gate { get; } = new();

    /// <summary>Slot <paramref name="slot"/> with room for at least <paramref name="length"/> floats (call under <see cref="Gate"/>).</summary>
    public DeviceBuffer Take(int slot, long length)
    {
        var buffer = _slots[slot];
        if (buffer is not null && buffer.Length >= length) return buffer;
        long size = Math.Max(length, Math.Max(256, 2 * (buffer?.Length ?? 0)));  // geometric growth: rare reallocation
        if (buffer is not null)
        {
            synchronize();   // kernels enqueued earlier may still read the old buffer
            buffer.Dispose();
            _slots[slot] = null;
        }
        _uploaded[slot] = null;
        return _slots[slot] = allocate(ElementType.Float32, size);
    }

    /// <summary>
    /// Slot <paramref name="slot"/> holding <paramref name="data"/> (int32 by bit pattern), uploaded only when it differs
    /// from what this slot last received: a block table that did not change costs no transfer and no synchronisation.
    /// Call under <see cref="Gate"/>.
    /// </summary>
    public DeviceBuffer Upload(int slot, int[] data)
    {
        var buffer = Take(slot, data.Length);
        if (_uploaded[slot] is { } last && last.AsSpan().SequenceEqual(data)) return buffer;
        _uploaded[slot] = null;   // a failed write must not leave a stale record
        buffer.Write<float>(MemoryMarshal.Cast<int, float>(data));
        _uploaded[slot] = data;
        return buffer;
    }

    public void Dispose()
    {
        foreach (var buffer in _slots) buffer?.Dispose();
    }
}

/// <summary>
/// The compile-time shape of the decode kernels: element type, head-dim bucket (one for Q/K and V) and rows per
/// work-group. Paging, rotary embedding and the score options are runtime flags of <see cref="DecodeParams"/>, so a
/// handful of variants covers every call.
/// </summary>
internal readonly record struct DecodeVariant(ElementType ElementType, int HeadDim, int Rows)
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

    private string Type => FlashVariant.TypeName(ElementType);

    /// <summary>The attention kernel's module name.</summary>
    public string Name => $"decode_fwd.hd{HeadDim}.{Type}.r{Rows}";

    /// <summary>The combine kernel's module name.</summary>
    public string CombineName => $"decode_combine.{Type}";

    /// <summary>The append kernel's module name.</summary>
    public string AppendName => $"kv_append.{Type}";

    public string Source(KernelApi api) => KernelSource.Build(api, "decode/decode_fwd.h",
    [
        new("NA_DTYPE", Str((int)ElementType)), new("NA_HEAD_DIM_QK", Str(HeadDim)), new("NA_HEAD_DIM_V", Str(HeadDim)),
        new("NA_DECODE_ROWS", Str(Rows)), new("NA_DECODE_THREADS", Str(Threads)), new("NA_BLOCK_N", Str(BlockN)),
    ]);

    public string CombineSource(KernelApi api) => KernelSource.Build(api, "decode/decode_combine.h",
        [new("NA_DTYPE", Str((int)ElementType)), new("NA_COMBINE_THREADS", Str(SmallThreads))]);

    public string AppendSource(KernelApi api) => KernelSource.Build(api, "decode/kv_append.h",
        [new("NA_DTYPE", Str((int)ElementType)), new("NA_APPEND_THREADS", Str(SmallThreads))]);

    /// <summary>Every variant a call can pick.</summary>
    public static IEnumerable<DecodeVariant> All()
    {
        foreach (var type in new[] { ElementType.Float32, ElementType.Float16, ElementType.BFloat16 })
            foreach (int d in FlashVariant.HeadDimBuckets.ToArray())
                foreach (int rows in new[] { 1, 4, MaxRows(d) })
                    yield return new DecodeVariant(type, d, rows);
    }

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>KV-cache decoding on a GPU: in-place append, split-KV attention through the block table, exact combine.</summary>
internal static class GpuDecode
{
    /// <summary>Keys below which a split costs more in merging than it gains in parallelism.</summary>
    private const int MinKeysPerSplit = 256;

    private const double Log2E = 1.4426950408889634;

    /// <summary>
    /// True when the flash kernel serves a call better than the decode kernel: many query rows per kv head (a prefill
    /// chunk against the cache) read straight from a contiguous cache, with nothing to append or rotate. The decode
    /// kernel reads the cache once per 16 rows; the flash kernel tiles queries (and uses tensor cores on CUDA).
    /// </summary>
    public static bool PrefersFlash(KvCacheProblem problem) =>
        !problem.IsPaged && problem.NewLength == 0 && problem.RotaryDim == 0 && problem.Cache.Splits is null &&
        problem.GroupSize * problem.QueryLength > 4 * DecodeVariant.MaxRows(FlashVariant.Bucket(Math.Max(problem.HeadDim, problem.ValueDim)));

    /// <summary>Runs a validated call whose tensors the context already checked (location and owner, by name).</summary>
    public static void Run(IGpuKernelHost host, KvCacheProblem problem, in TensorView query, in TensorView keyCache, in TensorView valueCache,
        in TensorView output, in TensorView? logSumExp)
    {
        var cache = problem.Cache;
        var options = problem.Options;
        int groupRows = problem.GroupSize * problem.QueryLength;
        var variant = DecodeVariant.For(problem.ElementType, problem.HeadDim, problem.ValueDim, groupRows);
        int rowChunks = (groupRows + variant.Rows - 1) / variant.Rows;
        int heads = checked(problem.Batch * problem.KeyValueHeads);
        int splits = cache.Splits ?? AutomaticSplits(problem, heads * rowChunks, host.ComputeUnits);
        var p = Params(problem, query, keyCache, valueCache, output, logSumExp, splits, rowChunks);
        bool inline = problem.Batch <= DecodeParams.InlineLengths;
        p.LengthsInMeta = inline ? 0 : 1;
        if (inline)
            unsafe
            {
                for (int b = 0; b < problem.Batch; b++) p.Lengths[b] = problem.CacheLength(b);
            }
        var bytes = MemoryMarshal.AsBytes(new ReadOnlySpan<DecodeParams>(in p));

        // Lengths ride in the parameters for up to InlineLengths elements; the block table (and any longer lengths) go
        // through the meta buffer, uploaded only when they changed since the last call.
        int[] table = problem.BlockTableEntries ?? [];
        int[] meta = inline ? table : [.. Enumerable.Range(0, problem.Batch).Select(problem.CacheLength), .. table];
        long rows = (long)problem.Batch * problem.QueryHeads * problem.QueryLength;
        var api = host.Api;
        var scratch = host.Scratch;
        lock (scratch.Gate)
        {
            DeviceBuffer? metaBuffer = meta.Length > 0 ? scratch.Upload(0, meta) : null;
            DeviceBuffer? partials = splits > 1 ? scratch.Take(1, checked(splits * rows * problem.ValueDim)) : null;
            DeviceBuffer? partialLse = splits > 1 ? scratch.Take(2, splits * rows) : null;
            if (problem.NewLength > 0)
            {
                // Grid x holds (b x Hkv, work-group of the head's tokens x features): y would cap B x Hkv at 65535 on CUDA.
                long work = (long)problem.NewLength * Math.Max(problem.HeadDim, problem.ValueDim);
                int perHead = checked((int)((work + DecodeVariant.SmallThreads - 1) / DecodeVariant.SmallThreads));
                host.Launch(variant.AppendName, () => variant.AppendSource(api), "na_kv_append",
                    [Buffer(cache.NewKey), Buffer(cache.NewValue), Buffer(keyCache), Buffer(valueCache), metaBuffer, Buffer(cache.RotaryCos), Buffer(cache.RotarySin)],
                    bytes, checked(perHead * heads), 1, DecodeVariant.SmallThreads);
            }
            host.Launch(variant.Name, () => variant.Source(api), "na_decode_fwd",
                [Buffer(query), Buffer(keyCache), Buffer(valueCache), Buffer(output), Buffer(logSumExp), metaBuffer, Buffer(cache.RotaryCos),
                 Buffer(cache.RotarySin), Buffer(options.AlibiSlopes), Buffer(options.Sinks), partials, partialLse],
                bytes, checked(rowChunks * splits * heads), 1, DecodeVariant.Threads);   // grid x: (b x Hkv, row chunk, split)
            if (splits > 1)
            {
                long work = rows * problem.ValueDim;
                host.Launch(variant.CombineName, () => variant.CombineSource(api), "na_decode_combine",
                    [Buffer(output), Buffer(logSumExp), Buffer(options.Sinks), partials, partialLse],
                    bytes, checked((int)((work + DecodeVariant.SmallThreads - 1) / DecodeVariant.SmallThreads)), 1, DecodeVariant.SmallThreads);
            }
        }
    }

    /// <summary>
    /// The split count when the caller leaves it open: enough work-groups for two per compute unit, never splits shorter
    /// than <see cref="MinKeysPerSplit"/> keys. Depends only on the problem's sizes and the device.
    /// </summary>
    internal static int AutomaticSplits(KvCacheProblem problem, int baseGroups, int computeUnits)
    {
        int longest = 0;
        for (int b = 0; b < problem.Batch; b++) longest = Math.Max(longest, problem.KeyLength(b));
        int wanted = (2 * Math.Max(computeUnits, 1) + baseGroups - 1) / baseGroups;
        return Math.Clamp(Math.Min(wanted, longest / MinKeysPerSplit), 1, KvCacheProblem.MaxSplits);
    }

    private static DeviceBuffer? Buffer(in TensorView? view) => view is { } v ? (DeviceBuffer)v.Storage! : null;

    private static DecodeParams Params(KvCacheProblem problem, in TensorView q, in TensorView k, in TensorView v, in TensorView o, in TensorView? lse,
        int splits, int rowChunks)
    {
        var cache = problem.Cache;
        var options = problem.Options;
        var p = new DecodeParams
        {
            QOffset = Offset(q), KOffset = Offset(k), VOffset = Offset(v), OOffset = Offset(o),
            QStrideB = q.Strides[0], QStrideH = q.Strides[1], QStrideN = q.Strides[2], QStrideD = q.Strides[3],
            KStrideB = k.Strides[0], KStrideH = k.Strides[1], KStrideN = k.Strides[2], KStrideD = k.Strides[3],
            VStrideB = v.Strides[0], VStrideH = v.Strides[1], VStrideN = v.Strides[2], VStrideD = v.Strides[3],
            OStrideB = o.Strides[0], OStrideH = o.Strides[1], OStrideN = o.Strides[2], OStrideD = o.Strides[3],
            Batch = problem.Batch, HeadsQ = problem.QueryHeads, HeadsKv = problem.KeyValueHeads, Group = problem.GroupSize,
            Nq = problem.QueryLength, Nnew = problem.NewLength, Dqk = problem.HeadDim, Dv = problem.ValueDim,
            PageSize = problem.PageSize, BlocksPerSeq = problem.BlocksPerSequence, RotaryHalf = problem.RotaryDim / 2,
            WindowLeft = options.WindowLeft, WindowRight = options.WindowRight, Causal = options.Causal ? 1 : 0,
            Splits = splits, RowChunks = rowChunks,
            Paged = problem.IsPaged ? 1 : 0, Rotary = problem.RotaryDim == 0 ? 0 : cache.RotaryInterleaved ? 2 : 1,
            HasAlibi = options.AlibiSlopes is null ? 0 : 1, HasSinks = options.Sinks is null ? 0 : 1,
            Sigmoid = options.ScoreFunction == ScoreFunction.Sigmoid ? 1 : 0, HasSoftcap = options.Softcap > 0 ? 1 : 0,
            ScaleLog2 = (float)(problem.Scale * Log2E), SoftcapLog2 = (float)(options.Softcap * Log2E), SigmoidBias = options.SigmoidBias,
        };
        if (lse is { } l)
        {
            p.HasLse = 1;
            p.LseOffset = Offset(l);
            (p.LseStrideB, p.LseStrideH, p.LseStrideN) = (l.Strides[0], l.Strides[1], l.Strides[2]);
        }
        if (cache.NewKey is { } nk && cache.NewValue is { } nv)
        {
            p.NkOffset = Offset(nk);
            (p.NkStrideB, p.NkStrideH, p.NkStrideN, p.NkStrideD) = (nk.Strides[0], nk.Strides[1], nk.Strides[2], nk.Strides[3]);
            p.NvOffset = Offset(nv);
            (p.NvStrideB, p.NvStrideH, p.NvStrideN, p.NvStrideD) = (nv.Strides[0], nv.Strides[1], nv.Strides[2], nv.Strides[3]);
        }
        if (cache.RotaryCos is { } cos && cache.RotarySin is { } sin)
        {
            p.CosOffset = Offset(cos);
            (p.CosStrideP, p.CosStrideI) = (cos.Strides[0], cos.Strides[1]);
            p.SinOffset = Offset(sin);
            (p.SinStrideP, p.SinStrideI) = (sin.Strides[0], sin.Strides[1]);
        }
        if (options.AlibiSlopes is { } slopes)
        {
            p.AlibiOffset = Offset(slopes);
            (p.AlibiStrideB, p.AlibiStrideH) = GpuFlash.AlibiStrides(slopes);
        }
        if (options.Sinks is { } sinks)
        {
            p.SinksOffset = Offset(sinks);
            p.SinksStrideH = sinks.Strides[0];
        }
        return p;
    }

    private static long Offset(in TensorView view) => GpuFlash.ElementOffset(view);
}
