// Host side of the delta-rule kernels (kernels/deltarule/delta_chunk_prepare.h, delta_chunked.h and delta_recurrent.h),
// shared by OpenCL and CUDA: the arguments, the packed offsets, the scratch state and chunk quantities, and the launches.
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

/// <summary>
/// The delta rule on a GPU. Prefill of at least <see cref="ChunkedMinTokens"/> tokens runs the chunked prefill, chunks of
/// at most <see cref="DeltaVariant.Chunk"/> tokens through the UT transform, as two kernels per window of chunks: the
/// first, one work-group per (sequence, chunk, head), writes each chunk's column-independent quantities (the inverted
/// triangular system, W, the decayed queries and keys, the masked scores) to a float32 scratch; the second, one
/// work-group per (sequence, head, block of <see cref="DeltaVariant.ColumnBlock"/> value columns), runs the window's
/// chunks in order through the state. The scratch holds at most <see cref="WindowScratchFloats"/> floats (at least one
/// chunk per sequence and head); longer prefills take several windows. Shorter prefills, decode steps and verify calls run
/// the recurrent kernel: one work-group per (sequence, head, block of <see cref="DeltaVariant.Threads"/> value columns),
/// tokens in order; so does every prefill on a device whose local memory is smaller than the chunked kernels'
/// (<see cref="DeltaVariant.ChunkedLocalBytes"/>, under the 32 KB OpenCL guarantees). Both keep a float32 state in global
/// memory: the final state, a float32 scratch copy when the call asks for none, the decode state in place, or the verify
/// call's intermediate states.
/// </summary>
internal static class GpuDeltaRule
{
    /// <summary>Prefills of this many tokens (N, packed length with varlen) or more run the chunked kernels; shorter ones the recurrent one.</summary>
    public const int ChunkedMinTokens = 16;

    /// <summary>The most floats of chunk scratch one window of the chunked prefill takes (64 MiB), unless one chunk per sequence and head needs more.</summary>
    public const long WindowScratchFloats = 1L << 24;

    /// <summary>The scratch slot of the chunked prefill's per-chunk quantities (slot 0 holds the packed offsets, slot 3 a scratch final state).</summary>
    private const int ChunkSlot = 1;

    /// <summary>The chunk length a chunked call runs with: its option, at most <see cref="DeltaVariant.Chunk"/>, or that default.</summary>
    public static int ChunkOf(DeltaRuleOptions options) => options.ChunkSize > 0 ? Math.Min(options.ChunkSize, DeltaVariant.Chunk) : DeltaVariant.Chunk;

    /// <summary>
    /// Runs a validated <see cref="AttentionContext.DeltaRuleChunked"/> call: chunked from <paramref name="chunkedMinTokens"/>
    /// tokens on (a chunk size option above <see cref="DeltaVariant.Chunk"/> runs as that), recurrent below. A positive
    /// <paramref name="windowChunks"/> caps the chunks per sequence of one window (tests use it to run many windows).
    /// </summary>
    /// <exception cref="NotSupportedException">More work-groups or scratch than a launch can address.</exception>
    public static void Run(IGpuKernelHost host, DeltaRuleProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView beta,
        in TensorView output, in TensorView? initialState, in TensorView? finalState, int chunkedMinTokens = ChunkedMinTokens, int windowChunks = 0)
    {
        // Devices with less local memory than the chunked kernels declare run the recurrent kernel at every length.
        bool chunked = problem.Length >= chunkedMinTokens && DeltaVariant.ChunkedLocalBytes <= host.LocalMemoryBytes;
        var variant = new DeltaVariant(problem.ElementType, Chunked: chunked);
        int columnBlocks = (problem.ValueDim + variant.Columns - 1) / variant.Columns;
        long groups = (long)problem.Sequences * problem.Heads * columnBlocks;
        if (groups > int.MaxValue)
            throw new NotSupportedException($"DeltaRuleChunked needs {groups} work-groups (sequences x heads x value-column blocks of {variant.Columns}); a launch holds at most {int.MaxValue}.");
        var p = Params(problem, query, key, value, beta, output, initialState, columnBlocks);
        p.Chunk = ChunkOf(problem.Options);
        var scratch = host.Scratch;
        lock (scratch.Gate)
        {
            DeviceBuffer? metaBuffer = problem.IsVarlen ? scratch.Upload(0, problem.Options.CuSeqLens.Span, []) : null;
            DeviceBuffer destination;
            if (finalState is { } final)
            {
                destination = (DeviceBuffer)final.Storage!;
                SetDestination(ref p, problem, final, verify: false);
            }
            else
            {
                // A K-major float32 scratch state [S, H, Dk, Dv].
                long dkdv = (long)problem.KeyDim * problem.ValueDim;
                destination = scratch.Take(3, checked(problem.Sequences * problem.Heads * dkdv));
                (p.DOffset, p.DStrideS, p.DStrideT, p.DStrideH, p.DStrideF, p.DStrideC) = (0, problem.Heads * dkdv, 0, dkdv, problem.ValueDim, 1);
            }
            if (!chunked)
            {
                Launch(host, variant, problem, query, key, value, beta, output, initialState, destination, metaBuffer, null, p, (int)groups);
                return;
            }
            // Windows of chunks: every sequence's chunks [first, first + count) are prepared at once, then run in order.
            int longest = 0;
            for (int s = 0; s < problem.Sequences; s++) longest = Math.Max(longest, problem.SequenceLength(s));
            int chunks = (longest + p.Chunk - 1) / p.Chunk;
            long perWindowChunk = (long)problem.Sequences * problem.Heads * DeltaVariant.ChunkScratchFloats(p.Chunk, problem.KeyDim);
            int window = (int)Math.Clamp(WindowScratchFloats / perWindowChunk, 1, Math.Max(chunks, 1));
            if (windowChunks > 0) window = Math.Min(window, windowChunks);
            long prepareGroups = (long)problem.Sequences * window * problem.Heads;
            if (prepareGroups > int.MaxValue)
                throw new NotSupportedException($"DeltaRuleChunked needs {prepareGroups} work-groups (sequences x chunks x heads); a launch holds at most {int.MaxValue}.");
            var work = scratch.Take(ChunkSlot, checked(window * perWindowChunk));
            var prepare = new DeltaVariant(problem.ElementType, Chunked: true, Prepare: true);
            int first = 0;
            do
            {
                int count = Math.Min(window, chunks - first);
                (p.ChunkFirst, p.ChunkCount) = (first, count);
                if (count > 0)
                    Launch(host, prepare, problem, query, key, value, beta, output, initialState, destination, metaBuffer, work, p,
                        problem.Sequences * count * problem.Heads);
                Launch(host, variant, problem, query, key, value, beta, output, initialState, destination, metaBuffer, work, p, (int)groups);
                first += count;
            }
            while (first < chunks);
        }
    }

    /// <summary>
    /// Runs a validated <see cref="AttentionContext.DeltaRuleDecodeStep"/> call: the state advanced in place, or, with
    /// <paramref name="intermediateStates"/>, only read and every token's state written there.
    /// </summary>
    public static void RunDecode(IGpuKernelHost host, DeltaRuleProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView beta,
        in TensorView output, in TensorView state, in TensorView? intermediateStates)
    {
        if (problem.Length == 0) return;
        int columnBlocks = (problem.ValueDim + DeltaVariant.Threads - 1) / DeltaVariant.Threads;
        long groups = (long)problem.Sequences * problem.Heads * columnBlocks;
        if (groups > int.MaxValue)
            throw new NotSupportedException($"DeltaRuleDecodeStep needs {groups} work-groups; a launch holds at most {int.MaxValue}.");
        var p = Params(problem, query, key, value, beta, output, state, columnBlocks);
        var target = intermediateStates ?? state;
        SetDestination(ref p, problem, target, verify: intermediateStates.HasValue);
        var scratch = host.Scratch;
        lock (scratch.Gate)
        {
            DeviceBuffer? metaBuffer = problem.IsVarlen ? scratch.Upload(0, problem.Options.CuSeqLens.Span, []) : null;
            Launch(host, new DeltaVariant(problem.ElementType), problem, query, key, value, beta, output, state, (DeviceBuffer)target.Storage!, metaBuffer, null, p, (int)groups);
        }
    }

    private static void Launch(IGpuKernelHost host, DeltaVariant variant, DeltaRuleProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView beta,
        in TensorView output, in TensorView? initialState, DeviceBuffer destination, DeviceBuffer? meta, DeviceBuffer? work, DeltaParams p, int groups)
    {
        var api = host.Api;
        var betaBuffer = GpuFlash.Buffer(beta);
        // The chunked kernels take the chunk scratch after the ten buffers the recurrent one takes.
        ReadOnlySpan<DeviceBuffer?> buffers =
            [GpuFlash.Buffer(query), GpuFlash.Buffer(key), GpuFlash.Buffer(value), betaBuffer, betaBuffer, GpuFlash.Buffer(output),
             GpuFlash.Buffer(initialState), destination, GpuFlash.Buffer(problem.Options.LogGate), meta, work];
        var (name, source) = KernelLaunch<DeltaVariant>.For(variant, api);   // cached: no name string or closure per call
        host.Launch(name, source, variant.EntryPoint, variant.Chunked ? buffers : buffers[..^1],
            MemoryMarshal.AsBytes(new ReadOnlySpan<DeltaParams>(in p)), groups, 1, variant.WorkItems);
    }

    /// <summary>The destination's strides: a state tensor <c>[S, H, ..]</c>, or intermediate states <c>[B, T, H, ..]</c> when verifying.</summary>
    private static void SetDestination(ref DeltaParams p, DeltaRuleProblem problem, in TensorView target, bool verify)
    {
        bool valueMajor = problem.Options.StateLayout == DeltaStateLayout.ValueMajor;
        var st = target.Strides;
        int a = verify ? 1 : 0;
        p.DOffset = GpuFlash.ElementOffset(target);
        p.DStrideS = st[0];
        p.DStrideT = verify ? st[1] : 0;
        p.DStrideH = st[1 + a];
        (p.DStrideF, p.DStrideC) = valueMajor ? (st[3 + a], st[2 + a]) : (st[2 + a], st[3 + a]);
    }

    /// <summary>The kernel arguments of a validated call but the destination: Q/K/V/O, beta, the initial state, the gates, sizes and flags.</summary>
    public static DeltaParams Params(DeltaRuleProblem problem, in TensorView q, in TensorView k, in TensorView v, in TensorView beta, in TensorView o,
        in TensorView? initial, int columnBlocks)
    {
        var options = problem.Options;
        var p = new DeltaParams
        {
            Qkvo = QkvoParams.From(q, k, v, o, null, problem.Batch, problem.Heads, problem.KeyHeads, problem.Length, problem.Length,
                problem.KeyDim, problem.ValueDim),
            Heads = problem.Heads, GroupQ = problem.Heads / problem.QueryHeads, GroupK = problem.Heads / problem.KeyHeads,
            GroupV = problem.Heads / problem.ValueHeads, Sequences = problem.Sequences, ColBlocks = columnBlocks,
            Gate = options.Variant switch { DeltaRuleVariant.GatedDeltaNet => 1, DeltaRuleVariant.Kda => 2, _ => 0 },
            L2Norm = options.L2NormalizeQueryKey ? 1 : 0, Varlen = problem.IsVarlen ? 1 : 0,
            BetaF32 = beta.ElementType == ElementType.Float32 ? 1 : 0, Scale = problem.Scale,
            BetaOffset = GpuFlash.ElementOffset(beta), BetaStrideB = beta.Strides[0], BetaStrideH = beta.Strides[1], BetaStrideN = beta.Strides[2],
        };
        if (initial is { } s0)
        {
            p.HasInitial = 1;
            p.S0Offset = GpuFlash.ElementOffset(s0);
            (p.S0StrideS, p.S0StrideH) = (s0.Strides[0], s0.Strides[1]);
            (p.S0StrideF, p.S0StrideC) = options.StateLayout == DeltaStateLayout.ValueMajor ? (s0.Strides[3], s0.Strides[2]) : (s0.Strides[2], s0.Strides[3]);
        }
        if (options.LogGate is { } gate)
        {
            p.GOffset = GpuFlash.ElementOffset(gate);
            (p.GStrideB, p.GStrideH, p.GStrideN) = (gate.Strides[0], gate.Strides[1], gate.Strides[2]);
            if (gate.Rank == 4) p.GStrideD = gate.Strides[3];
        }
        return p;
    }
}
