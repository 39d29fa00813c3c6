// The CPU backend's context: host tensors, a fixed worker count, managed SIMD kernels.
namespace NativeAttention.Cpu;

/// <summary>Runs kernels on the CPU over host tensors.</summary>
internal sealed class CpuContext : AttentionContext
{
    public CpuContext(ContextOptions options)
    {
        if (options.Threads is int t && t <= 0)
            throw new ArgumentOutOfRangeException(nameof(options), t, "Threads must be positive.");
        Threads = options.Threads ?? Environment.ProcessorCount;
    }

    /// <summary>The number of worker threads kernels use.</summary>
    public int Threads { get; }

    /// <summary>
    /// Runs the flash, decode and neighborhood kernels at this vector width in bits (512, 256, 128, or 0 for scalar) instead of the widest the
    /// JIT accelerates, so tests can cover every width on one machine; null (the default) picks the widest.
    /// </summary>
    internal int? ForcedVectorBits { get; init; }

    public override Backend Backend => Backend.Cpu;
    public override string DeviceName => CpuFeatures.Describe();
    public override MemoryLocation TensorLocation => MemoryLocation.Host;

    private protected override void FlashCore(FlashProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp)
    {
        // Decode-shaped calls (few rows per kv head) read K and V once on the split-KV decode kernel.
        if (CpuDecode.Serves(problem)) CpuDecode.Run(KvCacheProblem.ForFlash(problem), query, key, value, output, logSumExp, Threads, ForcedVectorBits);
        else CpuFlash.Run(problem, query, key, value, output, logSumExp, Threads, ForcedVectorBits);
    }

    /// <summary>
    /// Rows that see no key (a varlen sequence without keys), written in place on the host views: zeros into the output
    /// (all-zero bits in float32, binary16 and bfloat16) and -inf into the float32 LSE; no host copy is allocated.
    /// </summary>
    private protected override void WriteEmptyRowsCore(in TensorView output, in TensorView? logSumExp)
    {
        FillHost(output, zeroBits: true);
        if (logSumExp is { } lse) FillHost(lse, zeroBits: false);
    }

    /// <summary>Every element of a host view (any rank up to 8, any strides): zero bits, or float32 -inf.</summary>
    private static unsafe void FillHost(in TensorView view, bool zeroBits)
    {
        long count = view.ElementCount;
        if (count == 0) return;
        int rank = view.Rank, size = view.ElementType.SizeOf();
        ReadOnlySpan<int> shape = view.Shape;
        ReadOnlySpan<long> strides = view.Strides;
        Span<int> index = stackalloc int[8];
        using var pin = view.Storage!.Pin();
        byte* first = (byte*)pin.Pointer + view.Offset * size;
        for (long n = 0; n < count; n++)
        {
            long offset = 0;
            for (int a = 0; a < rank; a++) offset += index[a] * strides[a];
            byte* element = first + offset * size;
            if (zeroBits) new Span<byte>(element, size).Clear();
            else *(float*)element = float.NegativeInfinity;
            for (int a = rank - 1; a >= 0; a--)
            {
                if (++index[a] < shape[a]) break;
                index[a] = 0;
            }
        }
    }

    private protected override void FlashKvCacheCore(KvCacheProblem problem, in TensorView query, in TensorView keyCache, in TensorView valueCache, in TensorView output, in TensorView? logSumExp) =>
        CpuDecode.Run(problem, query, keyCache, valueCache, output, logSumExp, Threads, ForcedVectorBits);

    private protected override void NeighborhoodCore(NeighborhoodProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp) =>
        CpuNeighborhood.Run(problem, query, key, value, output, logSumExp, Threads, ForcedVectorBits);

    private protected override void LinearChunkedCore(LinearProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? initialState, in TensorView? finalState) =>
        CpuLinear.Run(problem, query, key, value, output, initialState, finalState, Threads, ForcedVectorBits);

    private protected override void LinearDecodeStepCore(LinearProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView state, in TensorView? intermediateStates) =>
        CpuLinear.Run(problem, query, key, value, output, state, intermediateStates, Threads, ForcedVectorBits);
    private protected override void BlockSparseCore(BlockSparseProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp) =>
        CpuBlockSparse.Run(problem, query, key, value, output, logSumExp, Threads, ForcedVectorBits);

    private protected override void DeltaRuleChunkedCore(DeltaRuleProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView beta, in TensorView output,
        in TensorView? initialState, in TensorView? finalState) =>
        CpuDeltaRule.Run(problem, query, key, value, beta, output, initialState, finalState, Threads, ForcedVectorBits);

    private protected override void DeltaRuleDecodeStepCore(DeltaRuleProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView beta, in TensorView output,
        in TensorView state, in TensorView? intermediateStates) =>
        CpuDeltaRule.Run(problem, query, key, value, beta, output, state, intermediateStates, Threads, ForcedVectorBits);

    private protected override void MergeStatesCore(MergeProblem problem, in TensorView partialOutputs, in TensorView partialLogSumExp, in TensorView output, in TensorView? logSumExp) =>
        CpuMerge.Run(problem, partialOutputs, partialLogSumExp, output, logSumExp, Threads);
}
