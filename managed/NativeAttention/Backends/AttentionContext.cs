// The execution context: one per backend and device. Public methods validate, then call one *Core method.
namespace NativeAttention;

/// <summary>
/// Runs attention kernels on one backend and device. Every public method validates its arguments completely
/// (shapes, strides, element types, aliasing, memory location) before any kernel runs, then dispatches to the
/// backend. A context may be used from several threads at once.
/// </summary>
public abstract class AttentionContext : IDisposable
{
    private int _disposed;

    /// <summary>The backend this context runs on.</summary>
    public abstract Backend Backend { get; }

    /// <summary>A human-readable name of the device.</summary>
    public abstract string DeviceName { get; }

    /// <summary>Where tensors passed to this context must live.</summary>
    public abstract MemoryLocation TensorLocation { get; }

    /// <summary>Creates a context on <paramref name="backend"/> (Auto picks the best supported one).</summary>
    /// <exception cref="NotSupportedException">The backend does not run on this machine; the message says why.</exception>
    public static AttentionContext Create(Backend backend = Backend.Auto, ContextOptions? options = null)
    {
        options ??= new ContextOptions();
        var resolved = Backends.Resolve(backend);
        var info = Backends.Query(resolved);
        if (!info.IsSupported)
            throw new NotSupportedException($"The {resolved} backend is not available: {info.Description}");
        return resolved switch
        {
            Backend.Cpu => new Cpu.CpuContext(options),
            _ => GpuContexts.Create(resolved, options),
        };
    }

    /// <summary>
    /// Exact attention: <c>O = softmax(scale * Q K^T + modifiers, masked) V</c> per (batch, query head), with the
    /// options of <see cref="FlashOptions"/>. Writes <paramref name="output"/> and, when given, the
    /// log-sum-exp of each query row (<c>-inf</c> for rows that see no key, whose output is zero).
    /// </summary>
    /// <param name="query">Q, <c>[B, Hq, Nq, Dqk]</c>.</param>
    /// <param name="key">K, <c>[B, Hkv, Nk, Dqk]</c>, Hq a multiple of Hkv.</param>
    /// <param name="value">V, <c>[B, Hkv, Nk, Dv]</c>.</param>
    /// <param name="output">O, <c>[B, Hq, Nq, Dv]</c>, not overlapping any input.</param>
    /// <param name="options">Options; null for the defaults.</param>
    /// <param name="logSumExp">Optional float32 <c>[B, Hq, Nq]</c> output.</param>
    /// <exception cref="ArgumentException">A tensor or option is invalid; the message names it and the expected shape.</exception>
    /// <exception cref="ObjectDisposedException">The context or a buffer was disposed.</exception>
    /// <exception cref="NotSupportedException">The backend does not implement an option that was requested.</exception>
    public void Flash(TensorView query, TensorView key, TensorView value, TensorView output, FlashOptions? options = null, TensorView? logSumExp = null)
    {
        ThrowIfDisposed();
        var problem = FlashProblem.Create(query, key, value, output, options, logSumExp);
        CheckLocation(query, nameof(query));
        CheckLocation(key, nameof(key));
        CheckLocation(value, nameof(value));
        CheckLocation(output, nameof(output));
        if (logSumExp is { } lse) CheckLocation(lse, nameof(logSumExp));
        var o = problem.Options;
        if (o.AlibiSlopes is { } slopes) CheckLocation(slopes, "options.AlibiSlopes");
        if (o.Bias is { } bias) CheckLocation(bias, "options.Bias");
        if (o.Sinks is { } sinks) CheckLocation(sinks, "options.Sinks");
        if (o.LowRankBias is { } lowRank)
        {
            CheckLocation(lowRank.U, "options.LowRankBias.U");
            CheckLocation(lowRank.W, "options.LowRankBias.W");
        }
        FlashCore(problem, query, key, value, output, logSumExp);
    }

    /// <summary>
    /// Neighborhood attention (NATTEN semantics) on a 1-D, 2-D or 3-D token grid; see <see cref="NeighborhoodOptions"/>.
    /// Tensors are <c>[B, H, spatial..., D]</c>.
    /// </summary>
    /// <exception cref="ArgumentException">A tensor or option is invalid.</exception>
    /// <exception cref="NotSupportedException">This backend has no neighborhood kernel yet.</exception>
    public void Neighborhood(TensorView query, TensorView key, TensorView value, TensorView output, NeighborhoodOptions options, TensorView? logSumExp = null)
    {
        ThrowIfDisposed();
        var problem = NeighborhoodProblem.Create(query, key, value, output, options, logSumExp);
        CheckLocation(query, nameof(query));
        CheckLocation(key, nameof(key));
        CheckLocation(value, nameof(value));
        CheckLocation(output, nameof(output));
        NeighborhoodCore(problem, query, key, value, output, logSumExp);
    }

    /// <summary>Block-sparse attention over the blocks a <see cref="BlockMask"/> lists; tensors as in <see cref="Flash"/>.</summary>
    /// <exception cref="ArgumentException">A tensor, the mask or an option is invalid (including out-of-range block indices).</exception>
    /// <exception cref="NotSupportedException">This backend has no block-sparse kernel yet.</exception>
    public void BlockSparse(TensorView query, TensorView key, TensorView value, TensorView output, BlockSparseOptions options, TensorView? logSumExp = null)
    {
        ThrowIfDisposed();
        var problem = BlockSparseProblem.Create(query, key, value, output, options, logSumExp);
        CheckLocation(query, nameof(query));
        CheckLocation(key, nameof(key));
        CheckLocation(value, nameof(value));
        CheckLocation(output, nameof(output));
        BlockSparseCore(problem, query, key, value, output, logSumExp);
    }

    /// <summary>
    /// Chunked linear attention; Q, K are <c>[B, H, N, Dk]</c>, V and O <c>[B, H, N, Dv]</c>; states are float32
    /// <c>[B, H, F, Dv]</c> (<c>[B, H, F, Dv + 1]</c> with <see cref="LinearOptions.Normalize"/>: the last column carries the
    /// normaliser) with F the feature size of <see cref="LinearOptions.FeatureMap"/>; see <see cref="LinearProblem.StateShape"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A tensor or option is invalid.</exception>
    /// <exception cref="NotSupportedException">This backend has no linear-attention kernel yet.</exception>
    public void LinearChunked(TensorView query, TensorView key, TensorView value, TensorView output, LinearOptions? options = null, TensorView? initialState = null, TensorView? finalState = null)
    {
        ThrowIfDisposed();
        var problem = LinearProblem.Create(query, key, value, output, options, initialState, finalState);
        CheckLocation(query, nameof(query));
        CheckLocation(key, nameof(key));
        CheckLocation(value, nameof(value));
        CheckLocation(output, nameof(output));
        if (initialState is { } s0) CheckLocation(s0, nameof(initialState));
        if (finalState is { } s1) CheckLocation(s1, nameof(finalState));
        LinearChunkedCore(problem, query, key, value, output, initialState, finalState);
    }

    /// <summary>
    /// Combines S partial results of the same query rows, each computed over a disjoint part of the keys (split-KV,
    /// ring or context-parallel attention), into the exact result: <c>LSE = log(sum_s exp(LSE_s))</c>,
    /// <c>o = sum_s exp(LSE_s - LSE) o_s</c>. Partials with LSE = -inf contribute nothing.
    /// </summary>
    /// <param name="partialOutputs">The partial outputs <c>[S, ..., Dv]</c>, e.g. <c>[S, B, Hq, Nq, Dv]</c>.</param>
    /// <param name="partialLogSumExp">Their float32 log-sum-exps <c>[S, ...]</c>.</param>
    /// <param name="output">The merged output <c>[..., Dv]</c>.</param>
    /// <param name="logSumExp">Optional merged float32 log-sum-exp <c>[...]</c>.</param>
    /// <exception cref="ArgumentException">Shapes disagree, an output aliases an input, or a type is wrong.</exception>
    public void MergeStates(TensorView partialOutputs, TensorView partialLogSumExp, TensorView output, TensorView? logSumExp = null)
    {
        ThrowIfDisposed();
        var problem = MergeProblem.Create(partialOutputs, partialLogSumExp, output, logSumExp);
        CheckLocation(partialOutputs, nameof(partialOutputs));
        CheckLocation(partialLogSumExp, nameof(partialLogSumExp));
        CheckLocation(output, nameof(output));
        if (logSumExp is { } lse) CheckLocation(lse, nameof(logSumExp));
        MergeStatesCore(problem, partialOutputs, partialLogSumExp, output, logSumExp);
    }


    /// <summary>Allocates a zero-filled, contiguous tensor where this context needs tensors (<see cref="TensorLocation"/>).</summary>
    /// <exception cref="ObjectDisposedException">The context was disposed.</exception>
    public TensorView Allocate(ElementType type, params ReadOnlySpan<int> shape)
    {
        ThrowIfDisposed();
        return AllocateCore(type, shape);
    }

    /// <summary>Copies <paramref name="source"/> (host or device, any strides) into a new contiguous tensor that this context can use.</summary>
    /// <exception cref="ObjectDisposedException">The context or the source's buffer was disposed.</exception>
    public TensorView Upload(in TensorView source)
    {
        var result = Allocate(source.ElementType, source.Shape);
        Gpu.TensorCopy.Copy(source, result);
        return result;
    }

    /// <summary>Waits for pending work, then copies <paramref name="source"/> into a new contiguous host tensor.</summary>
    /// <exception cref="ObjectDisposedException">The context or the source's buffer was disposed.</exception>
    public TensorView Download(in TensorView source)
    {
        ThrowIfDisposed();
        Synchronize();
        var result = Gpu.TensorCopy.AllocateHost(source.ElementType, source.Shape);
        Gpu.TensorCopy.Copy(source, result);
        return result;
    }

    /// <summary>Waits for pending work, then copies between two tensors of equal shape and element type, each on the host or a device.</summary>
    /// <exception cref="ArgumentException">Shapes or element types differ, or the destination's elements overlap.</exception>
    /// <exception cref="ObjectDisposedException">The context or a buffer was disposed.</exception>
    public void Copy(in TensorView source, in TensorView destination)
    {
        ThrowIfDisposed();
        Synchronize();
        Gpu.TensorCopy.Copy(source, destination);
    }

    /// <summary>Backend implementation of <see cref="Allocate"/>; the default allocates host memory.</summary>
    private protected virtual TensorView AllocateCore(ElementType type, ReadOnlySpan<int> shape) =>
        Gpu.TensorCopy.AllocateHost(type, shape);

    /// <summary>Waits until every kernel launched on this context has finished.</summary>
    public virtual void Synchronize() { }

    /// <summary>Backend implementation of <see cref="Flash"/>; arguments are already validated.</summary>
    private protected abstract void FlashCore(FlashProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp);

    /// <summary>Backend implementation of <see cref="Neighborhood"/>.</summary>
    private protected virtual void NeighborhoodCore(NeighborhoodProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp) =>
        throw NotYet("Neighborhood");

    /// <summary>Backend implementation of <see cref="BlockSparse"/>.</summary>
    private protected virtual void BlockSparseCore(BlockSparseProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp) =>
        throw NotYet("BlockSparse");

    /// <summary>Backend implementation of <see cref="LinearChunked"/>.</summary>
    private protected virtual void LinearChunkedCore(LinearProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? initialState, in TensorView? finalState) =>
        throw NotYet("LinearChunked");

    /// <summary>Backend implementation of <see cref="MergeStates"/>.</summary>
    private protected virtual void MergeStatesCore(MergeProblem problem, in TensorView partialOutputs, in TensorView partialLogSumExp, in TensorView output, in TensorView? logSumExp) =>
        throw NotYet("MergeStates");

    private NotSupportedException NotYet(string family) =>
        new($"{family} has no kernel on the {Backend} backend yet; Reference.{family} computes it in float64.");

    /// <summary>Throws unless the tensor lives where this backend needs it.</summary>
    protected void CheckLocation(in TensorView view, string name) =>
        TensorChecks.Location(view, TensorLocation, name, Backend.ToString());

    /// <summary>Throws <see cref="ObjectDisposedException"/> after <see cref="Dispose()"/>.</summary>
    protected void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    /// <summary>Releases the context's device resources.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        ReleaseResources();
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases what the backend owns; called once.</summary>
    protected virtual void ReleaseResources() { }
}

/// <summary>Settings of a context.</summary>
public sealed record ContextOptions
{
    /// <summary>Worker threads for the CPU backend; null uses every core.</summary>
    public int? Threads { get; init; }

    /// <summary>The device index within the backend.</summary>
    public int Device { get; init; }
}
