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
    /// <para>
    /// Decode-shaped calls run on the split-KV decode kernels of <see cref="FlashKvCache"/>, which read K and V once
    /// for every query head of a GQA group and split long key ranges across cores: a call is decode-shaped when
    /// <c>(Hq / Hkv) x Nq</c>, the rows sharing one KV head, is at most 16 (on GPUs, 8 for head dims above 128) and it
    /// has no dense or low-rank bias (those stay on the flash kernel). Results agree with the flash kernel's within
    /// the documented tolerance; on the CPU the decode path's split count does not depend on the thread count either.
    /// A steady stream of calls with the same shapes allocates no managed memory (CPU and OpenCL).
    /// </para>
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
        var problem = FlashProblem.CreateForCall(query, key, value, output, options, logSumExp);
        try
        {
            CheckTensors(problem.Tensors);
            FlashCore(problem, query, key, value, output, logSumExp);
        }
        finally
        {
            problem.ReleaseCall();   // the per-thread problem must not keep the caller's tensors alive
        }
    }

    /// <summary>
    /// Exact attention over a variable-length batch packed without padding (FlashAttention's varlen API). Sequence b
    /// takes query rows <c>[CuSeqLensQ[b], CuSeqLensQ[b + 1])</c> and key rows <c>[CuSeqLensK[b], CuSeqLensK[b + 1])</c>
    /// (only the first <c>SeqUsedK[b]</c> of them when <see cref="VarlenLayout.SeqUsedK"/> is given), and effectively
    /// computes <see cref="Flash"/> with that sequence's Nq and Nk: causal masks and windows align bottom-right per
    /// sequence, and a sequence with no key writes zeros and LSE = -inf. ALiBi slopes may be <c>[Hq]</c> or per
    /// sequence <c>[B, Hq]</c>; sinks are <c>[Hq]</c>. Each decode-shaped sequence runs on the decode kernels, by the
    /// rule of <see cref="Flash"/> applied to that sequence's Nq.
    /// </summary>
    /// <param name="query">Q, <c>[TotalQ, Hq, Dqk]</c>.</param>
    /// <param name="key">K, <c>[TotalK, Hkv, Dqk]</c>, Hq a multiple of Hkv.</param>
    /// <param name="value">V, <c>[TotalK, Hkv, Dv]</c>.</param>
    /// <param name="output">O, <c>[TotalQ, Hq, Dv]</c>, not overlapping any input.</param>
    /// <param name="layout">The cumulative offsets (and optional used key lengths) of the sequences.</param>
    /// <param name="options">Options; null for the defaults. A dense or low-rank bias is rejected (no packed form).</param>
    /// <param name="logSumExp">Optional float32 <c>[Hq, TotalQ]</c> output.</param>
    /// <exception cref="ArgumentException">A tensor, offset array or option is invalid; the message names it
    /// (<c>layout.CuSeqLensQ</c>, <c>layout.CuSeqLensK</c>, <c>layout.SeqUsedK</c>, <c>options.Bias</c>, ...).</exception>
    /// <exception cref="ObjectDisposedException">The context or a buffer was disposed.</exception>
    /// <exception cref="NotSupportedException">The backend does not implement an option that was requested.</exception>
    public void FlashVarlen(TensorView query, TensorView key, TensorView value, TensorView output, VarlenLayout layout, FlashOptions? options = null, TensorView? logSumExp = null)
    {
        ThrowIfDisposed();
        var problem = VarlenProblem.CreateForCall(query, key, value, output, layout, options, logSumExp);
        try
        {
            CheckTensors(problem.Tensors);
            FlashVarlenCore(problem, query, key, value, output, logSumExp);
        }
        finally
        {
            problem.ReleaseCall();   // the per-thread problem must not keep the caller's tensors alive
        }
    }

    /// <summary>
    /// Decoding against a KV cache (FlashAttention's <c>flash_attn_with_kvcache</c>): optionally appends
    /// <see cref="KvCacheOptions.NewKey"/>/<see cref="KvCacheOptions.NewValue"/> into the caches in place at positions
    /// <c>CacheSeqLens[b]..</c> (new keys rotated first when rotary tables are given), then effectively computes
    /// <see cref="Flash"/> for each batch element b with the (rotated) queries against the first
    /// <c>L_b = CacheSeqLens[b] + Nnew</c> cached keys and values, causal masks and windows aligned bottom-right against
    /// <c>L_b</c>. An element with <c>L_b = 0</c> writes zeros and LSE = -inf. See <see cref="KvCacheOptions"/> for
    /// paging, rotary positions and split-KV.
    /// </summary>
    /// <param name="query">Q, <c>[B, Hq, Nq, Dqk]</c>.</param>
    /// <param name="keyCache">The key cache, <c>[B, Hkv, Capacity, Dqk]</c>, or <c>[NumBlocks, Hkv, PageSize, Dqk]</c> when paged.</param>
    /// <param name="valueCache">The value cache, shaped as <paramref name="keyCache"/> with Dv last.</param>
    /// <param name="output">O, <c>[B, Hq, Nq, Dv]</c>, not overlapping any input or cache.</param>
    /// <param name="cache">Cache lengths, the tokens to append, paging, rotary embedding and splits.</param>
    /// <param name="options">Options; null for the defaults. A dense or low-rank bias is rejected.</param>
    /// <param name="logSumExp">Optional float32 <c>[B, Hq, Nq]</c> output.</param>
    /// <exception cref="ArgumentException">A tensor or option is invalid, a block index is outside the caches, the cache
    /// cannot hold the append, the rotary tables are too short, or a cache written by the append aliases another tensor;
    /// the message names it.</exception>
    /// <exception cref="ObjectDisposedException">The context or a buffer was disposed.</exception>
    /// <exception cref="NotSupportedException">The backend does not implement an option that was requested.</exception>
    public void FlashKvCache(TensorView query, TensorView keyCache, TensorView valueCache, TensorView output, KvCacheOptions cache, FlashOptions? options = null, TensorView? logSumExp = null)
    {
        ThrowIfDisposed();
        var problem = KvCacheProblem.CreateForCall(query, keyCache, valueCache, output, cache, options, logSumExp);
        try
        {
            CheckTensors(problem.Tensors);
            FlashKvCacheCore(problem, query, keyCache, valueCache, output, logSumExp);
        }
        finally
        {
            problem.ReleaseCall();   // the per-thread problem must not keep the caller's tensors alive
        }
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
        var problem = NeighborhoodProblem.CreateForCall(query, key, value, output, options, logSumExp);
        try
        {
            CheckTensors(problem.Tensors);
            NeighborhoodCore(problem, query, key, value, output, logSumExp);
        }
        finally
        {
            problem.ReleaseCall();   // the per-thread problem must not keep the caller's tensors alive
        }
    }

    /// <summary>Block-sparse attention over the blocks a <see cref="BlockMask"/> lists; tensors as in <see cref="Flash"/>.</summary>
    /// <exception cref="ArgumentException">A tensor, the mask or an option is invalid (including out-of-range block indices).</exception>
    /// <exception cref="NotSupportedException">This backend has no block-sparse kernel yet.</exception>
    public void BlockSparse(TensorView query, TensorView key, TensorView value, TensorView output, BlockSparseOptions options, TensorView? logSumExp = null)
    {
        ThrowIfDisposed();
        var problem = BlockSparseProblem.CreateForCall(query, key, value, output, options, logSumExp);
        try
        {
            CheckTensors(problem.Tensors);
            BlockSparseCore(problem, query, key, value, output, logSumExp);
        }
        finally
        {
            problem.ReleaseCall();   // the per-thread problem must not keep the caller's tensors alive
        }
    }

    /// <summary>
    /// Chunked linear attention (semantics: <see cref="LinearOptions"/> and <see cref="LinearProblem"/>): Q is
    /// <c>[B, Hq, N, Dk]</c>, K <c>[B, Hk, N, Dk]</c>, V <c>[B, Hv, N, Dv]</c> and O <c>[B, H, N, Dv]</c>, H the most
    /// heads of the three (GQA and grouped value heads), any strides (token-major memory as a permuted view); states are
    /// float32 <c>[B, H, F, Dv]</c> (<c>[B, H, F, Dv + 1]</c> with <see cref="LinearOptions.Normalize"/>: the last column
    /// carries the normaliser; <c>[S, ...]</c> per packed sequence with <see cref="LinearOptions.CuSeqLens"/>) with F the
    /// feature size of <see cref="LinearOptions.FeatureMap"/>; see <see cref="LinearProblem.StateShape"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A tensor or option is invalid (a positive log gate, a wrong state shape, ...).</exception>
    /// <exception cref="NotSupportedException">This backend has no linear-attention kernel yet.</exception>
    public void LinearChunked(TensorView query, TensorView key, TensorView value, TensorView output, LinearOptions? options = null, TensorView? initialState = null, TensorView? finalState = null)
    {
        ThrowIfDisposed();
        var problem = LinearProblem.CreateForCall(query, key, value, output, options, initialState, finalState);
        try
        {
            CheckTensors(problem.Tensors);
            LinearChunkedCore(problem, query, key, value, output, initialState, finalState);
        }
        finally
        {
            problem.ReleaseCall();   // the per-thread problem must not keep the caller's tensors alive
        }
    }

    /// <summary>
    /// Recurrent linear-attention decoding: advances <paramref name="state"/> in place by the T tokens of Q, K, V
    /// (<c>[B, Hq, T, Dk]</c>, <c>[B, Hk, T, Dk]</c>, <c>[B, Hv, T, Dv]</c>; usually T = 1) and writes their outputs,
    /// exactly as <see cref="LinearChunked"/> with <paramref name="state"/> as initial and final state would.
    /// <para>Verify (speculative decoding): with <paramref name="intermediateStates"/> (float32 <c>[B, T, H, F, C]</c>,
    /// T at most <see cref="LinearProblem.MaxVerifyTokens"/>) the state is only read, the state after draft token j is
    /// written to <c>intermediateStates[:, j]</c>, and <see cref="LinearCommit"/> later keeps the accepted prefix.</para>
    /// Options as for <see cref="LinearChunked"/> (log gates <c>[B, H, T]</c> or <c>[B, H, T, Dk]</c>); the call must be
    /// causal and not packed; the chunk size is ignored.
    /// </summary>
    /// <param name="query">Q, <c>[B, Hq, T, Dk]</c>.</param>
    /// <param name="key">K, <c>[B, Hk, T, Dk]</c>.</param>
    /// <param name="value">V, <c>[B, Hv, T, Dv]</c>.</param>
    /// <param name="output">O, <c>[B, H, T, Dv]</c>.</param>
    /// <param name="state">The float32 state <c>[B, H, F, C]</c>, read, and written in place unless verifying.</param>
    /// <param name="options">Options; null for the defaults.</param>
    /// <param name="intermediateStates">Optional float32 <c>[B, T, H, F, C]</c>: verify mode.</param>
    /// <exception cref="ArgumentException">A tensor or option is invalid.</exception>
    /// <exception cref="NotSupportedException">This backend has no linear-attention kernel yet.</exception>
    public void LinearDecodeStep(TensorView query, TensorView key, TensorView value, TensorView output, TensorView state, LinearOptions? options = null, TensorView? intermediateStates = null)
    {
        ThrowIfDisposed();
        var problem = LinearProblem.CreateDecodeForCall(query, key, value, output, state, options, intermediateStates);
        try
        {
            CheckTensors(problem.Tensors);
            LinearDecodeStepCore(problem, query, key, value, output, state, intermediateStates);
        }
        finally
        {
            problem.ReleaseCall();   // the per-thread problem must not keep the caller's tensors alive
        }
    }

    /// <summary>
    /// Commits the accepted prefix of a verify call: for each batch element b with <c>accepted[b] &gt; 0</c>, copies
    /// <c>intermediateStates[b, accepted[b] - 1]</c> over <c>state[b]</c>; <c>accepted[b] = 0</c> leaves it as it was.
    /// The state then equals decoding exactly the accepted tokens.
    /// </summary>
    /// <param name="intermediateStates">float32 <c>[B, T, H, F, C]</c> from <see cref="LinearDecodeStep"/>.</param>
    /// <param name="state">float32 <c>[B, H, F, C]</c>, written.</param>
    /// <param name="accepted">Accepted draft tokens per batch element, each in <c>[0, T]</c>.</param>
    /// <exception cref="ArgumentException">A tensor or count is invalid.</exception>
    public void LinearCommit(TensorView intermediateStates, TensorView state, ReadOnlySpan<int> accepted)
    {
        ThrowIfDisposed();
        CheckTensors(LinearProblem.CheckCommit(intermediateStates, state, accepted));
        Synchronize();
        var all = intermediateStates;
        for (int b = 0; b < accepted.Length; b++)
        {
            if (accepted[b] == 0) continue;
            // intermediateStates[b, accepted[b] - 1] as a [1, H, F, C] view: the token axis dropped, any strides kept.
            var kept = new TensorView(all.Storage!, [1, all.Shape[2], all.Shape[3], all.Shape[4]], [all.Strides[0], all.Strides[2], all.Strides[3], all.Strides[4]],
                all.Offset + b * all.Strides[0] + (accepted[b] - 1) * all.Strides[1]);
            Gpu.TensorCopy.Copy(kept, state.Slice(0, b, 1));
        }
    }

    /// <summary>
    /// The delta rule, chunked (DeltaNet, Gated DeltaNet, KDA; semantics: <see cref="DeltaRuleOptions"/> and
    /// <see cref="DeltaRuleProblem"/>): Q <c>[B, Hq, N, Dk]</c>, K <c>[B, Hk, N, Dk]</c>, V <c>[B, Hv, N, Dv]</c>,
    /// beta <c>[B, H, N]</c> and O <c>[B, H, N, Dv]</c>, H the most heads of the three, any strides (token-major memory
    /// as a permuted view). States are float32 <c>[B, H, Dk, Dv]</c> or, V-major, <c>[B, H, Dv, Dk]</c>
    /// (<c>[S, ...]</c> per packed sequence with <see cref="DeltaRuleOptions.CuSeqLens"/>).
    /// </summary>
    /// <exception cref="ArgumentException">A tensor or option is invalid (beta outside [0, 2], a positive log gate, a wrong state shape, ...).</exception>
    /// <exception cref="NotSupportedException">This backend has no delta-rule kernel yet.</exception>
    public void DeltaRuleChunked(TensorView query, TensorView key, TensorView value, TensorView beta, TensorView output, DeltaRuleOptions? options = null,
        TensorView? initialState = null, TensorView? finalState = null)
    {
        ThrowIfDisposed();
        var problem = DeltaRuleProblem.CreateForCall(query, key, value, beta, output, options, initialState, finalState);
        try
        {
            CheckTensors(problem.Tensors);
            DeltaRuleChunkedCore(problem, query, key, value, beta, output, initialState, finalState);
        }
        finally
        {
            problem.ReleaseCall();   // the per-thread problem must not keep the caller's tensors alive
        }
    }

    /// <summary>
    /// Recurrent delta-rule decoding: advances <paramref name="state"/> in place by the T tokens of Q, K, V and beta
    /// (usually T = 1) and writes their outputs, exactly as <see cref="DeltaRuleChunked"/> with <paramref name="state"/>
    /// as initial and final state would. With <paramref name="intermediateStates"/> (verify, T at most
    /// <see cref="LinearProblem.MaxVerifyTokens"/>) the state is only read, the state after draft token j is written
    /// to <c>intermediateStates[:, j]</c>, and <see cref="DeltaRuleCommit"/> later keeps the accepted prefix. Not packed;
    /// the chunk size is ignored.
    /// </summary>
    /// <param name="query">Q, <c>[B, Hq, T, Dk]</c>.</param>
    /// <param name="key">K, <c>[B, Hk, T, Dk]</c>.</param>
    /// <param name="value">V, <c>[B, Hv, T, Dv]</c>.</param>
    /// <param name="beta">beta, <c>[B, H, T]</c>, in [0, 2].</param>
    /// <param name="output">O, <c>[B, H, T, Dv]</c>.</param>
    /// <param name="state">The float32 state <c>[B, H, Dk, Dv]</c> (V-major <c>[B, H, Dv, Dk]</c>), read, and written in place unless verifying.</param>
    /// <param name="options">Options; null for DeltaNet with the defaults.</param>
    /// <param name="intermediateStates">Optional float32 <c>[B, T, H, ..]</c>: verify mode.</param>
    /// <exception cref="ArgumentException">A tensor or option is invalid.</exception>
    /// <exception cref="NotSupportedException">This backend has no delta-rule kernel yet.</exception>
    public void DeltaRuleDecodeStep(TensorView query, TensorView key, TensorView value, TensorView beta, TensorView output, TensorView state,
        DeltaRuleOptions? options = null, TensorView? intermediateStates = null)
    {
        ThrowIfDisposed();
        var problem = DeltaRuleProblem.CreateDecodeForCall(query, key, value, beta, output, state, options, intermediateStates);
        try
        {
            CheckTensors(problem.Tensors);
            DeltaRuleDecodeStepCore(problem, query, key, value, beta, output, state, intermediateStates);
        }
        finally
        {
            problem.ReleaseCall();   // the per-thread problem must not keep the caller's tensors alive
        }
    }

    /// <summary>
    /// Commits the accepted prefix of a delta-rule verify call: for each batch element b with <c>accepted[b] &gt; 0</c>,
    /// copies <c>intermediateStates[b, accepted[b] - 1]</c> over <c>state[b]</c>, exactly as <see cref="LinearCommit"/>
    /// does (either state layout: the copy keeps the layout).
    /// </summary>
    /// <param name="intermediateStates">float32 <c>[B, T, H, ..]</c> from <see cref="DeltaRuleDecodeStep"/>.</param>
    /// <param name="state">float32 <c>[B, H, ..]</c>, written.</param>
    /// <param name="accepted">Accepted draft tokens per batch element, each in <c>[0, T]</c>.</param>
    /// <exception cref="ArgumentException">A tensor or count is invalid.</exception>
    public void DeltaRuleCommit(TensorView intermediateStates, TensorView state, ReadOnlySpan<int> accepted) => LinearCommit(intermediateStates, state, accepted);

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
        var problem = MergeProblem.CreateForCall(partialOutputs, partialLogSumExp, output, logSumExp);
        try
        {
            CheckTensors(problem.Tensors);
            MergeStatesCore(problem, partialOutputs, partialLogSumExp, output, logSumExp);
        }
        finally
        {
            problem.ReleaseCall();   // the per-thread problem must not keep the caller's tensors alive
        }
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

    /// <summary>
    /// Backend implementation of <see cref="FlashVarlen"/>. The default runs <see cref="FlashCore"/> once per
    /// sequence on <c>[1, H, n, D]</c> views of the packed tensors (no copies), so every backend has varlen until it
    /// specialises it; sequences without queries are skipped, and those without keys go to <see cref="WriteEmptyRowsCore"/>.
    /// </summary>
    private protected virtual void FlashVarlenCore(VarlenProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp)
    {
        for (int b = 0; b < problem.SequenceCount; b++)
        {
            int q0 = problem.QueryStart(b), nq = problem.QueryLength(b), k0 = problem.KeyStart(b), nk = problem.KeyLength(b);
            if (nq == 0) continue;
            // Views over the problem's own shape arrays (no allocation), used before the next sequence's replace them.
            var o = problem.SequenceView(FlashViewSlots.Output, output, q0, nq);
            TensorView? lse = logSumExp is { } l ? problem.SequenceLogSumExpView(l, q0, nq) : null;
            if (nk == 0)
            {
                WriteEmptyRowsCore(o, lse);
                continue;
            }
            FlashCore(problem.SequenceProblem(b), problem.SequenceView(FlashViewSlots.Query, query, q0, nq), problem.SequenceView(FlashViewSlots.Key, key, k0, nk),
                problem.SequenceView(FlashViewSlots.Value, value, k0, nk), o, lse);
        }
    }

    /// <summary>
    /// Backend implementation of <see cref="FlashKvCache"/>. The default covers contiguous caches without append or
    /// rotary embedding, by running <see cref="FlashCore"/> per batch element on the cache's first <c>L_b</c> positions;
    /// anything else needs a backend kernel.
    /// </summary>
    private protected virtual void FlashKvCacheCore(KvCacheProblem problem, in TensorView query, in TensorView keyCache, in TensorView valueCache, in TensorView output, in TensorView? logSumExp)
    {
        if (problem.IsPaged || problem.NewLength > 0 || problem.RotaryDim > 0)
            throw new NotSupportedException($"FlashKvCache with paging, appending or rotary embedding has no kernel on the {Backend} backend yet; Reference.FlashKvCache computes it in float64.");
        for (int b = 0; b < problem.Batch; b++)
        {
            // Views over the problem's own shape arrays (no allocation), used before the next element's replace them.
            var o = problem.ElementView(FlashViewSlots.Output, output, b);
            TensorView? lse = logSumExp is { } l ? problem.ElementView(FlashViewSlots.LogSumExp, l, b) : null;
            int length = problem.KeyLength(b);
            if (length == 0)
            {
                WriteEmptyRowsCore(o, lse);
                continue;
            }
            FlashCore(problem.ElementProblem(b), problem.ElementView(FlashViewSlots.Query, query, b), problem.ElementView(FlashViewSlots.Key, keyCache, b, length),
                problem.ElementView(FlashViewSlots.Value, valueCache, b, length), o, lse);
        }
    }

    /// <summary>
    /// Writes what rows that see no key produce: zeros into <paramref name="output"/> and -inf into
    /// <paramref name="logSumExp"/>, on the host or a device.
    /// </summary>
    private protected virtual void WriteEmptyRowsCore(in TensorView output, in TensorView? logSumExp)
    {
        // Host views are written directly; device views get a host tensor of the same shape copied over their
        // elements (any strides), so every backend handles rows without keys the same way.
        var zeros = Gpu.TensorCopy.AllocateHost(output.ElementType, output.Shape);
        Gpu.TensorCopy.Copy(zeros, output);
        if (logSumExp is { } lse)
        {
            var negativeInfinity = new double[lse.ElementCount];
            Array.Fill(negativeInfinity, double.NegativeInfinity);
            var host = Gpu.TensorCopy.AllocateHost(ElementType.Float32, lse.Shape);
            host.CopyFrom(negativeInfinity);
            Gpu.TensorCopy.Copy(host, lse);
        }
    }

    /// <summary>Backend implementation of <see cref="Neighborhood"/>.</summary>
    private protected abstract void NeighborhoodCore(NeighborhoodProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp);

    /// <summary>Backend implementation of <see cref="BlockSparse"/>.</summary>
    private protected abstract void BlockSparseCore(BlockSparseProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp);

    /// <summary>Backend implementation of <see cref="LinearChunked"/>.</summary>
    private protected abstract void LinearChunkedCore(LinearProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? initialState, in TensorView? finalState);

    /// <summary>Backend implementation of <see cref="LinearDecodeStep"/>.</summary>
    private protected abstract void LinearDecodeStepCore(LinearProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView state, in TensorView? intermediateStates);

    /// <summary>Backend implementation of <see cref="DeltaRuleChunked"/>.</summary>
    private protected abstract void DeltaRuleChunkedCore(DeltaRuleProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView beta, in TensorView output,
        in TensorView? initialState, in TensorView? finalState);

    /// <summary>Backend implementation of <see cref="DeltaRuleDecodeStep"/>.</summary>
    private protected abstract void DeltaRuleDecodeStepCore(DeltaRuleProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView beta, in TensorView output,
        in TensorView state, in TensorView? intermediateStates);

    /// <summary>Backend implementation of <see cref="MergeStates"/>.</summary>
    private protected abstract void MergeStatesCore(MergeProblem problem, in TensorView partialOutputs, in TensorView partialLogSumExp, in TensorView output, in TensorView? logSumExp);

    /// <summary>Throws unless the tensor lives where this backend needs it.</summary>
    protected void CheckLocation(in TensorView view, string name) =>
        TensorChecks.Location(view, TensorLocation, name, Backend);

    /// <summary>
    /// The checks of a public entry point that lives outside the core (NativeAttention.Ilgpu's Flex): the context is not
    /// disposed, and every listed tensor is where this context can use it (<see cref="CheckTensors"/>).
    /// </summary>
    internal void CheckExternalCall(IReadOnlyList<NamedTensor> tensors)
    {
        ThrowIfDisposed();
        CheckTensors(tensors);
    }

    /// <summary>Checks every tensor a call lists (absent optional ones skipped) with <see cref="CheckTensor"/>, in order.</summary>
    private void CheckTensors(IReadOnlyList<NamedTensor> tensors)
    {
        // Indexed, not foreach: enumerating through the interface would allocate an enumerator on every call.
        for (int i = 0; i < tensors.Count; i++)
            if (tensors[i] is { View: { } present } tensor) CheckTensor(present, tensor.Name);
    }

    /// <summary>
    /// Throws <see cref="ArgumentException"/> naming <paramref name="name"/> unless this backend can use the tensor: the
    /// base checks its memory location; GPU contexts also check that its buffer belongs to them.
    /// </summary>
    private protected virtual void CheckTensor(in TensorView view, string name) => CheckLocation(view, name);

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
