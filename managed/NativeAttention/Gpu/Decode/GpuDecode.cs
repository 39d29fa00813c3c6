// Host side of the KV-cache decode kernels (kernels/decode/), shared by OpenCL and CUDA: the plan, the arguments and
// the launch sequence append -> split-KV attention -> combine.
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

/// <summary>KV-cache decoding on a GPU: in-place append, split-KV attention through the block table, exact combine.</summary>
internal static class GpuDecode
{
    /// <summary>Keys below which a split costs more in merging than it gains in parallelism.</summary>
    private const int MinKeysPerSplit = 256;


    /// <summary>
    /// True when the flash kernel serves a call better than the decode kernel: many query rows per kv head (a prefill
    /// chunk against the cache) read straight from a contiguous cache, with nothing to append or rotate. The decode
    /// kernel reads the cache once per 16 rows; the flash kernel tiles queries (and uses tensor cores on CUDA).
    /// </summary>
    public static bool PrefersFlash(KvCacheProblem problem) =>
        !problem.IsPaged && problem.NewLength == 0 && problem.RotaryDim == 0 && problem.Cache.Splits is null &&
        problem.GroupSize * problem.QueryLength > 4 * DecodeVariant.MaxRows(FlashVariant.Bucket(Math.Max(problem.HeadDim, problem.ValueDim)));

    /// <summary>
    /// True when a validated flash call is decode-shaped and this kernel computes it: at most one work-group's rows per
    /// kv head (<see cref="DecodeVariant.MaxRows"/>: 16, or 8 for head dims above 128), so K and V are read once, and no
    /// dense or low-rank bias (which this kernel lacks; such calls stay on the flash kernel). Never true where
    /// <see cref="PrefersFlash"/> sends a KV-cache call to the flash kernel, so the two never hand a call back and forth.
    /// </summary>
    public static bool Serves(FlashProblem problem) =>
        problem.IsDecodeShaped(DecodeVariant.MaxRows(FlashVariant.Bucket(Math.Max(problem.HeadDim, problem.ValueDim))));

    /// <summary>Runs a validated call whose tensors the context already checked (location and owner, by name).</summary>
    public static void Run(IGpuKernelHost host, KvCacheProblem problem, in TensorView query, in TensorView keyCache, in TensorView valueCache,
        in TensorView output, in TensorView? logSumExp)
    {
        var cache = problem.Cache;
        var options = problem.Options;
        int groupRows = problem.GroupSize * problem.QueryLength;
        var variant = DecodeVariant.For(problem.ElementType, problem.HeadDim, problem.ValueDim, groupRows, host.LocalMemoryBytes);
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
        ReadOnlySpan<int> table = problem.BlockTableEntries;
        ReadOnlySpan<int> metaLengths = inline ? [] : problem.CacheLengths;
        long rows = (long)problem.Batch * problem.QueryHeads * problem.QueryLength;
        var api = host.Api;
        var scratch = host.Scratch;
        var attend = KernelLaunch<DecodeVariant>.For(variant, api);
        lock (scratch.Gate)
        {
            DeviceBuffer? metaBuffer = metaLengths.Length + table.Length > 0 ? scratch.Upload(0, metaLengths, table) : null;
            DeviceBuffer? partials = splits > 1 ? scratch.Take(1, checked(splits * rows * problem.ValueDim)) : null;
            DeviceBuffer? partialLse = splits > 1 ? scratch.Take(2, splits * rows) : null;
            if (problem.NewLength > 0)
            {
                // Grid x holds (b x Hkv, work-group of the head's tokens x features): y would cap B x Hkv at 65535 on CUDA.
                long work = (long)problem.NewLength * Math.Max(problem.HeadDim, problem.ValueDim);
                int perHead = checked((int)((work + DecodeVariant.SmallThreads - 1) / DecodeVariant.SmallThreads));
                var append = KernelLaunch<KvAppendVariant>.For(variant.Append, api);
                host.Launch(append.Name, append.Source, KvAppendVariant.EntryPoint,
                    [Buffer(cache.NewKey), Buffer(cache.NewValue), Buffer(keyCache), Buffer(valueCache), metaBuffer, Buffer(cache.RotaryCos), Buffer(cache.RotarySin)],
                    bytes, checked(perHead * heads), 1, DecodeVariant.SmallThreads);
            }
            host.Launch(attend.Name, attend.Source, DecodeVariant.EntryPoint,
                [Buffer(query), Buffer(keyCache), Buffer(valueCache), Buffer(output), Buffer(logSumExp), metaBuffer, Buffer(cache.RotaryCos),
                 Buffer(cache.RotarySin), Buffer(options.AlibiSlopes), Buffer(options.Sinks), partials, partialLse],
                bytes, checked(rowChunks * splits * heads), 1, DecodeVariant.Threads);   // grid x: (b x Hkv, row chunk, split)
            if (splits > 1)
            {
                long work = rows * problem.ValueDim;
                var combine = KernelLaunch<DecodeCombineVariant>.For(variant.Combine, api);
                host.Launch(combine.Name, combine.Source, DecodeCombineVariant.EntryPoint,
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
            // Key lengths differ per batch element (cache length + appended tokens): Nk stays 0.
            Qkvo = QkvoParams.From(q, k, v, o, lse, problem.Batch, problem.QueryHeads, problem.KeyValueHeads,
                problem.QueryLength, 0, problem.HeadDim, problem.ValueDim),
            HasLse = lse is null ? 0 : 1, Nnew = problem.NewLength,
            PageSize = problem.PageSize, BlocksPerSeq = problem.BlocksPerSequence, RotaryHalf = problem.RotaryDim / 2,
            WindowLeft = options.WindowLeft, WindowRight = options.WindowRight, Causal = options.Causal ? 1 : 0,
            Splits = splits, RowChunks = rowChunks,
            Paged = problem.IsPaged ? 1 : 0, Rotary = problem.RotaryDim == 0 ? 0 : cache.RotaryInterleaved ? 2 : 1,
            HasAlibi = options.AlibiSlopes is null ? 0 : 1, HasSinks = options.Sinks is null ? 0 : 1,
            Sigmoid = options.ScoreFunction == ScoreFunction.Sigmoid ? 1 : 0, HasSoftcap = options.Softcap > 0 ? 1 : 0,
            ScaleLog2 = (float)(problem.Scale * MathConstants.Log2EDouble), SoftcapLog2 = (float)(options.Softcap * MathConstants.Log2EDouble), SigmoidBias = options.SigmoidBias,
        };
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
            p.AlibiOffset = Offset(slopes) + problem.AlibiRowOffset(slopes);   // a varlen sequence's own row of [B, Hq] slopes
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
