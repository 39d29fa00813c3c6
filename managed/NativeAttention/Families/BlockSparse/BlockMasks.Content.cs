// Content-aware block selection (FlexPrefill, SeerAttention-style pooled scores, SpargeAttn's similarity gate) on the
// CPU (Cpu/BlockSparse/CpuBlockScores.cs) or, for device tensors, on OpenCL and CUDA (Gpu/BlockSparse/GpuContentBuilder.cs):
// pooled q and k per block, block scores softmaxed per query block, then top-k or a cumulative-mass threshold.
namespace NativeAttention;

/// <summary>Options of <see cref="BlockMasks.FromContent(TensorView, TensorView, ContentMaskOptions)"/>. Exactly one of <see cref="TopK"/> and <see cref="Gamma"/> is set.</summary>
public sealed record ContentMaskOptions
{
    /// <summary>Query block size Bq of the mask built.</summary>
    public required int QueryBlockSize { get; init; }

    /// <summary>Key block size Bk of the mask built.</summary>
    public required int KeyBlockSize { get; init; }

    /// <summary>Keep the k key blocks of highest pooled probability per query block, besides the forced ones.</summary>
    public int? TopK { get; init; }

    /// <summary>
    /// Keep, per query block, the smallest set of key blocks (forced ones first, then by decreasing pooled probability)
    /// whose probabilities sum to at least gamma (FlexPrefill); 1 keeps every candidate block.
    /// </summary>
    public double? Gamma { get; init; }

    /// <summary>
    /// SpargeAttn's gate: a block whose tokens' mean pairwise cosine similarity is below this is too dissimilar to be
    /// judged by its mean. Such key blocks are kept in every row; such query blocks keep every candidate. Null: no gate.
    /// </summary>
    public double? SimilarityThreshold { get; init; }

    /// <summary>The first key blocks (attention sinks) every row keeps.</summary>
    public int SinkBlocks { get; init; } = 1;

    /// <summary>Every row keeps its diagonal block (under <see cref="Causal"/>, every block crossing the causal diagonal).</summary>
    public bool KeepDiagonal { get; init; } = true;

    /// <summary>
    /// Only blocks some query sees causally (bottom-right aligned) are candidates; those crossing the diagonal come out
    /// partial (use with <see cref="ElementPredicate.CausalMask"/>), the rest full. Without it every block is a candidate, full.
    /// </summary>
    public bool Causal { get; init; } = true;

    /// <summary>Score scale for the pooled scores; null means <c>1 / sqrt(D)</c>.</summary>
    public float? Scale { get; init; }

    /// <summary>Worker threads of the CPU builder; null uses every processor. The GPU builder ignores it.</summary>
    public int? Threads { get; init; }
}

/// <summary>What <see cref="BlockMasks.FromContent(TensorView, TensorView, ContentMaskOptions)"/> chose.</summary>
/// <param name="Mask">The mask, one row per (batch, query head, query block).</param>
/// <param name="KeptBlocks">Blocks listed, over every row.</param>
/// <param name="CandidateBlocks">Blocks that could have been listed (every block, or the causal ones).</param>
public sealed record ContentMask(FlexBlockMask Mask, long KeptBlocks, long CandidateBlocks)
{
    /// <summary>The density chosen: kept blocks over candidate blocks.</summary>
    public double Density => CandidateBlocks == 0 ? 0 : (double)KeptBlocks / CandidateBlocks;
}

public static partial class BlockMasks
{
    /// <summary>
    /// Builds a mask from the content of host tensors Q <c>[B, Hq, Nq, D]</c> and K <c>[B, Hkv, Nk, D]</c>: the mean of
    /// each block's queries and keys, pooled scores <c>scale q_mean . k_mean</c> softmaxed over each query block's
    /// candidates (query head h against kv head <c>h / (Hq / Hkv)</c>), then the blocks <see cref="ContentMaskOptions.TopK"/>
    /// or <see cref="ContentMaskOptions.Gamma"/> select, plus the forced ones (sinks, diagonal, and the similarity gate's).
    /// </summary>
    /// <exception cref="ArgumentException">A tensor or option is invalid; the message names it.</exception>
    public static ContentMask FromContent(TensorView query, TensorView key, ContentMaskOptions options)
    {
        var (grid, scale) = CheckContent(query, key, options, MemoryLocation.Host, Backend.Cpu);
        return Cpu.CpuBlockScores.Build(query, key, grid, options, scale, options.Threads ?? Environment.ProcessorCount);
    }

    /// <summary>
    /// <see cref="FromContent(TensorView, TensorView, ContentMaskOptions)"/> on the backend of <paramref name="context"/>,
    /// with Q and K where that context needs tensors: the CPU builder on a CPU context; on OpenCL and CUDA the pooling,
    /// scores, softmax, similarity gate and selection (top-k or cumulative mass, forced blocks first) run on the device
    /// (kernels/blocksparse/content.h, in float32), which then hands back one kept flag per (row, key block) to list on
    /// the host. Same validation, semantics and result; <see cref="ContentMaskOptions.Threads"/> applies to the CPU only.
    /// On a GPU the call waits for the device. Blocks whose pooled probabilities tie within float rounding may be chosen
    /// differently from the CPU builder.
    /// </summary>
    /// <exception cref="ArgumentException">A tensor or option is invalid, or a tensor is not one the context can use; the message names it.</exception>
    /// <exception cref="ObjectDisposedException">The context was disposed.</exception>
    public static ContentMask FromContent(AttentionContext context, TensorView query, TensorView key, ContentMaskOptions options)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context is not Gpu.GpuContext gpu) return FromContent(query, key, options);
        var (grid, scale) = CheckContent(query, key, options, context.TensorLocation, context.Backend);
        Gpu.IGpuKernelHost host = gpu;
        host.CheckOwner(query, nameof(query));
        host.CheckOwner(key, nameof(key));
        return Gpu.GpuContentBuilder.Build(gpu, query, key, grid, options, scale);
    }

    /// <summary>The validation both overloads share; returns the block grid and the score scale.</summary>
    private static (BlockGrid Grid, float Scale) CheckContent(in TensorView query, in TensorView key, ContentMaskOptions options, MemoryLocation location, Backend backend)
    {
        ArgumentNullException.ThrowIfNull(options);
        const string layout = "[B, H, N, D]";
        var qs = TensorChecks.Rank(query, 4, nameof(query), layout).ToArray();
        var ks = TensorChecks.Rank(key, 4, nameof(key), layout).ToArray();
        TensorChecks.Positive(query, nameof(query), layout);
        TensorChecks.Positive(key, nameof(key), layout);
        TensorChecks.Location(query, location, nameof(query), backend);
        TensorChecks.Location(key, location, nameof(key), backend);
        if (ks[0] != qs[0] || ks[3] != qs[3])
            Fail($"key has shape [{string.Join(", ", ks)}]; expected batch {qs[0]} and head dim {qs[3]} as the query.", nameof(key));
        if (qs[1] % ks[1] != 0) Fail($"key has {ks[1]} heads, which does not divide the query's {qs[1]}.", nameof(key));
        if (options.QueryBlockSize < BlockMask.MinBlockSize || options.QueryBlockSize > BlockMask.MaxBlockSize)
            Fail($"options.QueryBlockSize is {options.QueryBlockSize}; expected {BlockMask.MinBlockSize} to {BlockMask.MaxBlockSize}.", "options.QueryBlockSize");
        if (options.KeyBlockSize < BlockMask.MinBlockSize || options.KeyBlockSize > BlockMask.MaxBlockSize)
            Fail($"options.KeyBlockSize is {options.KeyBlockSize}; expected {BlockMask.MinBlockSize} to {BlockMask.MaxBlockSize}.", "options.KeyBlockSize");
        if ((options.TopK is null) == (options.Gamma is null))
            Fail("Set exactly one of options.TopK and options.Gamma.", "options.TopK");
        if (options.TopK is < 0) Fail($"options.TopK is {options.TopK}; expected a non-negative count.", "options.TopK");
        if (options.Gamma is double gamma && !(gamma >= 0 && gamma <= 1)) Fail($"options.Gamma is {gamma}; expected a fraction in [0, 1].", "options.Gamma");
        if (options.SimilarityThreshold is double t && !double.IsFinite(t)) Fail($"options.SimilarityThreshold is {t}; expected a finite value.", "options.SimilarityThreshold");
        if (options.SinkBlocks < 0) Fail($"options.SinkBlocks is {options.SinkBlocks}; expected a non-negative count.", "options.SinkBlocks");
        if (options.Threads is <= 0) Fail($"options.Threads is {options.Threads}; expected a positive count.", "options.Threads");
        float scale = options.Scale ?? (float)(1.0 / Math.Sqrt(qs[3]));
        if (!float.IsFinite(scale)) Fail($"options.Scale is {scale}; expected a finite value.", "options.Scale");
        return (new BlockGrid(qs[2], ks[2], options.QueryBlockSize, options.KeyBlockSize), scale);
    }
}
