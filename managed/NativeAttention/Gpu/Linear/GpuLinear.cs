// Host side of the linear-attention kernels (kernels/linear/), shared by OpenCL and CUDA: the arguments, the meta data
// (packed offsets and per-head decays), the scratch state and the launches.
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

/// <summary>
/// Chunked linear attention and its decode step on a GPU. The chunked kernel runs one work-group per (sequence, head,
/// block of <see cref="LinearVariant.ColumnBlock"/> value columns), chunks of at most <see cref="LinearVariant.Chunk"/>
/// tokens in order, the state in a float32 scratch copy per work-group; the decode kernel one work-group per (batch,
/// head, block of <see cref="LinearVariant.DecodeThreads"/> value columns), one block per head when normalising.
/// </summary>
internal static class GpuLinear
{
    /// <summary>
    /// The GPU's default chunk (<see cref="LinearVariant.Chunk"/> tokens, one per work-item); a chunk size option above it
    /// runs as this one (the result does not depend on the chunk size).
    /// </summary>
    public const int DefaultChunk = LinearVariant.Chunk;

    /// <summary>The chunk length a call runs with: its option, at most <see cref="LinearVariant.Chunk"/>, or the default.</summary>
    public static int ChunkOf(LinearOptions options) => options.ChunkSize > 0 ? Math.Min(options.ChunkSize, LinearVariant.Chunk) : DefaultChunk;

    /// <summary>Runs a validated <see cref="AttentionContext.LinearChunked"/> call whose tensors the context already checked.</summary>
    /// <exception cref="NotSupportedException">More work-groups or scratch than a launch can address.</exception>
    public static void Run(IGpuKernelHost host, LinearProblem problem, in TensorView query, in TensorView key, in TensorView value,
        in TensorView output, in TensorView? initialState, in TensorView? finalState)
    {
        var options = problem.Options;
        var variant = new LinearVariant(problem.ElementType, options.Decay == DecayKind.PerTokenPerKey, Decode: false);
        int columnBlocks = (problem.ValueDim + LinearVariant.ColumnBlock - 1) / LinearVariant.ColumnBlock;
        long groups = (long)problem.Sequences * problem.Heads * columnBlocks;
        if (groups > int.MaxValue)
            throw new NotSupportedException($"LinearChunked needs {groups} work-groups (sequences x heads x value-column blocks of {LinearVariant.ColumnBlock}); a launch holds at most {int.MaxValue}.");
        long work = checked(groups * problem.FeatureSize * (LinearVariant.ColumnBlock + 1));
        var p = Params(problem, query, key, value, output, initialState, finalState, null, columnBlocks);
        p.Chunk = ChunkOf(options);
        int metaLength = MetaLength(problem);
        Span<int> meta = metaLength <= StackMeta ? stackalloc int[metaLength] : new int[metaLength];
        FillMeta(problem, ref p, meta);
        var api = host.Api;
        var scratch = host.Scratch;
        lock (scratch.Gate)
        {
            DeviceBuffer? metaBuffer = meta.Length > 0 ? scratch.Upload(0, meta) : null;
            var workBuffer = scratch.Take(3, work);
            var (name, source) = KernelLaunch<LinearVariant>.For(variant, api);
            host.Launch(name, source, variant.EntryPoint,
                [GpuFlash.Buffer(query), GpuFlash.Buffer(key), GpuFlash.Buffer(value), GpuFlash.Buffer(output), GpuFlash.Buffer(initialState),
                 GpuFlash.Buffer(finalState), GpuFlash.Buffer(options.LogGate), metaBuffer, workBuffer],
                MemoryMarshal.AsBytes(new ReadOnlySpan<LinearParams>(in p)), (int)groups, 1, variant.Threads);
        }
    }

    /// <summary>
    /// Runs a validated <see cref="AttentionContext.LinearDecodeStep"/> call: the state is advanced in place, or, with
    /// <paramref name="intermediateStates"/>, only read and every token's state written there.
    /// </summary>
    public static void RunDecode(IGpuKernelHost host, LinearProblem problem, in TensorView query, in TensorView key, in TensorView value,
        in TensorView output, in TensorView state, in TensorView? intermediateStates)
    {
        var options = problem.Options;
        var variant = new LinearVariant(problem.ElementType, PerKey: false, Decode: true);
        int chunks = (problem.ValueDim + LinearVariant.DecodeThreads - 1) / LinearVariant.DecodeThreads;
        int columnBlocks = options.Normalize ? 1 : chunks;
        long groups = (long)problem.Batch * problem.Heads * columnBlocks;
        if (groups > int.MaxValue)
            throw new NotSupportedException($"LinearDecodeStep needs {groups} work-groups; a launch holds at most {int.MaxValue}.");
        var p = Params(problem, query, key, value, output, state, null, intermediateStates, columnBlocks);
        p.Verify = intermediateStates.HasValue ? 1 : 0;
        p.HasFinal = 1;
        int metaLength = MetaLength(problem);
        Span<int> meta = metaLength <= StackMeta ? stackalloc int[metaLength] : new int[metaLength];
        FillMeta(problem, ref p, meta);
        var api = host.Api;
        var scratch = host.Scratch;
        lock (scratch.Gate)
        {
            DeviceBuffer? metaBuffer = meta.Length > 0 ? scratch.Upload(0, meta) : null;
            var (name, source) = KernelLaunch<LinearVariant>.For(variant, api);   // cached: no name string or closure per call
            host.Launch(name, source, variant.EntryPoint,
                [GpuFlash.Buffer(query), GpuFlash.Buffer(key), GpuFlash.Buffer(value), GpuFlash.Buffer(output), GpuFlash.Buffer(state),
                 GpuFlash.Buffer(intermediateStates), GpuFlash.Buffer(options.LogGate), metaBuffer],
                MemoryMarshal.AsBytes(new ReadOnlySpan<LinearParams>(in p)), (int)groups, 1, variant.Threads);
        }
    }

    /// <summary>
    /// The kernel arguments of a validated call: the Q/K/V/O block, the state (<paramref name="initial"/>) and final
    /// state (<paramref name="final"/>, rank 4) or intermediate states (<paramref name="intermediate"/>, rank 5), the
    /// log gates, and the sizes and flags.
    /// </summary>
    public static LinearParams Params(LinearProblem problem, in TensorView q, in TensorView k, in TensorView v, in TensorView o,
        in TensorView? initial, in TensorView? final, in TensorView? intermediate, int columnBlocks)
    {
        var options = problem.Options;
        var p = new LinearParams
        {
            Qkvo = QkvoParams.From(q, k, v, o, null, problem.Batch, problem.Heads, problem.KeyHeads, problem.Length, problem.Length,
                problem.KeyDim, problem.ValueDim),
            Heads = problem.Heads, GroupQ = problem.Heads / problem.QueryHeads, GroupK = problem.Heads / problem.KeyHeads,
            GroupV = problem.Heads / problem.ValueHeads, Features = problem.FeatureSize, Columns = problem.StateColumns,
            Sequences = problem.Sequences, Chunk = 1, ColBlocks = columnBlocks, FeatureMap = (int)options.FeatureMap,
            Decay = (int)options.Decay, Normalize = options.Normalize ? 1 : 0, Causal = options.Causal ? 1 : 0,
            Varlen = problem.IsVarlen ? 1 : 0, Scale = options.Scale, Eps = options.Epsilon,
        };
        if (initial is { } s0)
        {
            p.HasInitial = 1;
            p.S0Offset = GpuFlash.ElementOffset(s0);
            (p.S0StrideS, p.S0StrideH, p.S0StrideF, p.S0StrideC) = (s0.Strides[0], s0.Strides[1], s0.Strides[2], s0.Strides[3]);
        }
        if (final is { } s1)
        {
            p.HasFinal = 1;
            p.S1Offset = GpuFlash.ElementOffset(s1);
            (p.S1StrideS, p.S1StrideH, p.S1StrideF, p.S1StrideC) = (s1.Strides[0], s1.Strides[1], s1.Strides[2], s1.Strides[3]);
        }
        if (intermediate is { } all)
        {
            p.S1Offset = GpuFlash.ElementOffset(all);
            (p.S1StrideS, p.S1StrideT, p.S1StrideH, p.S1StrideF, p.S1StrideC) = (all.Strides[0], all.Strides[1], all.Strides[2], all.Strides[3], all.Strides[4]);
        }
        if (options.LogGate is { } gate)
        {
            p.GOffset = GpuFlash.ElementOffset(gate);
            (p.GStrideB, p.GStrideH, p.GStrideN) = (gate.Strides[0], gate.Strides[1], gate.Strides[2]);
            if (gate.Rank == 4) p.GStrideD = gate.Strides[3];
        }
        return p;
    }

    /// <summary>Meta data lengths kept on the stack (a decode loop's per-head decays); longer ones (packed sequences) go to the heap.</summary>
    private const int StackMeta = 256;

    /// <summary>
    /// The length of a call's int32 meta data: the packed offsets (S + 1, varlen only), then the per-head log2 decays by
    /// bit pattern (<see cref="DecayKind.PerHead"/> only). 0 when neither.
    /// </summary>
    private static int MetaLength(LinearProblem problem) =>
        (problem.IsVarlen ? problem.Options.CuSeqLens.Length : 0) + (problem.Options.Decay == DecayKind.PerHead ? problem.Options.HeadLogDecay.Length : 0);

    /// <summary>Writes the meta data into <paramref name="meta"/> (<see cref="MetaLength"/> values) and the decays' index into <paramref name="p"/>.</summary>
    private static void FillMeta(LinearProblem problem, ref LinearParams p, Span<int> meta)
    {
        int count = 0;
        if (problem.IsVarlen)
        {
            problem.Options.CuSeqLens.Span.CopyTo(meta);
            count = problem.Options.CuSeqLens.Length;
        }
        p.DecayBase = count;
        if (problem.Options.Decay == DecayKind.PerHead)
            foreach (float logDecay in problem.Options.HeadLogDecay.Span)
                meta[count++] = BitConverter.SingleToInt32Bits(logDecay * (float)MathConstants.Log2EDouble);
    }
}
