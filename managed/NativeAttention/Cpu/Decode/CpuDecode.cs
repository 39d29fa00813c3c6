// CPU KV-cache decoding: in-place append (with rotary), then split-KV attention straight from the (paged) cache.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NativeAttention.Cpu;

/// <summary>
/// Effectively computes <see cref="AttentionContext.FlashKvCache"/> in float32 whatever the storage type.
/// </summary>
/// <remarks>
/// Decoding is bound by reading the cache, so the kernel is built to read every cached K and V element once per
/// key/value head: a work item is (batch element, kv head, run of at most <see cref="RowsPerItem"/> query rows, key
/// split), and holds every query head of the kv head's group as rows, so one pass over a key block serves them all
/// (rows reuse the block from L1). Rows with a unit last stride are read in place, 16-bit ones widened in registers
/// as they are loaded; when more than <see cref="DirectWideningRowsHalf"/> (binary16) or
/// <see cref="DirectWideningRowsBFloat16"/> rows share a block (or rows are strided or do not fill whole vectors), the
/// block is widened once into float32 scratch instead.
/// <para>
/// With G query heads per kv head each K/V element feeds G rows, so GQA/MQA decoding does G times the arithmetic per
/// byte and would be compute-bound one dot product at a time. Rows therefore go in quads, which work like a small
/// GEMM: scores as 4 rows x 4 keys register tiles (16 dot products accumulated across the head dim, then reduced by a
/// transposing add tree, <see cref="ISimd{T}.Sum4"/>), the online softmax four rows wide
/// (<see cref="UpdateQuad"/>), and P V as 4 rows x 4 vectors tiles; each K/V vector is loaded (and widened) once per
/// quad. Leftover rows (MHA, or G not a multiple of four) score 1 row x 4 keys tiles
/// (<see cref="Dot1x4{TSimd, T, TFormat}"/>, one reduction per four scores). Rows read in place (quads and leftover
/// rows alike) read a binary16 key or value block that holds no infinity or NaN
/// (<see cref="FiniteHalf.AllFinite"/>) as its values times 2^-112 (<see cref="FiniteHalf.LoadScaledDown{TSimd, T}"/>:
/// three instructions per vector instead of the exact widening's eight), against queries and weights scaled up by
/// 2^112: every product, hence every result bit, is the same. For leftover rows (binary16 MHA, where each element is
/// widened once) this cost 1.25-1.32x less CPU time (2-core VM, Hq = Hkv = 32, D = 128, Nk = 4096 and 16384, both
/// entry points, same buffers, load 20; wip-decode5); checking the V block together with the K block, before the
/// scores, cost 1.19x more than the exact widening instead (the V misses then queue before the scores).
/// </para>
/// <para>
/// Splits of the key range give partial (o, LSE) that are merged exactly through their log-sum-exps
/// (<see cref="LogSumExpMerge"/>, as <see cref="CpuMerge"/> merges). Sigmoid scoring feeds the same online softmax
/// with log2 sigmoid weights (as <see cref="CpuFlash"/> does), so its max and sum hold the row's total weight, and the
/// end scales by that weight instead of dividing by it (partials stay normalised and merge the same way). Items are
/// computed start to finish by one worker in a fixed order, so a given split count gives bit-identical results
/// whatever the timing; the automatic split count depends only on the problem's sizes and the thread count.
/// </para>
/// </remarks>
internal static unsafe class CpuDecode
{
    /// <summary>
    /// Keys per block: each block's scores, softmax update and value accumulation. On the Intel host (2-core Xeon, model
    /// 207), with the next block prefetched through the arithmetic (<see cref="StreamBlocks"/>), 64 against 16 measured
    /// 1.04-1.20x less time for GQA rows (binary16, bfloat16 and float32, Hq = 32, Hkv = 8, D = 128, Nk = 4096-65536,
    /// both entry points, two threads, one process switching the size at run time) and 0.99-1.06x for MHA; 32 gained
    /// 1.02-1.16x and 128 no more than 64. On the Zen 4 host before the spread prefetch, short blocks had won (16 against
    /// 64: 32 vs 24 GB/s float32, 41 vs 34 GB/s bfloat16, one thread, Nk = 16384): they switched between the K and V
    /// streams often, which kept one thread's reads flowing.
    /// </summary>
    private const int KeyBlock = 64;

    /// <summary>Query rows per item; decoding (Nq x group size) fits in one, longer calls are cut into runs of queries.</summary>
    private const int RowsPerItem = 64;

    /// <summary>
    /// Keys ahead that float32 rows are prefetched (every line of each K and V row) when items hold fewer than four rows
    /// (MHA) and the cache is paged or strided; contiguous caches take <see cref="StreamBlocks"/> instead. One core
    /// streaming K and V blocks alternately kept too few misses in flight: prefetching raised one thread from about 24 to
    /// 32 GB/s (Nk = 16384, H = 32, D = 128); 16 to 128 measured the same. 16-bit rows are not prefetched there: widening
    /// keeps the core busy enough, and prefetching cost them 18%.
    /// </summary>
    private const int PrefetchDistance = 32;

    /// <summary>
    /// Blocks ahead that rows read in place from a contiguous head-major cache are prefetched (<c>prefetcht1</c>, every
    /// line of the K and V blocks into L2), for every type and row shape. The prefetches are spread through the arithmetic that
    /// reads the current block (<see cref="CacheLines.PrefetchL2Chunk"/>): while a K row chunk is scored, the same chunk of the next
    /// block is asked for, and likewise for V, so each load that retires frees room for one more miss.
    /// <para>
    /// On the Intel host (2-core Xeon, model 207, KVM) a software prefetch that misses holds one of a core's few fill
    /// buffers until its line arrives, and the L2 streamer stops at every 4 KB page (a block of 16 binary16 rows of
    /// D = 128 is one page). A burst of every line of the next block at the top of each block (the scheme before this
    /// one, wip-decintel) stalled on those buffers: 40% of the kernel's samples sat on its two <c>prefetcht0</c> loops, so
    /// memory and arithmetic took turns. Spread through the arithmetic, Hq = 32, Hkv = 8/32, D = 128, 2 threads, Nk =
    /// 4096-65536, both entry points, one process alternating the schemes per call on the same buffers: binary16 and
    /// bfloat16 1.19-1.41x less time (24 of 24 cells), float32 MHA 1.03-1.11x, float32 GQA (before: per-key prefetches,
    /// <see cref="QuadPrefetchBytes"/>) 1.02-1.40x. A synthetic two-stream reader with the kernel's arithmetic per block
    /// measured the same order: no prefetch, burst, spread 11.4, 13.2, 14.2 GB/s on 2 threads; L2 prefetches
    /// (<c>prefetcht1/2</c>) of later blocks, added to these, did not gain. Into L2 (<c>prefetcht1</c>) rather than L1
    /// measured 0.99-1.12x less time (MHA 1.08-1.12x at Nk 16384/65536, GQA 1.02-1.05x; same harness, 10 rounds);
    /// every other line only cost 1.03-1.25x more, <c>prefetchnta</c> 1.15-3x (bench/results/cpu.md, wip-dec10).
    /// </para>
    /// </summary>
    private const int StreamBlocks = 1;

    /// <summary>
    /// Bytes of K row ahead that rows of every type are prefetched when items hold row quads (GQA/MQA) and the cache is
    /// paged or strided (contiguous caches take <see cref="StreamBlocks"/>), where each key costs several times the compute. A full distance of 32 keys kept so many prefetches in flight that they stalled
    /// the core (a third of its samples sat on them): on one thread, Hq = 32, Hkv = 8, Nk = 16384, D = 128, 2/4/8 KB
    /// ahead measured float32 22/23/19 GB/s and bfloat16 22/24/24 (32 keys: 18 and 24; no prefetch: 16 and 14.7).
    /// </summary>
    private const int QuadPrefetchBytes = 4096;

    /// <summary>
    /// <see cref="QuadPrefetchBytes"/> for 16-bit rows staged as float32 (more than
    /// <see cref="DirectWideningRowsHalf"/>/<see cref="DirectWideningRowsBFloat16"/> rows): two keys at D = 128. Measured
    /// when every 16-bit quad took it (2-core VM, Hq = 32, Hkv = 8, Nk = 16384, D = 128, 2 threads, median CPU-time ratio
    /// against 512 B in one process: bfloat16 4096 B 1.21-1.23x, 2048 B 1.11x, no prefetch 0.98x; binary16 4096 B 1.15x,
    /// 1024 B 1.04x).
    /// <para>
    /// Quads on 16-bit rows read in place from a contiguous cache take the block prefetch of <see cref="StreamBlocks"/>
    /// instead (on the Zen 4 host they took none: bfloat16 blocks were read in one burst first, a load per line,
    /// binary16 blocks by their finiteness check, <see cref="FiniteHalf.AllFinite"/>). With the per-key L1 (512 B ahead) and L2 (6 KB ahead) prefetches, about half
    /// of <c>RunItem</c>'s samples sat on the prefetch instructions. 2-core VM, Hq = 32, Hkv = 8, D = 128, 2 threads, load
    /// 15-37, median per-round CPU-time ratio, Nk = 4096-65536, both entry points: the previous build against this one in
    /// one process, binary16 1.12-1.28x, bfloat16 1.02-1.23x; on the same buffers, the prefetches against none binary16
    /// 1.07-1.30x, bfloat16 0.98-1.15x (the burst gives bfloat16 the rest). float32 rows cost 1.5-1.75x without theirs,
    /// and a burst over their K or V blocks (128 lines) 1.00-1.25x more, so they keep them; reading the V block in the
    /// same burst as K cost 16-bit rows 1.1-1.4x.
    /// Staged 16-bit rows keep the prefetches (not measured without them).
    /// </para>
    /// </summary>
    private const int QuadPrefetchBytes16 = 512;

    /// <summary>
    /// Bytes of K row ahead that quads also prefetch into L2 (<c>prefetcht1</c>), on top of the L1 prefetch of
    /// <see cref="QuadPrefetchBytes"/>/<see cref="QuadPrefetchBytes16"/>. 2-core VM, Hq = 32, Hkv = 8, D = 128, 2 threads:
    /// this build against main's, in alternating processes, float32 1.46-1.81x CPU time (Nk = 4096-65536; the score and
    /// P V kernels' samples fell from 13% to 5% of the process, <c>RunItem</c>'s stayed at 8%), 16-bit rows 0.93-1.03x
    /// (within the noise). But inside this build, switching the L2 prefetch off at run time measured the same as on
    /// (0.96-1.00x, every type), and a tighter per-key loop (pointers and prefetches set up in a method of its own) 0.84x:
    /// the gain follows the shape of the per-key loop, not the L2 requests themselves (not understood; see
    /// bench/results/cpu.md). 8 KB ahead measured at or above 16, 32 and 64 KB in the first build that had it.
    /// </summary>
    private const int QuadL2PrefetchBytes = 8192;

    /// <summary>
    /// <see cref="QuadL2PrefetchBytes"/> for 16-bit rows (staged ones since wip-decode4, see <see cref="QuadPrefetchBytes16"/>):
    /// 24 keys at D = 128. Distances that are multiples of 4 KB (the set
    /// period of a 32 KB 8-way L1) measured worst, which suggests the prefetched lines evicting the block being read from
    /// the same L1 sets (not proven): 2-core VM, Hq = 32, Hkv = 8, D = 128, 2 threads, one process, the same buffers,
    /// median per-round ratio of 8 KB's CPU time to the variant's (load 30-35, Nk = 4096-65536): binary16 4 KB
    /// 0.99-1.09x, 12 KB 0.97-1.01x, but 5/6/7 KB 1.12-1.30x, 1.10-1.20x, 1.12-1.20x, and 10 KB (2 KB off the period)
    /// 1.03-1.11x; bfloat16 6 KB 1.04-1.18x (both entry points). float32 rows keep 8 KB: 5 and 6 KB cost them 0.72-0.93x,
    /// and no other float32 distance won consistently (bench/results/cpu.md).
    /// </summary>
    private const int QuadL2PrefetchBytes16 = 6144;

    /// <summary>
    /// Most rows per item for which 16-bit K/V rows are widened on every read instead of staged once per block as float32
    /// (rows in quads share each widened vector, so up to four rows widen once). bfloat16 widens in two cheap
    /// instructions, so two quads still beat staging (one thread, Hq = 32, Hkv = 4, Nk = 16384: 16.3 vs 13.3 GB/s);
    /// binary16 takes about eight, and staging wins from five rows (11.4 vs 10.5 GB/s; MQA 4.3 vs 2.8).
    /// </summary>
    private const int DirectWideningRowsHalf = 4, DirectWideningRowsBFloat16 = 8;

    /// <summary>Keys below which splitting a range further costs more in merging than it gains in balance.</summary>
    private const int MinKeysPerSplit = 256;

    /// <summary>
    /// The most rows per kv head (<c>GroupSize x Nq</c>: a GQA group's query heads folded into rows) for which
    /// <see cref="AttentionContext.Flash"/> runs on this kernel instead of <see cref="CpuFlash"/> (see <see cref="Serves"/>).
    /// </summary>
    public const int FlashRows = 16;

    /// <summary>
    /// True when a validated flash call is decode-shaped and this kernel computes it: at most <see cref="FlashRows"/>
    /// rows per kv head, and no dense or low-rank bias (which this kernel lacks; such calls stay on <see cref="CpuFlash"/>).
    /// </summary>
    public static bool Serves(FlashProblem problem) => problem.IsDecodeShaped(FlashRows);

    /// <summary>
    /// The thread count the automatic split count assumes for a <see cref="AttentionContext.Flash"/> call handed to this
    /// kernel (<see cref="KvCacheProblem.IsFlashCall"/>), whatever the context's: flash results must not depend on the
    /// thread count. 4 gives 4 x 4 = 16 items or more: a single kv head 16 splits, 8 kv heads 2 splits, 32 kv heads 1 split.
    /// It was 16 (8 splits at 8 kv heads); B 1, Hq 32/8, D 128, 2 threads, alternating CLI processes: 2 splits instead of
    /// 8 took 0.89-0.95x the time at Nk 4096-16384 in fp16/bf16, 0.97-0.99x at Nk 65536, fp32 unchanged; 1 split, as
    /// FlashKvCache on 2 threads, gained little more (bench/results/cpu.md, wip-decode9).
    /// </summary>
    internal const int FlashCallThreads = 4;

    /// <summary>
    /// Runs a validated problem on <paramref name="threads"/> workers with the widest vector width the JIT accelerates,
    /// or with <paramref name="vectorBits"/> when given (512, 256, 128, or 0 for scalar).
    /// </summary>
    /// <exception cref="NotSupportedException"><paramref name="vectorBits"/> names a width the JIT does not accelerate here.</exception>
    public static void Run(KvCacheProblem problem, in TensorView query, in TensorView keyCache, in TensorView valueCache, in TensorView output, in TensorView? logSumExp, int threads,
        int? vectorBits = null)
    {
        int bits = vectorBits ?? CpuFeatures.VectorBits;
        if (bits is not (512 or 256 or 128 or 0) || (bits == 512 && !Vector512.IsHardwareAccelerated) || (bits == 256 && !Vector256.IsHardwareAccelerated) ||
            (bits == 128 && !Vector128.IsHardwareAccelerated))
            throw new NotSupportedException($"{bits}-bit vectors are not accelerated here (widest: {CpuFeatures.VectorBits}); use 512, 256, 128 or 0 (scalar) up to that width.");
        var cache = problem.Cache;
        var options = problem.Options;
        using var qPin = query.Storage!.Pin();
        using var kPin = keyCache.Storage!.Pin();
        using var vPin = valueCache.Storage!.Pin();
        using var oPin = output.Storage!.Pin();
        using var lPin = logSumExp is { } l ? l.Storage!.Pin() : default;
        using var nkPin = cache.NewKey is { } nk ? nk.Storage!.Pin() : default;
        using var nvPin = cache.NewValue is { } nv ? nv.Storage!.Pin() : default;
        using var cosPin = cache.RotaryCos is { } c ? c.Storage!.Pin() : default;
        using var sinPin = cache.RotarySin is { } s ? s.Storage!.Pin() : default;
        using var slopePin = options.AlibiSlopes is { } a ? a.Storage!.Pin() : default;
        using var sinkPin = options.Sinks is { } k ? k.Storage!.Pin() : default;

        var plan = Plan.Rent();
        float* partials = null;
        try
        {
            plan.Reset(problem, threads, query, keyCache, valueCache, output, logSumExp);
            plan.Q = (byte*)qPin.Pointer;
            plan.K = (byte*)kPin.Pointer;
            plan.V = (byte*)vPin.Pointer;
            plan.O = (byte*)oPin.Pointer;
            plan.Lse = (float*)lPin.Pointer;
            plan.NewK = (byte*)nkPin.Pointer;
            plan.NewV = (byte*)nvPin.Pointer;
            plan.Cos = (float*)cosPin.Pointer;
            plan.Sin = (float*)sinPin.Pointer;
            plan.Slopes = (float*)slopePin.Pointer;
            plan.Sinks = (float*)sinkPin.Pointer;
            if (problem.NewLength > 0) Append(plan, threads);

            if (plan.Splits > 1)
                partials = (float*)NativeMemory.AlignedAlloc((nuint)(plan.PartialFloats * sizeof(float)), 64);
            plan.Partials = partials;
            switch (bits)
            {
                case 512: Attend<Simd512, Vector512<float>>(plan, threads); break;
                case 256: Attend<Simd256, Vector256<float>>(plan, threads); break;
                case 128: Attend<Simd128, Vector128<float>>(plan, threads); break;
                default: Attend<SimdScalar, float>(plan, threads); break;
            }
            if (plan.Splits > 1) Merge(plan, threads);
        }
        finally
        {
            NativeMemory.AlignedFree(partials);
            plan.Return();
        }
    }

    /// <summary>The split count when the caller leaves it open: enough items to keep every thread busy, never tiny splits.</summary>
    private static int AutomaticSplits(KvCacheProblem p, int baseItems, int threads)
    {
        int longest = 0;
        for (int b = 0; b < p.Batch; b++) longest = Math.Max(longest, p.KeyLength(b));
        int wanted = (4 * threads + baseItems - 1) / baseItems;
        return Math.Clamp(Math.Min(wanted, longest / MinKeysPerSplit), 1, KvCacheProblem.MaxSplits);
    }

    /// <summary>Writes the new tokens into the cache (new keys rotated first), one (batch element, kv head) per work item.</summary>
    private static void Append(Plan p, int threads)
    {
        int items = p.Batch * p.KeyValueHeads;
        long elements = (long)items * p.NewLength * (p.HeadDim + p.ValueDim);
        p.NextItem = 0;
        CpuWorkers.Run(p, elements < (1 << 16) ? 1 : threads, items, AppendWork);
    }

    private static void AppendWork(Plan p)
    {
        float* row = CpuScratch.Get(Math.Max(p.HeadDim, p.ValueDim));
        int items = p.Batch * p.KeyValueHeads;
        for (int item = Interlocked.Increment(ref p.NextItem) - 1; item < items; item = Interlocked.Increment(ref p.NextItem) - 1)
        {
            int b = item / p.KeyValueHeads, h = item % p.KeyValueHeads;
            for (int t = 0; t < p.NewLength; t++)
            {
                int position = p.Problem.CacheLength(b) + t;
                CpuPacking.ReadRow(row, p.NewK + p.ElementSize * (p.NewKeyOffset + b * p.NewKeyStrides[0] + h * p.NewKeyStrides[1] + t * p.NewKeyStrides[2]),
                    p.NewKeyStrides[3], p.HeadDim, p.ElementType);
                if (p.RotaryHalf > 0) p.Rotate(row, position);
                CpuPacking.WriteRow(p.KeyRow(b, h, position), p.KeyStrides[3], row, 1f, p.HeadDim, p.ElementType);
                CpuPacking.ReadRow(row, p.NewV + p.ElementSize * (p.NewValueOffset + b * p.NewValueStrides[0] + h * p.NewValueStrides[1] + t * p.NewValueStrides[2]),
                    p.NewValueStrides[3], p.ValueDim, p.ElementType);
                CpuPacking.WriteRow(p.ValueRow(b, h, position), p.ValueStrides[3], row, 1f, p.ValueDim, p.ElementType);
            }
        }
    }

    private static void Attend<TSimd, T>(Plan p, int threads) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        p.SetWidth(TSimd.Count);
        p.NextItem = 0;
        CpuWorkers.Run(p, threads, p.Items, Work<TSimd, T>);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Work<TSimd, T>(Plan p) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        float* scratch = CpuScratch.Get(p.ScratchFloats);
        var s = new Scratch(scratch, p);
        // Stage padding (columns D.. of every row) must read as zero; rows only ever write their first D columns.
        new Span<float>(s.KeyStage, KeyBlock * p.KeyStride).Clear();
        new Span<float>(s.ValueStage, KeyBlock * p.ValueStride).Clear();
        for (int item = Interlocked.Increment(ref p.NextItem) - 1; item < p.Items; item = Interlocked.Increment(ref p.NextItem) - 1)
        {
            if (!p.DirectRows) RunItem<TSimd, T, Float32Rows>(p, item, s);
            else if (p.ElementType == ElementType.Float32) RunItem<TSimd, T, Float32Rows>(p, item, s);
            else if (p.ElementType == ElementType.Float16) RunItem<TSimd, T, Float16Rows>(p, item, s);
            else RunItem<TSimd, T, BFloat16Rows>(p, item, s);
        }
    }

    /// <summary>
    /// One item: the rows of one run of queries of one kv head's group, against one split of the keys. K/V rows are
    /// read as <typeparamref name="TFormat"/>: in place from the cache, or from the float32 stage.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RunItem<TSimd, T, TFormat>(Plan p, int item, Scratch s)
        where TSimd : struct, ISimd<T> where T : unmanaged where TFormat : struct, IRowFormat
    {
        int split = item % p.Splits;
        int rest = item / p.Splits;
        int chunk = rest % p.RowChunks;
        rest /= p.RowChunks;
        int kvHead = rest % p.KeyValueHeads, b = rest / p.KeyValueHeads;
        int groupRows = p.GroupSize * p.QueryLength;
        int r0 = chunk * RowsPerItem, rows = Math.Min(RowsPerItem, groupRows - r0);
        int keyLength = p.Problem.KeyLength(b);
        int dqk = p.HeadDim, dv = p.ValueDim, kStride = p.KeyStride, vStride = p.ValueStride;
        var o = p.Problem.Options;

        // Rows are ordered query-major (row = i * group + g), so a run of rows is a run of queries.
        int low = int.MaxValue, high = int.MinValue;
        bool scaleQueries = p.DirectRows && p.ElementType == ElementType.Float16, finiteQueries = true;
        // Quads score 512-bit tiles over even and odd elements (PairLoads) when rows split into 32s.
        bool paired = typeof(T) == typeof(Vector512<float>) && PairLoads.Supported && kStride % 32 == 0 && rows >= 4;
        for (int r = 0; r < rows; r++)
        {
            int row = r0 + r, i = row / p.GroupSize, head = kvHead * p.GroupSize + row % p.GroupSize;
            var (start, end) = FlashProblem.VisibleKeys(i, p.QueryLength, keyLength, o.Causal, o.WindowLeft, o.WindowRight);
            s.Start[r] = start;
            s.End[r] = end;
            s.Max[r] = float.NegativeInfinity;
            s.Sum[r] = 0;
            s.Slope[r] = p.Slopes == null ? 0f : p.Slope(b, head) * MathConstants.Log2E;
            new Span<float>(s.Accumulator + (long)r * vStride, vStride).Clear();
            if (start < end)
            {
                low = Math.Min(low, start);
                high = Math.Max(high, end);
            }
            float* qRow = s.Queries + (long)r * kStride;
            CpuPacking.ReadRow(s.Row, p.Q + p.ElementSize * (p.QueryOffset + b * p.QueryStrides[0] + head * p.QueryStrides[1] + i * p.QueryStrides[2]),
                p.QueryStrides[3], dqk, p.ElementType);
            if (p.RotaryHalf > 0) p.Rotate(s.Row, p.Problem.QueryPosition(b, i));
            Scale(qRow, s.Row, p.QueryScale, dqk);
            for (int d = dqk; d < kStride; d++) qRow[d] = 0;
            if (scaleQueries) finiteQueries &= Scale(s.ScaledQueries + (long)r * kStride, qRow, MathConstants.TwoTo112, kStride);
            if (paired && r < rows / 4 * 4)
            {
                PairLoads.Deinterleave(s.PairedQueries + (long)r * kStride, qRow, kStride);
                if (scaleQueries) PairLoads.Deinterleave(s.PairedScaledQueries + (long)r * kStride, s.ScaledQueries + (long)r * kStride, kStride);
            }
        }
        float* scaledQueries = scaleQueries && finiteQueries ? s.ScaledQueries : null;
        int splitStart = 0, splitEnd = 0;
        if (low < high)
        {
            splitStart = low + (int)((long)(high - low) * split / p.Splits);
            splitEnd = low + (int)((long)(high - low) * (split + 1) / p.Splits);
        }

        float softcap = p.Softcap, sigmoidBias = p.SigmoidBiasLog2;
        bool sigmoid = p.Sigmoid;
        bool modified = softcap > 0 || p.Slopes != null || sigmoid;
        int[]? table = p.BlockTable;
        bool quads = rows >= 4;
        int quadBytes = p.ElementSize == sizeof(float) ? QuadPrefetchBytes : QuadPrefetchBytes16;
        // Rows read in place from rows that follow each other (a contiguous cache, head-major) prefetch the next block
        // through the arithmetic (see StreamBlocks); paged or strided rows prefetch per key.
        bool consecutive = p.DirectRows && p.KeySlotBytes == p.KeyRowBytes && p.ValueSlotBytes == p.ValueRowBytes;
        bool stream = Sse.IsSupported && consecutive && table == null;
        nint keyAhead = stream ? (nint)StreamBlocks * KeyBlock * p.KeyRowBytes : 0, valueAhead = stream ? (nint)StreamBlocks * KeyBlock * p.ValueRowBytes : 0;
        bool prefetch = Sse.IsSupported && !stream && (quads || p.DirectRows && p.ElementType == ElementType.Float32);
        // Binary16 blocks read in place can be checked for infinity and NaN as they are scored (see ScoreQuad) when the
        // value row of every key of a block lies the same distance from its key row: equal K and V rows (and, through a
        // block table, equal K and V blocks). Rows must also follow each other (a contiguous or paged cache): with
        // token-major rows (a key's heads adjacent) the check inside the tiles measured 0.87-0.92x for binary16 MHA at
        // Nk 16384, against 1.13-1.17x through pages of 16 tokens.
        bool fusedCheck = scaledQueries != null && consecutive && p.KeySlotBytes == p.ValueSlotBytes && (table == null || p.KeyBlockBytes == p.ValueBlockBytes) &&
            kStride % 32 == 0 && typeof(T) == typeof(Vector512<float>);
        // Subnormal binary16 values read scaled down are denormal floats, and on Intel cores each FMA with a denormal
        // operand takes a microcode assist of about 150 cycles: at input magnitude 0.05 (about one half in 1000
        // subnormal) binary16 GQA decode ran 2.4x slower, at 0.001 41x (bench/results/cpu.md). The subnormals of each
        // block's first keys are counted, a decaying sum over the last blocks (SubnormalWatch) moves the item's later
        // blocks to the exact widening when they are frequent (it sees no float denormal, Simd512.HalfToSingle) and back
        // when they are rare. Both reads give the same products, so the results do not depend on the choice.
        var watch = new SubnormalWatch(dqk + dv, quads);
        int ahead = quads ? Math.Clamp(quadBytes / p.KeyRowBytes, 2, PrefetchDistance) : PrefetchDistance;
        int far = Math.Max((p.ElementSize == sizeof(float) ? QuadL2PrefetchBytes : QuadL2PrefetchBytes16) / p.KeyRowBytes, ahead + 1);
        byte* keyHead = p.K + p.ElementSize * (p.KeyOffset + kvHead * p.KeyStrides[1]);
        byte* valueHead = p.V + p.ElementSize * (p.ValueOffset + kvHead * p.ValueStrides[1]);
        for (int k0 = splitStart; k0 < splitEnd; k0 += KeyBlock)
        {
            int keys = Math.Min(KeyBlock, splitEnd - k0);
            // The first quad (or, without quads, the first row) prefetches the next block while it reads this one, when
            // the next block is whole: the offsets from each row of this block to the same row there, or 0 for none.
            bool nextWhole = stream && k0 + (StreamBlocks + 1) * KeyBlock <= splitEnd;
            nint keyPrefetch = nextWhole ? keyAhead : 0, valuePrefetch = nextWhole ? valueAhead : 0;
            if (p.DirectRows && table == null && !prefetch)
            {
                // Rows read in place from an unpaged cache without per-key prefetches: a pointer walk (the general loop
                // below costs about as many instructions per key as a key's dot products for one row).
                byte* keyRow = keyHead + b * p.KeyBlockBytes + (long)k0 * p.KeySlotBytes;
                byte* valueRow = valueHead + b * p.ValueBlockBytes + (long)k0 * p.ValueSlotBytes;
                nint keySlot = (nint)p.KeySlotBytes, valueSlot = (nint)p.ValueSlotBytes;
                for (int j = 0; j < keys; j++, keyRow += keySlot, valueRow += valueSlot)
                {
                    s.KeyRows[j] = keyRow;
                    s.ValueRows[j] = valueRow;
                }
            }
            else for (int j = 0; j < keys; j++)
            {
                int position = k0 + j, block = b, slot = position;
                if (table != null)
                {
                    block = table[b * p.BlocksPerSequence + position / p.PageSize];
                    slot = position % p.PageSize;
                }
                byte* keyRow = keyHead + block * p.KeyBlockBytes + slot * p.KeySlotBytes;
                byte* valueRow = valueHead + block * p.ValueBlockBytes + slot * p.ValueSlotBytes;
                if (prefetch && position + ahead < splitEnd)
                {
                    if (table == null || (position + ahead) / p.PageSize == position / p.PageSize)
                    {
                        CacheLines.PrefetchL1(keyRow + ahead * p.KeySlotBytes, p.KeyRowBytes);
                        CacheLines.PrefetchL1(valueRow + ahead * p.ValueSlotBytes, p.ValueRowBytes);
                    }
                    else if (quads)
                    {
                        // Quads look the key ahead up in the block table, so paged caches are prefetched across blocks too.
                        int next = table[b * p.BlocksPerSequence + (position + ahead) / p.PageSize], nextSlot = (position + ahead) % p.PageSize;
                        CacheLines.PrefetchL1(keyHead + next * p.KeyBlockBytes + nextSlot * p.KeySlotBytes, p.KeyRowBytes);
                        CacheLines.PrefetchL1(valueHead + next * p.ValueBlockBytes + nextSlot * p.ValueSlotBytes, p.ValueRowBytes);
                    }
                }
                if (prefetch && quads && position + far < splitEnd)
                {
                    // Quads also ask L2 for the key further ahead (see QuadL2PrefetchBytes), across pages too.
                    if (table == null || (position + far) / p.PageSize == position / p.PageSize)
                    {
                        CacheLines.PrefetchL2(keyRow + far * p.KeySlotBytes, p.KeyRowBytes);
                        CacheLines.PrefetchL2(valueRow + far * p.ValueSlotBytes, p.ValueRowBytes);
                    }
                    else
                    {
                        int next = table[b * p.BlocksPerSequence + (position + far) / p.PageSize], nextSlot = (position + far) % p.PageSize;
                        CacheLines.PrefetchL2(keyHead + next * p.KeyBlockBytes + nextSlot * p.KeySlotBytes, p.KeyRowBytes);
                        CacheLines.PrefetchL2(valueHead + next * p.ValueBlockBytes + nextSlot * p.ValueSlotBytes, p.ValueRowBytes);
                    }
                }
                if (p.DirectRows)
                {
                    s.KeyRows[j] = keyRow;
                    s.ValueRows[j] = valueRow;
                }
                else
                {
                    float* kDest = s.KeyStage + (long)j * kStride, vDest = s.ValueStage + (long)j * vStride;
                    CpuPacking.ReadRow(kDest, keyRow, p.KeyStrides[3], dqk, p.ElementType);
                    CpuPacking.ReadRow(vDest, valueRow, p.ValueStrides[3], dv, p.ElementType);
                    s.KeyRows[j] = (byte*)kDest;
                    s.ValueRows[j] = (byte*)vDest;
                }
            }

            float* blockScaled = scaledQueries;
            if (scaledQueries != null && !watch.Observe(FiniteHalf.CountSubnormals(s.KeyRows, Math.Min(keys, watch.SampleKeys), dqk) +
                FiniteHalf.CountSubnormals(s.ValueRows, Math.Min(keys, watch.SampleKeys), dv)))
                blockScaled = null;

            // Rows in whole groups of four (the query heads of a GQA group) score each key together: one load (and
            // widening) of a key vector serves four rows. Their scores land in place; the loop below masks and scales.
            int quadRows = rows / 4 * 4;
            // Binary16 quads check the block's K and V rows as the first quad scores it; a block proven finite is read
            // scaled down by every quad and by the values' accumulation without further checks.
            bool blockFinite = false;
            nint valueOffset = fusedCheck && blockScaled != null ? (nint)(s.ValueRows[0] - s.KeyRows[0]) : 0;
            for (int r = 0; r < quadRows; r += 4)
            {
                int lowKey = int.MaxValue, highKey = int.MinValue;
                for (int x = r; x < r + 4; x++)
                {
                    lowKey = Math.Min(lowKey, s.Start[x]);
                    highKey = Math.Max(highKey, s.End[x]);
                }
                int from = Math.Max(lowKey - k0, 0), to = Math.Min(highKey - k0, keys);
                // The check proves the whole block only when the quad scores all of its keys, in the paired tiles (which fold).
                blockFinite |= ScoreQuad<TSimd, T, TFormat>(s.Queries + (long)r * kStride, blockScaled == null ? null : blockScaled + (long)r * kStride,
                    paired ? s.PairedQueries + (long)r * kStride : null, paired && blockScaled != null ? s.PairedScaledQueries + (long)r * kStride : null, kStride,
                    s.KeyRows, from, to, s.Scores + (long)r * KeyBlock, r == 0 ? keyPrefetch : 0, from == 0 && to == keys && paired ? valueOffset : 0, blockFinite);
            }
            // Leftover binary16 rows read a K block without infinity or NaN scaled down (as quads do, see the remarks):
            // proven by the quads, or by the first leftover row as it scores the whole block (which also checks V), or
            // checked here; otherwise the V block is checked after the scores, just before it is read.
            bool keysScaled = false, valuesProven = blockFinite;
            bool rowCheck = valueOffset != 0 && !blockFinite && quadRows < rows && s.Start[quadRows] <= k0 && s.End[quadRows] >= k0 + keys;
            if (typeof(TFormat) == typeof(Float16Rows) && blockScaled != null && quadRows < rows)
                keysScaled = blockFinite || !rowCheck && FiniteHalf.AllFinite(s.KeyRows, keys, kStride);

            for (int r = 0; r < rows; r++)
            {
                int start = s.Start[r], end = s.End[r];
                if (k0 >= end || k0 + keys <= start)
                {
                    // A quad row without keys in this block joins its quad's update with masked scores.
                    if (r < quadRows) new Span<float>(s.Scores + (long)r * KeyBlock, KeyBlock).Fill(float.NegativeInfinity);
                    else s.Active[r] = 0;
                    continue;
                }
                bool scored = r < quadRows;
                nint rowPrefetch = r == 0 ? keyPrefetch : 0;
                float* scores = s.Scores + (long)r * KeyBlock;
                float* q = s.Queries + (long)r * kStride;
                // Only keys inside the row's range get a dot product; the rest of the block is masked.
                int first = Math.Max(start - k0, 0), last = Math.Min(end - k0, keys);
                for (int j = 0; j < first; j++) scores[j] = float.NegativeInfinity;
                for (int j = last; j < KeyBlock; j++) scores[j] = float.NegativeInfinity;
                // Rows of a quad have their scores in place; the others are scored here, four keys at a time.
                if (!scored)
                {
                    if (keysScaled) ScoreRow<TSimd, T, ScaledFloat16Rows>(blockScaled + (long)r * kStride, kStride, s.KeyRows, first, last, scores, rowPrefetch);
                    else if (rowCheck && r == quadRows &&
                        ScoreRow<TSimd, T, ScaledFloat16Rows>(blockScaled + (long)r * kStride, kStride, s.KeyRows, 0, keys, scores, rowPrefetch, valueOffset))
                        keysScaled = valuesProven = true;
                    else ScoreRow<TSimd, T, TFormat>(q, kStride, s.KeyRows, first, last, scores, rowPrefetch);
                }
                if (modified)
                {
                    long position = (long)((r0 + r) / p.GroupSize) + keyLength - p.QueryLength;
                    for (int j = first; j < last; j++)
                    {
                        float score = scores[j];
                        if (softcap > 0) score = softcap * MathF.Tanh(score / softcap) * MathConstants.Log2E;
                        score -= s.Slope[r] * Math.Abs(position - (k0 + j));
                        scores[j] = score;
                    }
                    if (sigmoid)
                    {
                        // Sigmoid scoring runs the online softmax on log2 sigmoid weights (as the flash kernel does):
                        // its max and sum then hold the row's total weight as 2^max x sum, and the end skips the
                        // normalisation. Masked keys stay -inf.
                        var bias = TSimd.Broadcast(sigmoidBias);
                        for (int j = 0; j < KeyBlock; j += TSimd.Count)
                            TSimd.Store(scores + j, CpuSimdMath.Log2Sigmoid<TSimd, T>(TSimd.Add(TSimd.Load(scores + j), bias)));
                    }
                }
                if (!scored) s.Active[r] = UpdateRow<TSimd, T>(scores, s.Max + r, s.Sum + r, s.Alpha + r) ? 1 : 0;
            }

            for (int r = 0; r < quadRows; r += 4)
                if (UpdateQuad<TSimd, T>(s.Scores + (long)r * KeyBlock, s.Max + r, s.Sum + r, s.Alpha + r))
                    AccumulateValues4<TSimd, T, TFormat>(s.Accumulator + (long)r * vStride, vStride, s.Alpha + r, s.Scores + (long)r * KeyBlock, s.ValueRows, keys,
                        r == 0 ? valuePrefetch : 0, blockFinite, blockScaled != null);
            bool valuesScaled = keysScaled && (valuesProven || FiniteHalf.AllFinite(s.ValueRows, keys, vStride));
            for (int r = quadRows; r < rows; r++)
            {
                if (s.Active[r] == 0) continue;
                nint rowPrefetch = r == 0 ? valuePrefetch : 0;
                float* weights = s.Scores + (long)r * KeyBlock;
                if (valuesScaled)
                {
                    // Weights (at most 1) scaled up by 2^112 in place, exactly: the scores are not read again.
                    for (int j = 0; j < KeyBlock; j += TSimd.Count)
                        TSimd.Store(weights + j, TSimd.Multiply(TSimd.Load(weights + j), TSimd.Broadcast(MathConstants.TwoTo112)));
                    AccumulateValues<TSimd, T, ScaledFloat16Rows>(s.Accumulator + (long)r * vStride, vStride, s.Alpha[r], weights, s.ValueRows, keys, rowPrefetch);
                }
                else AccumulateValues<TSimd, T, TFormat>(s.Accumulator + (long)r * vStride, vStride, s.Alpha[r], weights, s.ValueRows, keys, rowPrefetch);
            }
        }

        for (int r = 0; r < rows; r++)
        {
            int row = r0 + r, i = row / p.GroupSize, head = kvHead * p.GroupSize + row % p.GroupSize;
            float sum = s.Sum[r];
            bool empty = sum == 0;
            // Natural-log LSE of this split's keys; -inf when it saw none.
            float lse = empty ? float.NegativeInfinity : (s.Max[r] + MathF.Log2(sum)) * MathConstants.Ln2;
            float* acc = s.Accumulator + (long)r * vStride;
            // Partials are always normalised (o / total weight, with LSE the log of the total weight); a sigmoid row
            // written directly is the unnormalised sum, 2^max x acc.
            float factor = empty ? 0f : 1f / sum;
            if (p.Splits > 1)
            {
                long partial = p.PartialRow(b, kvHead, split, row);
                Scale(p.Partials + partial * dv, acc, factor, dv);
                p.Partials[p.PartialLseOffset + partial] = lse;
            }
            else p.WriteRow(b, head, i, acc, empty ? 0f : sigmoid ? float.Exp2(s.Max[r]) : factor, lse);
        }
    }

    /// <summary>
    /// Whether an item's binary16 blocks may be read scaled down, from the subnormals counted in each block's first
    /// <see cref="SampleKeys"/> keys (K and V rows): a sum that decays by 1/8 per block (so about the last eight
    /// blocks) in sixteenths, with hysteresis, capped so that a run of subnormal-heavy blocks is forgotten within
    /// about 16 blocks.
    /// </summary>
    internal struct SubnormalWatch
    {
        private readonly int _enter;
        private int _sum;
        private bool _exact;

        /// <summary>
        /// A watch over keys of <paramref name="values"/> K and V values each. The scaled reads lose to the exact widening
        /// above about 5 subnormals in 10^4 values for quads (the assist hits each of a widened vector's four FMAs, and
        /// the widening is shared by four rows) and about 2.5 in 10^3 for single rows (measured, bench/results/cpu.md):
        /// the item moves at that rate, and back at half of it. Quads count four keys per block, single rows two (the
        /// count costs single rows more: 1.03x at Nk 16384 with four keys).
        /// </summary>
        public SubnormalWatch(int values, bool quads)
        {
            SampleKeys = quads ? 4 : 2;
            _enter = Math.Max(1, (quads ? 1 : 5) * SampleKeys * values / 16);
        }

        /// <summary>Keys per block whose K and V rows are counted.</summary>
        public int SampleKeys { get; }

        /// <summary>Whether the item's blocks are now read with the exact widening.</summary>
        public bool Exact => _exact;

        /// <summary>Adds a block's count; true when the block may be read scaled down.</summary>
        public bool Observe(int subnormals)
        {
            _sum = Math.Min(_sum + 16 * subnormals - (_sum >> 3), 4 * _enter);
            if (_exact ? 2 * _sum < _enter : _sum >= _enter) _exact = !_exact;
            return !_exact;
        }
    }

    /// <summary>
    /// The online softmax step of one row over one block: <paramref name="scores"/> (<see cref="KeyBlock"/> of them,
    /// log2 units, -inf where masked or past the block's keys) become weights <c>2^(s - max)</c>, and the row's running
    /// max, sum and rescale factor are updated. Returns false, changing nothing, when the block holds no visible key.
    /// Not inlined: in its own frame the polynomial's constants stay in registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static bool UpdateRow<TSimd, T>(float* scores, float* max, float* sum, float* alpha) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        var top = TSimd.Load(scores);
        for (int j = TSimd.Count; j < KeyBlock; j += TSimd.Count) top = TSimd.Max(top, TSimd.Load(scores + j));
        float blockMax = TSimd.MaxAcross(top);
        if (float.IsNegativeInfinity(blockMax)) return false;
        float previous = *max, next = MathF.Max(previous, blockMax);
        float rescale = Exp2(previous - next);
        var negativeMax = TSimd.Broadcast(-next);
        T total = TSimd.Zero;
        for (int j = 0; j < KeyBlock; j += TSimd.Count)
        {
            var weight = TSimd.Exp2NonPositive(TSimd.Add(TSimd.Load(scores + j), negativeMax));
            TSimd.Store(scores + j, weight);
            total = TSimd.Add(total, weight);
        }
        *max = next;
        *sum = *sum * rescale + TSimd.Sum(total);
        *alpha = rescale;
        return true;
    }

    /// <summary>
    /// <see cref="UpdateRow{TSimd, T}"/> for four rows (<see cref="KeyBlock"/> apart) at once: their maxima, rescale
    /// factors and sums are computed four lanes wide, and the four exponentials of the block are independent. A row
    /// without visible keys in the block gets weights 0 and rescale factor 1, and keeps its max and sum. Returns false
    /// when no row has a visible key.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static bool UpdateQuad<TSimd, T>(float* scores, float* max, float* sum, float* alpha) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        float* s1 = scores + KeyBlock, s2 = scores + 2 * KeyBlock, s3 = scores + 3 * KeyBlock;
        T top0 = TSimd.Load(scores), top1 = TSimd.Load(s1), top2 = TSimd.Load(s2), top3 = TSimd.Load(s3);
        for (int j = TSimd.Count; j < KeyBlock; j += TSimd.Count)
        {
            top0 = TSimd.Max(top0, TSimd.Load(scores + j));
            top1 = TSimd.Max(top1, TSimd.Load(s1 + j));
            top2 = TSimd.Max(top2, TSimd.Load(s2 + j));
            top3 = TSimd.Max(top3, TSimd.Load(s3 + j));
        }
        var blockMax = TSimd.Max4(top0, top1, top2, top3);
        var visible = ~Vector128.Equals(blockMax, Vector128.Create(float.NegativeInfinity));
        if (visible == Vector128<float>.Zero) return false;
        var previous = Vector128.Load(max);
        var next = Vector128.Max(previous, blockMax);
        // Rows without keys here: rescale 1, and a finite shift so that their -inf scores give weight 0, not NaN.
        var rescale = Vector128.ConditionalSelect(visible, Exp2(previous - next), Vector128<float>.One);
        var shift = Vector128.ConditionalSelect(visible, next, Vector128<float>.Zero);
        T n0 = TSimd.Broadcast(-shift.GetElement(0)), n1 = TSimd.Broadcast(-shift.GetElement(1));
        T n2 = TSimd.Broadcast(-shift.GetElement(2)), n3 = TSimd.Broadcast(-shift.GetElement(3));
        T t0 = TSimd.Zero, t1 = TSimd.Zero, t2 = TSimd.Zero, t3 = TSimd.Zero;
        for (int j = 0; j < KeyBlock; j += TSimd.Count)
        {
            T w0 = TSimd.Exp2NonPositive(TSimd.Add(TSimd.Load(scores + j), n0));
            T w1 = TSimd.Exp2NonPositive(TSimd.Add(TSimd.Load(s1 + j), n1));
            T w2 = TSimd.Exp2NonPositive(TSimd.Add(TSimd.Load(s2 + j), n2));
            T w3 = TSimd.Exp2NonPositive(TSimd.Add(TSimd.Load(s3 + j), n3));
            TSimd.Store(scores + j, w0);
            TSimd.Store(s1 + j, w1);
            TSimd.Store(s2 + j, w2);
            TSimd.Store(s3 + j, w3);
            t0 = TSimd.Add(t0, w0);
            t1 = TSimd.Add(t1, w1);
            t2 = TSimd.Add(t2, w2);
            t3 = TSimd.Add(t3, w3);
        }
        Vector128.ConditionalSelect(visible, next, previous).Store(max);
        (Vector128.Load(sum) * rescale + TSimd.Sum4(t0, t1, t2, t3)).Store(sum);
        rescale.Store(alpha);
        return true;
    }

    /// <summary>2^x for four x &lt;= 0 (<see cref="Exp2(float)"/> four lanes wide).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Exp2(Vector128<float> x) =>
        Vector128.IsHardwareAccelerated ? Simd128.Exp2NonPositive(x)
            : Vector128.Create(SimdScalar.Exp2NonPositive(x.GetElement(0)), SimdScalar.Exp2NonPositive(x.GetElement(1)),
                SimdScalar.Exp2NonPositive(x.GetElement(2)), SimdScalar.Exp2NonPositive(x.GetElement(3)));

    /// <summary>
    /// 2^x for x &lt;= 0 through the kernels' polynomial: <see cref="float.Exp2"/> is a libm call, which cost more than
    /// a block's whole softmax.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Exp2(float x) =>
        Vector128.IsHardwareAccelerated ? Simd128.Exp2NonPositive(Vector128.Create(x)).ToScalar() : SimdScalar.Exp2NonPositive(x);

    /// <summary>
    /// <c>q . k</c> over <paramref name="length"/> floats (a multiple of the vector width), two accumulators deep. With
    /// <paramref name="prefetch"/> not 0, each step also prefetches the bytes it reads at that offset (see <see cref="StreamBlocks"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot<TSimd, T, TFormat>(float* q, byte* k, int length, nint prefetch)
        where TSimd : struct, ISimd<T> where T : unmanaged where TFormat : struct, IRowFormat
    {
        T a0 = TSimd.Zero, a1 = TSimd.Zero;
        int w = TSimd.Count, d = 0;
        for (; d + 2 * w <= length; d += 2 * w)
        {
            if (prefetch != 0) CacheLines.PrefetchL2Chunk(RowLoads.Element<TFormat>(k, d) + prefetch, RowLoads.Bytes<TFormat>(2 * w));
            a0 = TSimd.MultiplyAdd(TSimd.Load(q + d), RowLoads.Load<TSimd, T, TFormat>(k, d), a0);
            a1 = TSimd.MultiplyAdd(TSimd.Load(q + d + w), RowLoads.Load<TSimd, T, TFormat>(k, d + w), a1);
        }
        if (d < length)
        {
            if (prefetch != 0) CacheLines.PrefetchL2Chunk(RowLoads.Element<TFormat>(k, d) + prefetch, RowLoads.Bytes<TFormat>(w));
            a0 = TSimd.MultiplyAdd(TSimd.Load(q + d), RowLoads.Load<TSimd, T, TFormat>(k, d), a0);
        }
        return TSimd.Sum(TSimd.Add(a0, a1));
    }

    /// <summary>
    /// The dot products of four query rows (<paramref name="stride"/> apart) with one key row, written to
    /// <c>scores[0]</c>, <c>scores[KeyBlock]</c>, ...: each key vector is loaded and widened once for the four.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Dot4<TSimd, T, TFormat>(float* q, int stride, byte* k, float* scores)
        where TSimd : struct, ISimd<T> where T : unmanaged where TFormat : struct, IRowFormat
    {
        T a0 = TSimd.Zero, a1 = TSimd.Zero, a2 = TSimd.Zero, a3 = TSimd.Zero;
        for (int d = 0; d < stride; d += TSimd.Count)
        {
            var key = RowLoads.Load<TSimd, T, TFormat>(k, d);
            a0 = TSimd.MultiplyAdd(TSimd.Load(q + d), key, a0);
            a1 = TSimd.MultiplyAdd(TSimd.Load(q + stride + d), key, a1);
            a2 = TSimd.MultiplyAdd(TSimd.Load(q + 2 * stride + d), key, a2);
            a3 = TSimd.MultiplyAdd(TSimd.Load(q + 3 * stride + d), key, a3);
        }
        scores[0] = TSimd.Sum(a0);
        scores[KeyBlock] = TSimd.Sum(a1);
        scores[2 * KeyBlock] = TSimd.Sum(a2);
        scores[3 * KeyBlock] = TSimd.Sum(a3);
    }

    /// <summary>
    /// Scores keys <paramref name="from"/>..<paramref name="to"/> of a block for four query rows (<paramref name="stride"/>
    /// apart), into <c>scores[j]</c>, <c>scores[KeyBlock + j]</c>, ...: four keys at a time, then one at a time. Not
    /// inlined (nor tiered): the caller keeps its registers, and the first calls already run optimised code.
    /// <paramref name="scaledQ"/> holds the same rows times 2^112 (binary16 rows, all finite), or is null.
    /// With <paramref name="prefetch"/> not 0, the rows that many bytes further on are prefetched as these are read
    /// (<see cref="StreamBlocks"/>). Binary16 keys are read scaled down when the block is known to hold no infinity or
    /// NaN (<paramref name="blockFinite"/>), when it proves so as it is scored (<paramref name="valueOffset"/> not 0: the
    /// value rows lie that many bytes from the key rows and are checked too), or when a check of the keys says so.
    /// Returns true when the block's K and V rows are known to be finite.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static bool ScoreQuad<TSimd, T, TFormat>(float* q, float* scaledQ, float* pairedQ, float* pairedScaledQ, int stride, byte** keyRows, int from, int to, float* scores, nint prefetch,
        nint valueOffset = 0, bool blockFinite = false)
        where TSimd : struct, ISimd<T> where T : unmanaged where TFormat : struct, IRowFormat
    {
        // Binary16 keys of a block without infinity or NaN are read scaled down by 2^112 against queries scaled up by as
        // much (FiniteHalf): the same products, three instructions per key vector instead of eight.
        if (typeof(TFormat) == typeof(Float16Rows) && scaledQ != null)
        {
            if (blockFinite)
            {
                ScoreQuad<TSimd, T, ScaledFloat16Rows>(scaledQ, null, pairedScaledQ, null, stride, keyRows, from, to, scores, prefetch);
                return true;
            }
            if (valueOffset != 0 && typeof(T) == typeof(Vector512<float>) && stride % 32 == 0)
            {
                // The K rows and the V rows valueOffset bytes from them checked as the keys are scored (Dot4x4Paired folds
                // them among its FMAs, where a check pass of its own before the scores cost as much as 1.1x the block:
                // it waits on the rows' first reads); a block holding infinity or NaN is rescored exactly below, and
                // AccumulateValues4 then checks its values itself.
                if (ScoreQuad<TSimd, T, ScaledFloat16Rows>(scaledQ, null, pairedScaledQ, null, stride, keyRows, from, to, scores, prefetch, valueOffset)) return true;
            }
            else if (FiniteHalf.AllFinite(keyRows + from, to - from, stride))
            {
                ScoreQuad<TSimd, T, ScaledFloat16Rows>(scaledQ, null, pairedScaledQ, null, stride, keyRows, from, to, scores, prefetch);
                return false;
            }
        }
        // Rows read scaled down with a value offset are checked as they are read (Checks); the result says whether they
        // proved finite.
        var top = Vector512<ushort>.Zero;
        int j = from;
        for (; j + 4 <= to; j += 4)
        {
            if (pairedQ != null) top = Dot4x4Paired<TFormat>(pairedQ, stride, keyRows + j, scores + j, prefetch, valueOffset, top);
            else Dot4x4<TSimd, T, TFormat>(q, stride, keyRows + j, scores + j, prefetch);
        }
        for (; j < to; j++)
        {
            Dot4<TSimd, T, TFormat>(q, stride, keyRows[j], scores + j);
            if (Checks<T, TFormat>(valueOffset)) top = FoldRows(top, keyRows[j], valueOffset, stride);
        }
        return Checks<T, TFormat>(valueOffset) && FiniteHalf.Finite(top);
    }

    /// <summary><paramref name="top"/> with a key row and its value row (<paramref name="valueOffset"/> bytes on) folded in.</summary>
    private static Vector512<ushort> FoldRows(Vector512<ushort> top, byte* key, nint valueOffset, int length)
    {
        for (int d = 0; d < length; d += 32)
        {
            top = FiniteHalf.Fold(top, (ushort*)key + d);
            top = FiniteHalf.Fold(top, (ushort*)(key + valueOffset) + d);
        }
        return top;
    }

    /// <summary>
    /// Scores keys <paramref name="from"/>..<paramref name="to"/> of a block for one query row, into <c>scores[j]</c>:
    /// four keys at a time (<see cref="Dot1x4{TSimd, T, TFormat}"/>), then one at a time. Not inlined, like
    /// <see cref="ScoreQuad{TSimd, T, TFormat}"/>. With <paramref name="prefetch"/> not 0 the rows are consecutive in
    /// memory and the rows that many bytes on are prefetched as these are read (<see cref="StreamBlocks"/>). Binary16
    /// rows read scaled down with <paramref name="valueOffset"/> not 0 are checked as they are read, with the value rows
    /// that many bytes from them (<see cref="Checks{T, TFormat}"/>): true when they proved free of infinity and NaN
    /// (otherwise the scores are not to be used); false when not checked.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static bool ScoreRow<TSimd, T, TFormat>(float* q, int stride, byte** keyRows, int from, int to, float* scores, nint prefetch, nint valueOffset = 0)
        where TSimd : struct, ISimd<T> where T : unmanaged where TFormat : struct, IRowFormat
    {
        var top = Vector512<ushort>.Zero;
        int j = from;
        for (; j + 4 <= to; j += 4)
            top = Dot1x4<TSimd, T, TFormat>(q, stride, keyRows + j, scores + j, prefetch, valueOffset, top);
        for (; j < to; j++)
        {
            scores[j] = Dot<TSimd, T, TFormat>(q, keyRows[j], stride, prefetch);
            if (Checks<T, TFormat>(valueOffset)) top = FoldRows(top, keyRows[j], valueOffset, stride);
        }
        return Checks<T, TFormat>(valueOffset) && FiniteHalf.Finite(top);
    }

    /// <summary>
    /// The dot products of one query row with four key rows, into <c>scores[0..3]</c>: each query vector is loaded once
    /// for the four, two accumulators per key keep both FMA pipes busy, and the four sums are reduced together by
    /// <see cref="ISimd{T}.Sum4"/> (one horizontal reduction per key cost as much as the key's products). With
    /// <paramref name="prefetch"/> not 0 the four rows are consecutive in memory, and each step prefetches its share
    /// of them that many bytes on, as <see cref="Dot4x4{TSimd, T, TFormat}"/> does, and folds the rows into
    /// <paramref name="top"/> when it checks, as <see cref="Dot4x4Paired"/> does.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ushort> Dot1x4<TSimd, T, TFormat>(float* q, int length, byte** keys, float* scores, nint prefetch, nint valueOffset = 0,
        Vector512<ushort> top = default)
        where TSimd : struct, ISimd<T> where T : unmanaged where TFormat : struct, IRowFormat
    {
        byte* k0 = keys[0], k1 = keys[1], k2 = keys[2], k3 = keys[3];
        nint step = RowLoads.Bytes<TFormat>(TSimd.Count);
        int w = TSimd.Count, d = 0;
        T a0 = TSimd.Zero, a1 = TSimd.Zero, a2 = TSimd.Zero, a3 = TSimd.Zero;
        T b0 = TSimd.Zero, b1 = TSimd.Zero, b2 = TSimd.Zero, b3 = TSimd.Zero;
        byte* next = prefetch == 0 ? null : k0 + prefetch;
        bool check = Checks<T, TFormat>(valueOffset);
        for (; d + 2 * w <= length; d += 2 * w)
        {
            if (next != null)
            {
                CacheLines.PrefetchL2Chunk(next, 8 * step);
                next += 8 * step;
            }
            if (check) top = FoldQuad(top, RowLoads.Element<TFormat>(k0, d), RowLoads.Element<TFormat>(k1, d), RowLoads.Element<TFormat>(k2, d),
                RowLoads.Element<TFormat>(k3, d), valueOffset);
            T y = TSimd.Load(q + d), z = TSimd.Load(q + d + w);
            a0 = TSimd.MultiplyAdd(y, RowLoads.Load<TSimd, T, TFormat>(k0, d), a0);
            a1 = TSimd.MultiplyAdd(y, RowLoads.Load<TSimd, T, TFormat>(k1, d), a1);
            a2 = TSimd.MultiplyAdd(y, RowLoads.Load<TSimd, T, TFormat>(k2, d), a2);
            a3 = TSimd.MultiplyAdd(y, RowLoads.Load<TSimd, T, TFormat>(k3, d), a3);
            b0 = TSimd.MultiplyAdd(z, RowLoads.Load<TSimd, T, TFormat>(k0, d + w), b0);
            b1 = TSimd.MultiplyAdd(z, RowLoads.Load<TSimd, T, TFormat>(k1, d + w), b1);
            b2 = TSimd.MultiplyAdd(z, RowLoads.Load<TSimd, T, TFormat>(k2, d + w), b2);
            b3 = TSimd.MultiplyAdd(z, RowLoads.Load<TSimd, T, TFormat>(k3, d + w), b3);
        }
        if (d < length)
        {
            if (next != null) CacheLines.PrefetchL2Chunk(next, 4 * step);
            T y = TSimd.Load(q + d);
            a0 = TSimd.MultiplyAdd(y, RowLoads.Load<TSimd, T, TFormat>(k0, d), a0);
            a1 = TSimd.MultiplyAdd(y, RowLoads.Load<TSimd, T, TFormat>(k1, d), a1);
            a2 = TSimd.MultiplyAdd(y, RowLoads.Load<TSimd, T, TFormat>(k2, d), a2);
            a3 = TSimd.MultiplyAdd(y, RowLoads.Load<TSimd, T, TFormat>(k3, d), a3);
        }
        TSimd.Sum4(TSimd.Add(a0, b0), TSimd.Add(a1, b1), TSimd.Add(a2, b2), TSimd.Add(a3, b3)).Store(scores);
        return top;
    }

    /// <summary>
    /// Whether a tile folds its rows into a finiteness check as it reads them: binary16 rows read scaled down by 512-bit
    /// code, whose steps cover 32 values (one Dot4x4Paired or Dot1x4 step), given the value rows' offset.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Checks<T, TFormat>(nint valueOffset) where TFormat : struct, IRowFormat =>
        typeof(TFormat) == typeof(ScaledFloat16Rows) && typeof(T) == typeof(Vector512<float>) && valueOffset != 0;

    /// <summary>
    /// <paramref name="top"/> with 32 values at each of four key row addresses and at the value rows
    /// <paramref name="valueOffset"/> bytes after them folded in (<see cref="FiniteHalf.Fold"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ushort> FoldQuad(Vector512<ushort> top, byte* k0, byte* k1, byte* k2, byte* k3, nint valueOffset)
    {
        top = FiniteHalf.Fold(top, (ushort*)k0);
        top = FiniteHalf.Fold(top, (ushort*)k1);
        top = FiniteHalf.Fold(top, (ushort*)k2);
        top = FiniteHalf.Fold(top, (ushort*)k3);
        top = FiniteHalf.Fold(top, (ushort*)(k0 + valueOffset));
        top = FiniteHalf.Fold(top, (ushort*)(k1 + valueOffset));
        top = FiniteHalf.Fold(top, (ushort*)(k2 + valueOffset));
        return FiniteHalf.Fold(top, (ushort*)(k3 + valueOffset));
    }

    /// <summary>
    /// <see cref="Dot4x4{TSimd, T, TFormat}"/> over 512-bit vectors of even and odd elements (<see cref="PairLoads"/>):
    /// the queries come deinterleaved (<see cref="PairLoads.Deinterleave"/>), and each chunk of 32 adds its even
    /// products, then its odd ones, into a tile of 16 accumulators. Binary16 rows read scaled down take two
    /// instructions per widened vector here (three in order), bfloat16 rows one (two); every format sums the same
    /// products in the same order, so binary16 and bfloat16 scores still equal float32 ones on the same values bit for
    /// bit. With a value offset, each chunk's four key rows and their value rows are folded into the finiteness check.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ushort> Dot4x4Paired<TFormat>(float* q, int stride, byte** keys, float* scores, nint prefetch, nint valueOffset, Vector512<ushort> top)
        where TFormat : struct, IRowFormat
    {
        byte* k0 = keys[0], k1 = keys[1], k2 = keys[2], k3 = keys[3];
        float* q0 = q, q2 = q + 2 * stride, end = q + stride;
        nint s = stride, step = RowLoads.Bytes<TFormat>(32);
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
        Vector512<float> a30 = default, a31 = default, a32 = default, a33 = default;
        byte* next = prefetch == 0 ? null : k0 + prefetch;
        bool check = Checks<Vector512<float>, TFormat>(valueOffset);
        for (; q0 < end; q0 += 32, q2 += 32, k0 += step, k1 += step, k2 += step, k3 += step)
        {
            if (next != null)
            {
                CacheLines.PrefetchL2Chunk(next, 4 * step);
                next += 4 * step;
            }
            if (check) top = FoldQuad(top, k0, k1, k2, k3, valueOffset);
            // Even elements first, then the odd ones (each load again from L1): 16 accumulators, four keys' vectors and a
            // query vector stay in registers.
            var e0 = PairLoads.Even<TFormat>(k0);
            var e1 = PairLoads.Even<TFormat>(k1);
            var e2 = PairLoads.Even<TFormat>(k2);
            var e3 = PairLoads.Even<TFormat>(k3);
            Fma4<Simd512, Vector512<float>>(Vector512.Load(q0), e0, e1, e2, e3, ref a00, ref a01, ref a02, ref a03);
            Fma4<Simd512, Vector512<float>>(Vector512.Load(q0 + s), e0, e1, e2, e3, ref a10, ref a11, ref a12, ref a13);
            Fma4<Simd512, Vector512<float>>(Vector512.Load(q2), e0, e1, e2, e3, ref a20, ref a21, ref a22, ref a23);
            Fma4<Simd512, Vector512<float>>(Vector512.Load(q2 + s), e0, e1, e2, e3, ref a30, ref a31, ref a32, ref a33);
            var o0 = PairLoads.Odd<TFormat>(k0);
            var o1 = PairLoads.Odd<TFormat>(k1);
            var o2 = PairLoads.Odd<TFormat>(k2);
            var o3 = PairLoads.Odd<TFormat>(k3);
            Fma4<Simd512, Vector512<float>>(Vector512.Load(q0 + 16), o0, o1, o2, o3, ref a00, ref a01, ref a02, ref a03);
            Fma4<Simd512, Vector512<float>>(Vector512.Load(q0 + s + 16), o0, o1, o2, o3, ref a10, ref a11, ref a12, ref a13);
            Fma4<Simd512, Vector512<float>>(Vector512.Load(q2 + 16), o0, o1, o2, o3, ref a20, ref a21, ref a22, ref a23);
            Fma4<Simd512, Vector512<float>>(Vector512.Load(q2 + s + 16), o0, o1, o2, o3, ref a30, ref a31, ref a32, ref a33);
        }
        Simd512.Sum4(a00, a01, a02, a03).Store(scores);
        Simd512.Sum4(a10, a11, a12, a13).Store(scores + KeyBlock);
        Simd512.Sum4(a20, a21, a22, a23).Store(scores + 2 * KeyBlock);
        Simd512.Sum4(a30, a31, a32, a33).Store(scores + 3 * KeyBlock);
        return top;
    }

    /// <summary>
    /// The 16 dot products of four query rows (<paramref name="stride"/> apart) with four key rows, written to
    /// <c>scores[0..3]</c>, <c>scores[KeyBlock..KeyBlock + 3]</c>, ...: a 4 x 4 register tile, so each step loads four
    /// key and four query vectors for 16 FMAs, and each key vector is widened once for the four rows. The 16 sums
    /// are reduced four at a time by <see cref="ISimd{T}.Sum4"/>. With <paramref name="prefetch"/> not 0 the four rows
    /// are consecutive in memory (a contiguous cache), and each step prefetches a quarter of the four rows that many
    /// bytes on: the next block's same rows (<see cref="StreamBlocks"/>). Rows that split into 32s take
    /// <see cref="Dot4x4Paired"/> instead on 512-bit code.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Dot4x4<TSimd, T, TFormat>(float* q, int stride, byte** keys, float* scores, nint prefetch)
        where TSimd : struct, ISimd<T> where T : unmanaged where TFormat : struct, IRowFormat
    {
        // Pointers step through the rows (no index register), and rows 1 and 3 are addressed from rows 0 and 2 plus
        // the stride: few enough registers that nothing spills in the loop.
        byte* k0 = keys[0], k1 = keys[1], k2 = keys[2], k3 = keys[3];
        float* q0 = q, q2 = q + 2 * stride, end = q + stride;
        nint s = stride, step = RowLoads.Bytes<TFormat>(TSimd.Count);
        T a00 = TSimd.Zero, a01 = TSimd.Zero, a02 = TSimd.Zero, a03 = TSimd.Zero;
        T a10 = TSimd.Zero, a11 = TSimd.Zero, a12 = TSimd.Zero, a13 = TSimd.Zero;
        T a20 = TSimd.Zero, a21 = TSimd.Zero, a22 = TSimd.Zero, a23 = TSimd.Zero;
        T a30 = TSimd.Zero, a31 = TSimd.Zero, a32 = TSimd.Zero, a33 = TSimd.Zero;
        byte* next = prefetch == 0 ? null : k0 + prefetch;
        for (; q0 < end; q0 += TSimd.Count, q2 += TSimd.Count, k0 += step, k1 += step, k2 += step, k3 += step)
        {
            if (next != null)
            {
                CacheLines.PrefetchL2Chunk(next, 4 * step);
                next += 4 * step;
            }
            T x0 = RowLoads.Load<TSimd, T, TFormat>(k0, 0), x1 = RowLoads.Load<TSimd, T, TFormat>(k1, 0);
            T x2 = RowLoads.Load<TSimd, T, TFormat>(k2, 0), x3 = RowLoads.Load<TSimd, T, TFormat>(k3, 0);
            Fma4<TSimd, T>(TSimd.Load(q0), x0, x1, x2, x3, ref a00, ref a01, ref a02, ref a03);
            Fma4<TSimd, T>(TSimd.Load(q0 + s), x0, x1, x2, x3, ref a10, ref a11, ref a12, ref a13);
            Fma4<TSimd, T>(TSimd.Load(q2), x0, x1, x2, x3, ref a20, ref a21, ref a22, ref a23);
            Fma4<TSimd, T>(TSimd.Load(q2 + s), x0, x1, x2, x3, ref a30, ref a31, ref a32, ref a33);
        }
        TSimd.Sum4(a00, a01, a02, a03).Store(scores);
        TSimd.Sum4(a10, a11, a12, a13).Store(scores + KeyBlock);
        TSimd.Sum4(a20, a21, a22, a23).Store(scores + 2 * KeyBlock);
        TSimd.Sum4(a30, a31, a32, a33).Store(scores + 3 * KeyBlock);
    }

    /// <summary>One query vector <paramref name="y"/> against four key vectors: a row of a 4 x 4 tile's accumulators.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Fma4<TSimd, T>(T y, T x0, T x1, T x2, T x3, ref T a0, ref T a1, ref T a2, ref T a3) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        a0 = TSimd.MultiplyAdd(y, x0, a0);
        a1 = TSimd.MultiplyAdd(y, x1, a1);
        a2 = TSimd.MultiplyAdd(y, x2, a2);
        a3 = TSimd.MultiplyAdd(y, x3, a3);
    }

    /// <summary>
    /// <see cref="AccumulateValues{TSimd, T, TFormat}"/> for four rows at once (accumulators and weights
    /// <paramref name="stride"/> and <see cref="KeyBlock"/> apart): each value vector is loaded and widened once for the four.
    /// Binary16 values are read scaled down when <paramref name="mayScale"/> and they are known (<paramref name="valuesFinite"/>)
    /// or checked to be finite.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void AccumulateValues4<TSimd, T, TFormat>(float* acc, int stride, float* alpha, float* weights, byte** values, int keys, nint prefetch,
        bool valuesFinite = false, bool mayScale = true)
        where TSimd : struct, ISimd<T> where T : unmanaged where TFormat : struct, IRowFormat
    {
        // Binary16 values of a block without infinity or NaN likewise, against weights (at most 1) scaled up by 2^112.
        if (typeof(TFormat) == typeof(Float16Rows) && mayScale && (valuesFinite || FiniteHalf.AllFinite(values, keys, stride)))
        {
            float* scaled = stackalloc float[4 * KeyBlock];
            for (int i = 0; i < 4 * KeyBlock; i += TSimd.Count)
                TSimd.Store(scaled + i, TSimd.Multiply(TSimd.Load(weights + i), TSimd.Broadcast(MathConstants.TwoTo112)));
            AccumulateValues4<TSimd, T, ScaledFloat16Rows>(acc, stride, alpha, scaled, values, keys, prefetch);
            return;
        }
        int w = TSimd.Count, d = 0;
        T s0 = TSimd.Broadcast(alpha[0]), s1 = TSimd.Broadcast(alpha[1]), s2 = TSimd.Broadcast(alpha[2]), s3 = TSimd.Broadcast(alpha[3]);
        float* acc1 = acc + stride, acc2 = acc + 2 * stride, acc3 = acc + 3 * stride;
        float* w1 = weights + KeyBlock, w2 = weights + 2 * KeyBlock, w3 = weights + 3 * KeyBlock;
        // A 4 x 4 register tile (four rows by four vectors of the row): per key, four value loads and four weight
        // broadcasts feed 16 FMAs.
        for (; d + 4 * w <= stride; d += 4 * w)
        {
            T a0 = TSimd.Multiply(TSimd.Load(acc + d), s0), b0 = TSimd.Multiply(TSimd.Load(acc + d + w), s0);
            T c0 = TSimd.Multiply(TSimd.Load(acc + d + 2 * w), s0), e0 = TSimd.Multiply(TSimd.Load(acc + d + 3 * w), s0);
            T a1 = TSimd.Multiply(TSimd.Load(acc1 + d), s1), b1 = TSimd.Multiply(TSimd.Load(acc1 + d + w), s1);
            T c1 = TSimd.Multiply(TSimd.Load(acc1 + d + 2 * w), s1), e1 = TSimd.Multiply(TSimd.Load(acc1 + d + 3 * w), s1);
            T a2 = TSimd.Multiply(TSimd.Load(acc2 + d), s2), b2 = TSimd.Multiply(TSimd.Load(acc2 + d + w), s2);
            T c2 = TSimd.Multiply(TSimd.Load(acc2 + d + 2 * w), s2), e2 = TSimd.Multiply(TSimd.Load(acc2 + d + 3 * w), s2);
            T a3 = TSimd.Multiply(TSimd.Load(acc3 + d), s3), b3 = TSimd.Multiply(TSimd.Load(acc3 + d + w), s3);
            T c3 = TSimd.Multiply(TSimd.Load(acc3 + d + 2 * w), s3), e3 = TSimd.Multiply(TSimd.Load(acc3 + d + 3 * w), s3);
            for (int j = 0; j < keys; j++)
            {
                // Constant offsets from one address: the loads need no index arithmetic.
                byte* v = RowLoads.Element<TFormat>(values[j], d);
                if (prefetch != 0) CacheLines.PrefetchL2Chunk(v + prefetch, RowLoads.Bytes<TFormat>(4 * w));
                var v0 = RowLoads.Load<TSimd, T, TFormat>(v, 0);
                var v1 = RowLoads.Load<TSimd, T, TFormat>(v, w);
                var v2 = RowLoads.Load<TSimd, T, TFormat>(v, 2 * w);
                var v3 = RowLoads.Load<TSimd, T, TFormat>(v, 3 * w);
                var p = TSimd.Broadcast(weights[j]);
                a0 = TSimd.MultiplyAdd(p, v0, a0);
                b0 = TSimd.MultiplyAdd(p, v1, b0);
                c0 = TSimd.MultiplyAdd(p, v2, c0);
                e0 = TSimd.MultiplyAdd(p, v3, e0);
                p = TSimd.Broadcast(w1[j]);
                a1 = TSimd.MultiplyAdd(p, v0, a1);
                b1 = TSimd.MultiplyAdd(p, v1, b1);
                c1 = TSimd.MultiplyAdd(p, v2, c1);
                e1 = TSimd.MultiplyAdd(p, v3, e1);
                p = TSimd.Broadcast(w2[j]);
                a2 = TSimd.MultiplyAdd(p, v0, a2);
                b2 = TSimd.MultiplyAdd(p, v1, b2);
                c2 = TSimd.MultiplyAdd(p, v2, c2);
                e2 = TSimd.MultiplyAdd(p, v3, e2);
                p = TSimd.Broadcast(w3[j]);
                a3 = TSimd.MultiplyAdd(p, v0, a3);
                b3 = TSimd.MultiplyAdd(p, v1, b3);
                c3 = TSimd.MultiplyAdd(p, v2, c3);
                e3 = TSimd.MultiplyAdd(p, v3, e3);
            }
            TSimd.Store(acc + d, a0);
            TSimd.Store(acc + d + w, b0);
            TSimd.Store(acc + d + 2 * w, c0);
            TSimd.Store(acc + d + 3 * w, e0);
            TSimd.Store(acc1 + d, a1);
            TSimd.Store(acc1 + d + w, b1);
            TSimd.Store(acc1 + d + 2 * w, c1);
            TSimd.Store(acc1 + d + 3 * w, e1);
            TSimd.Store(acc2 + d, a2);
            TSimd.Store(acc2 + d + w, b2);
            TSimd.Store(acc2 + d + 2 * w, c2);
            TSimd.Store(acc2 + d + 3 * w, e2);
            TSimd.Store(acc3 + d, a3);
            TSimd.Store(acc3 + d + w, b3);
            TSimd.Store(acc3 + d + 2 * w, c3);
            TSimd.Store(acc3 + d + 3 * w, e3);
        }
        for (; d + 2 * w <= stride; d += 2 * w)
        {
            T a0 = TSimd.Multiply(TSimd.Load(acc + d), s0), b0 = TSimd.Multiply(TSimd.Load(acc + d + w), s0);
            T a1 = TSimd.Multiply(TSimd.Load(acc1 + d), s1), b1 = TSimd.Multiply(TSimd.Load(acc1 + d + w), s1);
            T a2 = TSimd.Multiply(TSimd.Load(acc2 + d), s2), b2 = TSimd.Multiply(TSimd.Load(acc2 + d + w), s2);
            T a3 = TSimd.Multiply(TSimd.Load(acc3 + d), s3), b3 = TSimd.Multiply(TSimd.Load(acc3 + d + w), s3);
            for (int j = 0; j < keys; j++)
            {
                if (prefetch != 0) CacheLines.PrefetchL2Chunk(RowLoads.Element<TFormat>(values[j], d) + prefetch, RowLoads.Bytes<TFormat>(2 * w));
                var v0 = RowLoads.Load<TSimd, T, TFormat>(values[j], d);
                var v1 = RowLoads.Load<TSimd, T, TFormat>(values[j], d + w);
                var p0 = TSimd.Broadcast(weights[j]);
                a0 = TSimd.MultiplyAdd(p0, v0, a0);
                b0 = TSimd.MultiplyAdd(p0, v1, b0);
                var p1 = TSimd.Broadcast(weights[KeyBlock + j]);
                a1 = TSimd.MultiplyAdd(p1, v0, a1);
                b1 = TSimd.MultiplyAdd(p1, v1, b1);
                var p2 = TSimd.Broadcast(weights[2 * KeyBlock + j]);
                a2 = TSimd.MultiplyAdd(p2, v0, a2);
                b2 = TSimd.MultiplyAdd(p2, v1, b2);
                var p3 = TSimd.Broadcast(weights[3 * KeyBlock + j]);
                a3 = TSimd.MultiplyAdd(p3, v0, a3);
                b3 = TSimd.MultiplyAdd(p3, v1, b3);
            }
            TSimd.Store(acc + d, a0);
            TSimd.Store(acc + d + w, b0);
            TSimd.Store(acc1 + d, a1);
            TSimd.Store(acc1 + d + w, b1);
            TSimd.Store(acc2 + d, a2);
            TSimd.Store(acc2 + d + w, b2);
            TSimd.Store(acc3 + d, a3);
            TSimd.Store(acc3 + d + w, b3);
        }
        for (; d < stride; d += w)
        {
            T a0 = TSimd.Multiply(TSimd.Load(acc + d), s0), a1 = TSimd.Multiply(TSimd.Load(acc1 + d), s1);
            T a2 = TSimd.Multiply(TSimd.Load(acc2 + d), s2), a3 = TSimd.Multiply(TSimd.Load(acc3 + d), s3);
            for (int j = 0; j < keys; j++)
            {
                if (prefetch != 0) CacheLines.PrefetchL2Chunk(RowLoads.Element<TFormat>(values[j], d) + prefetch, RowLoads.Bytes<TFormat>(w));
                var v = RowLoads.Load<TSimd, T, TFormat>(values[j], d);
                a0 = TSimd.MultiplyAdd(TSimd.Broadcast(weights[j]), v, a0);
                a1 = TSimd.MultiplyAdd(TSimd.Broadcast(weights[KeyBlock + j]), v, a1);
                a2 = TSimd.MultiplyAdd(TSimd.Broadcast(weights[2 * KeyBlock + j]), v, a2);
                a3 = TSimd.MultiplyAdd(TSimd.Broadcast(weights[3 * KeyBlock + j]), v, a3);
            }
            TSimd.Store(acc + d, a0);
            TSimd.Store(acc1 + d, a1);
            TSimd.Store(acc2 + d, a2);
            TSimd.Store(acc3 + d, a3);
        }
    }

    /// <summary>
    /// <c>acc = alpha acc + sum_j p_j v_j</c>, four vectors of the row at a time held in registers across the keys. With
    /// <paramref name="prefetch"/> not 0, each key's chunk that many bytes on is prefetched as it is read (<see cref="StreamBlocks"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void AccumulateValues<TSimd, T, TFormat>(float* acc, int length, float alpha, float* weights, byte** values, int keys, nint prefetch)
        where TSimd : struct, ISimd<T> where T : unmanaged where TFormat : struct, IRowFormat
    {
        int w = TSimd.Count, d = 0;
        var a = TSimd.Broadcast(alpha);
        // Eight independent accumulators keep both FMA pipes busy across the key loop (four left one idle).
        for (; d + 8 * w <= length; d += 8 * w)
        {
            T a0 = TSimd.Multiply(TSimd.Load(acc + d), a), a1 = TSimd.Multiply(TSimd.Load(acc + d + w), a);
            T a2 = TSimd.Multiply(TSimd.Load(acc + d + 2 * w), a), a3 = TSimd.Multiply(TSimd.Load(acc + d + 3 * w), a);
            T a4 = TSimd.Multiply(TSimd.Load(acc + d + 4 * w), a), a5 = TSimd.Multiply(TSimd.Load(acc + d + 5 * w), a);
            T a6 = TSimd.Multiply(TSimd.Load(acc + d + 6 * w), a), a7 = TSimd.Multiply(TSimd.Load(acc + d + 7 * w), a);
            for (int j = 0; j < keys; j++)
            {
                var weight = TSimd.Broadcast(weights[j]);
                byte* v = values[j];
                if (prefetch != 0) CacheLines.PrefetchL2Chunk(RowLoads.Element<TFormat>(v, d) + prefetch, RowLoads.Bytes<TFormat>(8 * w));
                a0 = TSimd.MultiplyAdd(weight, RowLoads.Load<TSimd, T, TFormat>(v, d), a0);
                a1 = TSimd.MultiplyAdd(weight, RowLoads.Load<TSimd, T, TFormat>(v, d + w), a1);
                a2 = TSimd.MultiplyAdd(weight, RowLoads.Load<TSimd, T, TFormat>(v, d + 2 * w), a2);
                a3 = TSimd.MultiplyAdd(weight, RowLoads.Load<TSimd, T, TFormat>(v, d + 3 * w), a3);
                a4 = TSimd.MultiplyAdd(weight, RowLoads.Load<TSimd, T, TFormat>(v, d + 4 * w), a4);
                a5 = TSimd.MultiplyAdd(weight, RowLoads.Load<TSimd, T, TFormat>(v, d + 5 * w), a5);
                a6 = TSimd.MultiplyAdd(weight, RowLoads.Load<TSimd, T, TFormat>(v, d + 6 * w), a6);
                a7 = TSimd.MultiplyAdd(weight, RowLoads.Load<TSimd, T, TFormat>(v, d + 7 * w), a7);
            }
            TSimd.Store(acc + d, a0);
            TSimd.Store(acc + d + w, a1);
            TSimd.Store(acc + d + 2 * w, a2);
            TSimd.Store(acc + d + 3 * w, a3);
            TSimd.Store(acc + d + 4 * w, a4);
            TSimd.Store(acc + d + 5 * w, a5);
            TSimd.Store(acc + d + 6 * w, a6);
            TSimd.Store(acc + d + 7 * w, a7);
        }
        for (; d + 4 * w <= length; d += 4 * w)
        {
            T a0 = TSimd.Multiply(TSimd.Load(acc + d), a), a1 = TSimd.Multiply(TSimd.Load(acc + d + w), a);
            T a2 = TSimd.Multiply(TSimd.Load(acc + d + 2 * w), a), a3 = TSimd.Multiply(TSimd.Load(acc + d + 3 * w), a);
            for (int j = 0; j < keys; j++)
            {
                var weight = TSimd.Broadcast(weights[j]);
                byte* v = values[j];
                if (prefetch != 0) CacheLines.PrefetchL2Chunk(RowLoads.Element<TFormat>(v, d) + prefetch, RowLoads.Bytes<TFormat>(4 * w));
                a0 = TSimd.MultiplyAdd(weight, RowLoads.Load<TSimd, T, TFormat>(v, d), a0);
                a1 = TSimd.MultiplyAdd(weight, RowLoads.Load<TSimd, T, TFormat>(v, d + w), a1);
                a2 = TSimd.MultiplyAdd(weight, RowLoads.Load<TSimd, T, TFormat>(v, d + 2 * w), a2);
                a3 = TSimd.MultiplyAdd(weight, RowLoads.Load<TSimd, T, TFormat>(v, d + 3 * w), a3);
            }
            TSimd.Store(acc + d, a0);
            TSimd.Store(acc + d + w, a1);
            TSimd.Store(acc + d + 2 * w, a2);
            TSimd.Store(acc + d + 3 * w, a3);
        }
        for (; d < length; d += w)
        {
            T a0 = TSimd.Multiply(TSimd.Load(acc + d), a);
            for (int j = 0; j < keys; j++)
            {
                if (prefetch != 0) CacheLines.PrefetchL2Chunk(RowLoads.Element<TFormat>(values[j], d) + prefetch, RowLoads.Bytes<TFormat>(w));
                a0 = TSimd.MultiplyAdd(TSimd.Broadcast(weights[j]), RowLoads.Load<TSimd, T, TFormat>(values[j], d), a0);
            }
            TSimd.Store(acc + d, a0);
        }
    }

    /// <summary>
    /// Merges the splits of every row through their log-sum-exps (<see cref="LogSumExpMerge"/>, as CpuMerge does), then
    /// applies the sink. With sigmoid scoring the merged (normalised) row is scaled back by its total weight, <c>exp(LSE)</c>.
    /// </summary>
    /// <remarks>
    /// A merge of fewer than <see cref="MergeAloneFloats"/> partial floats runs on the calling thread alone, so a single
    /// decode step (B = 1, Hq = 32, 8 splits of D = 128: 32 K floats) wakes the pool once, not twice: under load a pool
    /// thread that is not running when the merge starts makes the caller wait a time slice. The merge phase of such a
    /// binary16 GQA step measured 52-62 us on two workers with a scalar loop, 45-55 us on the caller alone, 31-39 us alone
    /// with <see cref="AddScaled"/> (medians and minima of 30-40 calls, load 15-18; bench/results/cpu.md, wip-decode8).
    /// </remarks>
    private static void Merge(Plan p, int threads)
    {
        p.NextItem = 0;
        long floats = (long)p.Batch * p.KeyValueHeads * p.Splits * p.GroupSize * p.QueryLength * p.ValueDim;
        CpuWorkers.Run(p, floats < MergeAloneFloats ? 1 : threads, p.Batch * p.KeyValueHeads, MergeWork);
    }

    /// <summary>Partial floats below which <see cref="Merge"/> runs on the calling thread only.</summary>
    private const long MergeAloneFloats = 1 << 17;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MergeWork(Plan p)
    {
        int groupRows = p.GroupSize * p.QueryLength, dv = p.ValueDim;
        int heads = p.Batch * p.KeyValueHeads;
        float* acc = CpuScratch.Get(dv);
        Span<float> weights = stackalloc float[p.Splits];
        for (int item = Interlocked.Increment(ref p.NextItem) - 1; item < heads; item = Interlocked.Increment(ref p.NextItem) - 1)
        {
            int b = item / p.KeyValueHeads, kvHead = item % p.KeyValueHeads;
            for (int row = 0; row < groupRows; row++)
            {
                int i = row / p.GroupSize, head = kvHead * p.GroupSize + row % p.GroupSize;
                for (int split = 0; split < p.Splits; split++)
                    weights[split] = p.Partials[p.PartialLseOffset + p.PartialRow(b, kvHead, split, row)];
                float total = LogSumExpMerge.ToWeights(weights);
                new Span<float>(acc, dv).Clear();
                for (int split = 0; split < p.Splits; split++)
                {
                    float weight = weights[split];
                    if (weight == 0) continue;
                    AddScaled(acc, p.Partials + p.PartialRow(b, kvHead, split, row) * dv, weight, dv);
                }
                p.WriteRow(b, head, i, acc, p.Sigmoid && !float.IsNegativeInfinity(total) ? MathF.Exp(total) : 1f, total);
            }
        }
    }

    /// <summary>
    /// <c>destination[d] = factor x source[d]</c> for <paramref name="count"/> floats, a vector at a time (the same rounding
    /// as the scalar product); returns whether every product is finite. The per-item setup and the partials' writes ran
    /// as scalar loops, a fifth of a single-thread call at Nk = 512 (binary16, Hq = 32, Hkv = 8, D = 128).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Scale(float* destination, float* source, float factor, int count)
    {
        int d = 0;
        bool finite = true;
        if (Vector512.IsHardwareAccelerated)
        {
            var f = Vector512.Create(factor);
            var infinity = Vector512.Create(float.PositiveInfinity);
            for (; d + Vector512<float>.Count <= count; d += Vector512<float>.Count)
            {
                var product = f * Vector512.Load(source + d);
                product.Store(destination + d);
                // |NaN| < inf is false (unordered), like |inf| < inf.
                finite &= Vector512.LessThanAll(Vector512.Abs(product), infinity);
            }
        }
        if (Vector256.IsHardwareAccelerated)
            for (var f = Vector256.Create(factor); d + Vector256<float>.Count <= count; d += Vector256<float>.Count)
            {
                var product = f * Vector256.Load(source + d);
                product.Store(destination + d);
                finite &= Vector256.LessThanAll(Vector256.Abs(product), Vector256.Create(float.PositiveInfinity));
            }
        for (; d < count; d++) finite &= float.IsFinite(destination[d] = factor * source[d]);
        return finite;
    }

    /// <summary>
    /// <c>acc[d] += weight x partial[d]</c> for <paramref name="count"/> floats, a vector at a time with a separate multiply
    /// and add per element (no fused multiply-add), so every element rounds exactly as the scalar expression does.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddScaled(float* acc, float* partial, float weight, int count)
    {
        int d = 0;
        if (Vector512.IsHardwareAccelerated)
            for (var w = Vector512.Create(weight); d + Vector512<float>.Count <= count; d += Vector512<float>.Count)
                Vector512.Add(Vector512.Load(acc + d), Vector512.Multiply(w, Vector512.Load(partial + d))).Store(acc + d);
        if (Vector256.IsHardwareAccelerated)
            for (var w = Vector256.Create(weight); d + Vector256<float>.Count <= count; d += Vector256<float>.Count)
                Vector256.Add(Vector256.Load(acc + d), Vector256.Multiply(w, Vector256.Load(partial + d))).Store(acc + d);
        if (Vector128.IsHardwareAccelerated)
            for (var w = Vector128.Create(weight); d + Vector128<float>.Count <= count; d += Vector128<float>.Count)
                Vector128.Add(Vector128.Load(acc + d), Vector128.Multiply(w, Vector128.Load(partial + d))).Store(acc + d);
        for (; d < count; d++) acc[d] += weight * partial[d];
    }

    /// <summary>Sizes, pointers and strides of one call, shared read-only by the workers (plus the item counter).</summary>
    private sealed class Plan
    {
        public KvCacheProblem Problem = null!;
        public int Batch, KeyValueHeads, GroupSize, QueryLength, NewLength, HeadDim, ValueDim, RowChunks, Splits, Items;
        public int RotaryHalf;
        public bool RotaryInterleaved;
        public float QueryScale, Softcap, SigmoidBiasLog2;
        public bool Sigmoid;
        public ElementType ElementType;
        public long ElementSize;
        public long QueryOffset, KeyOffset, ValueOffset, OutputOffset, LseOffset, NewKeyOffset, NewValueOffset;
        public long CosOffset, SinOffset, SlopeOffset, SinkOffset;
        public readonly long[] QueryStrides = new long[4], KeyStrides = new long[4], ValueStrides = new long[4], OutputStrides = new long[4], LseStrides = new long[3];
        public readonly long[] NewKeyStrides = new long[4], NewValueStrides = new long[4];
        public readonly long[] CosStrides = new long[2], SinStrides = new long[2], SlopeStrides = new long[2], SinkStrides = new long[1];
        public bool SlopesPerBatch;
        public long PartialFloats, PartialLseOffset;
        public byte* Q, K, V, O, NewK, NewV;
        public float* Lse, Cos, Sin, Slopes, Sinks, Partials;
        public int KeyStride, ValueStride;
        public bool DirectRows;
        public long ScratchFloats;
        public int NextItem;

        /// <summary>This thread's idle plan (<see cref="ThreadIdle{T}"/>), or a new one; give it back with <see cref="Return"/>.</summary>
        public static Plan Rent() => ThreadIdle<Plan>.Rent();

        /// <summary>Keeps the plan for this thread's next call, without the references of the finished one.</summary>
        public void Return()
        {
            (Problem, BlockTable) = (null!, null);
            Q = K = V = O = NewK = NewV = null;
            Lse = Cos = Sin = Slopes = Sinks = Partials = null;
            ThreadIdle<Plan>.Return(this);
        }

        /// <summary>Fills every size, offset and stride for one call (the pointers are set by the caller).</summary>
        public void Reset(KvCacheProblem problem, int threads, in TensorView query, in TensorView keyCache, in TensorView valueCache, in TensorView output, in TensorView? logSumExp)
        {
            Problem = problem;
            NextItem = 0;
            Batch = problem.Batch;
            KeyValueHeads = problem.KeyValueHeads;
            GroupSize = problem.GroupSize;
            QueryLength = problem.QueryLength;
            NewLength = problem.NewLength;
            HeadDim = problem.HeadDim;
            ValueDim = problem.ValueDim;
            RowChunks = (GroupSize * QueryLength + RowsPerItem - 1) / RowsPerItem;
            int baseItems = Batch * KeyValueHeads * RowChunks;
            Splits = problem.Cache.Splits ?? AutomaticSplits(problem, baseItems, problem.IsFlashCall ? FlashCallThreads : threads);
            Items = baseItems * Splits;
            var options = problem.Options;
            Softcap = options.Softcap;
            Sigmoid = options.ScoreFunction == ScoreFunction.Sigmoid;
            SigmoidBiasLog2 = options.SigmoidBias * MathConstants.Log2E;
            // Scores are kept in log2 units; with softcap the tanh needs natural units, and the kernel converts after it.
            QueryScale = Softcap > 0 ? problem.Scale : problem.Scale * MathConstants.Log2E;
            ElementType = problem.ElementType;
            ElementSize = ElementType.SizeOf();
            (QueryOffset, KeyOffset, ValueOffset, OutputOffset) = (query.Offset, keyCache.Offset, valueCache.Offset, output.Offset);
            query.Strides.CopyTo(QueryStrides);
            keyCache.Strides.CopyTo(KeyStrides);
            valueCache.Strides.CopyTo(ValueStrides);
            output.Strides.CopyTo(OutputStrides);
            LseOffset = Strides(logSumExp, LseStrides);
            var cache = problem.Cache;
            NewKeyOffset = Strides(cache.NewKey, NewKeyStrides);
            NewValueOffset = Strides(cache.NewValue, NewValueStrides);
            RotaryHalf = problem.RotaryDim / 2;
            RotaryInterleaved = cache.RotaryInterleaved;
            CosOffset = Strides(cache.RotaryCos, CosStrides);
            SinOffset = Strides(cache.RotarySin, SinStrides);
            SlopeOffset = Strides(options.AlibiSlopes, SlopeStrides) + (options.AlibiSlopes is { } slopes ? problem.AlibiRowOffset(slopes) : 0);
            SlopesPerBatch = options.AlibiSlopes is { Rank: 2 };
            SinkOffset = Strides(options.Sinks, SinkStrides);
            (KeyBlockBytes, KeySlotBytes) = (ElementSize * KeyStrides[0], ElementSize * KeyStrides[2]);
            (ValueBlockBytes, ValueSlotBytes) = (ElementSize * ValueStrides[0], ElementSize * ValueStrides[2]);
            BlockTable = problem.BlockTableEntries;
            (BlocksPerSequence, PageSize) = (problem.BlocksPerSequence, problem.PageSize);
            (KeyRowBytes, ValueRowBytes) = ((int)ElementSize * HeadDim, (int)ElementSize * ValueDim);
            long partialRows = (long)Batch * KeyValueHeads * Splits * GroupSize * QueryLength;
            PartialLseOffset = partialRows * ValueDim;
            PartialFloats = partialRows * (ValueDim + 1);
        }

        /// <summary>Copies the strides of <paramref name="view"/> (zeros when absent) and returns its offset (0 when absent).</summary>
        private static long Strides(in TensorView? view, long[] strides)
        {
            Array.Clear(strides);
            if (view is not { } present) return 0;
            present.Strides.CopyTo(strides);
            return present.Offset;
        }

        /// <summary>Fixes the vector width: rows are padded to it, and float32 rows are read in place when no padding is needed.</summary>
        public void SetWidth(int width)
        {
            KeyStride = (HeadDim + width - 1) / width * width;
            ValueStride = (ValueDim + width - 1) / width * width;
            // Rows are read in place when they are contiguous and fill whole vectors. 16-bit rows are then widened on every
            // read, which pays while few rows share a block; bigger groups widen each block once into the float32 stage.
            DirectRows = KeyStrides[3] == 1 && ValueStrides[3] == 1 && KeyStride == HeadDim && ValueStride == ValueDim &&
                (ElementType == ElementType.Float32 ||
                 Math.Min(RowsPerItem, GroupSize * QueryLength) <= (ElementType == ElementType.BFloat16 ? DirectWideningRowsBFloat16 : DirectWideningRowsHalf));
            ScratchFloats = Scratch.Floats(this);
        }

        /// <summary>Byte distances of the caches' block (or batch) and slot axes, and the block table (null: contiguous).</summary>
        public long KeyBlockBytes, KeySlotBytes, ValueBlockBytes, ValueSlotBytes;
        public int[]? BlockTable;
        public int BlocksPerSequence, PageSize;
        public int KeyRowBytes, ValueRowBytes;

        public byte* KeyRow(int batch, int head, int position)
        {
            var (block, slot) = Problem.Locate(batch, position);
            return K + ElementSize * (KeyOffset + block * KeyStrides[0] + head * KeyStrides[1] + slot * KeyStrides[2]);
        }

        public byte* ValueRow(int batch, int head, int position)
        {
            var (block, slot) = Problem.Locate(batch, position);
            return V + ElementSize * (ValueOffset + block * ValueStrides[0] + head * ValueStrides[1] + slot * ValueStrides[2]);
        }

        public float Slope(int batch, int head) =>
            Slopes[SlopeOffset + (SlopesPerBatch ? batch * SlopeStrides[0] + head * SlopeStrides[1] : head * SlopeStrides[0])];

        public long PartialRow(int batch, int kvHead, int split, int row) =>
            (((long)batch * KeyValueHeads + kvHead) * Splits + split) * GroupSize * QueryLength + row;

        /// <summary>Turns the first RotaryDim entries of <paramref name="row"/> by the angles of <paramref name="position"/>.</summary>
        public void Rotate(float* row, int position)
        {
            float* cos = Cos + CosOffset + position * CosStrides[0];
            float* sin = Sin + SinOffset + position * SinStrides[0];
            for (int i = 0; i < RotaryHalf; i++)
            {
                int ix = RotaryInterleaved ? 2 * i : i, iy = RotaryInterleaved ? 2 * i + 1 : i + RotaryHalf;
                float c = cos[i * CosStrides[1]], s = sin[i * SinStrides[1]];
                float x = row[ix], y = row[iy];
                row[ix] = x * c - y * s;
                row[iy] = x * s + y * c;
            }
        }

        /// <summary>
        /// Writes <c>acc x factor</c> as output row (batch, head, i) with log-sum-exp <paramref name="lse"/> (natural log,
        /// sinks not yet included); a sink joins the denominator here. A row without keys writes zeros and -inf.
        /// </summary>
        public void WriteRow(int batch, int head, int i, float* acc, float factor, float lse)
        {
            if (float.IsNegativeInfinity(lse)) factor = 0;
            else if (Sinks != null)
            {
                // The sink is a partial without output: merged with the row, it only scales the row down.
                Span<float> partials = [lse, Sinks[SinkOffset + head * SinkStrides[0]]];
                lse = LogSumExpMerge.ToWeights(partials);
                factor *= partials[0];
            }
            CpuPacking.WriteRow(O + ElementSize * (OutputOffset + batch * OutputStrides[0] + head * OutputStrides[1] + i * OutputStrides[2]),
                OutputStrides[3], acc, factor, ValueDim, ElementType);
            if (Lse != null) Lse[LseOffset + batch * LseStrides[0] + head * LseStrides[1] + i * LseStrides[2]] = lse;
        }
    }

    /// <summary>Carves one worker's scratch; every block starts 64-byte aligned.</summary>
    private readonly struct Scratch
    {
        public readonly float* Queries, Accumulator, Scores, KeyStage, ValueStage, Row, Max, Sum, Alpha, Slope, ScaledQueries, PairedQueries, PairedScaledQueries;
        public readonly byte** KeyRows, ValueRows;
        public readonly int* Start, End, Active;
        private readonly float* _end;

        public Scratch(float* scratch, Plan p)
        {
            float* next = scratch;
            Queries = CpuScratch.Take(ref next, (long)RowsPerItem * p.KeyStride);
            Accumulator = CpuScratch.Take(ref next, (long)RowsPerItem * p.ValueStride);
            Scores = CpuScratch.Take(ref next, (long)RowsPerItem * KeyBlock);
            KeyStage = CpuScratch.Take(ref next, (long)KeyBlock * p.KeyStride);
            ValueStage = CpuScratch.Take(ref next, (long)KeyBlock * p.ValueStride);
            Row = CpuScratch.Take(ref next, Math.Max(p.HeadDim, p.ValueDim));
            Max = CpuScratch.Take(ref next, RowsPerItem);
            Sum = CpuScratch.Take(ref next, RowsPerItem);
            Alpha = CpuScratch.Take(ref next, RowsPerItem);
            Slope = CpuScratch.Take(ref next, RowsPerItem);
            KeyRows = (byte**)CpuScratch.Take(ref next, KeyBlock * sizeof(nint) / sizeof(float));
            ValueRows = (byte**)CpuScratch.Take(ref next, KeyBlock * sizeof(nint) / sizeof(float));
            Start = (int*)CpuScratch.Take(ref next, RowsPerItem);
            End = (int*)CpuScratch.Take(ref next, RowsPerItem);
            Active = (int*)CpuScratch.Take(ref next, RowsPerItem);
            ScaledQueries = CpuScratch.Take(ref next, (long)RowsPerItem * p.KeyStride);
            PairedQueries = CpuScratch.Take(ref next, (long)RowsPerItem * p.KeyStride);
            PairedScaledQueries = CpuScratch.Take(ref next, (long)RowsPerItem * p.KeyStride);
            _end = next;
        }

        /// <summary>The floats the layout needs, measured by laying it out from address 0.</summary>
        public static long Floats(Plan p) => (long)new Scratch(null, p)._end / sizeof(float);
    }
}
