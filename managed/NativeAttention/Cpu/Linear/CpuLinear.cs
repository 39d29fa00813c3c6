// CPU chunked linear attention: quadratic inside a chunk (decay-masked in log space), a float32 state carried across
// chunks, and a recurrent decode step; one source for every vector width.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NativeAttention.Cpu;

/// <summary>
/// Effectively computes <see cref="AttentionContext.LinearChunked"/> and <see cref="AttentionContext.LinearDecodeStep"/>
/// in float32 whatever the storage type.
/// </summary>
/// <remarks>
/// Work items are (sequence, head) pairs taken from a shared counter; each is computed start to finish by one worker
/// in a fixed order, so results do not depend on the thread count. Per chunk of L tokens, with b_t the cumulative
/// log2 gate inside the chunk (never across chunks, so no product under- or overflows):
/// <code>
/// A = scale (phi(Q) phi(K)^T) . 2^(b_t - b_s), masked to s &lt;= t       (CpuLinearKernels.Gemm, DecayMask)
/// O = scale 2^(b_t) phi(Q) S + A V                                       (inter-chunk, then intra-chunk)
/// S = 2^(b_L) S + (phi(K) . 2^(b_L - b_s))^T V                             (state carried in float32)
/// </code>
/// With normalisation V carries a column of ones, so the state's last column is the normaliser and O's last column
/// the denominator. Per-key gates (GLA) take the same steps with the exponentials per feature. Non-causal calls sum
/// the state over the whole sequence first, then read it for every query.
/// </remarks>
internal static unsafe class CpuLinear
{
    /// <summary>
    /// The CPU's default chunk length: 32 tokens, eight row blocks. The kernel executes <c>2 C^2 D + 4 C D^2</c> FLOPs
    /// per chunk for the <c>4 C D^2</c> counted, so a shorter chunk does less redundant intra-chunk work (at D = 64: 80%
    /// of the executed FLOPs are counted at C = 32, 67% at C = 64); measured 4-6% less CPU time than 64 at H = 8, D = 64.
    /// </summary>
    public const int DefaultChunk = 32;

    private const float Log2E = 1.4426950408889634f;

    /// <summary>Runs a validated chunked or decode problem on <paramref name="threads"/> workers at the widest accelerated width.</summary>
    public static void Run(LinearProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output,
        in TensorView? initialState, in TensorView? finalState, int threads, int? vectorBits = null)
    {
        switch (vectorBits ?? CpuFeatures.VectorBits)
        {
            case 512 when Vector512.IsHardwareAccelerated: Run<Simd512, Vector512<float>>(problem, query, key, value, output, initialState, finalState, threads); break;
            case 256 when Vector256.IsHardwareAccelerated: Run<Simd256, Vector256<float>>(problem, query, key, value, output, initialState, finalState, threads); break;
            case 128 when Vector128.IsHardwareAccelerated: Run<Simd128, Vector128<float>>(problem, query, key, value, output, initialState, finalState, threads); break;
            case 0: Run<SimdScalar, float>(problem, query, key, value, output, initialState, finalState, threads); break;
            default: throw new NotSupportedException($"{vectorBits}-bit vectors are not accelerated here (widest: {CpuFeatures.VectorBits}).");
        }
    }

    private static void Run<TSimd, T>(LinearProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output,
        in TensorView? initialState, in TensorView? finalState, int threads) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        using var qPin = query.Storage!.Pin();
        using var kPin = key.Storage!.Pin();
        using var vPin = value.Storage!.Pin();
        using var oPin = output.Storage!.Pin();
        using var s0Pin = initialState is { } s0 ? s0.Storage!.Pin() : default;
        using var s1Pin = finalState is { } s1 ? s1.Storage!.Pin() : default;
        using var gPin = problem.Options.LogGate is { } g ? g.Storage!.Pin() : default;
        var plan = Plan.Rent();
        try
        {
            plan.Reset(problem, TSimd.Count, query, key, value, output, initialState, finalState,
                (byte*)qPin.Pointer, (byte*)kPin.Pointer, (byte*)vPin.Pointer, (byte*)oPin.Pointer, (float*)s0Pin.Pointer, (float*)s1Pin.Pointer, (float*)gPin.Pointer);
            CpuWorkers.Run(plan, threads, plan.Items, problem.Call == LinearCall.Chunked ? Work<TSimd, T> : WorkDecode<TSimd, T>);
        }
        finally
        {
            plan.Return();
        }
    }

    private sealed class Plan
    {
        public LinearProblem Problem = null!;
        public LinearOptions Options = null!;
        public Strided Q, K, V, O, Initial, Final, Gate;
        public bool HasInitial, HasFinal;
        public ElementType Type;
        public int Heads, Dk, Dv, F, C, Chunk, ChunkPad, FeaturePad, ColumnPad, Items;
        public float Scale, Epsilon;
        public float[] HeadLog2Decay = [];
        public long ScratchFloats;
        /// <summary>Operands read straight from the caller's float32 rows (unit element stride, no feature map, no padding).</summary>
        public bool DirectQ, DirectK, DirectV, DirectO;
        /// <summary>
        /// Whether a chunk prefetches the next chunk's rows (<see cref="StreamingBytes"/>): only when Q, K, V and O
        /// together are too large to stay in the last-level cache between calls.
        /// </summary>
        public bool PrefetchChunks;
        /// <summary>
        /// Whether that prefetch is spread over the chunk's products (<see cref="ChunkPrefetch"/>): when each tensor's
        /// rows lie back to back (head-major). Token-major rows, a token of heads apart, keep one burst per tensor and
        /// phase: spread over the chunk, their lines (32 rows 2 KB apart per tensor, a few L1 sets) evicted the
        /// running chunk's rows and made token-major N 16384 1.2x slower in CPU time.
        /// </summary>
        public bool SpreadPrefetch;
        public int NextItem;

        /// <summary>This thread's idle plan (<see cref="ThreadIdle{T}"/>), or a new one; give it back with <see cref="Return"/>.</summary>
        public static Plan Rent() => ThreadIdle<Plan>.Rent();

        /// <summary>Keeps the plan for this thread's next call, without the references of the finished one.</summary>
        public void Return()
        {
            (Problem, Options) = (null!, null!);
            ThreadIdle<Plan>.Return(this);
        }

        /// <summary>Fills every field for one call (nothing of a previous call survives).</summary>
        public void Reset(LinearProblem p, int width, in TensorView q, in TensorView k, in TensorView v, in TensorView o, in TensorView? s0, in TensorView? s1,
            byte* qp, byte* kp, byte* vp, byte* op, float* s0p, float* s1p, float* gp)
        {
            NextItem = 0;
            Initial = Final = Gate = default;
            Problem = p;
            Options = p.Options;
            Q = new Strided(q, qp); K = new Strided(k, kp); V = new Strided(v, vp); O = new Strided(o, op);
            HasInitial = s0.HasValue; HasFinal = s1.HasValue;
            if (s0 is { } i) Initial = new Strided(i, (byte*)s0p);
            if (s1 is { } f) Final = new Strided(f, (byte*)s1p);
            if (Options.LogGate is { } g) Gate = new Strided(g, (byte*)gp);
            Type = p.ElementType;
            Heads = p.Heads; Dk = p.KeyDim; Dv = p.ValueDim; F = p.FeatureSize; C = p.StateColumns;
            Scale = Options.Scale; Epsilon = Options.Epsilon;
            int step = Math.Max(width, CpuLinearKernels.RowBlock);
            Chunk = p.Call != LinearCall.Chunked ? 1 : Options.ChunkSize > 0 ? Options.ChunkSize : DefaultChunk;
            ChunkPad = (Chunk + step - 1) / step * step;
            FeaturePad = (F + step - 1) / step * step;
            ColumnPad = (C + width - 1) / width * width;
            Items = (p.Call == LinearCall.Chunked ? p.Sequences : p.Batch) * Heads;
            if (Options.Decay == DecayKind.PerHead)
            {
                // Kept across calls with the same head count: the per-head base-2 decays, refilled.
                var decay = Options.HeadLogDecay.Span;
                if (HeadLog2Decay.Length != decay.Length) HeadLog2Decay = new float[decay.Length];
                for (int h = 0; h < decay.Length; h++) HeadLog2Decay[h] = decay[h] * Log2E;
            }
            else HeadLog2Decay = [];
            ScratchFloats = (long)new Layout(null, this).End / sizeof(float);
            bool plainFeatures = Options.FeatureMap is FeatureMap.Identity or FeatureMap.Precomputed;
            bool plainColumns = Type == ElementType.Float32 && C == Dv && ColumnPad == C;
            DirectQ = Type == ElementType.Float32 && plainFeatures && Q.S3 == 1;
            DirectK = Type == ElementType.Float32 && plainFeatures && K.S3 == 1;
            DirectV = plainColumns && V.S3 == 1;
            DirectO = plainColumns && O.S3 == 1;
            long elements = (long)p.Batch * p.Length * Heads * (2L * Dk + 2L * Dv);
            PrefetchChunks = elements * p.ElementType.SizeOf() > StreamingBytes;
            SpreadPrefetch = Q.S2 == Dk && K.S2 == Dk && V.S2 == Dv && O.S2 == Dv;
        }
    }

    /// <summary>
    /// Q, K, V and O bytes above which the chunks prefetch their successor's rows. Measured on a Zen 4 host (32 MB L3,
    /// 2026-12-05, quiet, CLI, H 8, D 64, fp32): at N 16384 (128 MB, streamed from memory) the prefetch made a call
    /// 1.12-1.17x faster, at N 2048 (16 MB, cache-resident across calls) 1.2-1.3x slower: AMD cores bring every
    /// software prefetch into L1, where the next chunk's 32 KB evict the current chunk's state and operands.
    /// </summary>
    private const long StreamingBytes = 48L << 20;

    /// <summary>The per-thread scratch of one item, carved in a fixed order; laid out from null it measures its size.</summary>
    private readonly struct Layout
    {
        public readonly float* Q, QScaled, KT, KRows, KDecayed, V, A, O, S, Log2Gate, Log2Gates, RowScale, RowBeta, Index, Raw, OutputScale, ColumnDecay, End;

        public Layout(float* start, Plan p)
        {
            float* next = start;
            long lp = p.ChunkPad, fp = p.FeaturePad, cp = p.ColumnPad;
            bool perKey = p.Options.Decay == DecayKind.PerTokenPerKey;
            Q = CpuScratch.Take(ref next, lp * fp);
            QScaled = CpuScratch.Take(ref next, perKey ? lp * fp : 0);
            KT = CpuScratch.Take(ref next, fp * lp);
            KRows = CpuScratch.Take(ref next, perKey ? lp * fp : 4 * fp);
            KDecayed = CpuScratch.Take(ref next, fp * lp);
            V = CpuScratch.Take(ref next, lp * cp);
            A = CpuScratch.Take(ref next, lp * lp);
            O = CpuScratch.Take(ref next, lp * cp);
            S = CpuScratch.Take(ref next, fp * cp);
            Log2Gate = CpuScratch.Take(ref next, lp);
            Log2Gates = CpuScratch.Take(ref next, perKey ? lp * fp : 0);
            RowScale = CpuScratch.Take(ref next, Math.Max(lp, fp));
            RowBeta = CpuScratch.Take(ref next, fp);
            Index = CpuScratch.Take(ref next, lp);
            Raw = CpuScratch.Take(ref next, Math.Max(p.Dk, p.C) + 16);
            OutputScale = CpuScratch.Take(ref next, lp);
            ColumnDecay = CpuScratch.Take(ref next, lp);
            End = next;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Work<TSimd, T>(Plan p) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        float* scratch = CpuScratch.Get(p.ScratchFloats);
        var s = new Layout(scratch, p);
        for (int item = Interlocked.Increment(ref p.NextItem) - 1; item < p.Items; item = Interlocked.Increment(ref p.NextItem) - 1)
            RunItem<TSimd, T>(p, s, item / p.Heads, item % p.Heads);
    }

    /// <summary>One (sequence, head): every chunk in order, the state kept in scratch.</summary>
    private static void RunItem<TSimd, T>(Plan p, in Layout s, int sequence, int head) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        var problem = p.Problem;
        int lp = p.ChunkPad, fp = p.FeaturePad, cp = p.ColumnPad, w = TSimd.Count;
        int batch = problem.IsVarlen ? 0 : sequence;
        int first = problem.SequenceStart(sequence), length = problem.SequenceLength(sequence);
        bool perKey = p.Options.Decay == DecayKind.PerTokenPerKey;
        for (int i = 0; i < lp; i++) s.Index[i] = i;
        // Rows F..fp-1 of the decayed keys are never written by the scalar-gate chunks and must stay zero.
        new Span<float>(s.KDecayed, fp * lp).Clear();

        // The state: rows F (padded to fp with zeros), columns C (padded to cp with zeros).
        new Span<float>(s.S, fp * cp).Clear();
        if (p.HasInitial)
            for (int f = 0; f < p.F; f++)
                CpuPacking.ReadRow(s.S + (long)f * cp, p.Initial.Row(sequence, head, f), p.Initial.S3, p.C, ElementType.Float32);

        if (!p.Options.Causal)
        {
            // S = phi(K)^T [V, 1] over the whole sequence, then O = scale phi(Q) S.
            for (int c0 = 0; c0 < length; c0 += p.Chunk)
            {
                int l = Math.Min(p.Chunk, length - c0);
                PackKeys(p, s, batch, head, first + c0, l, perKey: false);
                PackValues(p, s, batch, head, first + c0, l);
                CpuLinearKernels.Gemm<TSimd, T>(s.KT, lp, s.V, cp, l, s.S, cp, fp, cp / w, null, null, 1f, false, false);
            }
            for (int c0 = 0; c0 < length; c0 += p.Chunk)
            {
                int l = Math.Min(p.Chunk, length - c0);
                PackQueries(p, s, batch, head, first + c0, l);
                int rows = (l + 3) & ~3;
                for (int t = 0; t < rows; t++) s.RowScale[t] = p.Scale;
                CpuLinearKernels.Gemm<TSimd, T>(s.Q, fp, s.S, cp, p.F, s.O, cp, rows, cp / w, s.RowScale, null, 0f, false, false);
                WriteOutputs(p, s, batch, head, first + c0, l);
            }
            return;
        }

        ChunkPrefetch prefetch = default;
        for (int c0 = 0; c0 < length; c0 += p.Chunk)
        {
            int l = Math.Min(p.Chunk, length - c0);
            if (!perKey)
            {
                int next = p.PrefetchChunks ? Math.Min(p.Chunk, length - c0 - l) : 0;
                ScalarChunk<TSimd, T>(p, s, batch, head, first + c0, l, first + c0 + l, Math.Max(next, 0), &prefetch);
                continue;
            }
            int rows = (l + 3) & ~3;
            PackQueries(p, s, batch, head, first + c0, l);
            PackKeys(p, s, batch, head, first + c0, l, perKey);
            PackValues(p, s, batch, head, first + c0, l);
            {
                PerKeyGates(p, s, batch, head, first + c0, l);
                float* lastRow = s.Log2Gates + (long)(l - 1) * fp;
                float range = 0;
                for (int f = 0; f < p.F; f++) range = MathF.Max(range, s.Log2Gates[f] - lastRow[f]);
                bool factored = range <= MaxFactoredRange;
                if (factored)
                {
                    // A = scale (phi(Q) . 2^(B_t - B_L)) KD, KD = (phi(K) . 2^(B_L - B_s))^T: one causal GEMM, as the
                    // scalar gates do, while every factor is within 2^60 (2^(B_t - B_L) taken as 1 / 2^(B_L - B_t)).
                    for (int t = 0; t < rows; t++)
                    {
                        DecayRow<TSimd, T>(s.QScaled + (long)t * fp, s.Q + (long)t * fp, lastRow, s.Log2Gates + (long)t * fp, fp, inverse: true);
                        float* kt = s.KRows + (long)t * fp;
                        DecayRow<TSimd, T>(kt, kt, lastRow, s.Log2Gates + (long)t * fp, fp);
                    }
                    for (int t = 0; t < rows; t += 4)
                    {
                        float* r0 = s.KRows + (long)t * fp;
                        CpuLinearKernels.TransposeFour(r0, r0 + fp, r0 + 2 * fp, r0 + 3 * fp, p.F, s.KDecayed, null, lp, t, null);
                    }
                    for (int t = 0; t < rows; t++) s.RowScale[t] = p.Scale;
                    CpuLinearKernels.Gemm<TSimd, T>(s.QScaled, fp, s.KDecayed, lp, p.F, s.A, lp, rows, lp / w, s.RowScale, null, 0f, false, true);
                    CpuLinearKernels.CausalMask<TSimd, T>(s.A, lp, rows, s.Index);
                }
                else CpuLinearKernels.PerKeyScores<TSimd, T>(s.Q, s.KRows, s.Log2Gates, fp, fp, l, s.A, lp, p.Scale);
                // O = scale (phi(Q) . 2^(B_t)) S + A V: the queries are decayed in place (the scores are done with them).
                for (int t = 0; t < l; t++)
                {
                    float* qt = s.Q + (long)t * fp;
                    DecayRow<TSimd, T>(qt, qt, s.Log2Gates + (long)t * fp, null, fp);
                }
                for (int t = 0; t < rows; t++) s.RowScale[t] = p.Scale;
                CpuLinearKernels.Gemm<TSimd, T>(s.Q, fp, s.S, cp, p.F, s.O, cp, rows, cp / w, s.RowScale, null, 0f, false, false);
                CpuLinearKernels.Gemm<TSimd, T>(s.A, lp, s.V, cp, l, s.O, cp, rows, cp / w, null, null, 1f, true, false);
                if (!factored)
                {
                    // KD = (phi(K) . 2^(B_L - B_s))^T: each key row decayed into Q's rows (free now), then transposed four
                    // rows at a time; the padding rows of the keys are zero, so KD's padding columns are too.
                    for (int t = 0; t < rows; t++)
                        DecayRow<TSimd, T>(s.Q + (long)t * fp, s.KRows + (long)t * fp, lastRow, s.Log2Gates + (long)t * fp, fp);
                    for (int t = 0; t < rows; t += 4)
                    {
                        float* r0 = s.Q + (long)t * fp;
                        CpuLinearKernels.TransposeFour(r0, r0 + fp, r0 + 2 * fp, r0 + 3 * fp, p.F, s.KDecayed, null, lp, t, null);
                    }
                }
                for (int f = 0; f < fp; f += w)
                    TSimd.Store(s.RowBeta + f, TSimd.Exp2NonPositive(TSimd.Min(TSimd.Load(lastRow + f), TSimd.Zero)));
                for (int f = p.F; f < fp; f++) s.RowBeta[f] = 0;
                CpuLinearKernels.Gemm<TSimd, T>(s.KDecayed, lp, s.V, cp, l, s.S, cp, fp, cp / w, null, s.RowBeta, 0f, false, false);
            }
            WriteOutputs(p, s, batch, head, first + c0, l);
        }
        if (p.HasFinal)
            for (int f = 0; f < p.F; f++)
                CpuPacking.WriteRow((byte*)p.Final.Row(sequence, head, f), p.Final.S3, s.S + (long)f * cp, 1f, p.C, ElementType.Float32);
    }

    /// <summary>Widest range of cumulative log2 gates inside a chunk for which the decay mask is factored into row and column scalings.</summary>
    private const float MaxFactoredRange = 60f;

    /// <summary>
    /// One causal chunk of <paramref name="l"/> tokens from <paramref name="t0"/> with no decay, a per-head decay or a
    /// per-token gate. With b_t the cumulative log2 gates and b_L the last, and the keys scaled once per chunk into
    /// <c>KD[f][s] = phi(k_s)[f] 2^(b_L - b_s)</c>:
    /// <code>
    /// A = (scale 2^(b_t - b_L)) (phi(Q) KD), zero past the diagonal     (when max b - b_L &lt;= 60: every factor is finite)
    /// O = (scale 2^(b_t)) phi(Q) S + A V                                 (one fused pass, written straight to the output)
    /// S = 2^(b_L) S + KD^T V
    /// </code>
    /// A wider range (very strong gates) takes the per-element masked exponentials on unscaled keys instead.
    /// </summary>
    /// <para>While it computes, the rows of the next <paramref name="nextLength"/> tokens from <paramref name="next"/> (the
    /// next chunk of the item) are prefetched into L2: through <paramref name="queue"/>, a few lines per row block of
    /// the products (<see cref="ChunkPrefetch"/>), when rows lie back to back, else a tensor per phase
    /// (<see cref="Strided.PrefetchRows"/>).</para>
    private static void ScalarChunk<TSimd, T>(Plan p, in Layout s, int batch, int head, int t0, int l, int next, int nextLength, ChunkPrefetch* queue)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int lp = p.ChunkPad, fp = p.FeaturePad, cp = p.ColumnPad, w = TSimd.Count;
        int rows = (l + 3) & ~3;
        bool exact = rows == l;
        var problem = p.Problem;
        float* q, v;
        long ldq, ldv;
        if (p.DirectQ && exact) { q = (float*)p.Q.Row(batch, problem.QueryHead(head), t0); ldq = p.Q.S2; }
        else { PackQueries(p, s, batch, head, t0, l); q = s.Q; ldq = fp; }
        if (p.DirectV) { v = (float*)p.V.Row(batch, problem.ValueHead(head), t0); ldv = p.V.S2; }
        else { PackValues(p, s, batch, head, t0, l); v = s.V; ldv = cp; }

        bool decay = p.Options.Decay != DecayKind.None;
        float bL = 0;
        bool factored = true;
        if (decay)
        {
            ScalarGates(p, s, batch, head, t0, l);
            float* b = s.Log2Gate;
            bL = b[l - 1];
            float b0 = b[0];
            factored = b0 - bL <= MaxFactoredRange;
            T last = TSimd.Broadcast(bL), first = TSimd.Broadcast(b0), scale = TSimd.Broadcast(p.Scale);
            T rowFactor = TSimd.Broadcast(p.Scale * float.Exp2(b0 - bL));
            for (int t = 0; t < lp; t += w)
            {
                T bt = TSimd.Load(b + t);
                TSimd.Store(s.ColumnDecay + t, TSimd.Exp2NonPositive(TSimd.Subtract(last, bt)));
                TSimd.Store(s.OutputScale + t, TSimd.Multiply(TSimd.Exp2NonPositive(bt), scale));
                TSimd.Store(s.RowScale + t, TSimd.Multiply(TSimd.Exp2NonPositive(TSimd.Subtract(bt, first)), rowFactor));
            }
        }
        else
        {
            new Span<float>(s.OutputScale, lp).Fill(p.Scale);
            new Span<float>(s.RowScale, lp).Fill(p.Scale);
        }
        PackKeysTransposed(p, s, batch, head, t0, l, decay ? s.ColumnDecay : null, factored ? null : s.KT);

        // The next chunk's rows in the order it reads them, a few lines before each row block of the three products;
        // first one line per 4 KB page of them, so their page walks (a streamed call misses the TLB on every new
        // page) start at the top of the chunk instead of stalling the queue's spread lines: 1.03x CPU time at N 16384.
        ChunkPrefetch* prefetch = null;
        int lines = 0;
        if (nextLength > 0 && p.SpreadPrefetch)
        {
            queue->Clear();
            QueueRows(queue, p.K, batch, problem.KeyHead(head), next, nextLength, p.Dk);
            QueueRows(queue, p.Q, batch, problem.QueryHead(head), next, nextLength, p.Dk);
            QueueRows(queue, p.V, batch, problem.ValueHead(head), next, nextLength, p.Dv);
            QueueRows(queue, p.O, batch, head, next, nextLength, p.Dv);
            int blocks = (2 * rows + fp) / CpuLinearKernels.RowBlock;
            lines = (int)((queue->Pending + blocks - 1) / blocks);
            queue->TouchPages();
            prefetch = queue;
        }
        int burst = p.SpreadPrefetch ? 0 : nextLength;
        p.Q.PrefetchRows(batch, problem.QueryHead(head), next, burst, p.Dk);
        // Intra-chunk scores, causal row blocks only.
        if (factored)
        {
            CpuLinearKernels.Gemm<TSimd, T>(q, ldq, s.KDecayed, lp, p.F, s.A, lp, rows, lp / w, s.RowScale, null, 0f, false, true, prefetch, lines);
            CpuLinearKernels.CausalMask<TSimd, T>(s.A, lp, rows, s.Index);
        }
        else
        {
            CpuLinearKernels.Gemm<TSimd, T>(q, ldq, s.KT, lp, p.F, s.A, lp, rows, lp / w, null, null, 0f, false, true, prefetch, lines);
            CpuLinearKernels.DecayMask<TSimd, T>(s.A, lp, rows, s.Log2Gate, s.Index, p.Scale);
        }

        p.K.PrefetchRows(batch, problem.KeyHead(head), next, burst, p.Dk);
        // O = scale 2^(b_t) phi(Q) S + A V, straight into the output when it is plain float32 rows.
        bool direct = p.DirectO && exact;
        float* o = direct ? (float*)p.O.Row(batch, head, t0) : s.O;
        CpuLinearKernels.GemmOutput<TSimd, T>(q, ldq, s.S, cp, p.F, s.OutputScale, s.A, lp, v, ldv, l, o, direct ? p.O.S2 : cp, rows, cp / w, prefetch, lines);
        if (!direct) WriteOutputs(p, s, batch, head, t0, l);

        p.V.PrefetchRows(batch, problem.ValueHead(head), next, burst, p.Dv);
        p.O.PrefetchRows(batch, head, next, burst, p.Dv);
        // S = 2^(b_L) S + KD^T [V, 1].
        CpuLinearKernels.Gemm<TSimd, T>(s.KDecayed, lp, v, ldv, l, s.S, cp, fp, cp / w, null, null, decay ? float.Exp2(bL) : 1f, false, false, prefetch, lines);
        if (prefetch is not null) prefetch->Step(int.MaxValue);
    }

    /// <summary>
    /// Queues rows <c>[i0, i1, t0 .. t0 + count - 1]</c> of <paramref name="columns"/> elements of a tensor with unit
    /// element stride (nothing otherwise): head-major chunks cross pages, where the hardware streams restart (prefetching
    /// only the first lines of each page measured slower than no prefetch at all).
    /// </summary>
    private static void QueueRows(ChunkPrefetch* queue, in Strided x, int i0, int i1, int t0, int count, int columns)
    {
        if (x.S3 != 1) return;
        queue->Add(x.Row(i0, i1, t0), x.S2 * x.ElementSize, count, (long)columns * x.ElementSize);
    }

    /// <summary>
    /// phi(k_t) of the chunk transposed into KD <c>[fp][lp]</c>, each column scaled by <paramref name="columnScale"/>
    /// (null: 1), and unscaled into <paramref name="plain"/> when given; columns l..lp-1 zero. Rows F..fp-1 are left as
    /// they are (zero).
    /// </summary>
    private static void PackKeysTransposed(Plan p, in Layout s, int batch, int head, int t0, int l, float* columnScale, float* plain)
    {
        int lp = p.ChunkPad, f1 = p.F;
        int kh = p.Problem.KeyHead(head);
        float* kd = s.KDecayed;
        float* r0 = s.KRows, r1 = r0 + p.FeaturePad, r2 = r1 + p.FeaturePad, r3 = r2 + p.FeaturePad;
        int t = 0;
        for (; t + 4 <= l; t += 4)
        {
            if (p.DirectK)
            {
                r0 = (float*)p.K.Row(batch, kh, t0 + t); r1 = (float*)p.K.Row(batch, kh, t0 + t + 1);
                r2 = (float*)p.K.Row(batch, kh, t0 + t + 2); r3 = (float*)p.K.Row(batch, kh, t0 + t + 3);
            }
            else
                for (int j = 0; j < 4; j++)
                {
                    Features(p.Options.FeatureMap, Source(p, p.K, p.K.Row(batch, kh, t0 + t + j), s.Raw), p.Dk, s.KRows + j * p.FeaturePad);
                }
            CpuLinearKernels.TransposeFour(r0, r1, r2, r3, f1, kd, plain, lp, t, columnScale);
        }
        for (; t < l; t++)
        {
            float* row;
            if (p.DirectK) row = (float*)p.K.Row(batch, kh, t0 + t);
            else
            {
                Features(p.Options.FeatureMap, Source(p, p.K, p.K.Row(batch, kh, t0 + t), s.Raw), p.Dk, s.KRows);
                row = s.KRows;
            }
            float c = columnScale is null ? 1f : columnScale[t];
            for (int f = 0; f < f1; f++)
            {
                kd[(long)f * lp + t] = row[f] * c;
                if (plain is not null) plain[(long)f * lp + t] = row[f];
            }
        }
        if (l < lp)
            for (int f = 0; f < f1; f++)
            {
                new Span<float>(kd + (long)f * lp + l, lp - l).Clear();
                if (plain is not null) new Span<float>(plain + (long)f * lp + l, lp - l).Clear();
            }
    }

    /// <summary>phi(q_t) rows for tokens t0..t0+l of the chunk into Q <c>[lp][fp]</c>; padding rows and columns zero.</summary>
    private static void PackQueries(Plan p, in Layout s, int batch, int head, int t0, int l)
    {
        int fp = p.FeaturePad;
        int qh = p.Problem.QueryHead(head);
        for (int t = 0; t < p.ChunkPad; t++)
        {
            float* row = s.Q + (long)t * fp;
            if (t < l)
            {
                Features(p.Options.FeatureMap, Source(p, p.Q, p.Q.Row(batch, qh, t0 + t), s.Raw), p.Dk, row);
                new Span<float>(row + p.F, fp - p.F).Clear();
            }
            else new Span<float>(row, fp).Clear();
        }
    }

    /// <summary>phi(k_t) transposed into KT <c>[fp][lp]</c> (and as rows into KRows for per-key gates); padding zero.</summary>
    private static void PackKeys(Plan p, in Layout s, int batch, int head, int t0, int l, bool perKey)
    {
        int fp = p.FeaturePad, lp = p.ChunkPad;
        var kh = p.Problem.KeyHead(head);
        // Per-key gates read the rows; KD is written whole from them (its rows F.. stay zero from RunItem).
        if (!perKey) new Span<float>(s.KT, fp * lp).Clear();
        float* features = s.KRows;   // one row, or every row for per-key gates
        for (int t = 0; t < lp; t++)
        {
            float* row = features + (long)(perKey ? t : 0) * fp;
            if (t >= l)
            {
                if (perKey) new Span<float>(row, fp).Clear();
                continue;
            }
            Features(p.Options.FeatureMap, Source(p, p.K, p.K.Row(batch, kh, t0 + t), s.Raw), p.Dk, row);
            if (perKey) new Span<float>(row + p.F, fp - p.F).Clear();
            else for (int f = 0; f < p.F; f++) s.KT[(long)f * lp + t] = row[f];
        }
    }

    /// <summary>[v_t, 1] rows into V <c>[lp][cp]</c> (the 1 only when normalising); padding zero.</summary>
    private static void PackValues(Plan p, in Layout s, int batch, int head, int t0, int l)
    {
        int cp = p.ColumnPad;
        int vh = p.Problem.ValueHead(head);
        for (int t = 0; t < p.ChunkPad; t++)
        {
            float* row = s.V + (long)t * cp;
            new Span<float>(row, cp).Clear();
            if (t >= l) continue;
            CpuPacking.ReadRow(row, p.V.Row(batch, vh, t0 + t), p.V.S3, p.Dv, p.Type);
            if (p.C > p.Dv) row[p.Dv] = 1;
        }
    }

    /// <summary>Cumulative log2 gates inside the chunk, b_t = sum_{r &lt;= t} log2 g_r; 0 without decay; padding repeats the last.</summary>
    private static void ScalarGates(Plan p, in Layout s, int batch, int head, int t0, int l)
    {
        float b = 0;
        var decay = p.Options.Decay;
        for (int t = 0; t < p.ChunkPad; t++)
        {
            if (t < l)
            {
                if (decay == DecayKind.PerHead) b += p.HeadLog2Decay[head];
                else if (decay == DecayKind.PerToken) b += *(float*)p.Gate.Row(batch, head, t0 + t) * Log2E;
            }
            s.Log2Gate[t] = b;
        }
    }

    /// <summary>Cumulative log2 gates per feature, <c>B_t[f]</c>, rows <c>[lp][fp]</c>; padding columns 0, padding rows repeat the last.</summary>
    private static void PerKeyGates(Plan p, in Layout s, int batch, int head, int t0, int l)
    {
        int fp = p.FeaturePad;
        float* previous = null;
        for (int t = 0; t < p.ChunkPad; t++)
        {
            float* row = s.Log2Gates + (long)t * fp;
            if (t < l)
            {
                float* g = (float*)p.Gate.Row(batch, head, t0 + t);
                if (p.Gate.S3 != 1)
                {
                    CpuPacking.ReadRow(row, (byte*)g, p.Gate.S3, p.Dk, ElementType.Float32);
                    g = row;
                }
                if (previous is null) for (int f = 0; f < p.F; f++) row[f] = g[f] * Log2E;
                else for (int f = 0; f < p.F; f++) row[f] = g[f] * Log2E + previous[f];
                new Span<float>(row + p.F, fp - p.F).Clear();
            }
            else new Span<float>(previous, fp).CopyTo(new Span<float>(row, fp));
            previous = row;
        }
    }

    /// <summary>
    /// <c>target[f] = x[f] 2^(min(a[f] - b[f], 0))</c> (<paramref name="b"/> null: 0) over <paramref name="count"/>
    /// floats, a whole number of vectors: a per-key decay, every factor at most 1; <paramref name="inverse"/> divides
    /// by that factor instead (the caller bounds it).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void DecayRow<TSimd, T>(float* target, float* x, float* a, float* b, int count, bool inverse = false) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int w = TSimd.Count;
        for (int f = 0; f < count; f += w)
        {
            T exponent = b is null ? TSimd.Load(a + f) : TSimd.Subtract(TSimd.Load(a + f), TSimd.Load(b + f));
            T factor = TSimd.Exp2NonPositive(TSimd.Min(exponent, TSimd.Zero));
            TSimd.Store(target + f, inverse ? TSimd.Divide(TSimd.Load(x + f), factor) : TSimd.Multiply(TSimd.Load(x + f), factor));
        }
    }

    /// <summary>Output rows from O <c>[lp][cp]</c>: columns 0..Dv-1, divided by column Dv plus eps when normalising.</summary>
    private static void WriteOutputs(Plan p, in Layout s, int batch, int head, int t0, int l)
    {
        int cp = p.ColumnPad;
        bool normalize = p.C > p.Dv;
        for (int t = 0; t < l; t++)
        {
            float* row = s.O + (long)t * cp;
            float factor = normalize ? 1f / (row[p.Dv] + p.Epsilon) : 1f;
            CpuPacking.WriteRow(p.O.Row(batch, head, t0 + t), p.O.S3, row, factor, p.Dv, p.Type);
        }
    }

    /// <summary>A row of Q or K as floats: in place when it is float32 with unit stride, else widened into <paramref name="raw"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float* Source(Plan p, in Strided x, byte* row, float* raw)
    {
        if (p.Type == ElementType.Float32 && x.S3 == 1) return (float*)row;
        CpuPacking.ReadRow(raw, row, x.S3, p.Dk, p.Type);
        return raw;
    }

    /// <summary>phi(x) of a float row of length <paramref name="d"/> into <paramref name="phi"/> (1 + d + d^2 values for Taylor2).</summary>
    private static void Features(FeatureMap map, float* x, int d, float* phi)
    {
        switch (map)
        {
            case FeatureMap.EluPlusOne:
            {
                // Vectorised (a libm call per element cost a quarter of a GLA chunk), every width alike.
                int i = 0;
                if (Vector512.IsHardwareAccelerated) i = EluPlusOne<Simd512, Vector512<float>>(x, d, phi);
                else if (Vector256.IsHardwareAccelerated) i = EluPlusOne<Simd256, Vector256<float>>(x, d, phi);
                else if (Vector128.IsHardwareAccelerated) i = EluPlusOne<Simd128, Vector128<float>>(x, d, phi);
                for (; i < d; i++) phi[i] = x[i] > 0 ? x[i] + 1 : MathF.Exp(x[i]);
                break;
            }
            case FeatureMap.Relu:
                for (int i = 0; i < d; i++) phi[i] = MathF.Max(x[i], 0);
                break;
            case FeatureMap.Taylor2:
                phi[0] = 1;
                for (int i = 0; i < d; i++) phi[1 + i] = x[i];
                const float rsqrt2 = 0.70710678118654752f;
                for (int i = 0; i < d; i++)
                {
                    float xi = x[i] * rsqrt2;
                    float* r = phi + 1 + d + i * d;
                    for (int j = 0; j < d; j++) r[j] = xi * x[j];
                }
                break;
            default:
                Buffer.MemoryCopy(x, phi, d * 4L, d * 4L);
                break;
        }
    }

    /// <summary>
    /// elu(x) + 1 over the whole vectors of <paramref name="d"/> floats, as <c>max(x, 0) + 2^(min(x, 0) log2 e)</c>
    /// (exactly x + 1 above zero, where the exponential is 2^0 = 1); returns how many floats it wrote.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int EluPlusOne<TSimd, T>(float* x, int d, float* phi) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int w = TSimd.Count, i = 0;
        T zero = TSimd.Zero, log2e = TSimd.Broadcast(Log2E);
        for (; i + w <= d; i += w)
        {
            T v = TSimd.Load(x + i);
            TSimd.Store(phi + i, TSimd.Add(TSimd.Max(v, zero), TSimd.Exp2NonPositive(TSimd.Multiply(TSimd.Min(v, zero), log2e))));
        }
        return i;
    }

    // ---- Decode: T tokens straight through the state, one pass over it per token ----

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WorkDecode<TSimd, T>(Plan p) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        // Scratch: phi(q), phi(k), [v, 1] padded, one state row, the output accumulator, per-row gates.
        int fp = p.FeaturePad, cp = p.ColumnPad;
        float* scratch = CpuScratch.Get(2L * fp + 3L * cp + fp + p.Dk + 64);
        float* q = scratch, k = q + fp, v = k + fp, row = v + cp, acc = row + cp, gate = acc + cp, raw = gate + fp;
        for (int item = Interlocked.Increment(ref p.NextItem) - 1; item < p.Items; item = Interlocked.Increment(ref p.NextItem) - 1)
            DecodeItem<TSimd, T>(p, item / p.Heads, item % p.Heads, q, k, v, row, acc, gate, raw);
    }

    // Optimised at once rather than tiered: a decode step calls it once per (batch, head), so Tier0 code would run in timed steps.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DecodeItem<TSimd, T>(Plan p, int batch, int head, float* q, float* k, float* v, float* row, float* acc, float* gate, float* raw)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        var problem = p.Problem;
        int cp = p.ColumnPad, c = p.C, w = TSimd.Count;
        bool verify = problem.Call == LinearCall.Verify;
        int qh = problem.QueryHead(head), kh = problem.KeyHead(head), vh = problem.ValueHead(head);
        for (int t = 0; t < problem.Length; t++)
        {
            CpuPacking.ReadRow(raw, p.Q.Row(batch, qh, t), p.Q.S3, p.Dk, p.Type);
            Features(p.Options.FeatureMap, raw, p.Dk, q);
            CpuPacking.ReadRow(raw, p.K.Row(batch, kh, t), p.K.S3, p.Dk, p.Type);
            Features(p.Options.FeatureMap, raw, p.Dk, k);
            new Span<float>(v, cp).Clear();
            CpuPacking.ReadRow(v, p.V.Row(batch, vh, t), p.V.S3, p.Dv, p.Type);
            if (c > p.Dv) v[p.Dv] = 1;
            switch (p.Options.Decay)
            {
                case DecayKind.PerHead: new Span<float>(gate, p.F).Fill(float.Exp2(p.HeadLog2Decay[head])); break;
                case DecayKind.PerToken: new Span<float>(gate, p.F).Fill(MathF.Exp(*(float*)p.Gate.Row(batch, head, t))); break;
                case DecayKind.PerTokenPerKey:
                    CpuPacking.ReadRow(gate, p.Gate.Row(batch, head, t), p.Gate.S3, p.Dk, ElementType.Float32);
                    for (int f = 0; f < p.F; f++) gate[f] = MathF.Exp(gate[f]);
                    break;
                default: new Span<float>(gate, p.F).Fill(1f); break;
            }
            // Source and destination rows of the state: in place, or from the previous intermediate state when verifying.
            float* source = verify && t > 0
                ? (float*)(p.Final.Base + 4 * (batch * p.Final.S0 + (t - 1) * p.Final.S1 + head * p.Final.S2))
                : (float*)p.Initial.Row(batch, head, 0);
            long sourceRow = verify && t > 0 ? p.Final.S3 : p.Initial.S2, sourceColumn = verify && t > 0 ? p.Final.S4 : p.Initial.S3;
            float* target = verify ? (float*)(p.Final.Base + 4 * (batch * p.Final.S0 + t * p.Final.S1 + head * p.Final.S2)) : source;
            long targetRow = verify ? p.Final.S3 : sourceRow, targetColumn = verify ? p.Final.S4 : sourceColumn;
            if (sourceColumn == 1 && targetColumn == 1)
                CpuLinearKernels.DecodeRows<TSimd, T>(source, sourceRow, target, targetRow, p.F, c, gate, k, q, v, acc);
            else
            {
                new Span<float>(acc, cp).Clear();
                for (int f = 0; f < p.F; f++)
                {
                    float* sf = source + f * sourceRow, tf = target + f * targetRow;
                    float g = gate[f], kf = k[f], qf = q[f];
                    for (int e = 0; e < c; e++)
                    {
                        float x = kf * v[e] + g * sf[e * sourceColumn];
                        tf[e * targetColumn] = x;
                        acc[e] += qf * x;
                    }
                }
            }
            float factor = c > p.Dv ? 1f / (p.Scale * acc[p.Dv] + p.Epsilon) : 1f;
            CpuPacking.WriteRow(p.O.Row(batch, head, t), p.O.S3, acc, p.Scale * factor, p.Dv, p.Type);
        }
    }
}
