// CPU delta rule (DeltaNet, Gated DeltaNet, KDA): chunked prefill through the UT transform (a float32 triangular
// solve per chunk), a float32 state carried across chunks, and a recurrent decode/verify step; one source for every
// vector width, on the linear family's GEMM micro-kernel, strided tensors and worker loop.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NativeAttention.Cpu;

/// <summary>
/// Effectively computes <see cref="AttentionContext.DeltaRuleChunked"/> and <see cref="AttentionContext.DeltaRuleDecodeStep"/>
/// in float32 whatever the storage type.
/// </summary>
/// <remarks>
/// <para>Work items are (sequence, head) pairs taken from a shared counter, each computed start to finish by one
/// worker in a fixed order, so results do not depend on the thread count.</para>
/// <para>Per chunk of L tokens with state <c>S</c> (Dk x Dv, K-major in scratch whatever the tensors' layout) and
/// <c>b_t</c> the cumulative log2 gate inside the chunk (never across chunks: every exponent used is &lt;= 0), write
/// <c>S_t = g_t S_{t-1} + k_t u_t^T</c> with the corrected values <c>u_t = beta_t (v_t - g_t S_{t-1}^T k_t)</c>. Then
/// <c>U = (I + A)^-1 diag(beta) (V - diag(2^b) K S)</c>, where <c>A[t][s] = beta_t 2^(b_t - b_s) k_t.k_s</c> for
/// s &lt; t: the UT transform, applied to its right-hand side by a blocked forward substitution in float32
/// (<see cref="Solve{TSimd, T}"/>). Then</para>
/// <code>
/// O = scale 2^b Q S + (scale 2^(b_t - b_s) Q K^T, s &lt;= t) U
/// S = 2^(b_L) S + (K . 2^(b_L - b_s))^T U
/// </code>
/// <para>KDA takes the same steps with the exponentials per key dimension: inside sub-chunks of 16 rows through
/// <see cref="CpuLinearKernels.PerKeyScores{TSimd, T}"/>, against earlier rows by one GEMM of rows and keys decayed to
/// the sub-chunk's first row (<see cref="PerKeyProducts{TSimd, T}"/>).</para>
/// </remarks>
internal static unsafe class CpuDeltaRule
{
    /// <summary>The CPU's default chunk length.</summary>
    public const int DefaultChunk = 64;

    private const float Log2E = 1.4426950408889634f;

    /// <summary>Runs a validated chunked or decode problem on <paramref name="threads"/> workers at the widest accelerated width.</summary>
    public static void Run(DeltaRuleProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView beta, in TensorView output,
        in TensorView? initialState, in TensorView? finalState, int threads, int? vectorBits = null)
    {
        switch (vectorBits ?? CpuFeatures.VectorBits)
        {
            case 512 when Vector512.IsHardwareAccelerated: Run<Simd512, Vector512<float>>(problem, query, key, value, beta, output, initialState, finalState, threads); break;
            case 256 when Vector256.IsHardwareAccelerated: Run<Simd256, Vector256<float>>(problem, query, key, value, beta, output, initialState, finalState, threads); break;
            case 128 when Vector128.IsHardwareAccelerated: Run<Simd128, Vector128<float>>(problem, query, key, value, beta, output, initialState, finalState, threads); break;
            case 0: Run<SimdScalar, float>(problem, query, key, value, beta, output, initialState, finalState, threads); break;
            default: throw new NotSupportedException($"{vectorBits}-bit vectors are not accelerated here (widest: {CpuFeatures.VectorBits}).");
        }
    }

    private static void Run<TSimd, T>(DeltaRuleProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView beta, in TensorView output,
        in TensorView? initialState, in TensorView? finalState, int threads) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        using var qPin = query.Storage!.Pin();
        using var kPin = key.Storage!.Pin();
        using var vPin = value.Storage!.Pin();
        using var bPin = beta.Storage!.Pin();
        using var oPin = output.Storage!.Pin();
        using var s0Pin = initialState is { } s0 ? s0.Storage!.Pin() : default;
        using var s1Pin = finalState is { } s1 ? s1.Storage!.Pin() : default;
        using var gPin = problem.Options.LogGate is { } g ? g.Storage!.Pin() : default;
        var plan = Plan.Rent();
        try
        {
            plan.Reset(problem, TSimd.Count, query, key, value, beta, output, initialState, finalState,
                (byte*)qPin.Pointer, (byte*)kPin.Pointer, (byte*)vPin.Pointer, (byte*)bPin.Pointer, (byte*)oPin.Pointer, (byte*)s0Pin.Pointer, (byte*)s1Pin.Pointer, (byte*)gPin.Pointer);
            CpuWorkers.Run(plan, threads, plan.Items, problem.Call == LinearCall.Chunked ? Work<TSimd, T> : WorkDecode<TSimd, T>);
        }
        finally
        {
            plan.Return();
        }
    }

    private sealed class Plan
    {
        public DeltaRuleProblem Problem = null!;
        public Strided Q, K, V, Beta, O, Initial, Final, Gate;
        public bool HasInitial, HasFinal, PerKey, Gated, Normalize, ValueMajor;
        public ElementType Type, BetaType;
        public int Heads, Dk, Dv, Chunk, ChunkPad, KeyPad, ValuePad, Items;
        public float Scale;
        public long ScratchFloats;
        public int NextItem;

        /// <summary>This thread's idle plan (<see cref="ThreadIdle{T}"/>), or a new one; give it back with <see cref="Return"/>.</summary>
        public static Plan Rent() => ThreadIdle<Plan>.Rent();

        /// <summary>Keeps the plan for this thread's next call, without the references of the finished one.</summary>
        public void Return()
        {
            Problem = null!;
            ThreadIdle<Plan>.Return(this);
        }

        /// <summary>Fills every field for one call (nothing of a previous call survives).</summary>
        public void Reset(DeltaRuleProblem p, int width, in TensorView q, in TensorView k, in TensorView v, in TensorView beta, in TensorView o, in TensorView? s0, in TensorView? s1,
            byte* qp, byte* kp, byte* vp, byte* bp, byte* op, byte* s0p, byte* s1p, byte* gp)
        {
            NextItem = 0;
            Initial = Final = Gate = default;
            Problem = p;
            var options = p.Options;
            Q = new Strided(q, qp); K = new Strided(k, kp); V = new Strided(v, vp); Beta = new Strided(beta, bp); O = new Strided(o, op);
            HasInitial = s0.HasValue; HasFinal = s1.HasValue;
            if (s0 is { } i) Initial = new Strided(i, s0p);
            if (s1 is { } f) Final = new Strided(f, s1p);
            if (options.LogGate is { } g) Gate = new Strided(g, gp);
            PerKey = options.Variant == DeltaRuleVariant.Kda;
            Gated = options.Variant == DeltaRuleVariant.GatedDeltaNet;
            Normalize = options.L2NormalizeQueryKey;
            ValueMajor = options.StateLayout == DeltaStateLayout.ValueMajor;
            Type = p.ElementType; BetaType = beta.ElementType;
            Heads = p.Heads; Dk = p.KeyDim; Dv = p.ValueDim; Scale = p.Scale;
            int step = Math.Max(width, CpuLinearKernels.RowBlock);
            Chunk = p.Call != LinearCall.Chunked ? 1 : options.ChunkSize > 0 ? options.ChunkSize : DefaultChunk;
            ChunkPad = (Chunk + step - 1) / step * step;
            KeyPad = (Dk + step - 1) / step * step;
            ValuePad = (Dv + width - 1) / width * width;
            Items = (p.Call == LinearCall.Chunked ? p.Sequences : p.Batch) * Heads;
            ScratchFloats = (long)new Layout(null, this).End / sizeof(float);
        }
    }

    /// <summary>The per-thread scratch of one item, carved in a fixed order; laid out from null it measures its size.</summary>
    private readonly struct Layout
    {
        public readonly float* Q, K, KT, KDecayed, KGated, Sub, Zeros, U, Akk, Aqk, O, S, Log2Gate, Log2Gates, RowScale, RowBeta, Beta, MinusOne, Index, Raw, End;

        public Layout(float* start, Plan p)
        {
            float* next = start;
            long lp = p.ChunkPad, kp = p.KeyPad, vp = p.ValuePad;
            Q = CpuScratch.Take(ref next, lp * kp);
            K = CpuScratch.Take(ref next, lp * kp);
            KT = CpuScratch.Take(ref next, kp * lp);
            KDecayed = CpuScratch.Take(ref next, kp * lp);
            KGated = CpuScratch.Take(ref next, p.PerKey ? lp * kp : 0);
            Sub = CpuScratch.Take(ref next, p.PerKey ? 2L * SubChunk * kp : 0);
            Zeros = CpuScratch.Take(ref next, p.PerKey ? kp : 0);
            U = CpuScratch.Take(ref next, lp * vp);
            Akk = CpuScratch.Take(ref next, lp * lp);
            Aqk = CpuScratch.Take(ref next, lp * lp);
            O = CpuScratch.Take(ref next, lp * vp);
            S = CpuScratch.Take(ref next, kp * vp);
            Log2Gate = CpuScratch.Take(ref next, lp);
            Log2Gates = CpuScratch.Take(ref next, p.PerKey ? lp * kp : 0);
            RowScale = CpuScratch.Take(ref next, Math.Max(lp, kp));
            RowBeta = CpuScratch.Take(ref next, kp);
            Beta = CpuScratch.Take(ref next, lp);
            MinusOne = CpuScratch.Take(ref next, lp);
            Index = CpuScratch.Take(ref next, lp);
            Raw = CpuScratch.Take(ref next, Math.Max(p.Dk, p.Dv) + 16);
            End = next;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Work<TSimd, T>(Plan p) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        float* scratch = CpuScratch.Get(p.ScratchFloats);
        var s = new Layout(scratch, p);
        for (int i = 0; i < p.ChunkPad; i++)
        {
            s.Index[i] = i;
            s.MinusOne[i] = -1;
        }
        if (p.PerKey) new Span<float>(s.Zeros, p.KeyPad).Clear();
        for (int item = Interlocked.Increment(ref p.NextItem) - 1; item < p.Items; item = Interlocked.Increment(ref p.NextItem) - 1)
            RunItem<TSimd, T>(p, s, item / p.Heads, item % p.Heads);
    }

    /// <summary>One (sequence, head): every chunk in order, the state kept in scratch.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RunItem<TSimd, T>(Plan p, in Layout s, int sequence, int head) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        var problem = p.Problem;
        int lp = p.ChunkPad, kp = p.KeyPad, vp = p.ValuePad, w = TSimd.Count;
        int batch = problem.IsVarlen ? 0 : sequence;
        int first = problem.SequenceStart(sequence), length = problem.SequenceLength(sequence);

        // The state, K-major: rows Dk (padded to kp with zeros), columns Dv (padded to vp with zeros).
        new Span<float>(s.S, kp * vp).Clear();
        new Span<float>(s.KDecayed, kp * lp).Clear();
        if (p.HasInitial) LoadState(p, s, p.Initial, sequence, head);

        for (int c0 = 0; c0 < length; c0 += p.Chunk)
        {
            int l = Math.Min(p.Chunk, length - c0);
            int rows = (l + 3) & ~3;
            int t0 = first + c0;
            PackRows(p, p.Q, problem.QueryHead(head), s.Q, null, batch, t0, l);
            PackRows(p, p.K, problem.KeyHead(head), s.K, s.KT, batch, t0, l);
            PackValues(p, s, batch, head, t0, l);
            for (int t = 0; t < lp; t++) s.Beta[t] = 0;
            CpuPacking.ReadRow(s.Beta, p.Beta.Row(batch, head, t0), p.Beta.S2, l, p.BetaType);
            if (!p.PerKey)
            {
                ScalarGates(p, s, batch, head, t0, l);
                float last = s.Log2Gate[l - 1];
                // A = beta_t 2^(b_t - b_s) K K^T below the diagonal; the scores scale 2^(b_t - b_s) Q K^T on and below it.
                CpuLinearKernels.Gemm<TSimd, T>(s.K, kp, s.KT, lp, p.Dk, s.Akk, lp, rows, lp / w, null, null, 0f, false, true);
                StrictlyLowerMask<TSimd, T>(s.Akk, lp, rows, s.Log2Gate, s.Index, s.Beta);
                CpuLinearKernels.Gemm<TSimd, T>(s.Q, kp, s.KT, lp, p.Dk, s.Aqk, lp, rows, lp / w, null, null, 0f, false, true);
                CpuLinearKernels.DecayMask<TSimd, T>(s.Aqk, lp, rows, s.Log2Gate, s.Index, p.Scale);
                // U = V - 2^(b_t) K S.
                for (int t = 0; t < rows; t++) s.RowScale[t] = -float.Exp2(s.Log2Gate[t]);
                CpuLinearKernels.Gemm<TSimd, T>(s.K, kp, s.S, vp, p.Dk, s.U, vp, rows, vp / w, s.RowScale, null, 1f, false, false);
                ScaleRows<TSimd, T>(s.U, vp, rows, s.Beta);
                Solve<TSimd, T>(s.Akk, lp, s.U, vp, rows, s.MinusOne);
                // O = scale 2^(b_t) Q S + scores U.
                for (int t = 0; t < rows; t++) s.RowScale[t] = p.Scale * float.Exp2(s.Log2Gate[t]);
                CpuLinearKernels.Gemm<TSimd, T>(s.Q, kp, s.S, vp, p.Dk, s.O, vp, rows, vp / w, s.RowScale, null, 0f, false, false);
                CpuLinearKernels.Gemm<TSimd, T>(s.Aqk, lp, s.U, vp, l, s.O, vp, rows, vp / w, null, null, 1f, true, false);
                // S = 2^(b_L) S + (K 2^(b_L - b_s))^T U.
                for (int t = 0; t < l; t++) s.RowScale[t] = float.Exp2(last - s.Log2Gate[t]);
                for (int f = 0; f < p.Dk; f++)
                {
                    float* kt = s.KT + (long)f * lp, kd = s.KDecayed + (long)f * lp;
                    for (int t = 0; t < l; t++) kd[t] = kt[t] * s.RowScale[t];
                }
                CpuLinearKernels.Gemm<TSimd, T>(s.KDecayed, lp, s.U, vp, l, s.S, vp, kp, vp / w, null, null, float.Exp2(last), false, false);
            }
            else
            {
                PerKeyGates(p, s, batch, head, t0, l);
                float* lastRow = s.Log2Gates + (long)(l - 1) * kp;
                PerKeyProducts<TSimd, T>(p, s, rows);
                for (int t = 0; t < rows; t++)
                {
                    float* row = s.Akk + (long)t * lp;
                    for (int j = 0; j < t; j++) row[j] *= s.Beta[t];
                    row[t] = 0;
                }
                // U = V - (K . 2^(B_t)) S; the queries are decayed in place (the scores are done with them).
                for (int t = 0; t < rows; t++)
                {
                    float* kt = s.K + (long)t * kp, qt = s.Q + (long)t * kp, bt = s.Log2Gates + (long)t * kp;
                    DecayedRow<TSimd, T>(s.KGated + (long)t * kp, kt, bt, s.Zeros, kp);
                    DecayedRow<TSimd, T>(qt, qt, bt, s.Zeros, kp);
                }
                CpuLinearKernels.Gemm<TSimd, T>(s.KGated, kp, s.S, vp, p.Dk, s.U, vp, rows, vp / w, s.MinusOne, null, 1f, false, false);
                ScaleRows<TSimd, T>(s.U, vp, rows, s.Beta);
                Solve<TSimd, T>(s.Akk, lp, s.U, vp, rows, s.MinusOne);
                for (int t = 0; t < rows; t++) s.RowScale[t] = p.Scale;
                CpuLinearKernels.Gemm<TSimd, T>(s.Q, kp, s.S, vp, p.Dk, s.O, vp, rows, vp / w, s.RowScale, null, 0f, false, false);
                CpuLinearKernels.Gemm<TSimd, T>(s.Aqk, lp, s.U, vp, l, s.O, vp, rows, vp / w, null, null, 1f, true, false);
                // (K . 2^(B_L - B_s))^T: each key row decayed, then transposed.
                for (int t = 0; t < l; t++)
                {
                    DecayedRow<TSimd, T>(s.Sub, s.K + (long)t * kp, lastRow, s.Log2Gates + (long)t * kp, kp);
                    for (int f = 0; f < p.Dk; f++) s.KDecayed[(long)f * lp + t] = s.Sub[f];
                }
                for (int f = 0; f < p.Dk; f++) s.RowBeta[f] = float.Exp2(lastRow[f]);
                for (int f = p.Dk; f < kp; f++) s.RowBeta[f] = 0;
                CpuLinearKernels.Gemm<TSimd, T>(s.KDecayed, lp, s.U, vp, l, s.S, vp, kp, vp / w, null, s.RowBeta, 0f, false, false);
            }
            for (int t = 0; t < l; t++)
                CpuPacking.WriteRow(p.O.Row(batch, head, t0 + t), p.O.S3, s.O + (long)t * vp, 1f, p.Dv, p.Type);
        }
        if (p.HasFinal) StoreState(p, s, p.Final, sequence, head);
    }

    /// <summary>Rows per sub-chunk of the KDA products: the block whose scores take an exponential per key dimension.</summary>
    private const int SubChunk = 16;

    /// <summary>
    /// KDA's raw intra-chunk products <c>Aqk[t][s] = scale sum_f q_t[f] k_s[f] 2^(B_t[f] - B_s[f])</c> (s &lt;= t) and
    /// <c>Akk[t][s]</c>, the same with k_t and no scale, in sub-chunks of <see cref="SubChunk"/> rows. Inside a
    /// sub-chunk every (t, s) pair takes its own exponentials (<see cref="CpuLinearKernels.PerKeyScores{TSimd, T}"/>);
    /// against the earlier keys s &lt; r (r the sub-chunk's first row) the factor splits into
    /// <c>2^(B_t - B_r) 2^(B_r - B_s)</c>, both exponents &lt;= 0, so one GEMM of the decayed rows against the decayed
    /// keys does the rest (fla's KDA sub-chunking).
    /// </summary>
    private static void PerKeyProducts<TSimd, T>(Plan p, in Layout s, int rows) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int lp = p.ChunkPad, kp = p.KeyPad, w = TSimd.Count;
        for (int r = 0; r < rows; r += SubChunk)
        {
            int n = Math.Min(SubChunk, rows - r);
            float* br = s.Log2Gates + (long)r * kp;
            CpuLinearKernels.PerKeyScores<TSimd, T>(s.Q + (long)r * kp, s.K + (long)r * kp, br, kp, kp, n, s.Aqk + (long)r * lp + r, lp, p.Scale);
            CpuLinearKernels.PerKeyScores<TSimd, T>(s.K + (long)r * kp, s.K + (long)r * kp, br, kp, kp, n, s.Akk + (long)r * lp + r, lp, 1f);
            if (r == 0) continue;
            // Earlier keys decayed to row r, k_s 2^(B_r - B_s), transposed into [kp][lp] (KDecayed is free until the state update).
            for (int j = 0; j < r; j++)
            {
                float* row = s.KGated + (long)j * kp;
                DecayedRow<TSimd, T>(row, s.K + (long)j * kp, br, s.Log2Gates + (long)j * kp, kp);
                for (int f = 0; f < p.Dk; f++) s.KDecayed[(long)f * lp + j] = row[f];
            }
            // This sub-chunk's queries and keys decayed from row r, x_t 2^(B_t - B_r).
            for (int t = 0; t < n; t++)
            {
                float* bt = s.Log2Gates + (long)(r + t) * kp;
                DecayedRow<TSimd, T>(s.Sub + (long)t * kp, s.Q + (long)(r + t) * kp, bt, br, kp);
                DecayedRow<TSimd, T>(s.Sub + (long)(SubChunk + t) * kp, s.K + (long)(r + t) * kp, bt, br, kp);
                s.RowScale[t] = p.Scale;
            }
            CpuLinearKernels.Gemm<TSimd, T>(s.Sub, kp, s.KDecayed, lp, p.Dk, s.Aqk + (long)r * lp, lp, n, r / w, s.RowScale, null, 0f, false, false);
            CpuLinearKernels.Gemm<TSimd, T>(s.Sub + (long)SubChunk * kp, kp, s.KDecayed, lp, p.Dk, s.Akk + (long)r * lp, lp, n, r / w, null, null, 0f, false, false);
        }
    }

    /// <summary><c>target[f] = x[f] 2^(min(a[f] - b[f], 0))</c> over <paramref name="count"/> floats, a whole number of vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void DecayedRow<TSimd, T>(float* target, float* x, float* a, float* b, int count) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int w = TSimd.Count;
        for (int f = 0; f < count; f += w)
            TSimd.Store(target + f, TSimd.Multiply(TSimd.Load(x + f), TSimd.Exp2NonPositive(TSimd.Min(TSimd.Subtract(TSimd.Load(a + f), TSimd.Load(b + f)), TSimd.Zero))));
    }

    /// <summary>The state of (sequence, head) into scratch, K-major, from either layout.</summary>
    private static void LoadState(Plan p, in Layout s, in Strided state, int sequence, int head)
    {
        int vp = p.ValuePad;
        if (!p.ValueMajor)
        {
            for (int i = 0; i < p.Dk; i++) CpuPacking.ReadRow(s.S + (long)i * vp, state.Row(sequence, head, i), state.S3, p.Dv, ElementType.Float32);
            return;
        }
        for (int e = 0; e < p.Dv; e++)
        {
            CpuPacking.ReadRow(s.Raw, state.Row(sequence, head, e), state.S3, p.Dk, ElementType.Float32);
            for (int i = 0; i < p.Dk; i++) s.S[(long)i * vp + e] = s.Raw[i];
        }
    }

    /// <summary>The scratch state of (sequence, head) out to a state tensor in the options' layout.</summary>
    private static void StoreState(Plan p, in Layout s, in Strided state, int sequence, int head)
    {
        int vp = p.ValuePad;
        if (!p.ValueMajor)
        {
            for (int i = 0; i < p.Dk; i++) CpuPacking.WriteRow(state.Row(sequence, head, i), state.S3, s.S + (long)i * vp, 1f, p.Dv, ElementType.Float32);
            return;
        }
        for (int e = 0; e < p.Dv; e++)
        {
            for (int i = 0; i < p.Dk; i++) s.Raw[i] = s.S[(long)i * vp + e];
            CpuPacking.WriteRow(state.Row(sequence, head, e), state.S3, s.Raw, 1f, p.Dk, ElementType.Float32);
        }
    }

    /// <summary>
    /// Query or key rows for tokens t0..t0+l into <paramref name="rows"/> <c>[lp][kp]</c> (L2-normalised when asked),
    /// and transposed into <paramref name="transposed"/> <c>[kp][lp]</c> when given; padding zero.
    /// </summary>
    private static void PackRows(Plan p, in Strided source, int sourceHead, float* rows, float* transposed, int batch, int t0, int l)
    {
        int kp = p.KeyPad, lp = p.ChunkPad;
        if (transposed is not null) new Span<float>(transposed, kp * lp).Clear();
        for (int t = 0; t < lp; t++)
        {
            float* row = rows + (long)t * kp;
            new Span<float>(row, kp).Clear();
            if (t >= l) continue;
            CpuPacking.ReadRow(row, source.Row(batch, sourceHead, t0 + t), source.S3, p.Dk, p.Type);
            if (p.Normalize) L2Normalize(row, p.Dk);
            if (transposed is not null)
                for (int f = 0; f < p.Dk; f++) transposed[(long)f * lp + t] = row[f];
        }
    }

    /// <summary><c>x / sqrt(|x|^2 + eps)</c> in place (fla's <c>l2norm</c>).</summary>
    private static void L2Normalize(float* x, int d)
    {
        float sum = 0;
        for (int i = 0; i < d; i++) sum += x[i] * x[i];
        float inverse = 1f / MathF.Sqrt(sum + DeltaRuleOptions.L2NormEpsilon);
        for (int i = 0; i < d; i++) x[i] *= inverse;
    }

    /// <summary>v_t rows into U <c>[lp][vp]</c>; padding zero.</summary>
    private static void PackValues(Plan p, in Layout s, int batch, int head, int t0, int l)
    {
        int vp = p.ValuePad;
        int vh = p.Problem.ValueHead(head);
        for (int t = 0; t < p.ChunkPad; t++)
        {
            float* row = s.U + (long)t * vp;
            new Span<float>(row, vp).Clear();
            if (t < l) CpuPacking.ReadRow(row, p.V.Row(batch, vh, t0 + t), p.V.S3, p.Dv, p.Type);
        }
    }

    /// <summary>Cumulative log2 gates inside the chunk, b_t = sum_{r &lt;= t} log2 g_r; 0 for DeltaNet; padding repeats the last.</summary>
    private static void ScalarGates(Plan p, in Layout s, int batch, int head, int t0, int l)
    {
        float b = 0;
        for (int t = 0; t < p.ChunkPad; t++)
        {
            if (t < l && p.Gated) b += *(float*)p.Gate.Row(batch, head, t0 + t) * Log2E;
            s.Log2Gate[t] = b;
        }
    }

    /// <summary>Cumulative log2 gates per key dimension, <c>B_t[f]</c>, rows <c>[lp][kp]</c>; padding columns 0, padding rows repeat the last.</summary>
    private static void PerKeyGates(Plan p, in Layout s, int batch, int head, int t0, int l)
    {
        int kp = p.KeyPad;
        float* previous = null;
        for (int t = 0; t < p.ChunkPad; t++)
        {
            float* row = s.Log2Gates + (long)t * kp;
            if (t < l)
            {
                CpuPacking.ReadRow(row, p.Gate.Row(batch, head, t0 + t), p.Gate.S3, p.Dk, ElementType.Float32);
                for (int f = 0; f < p.Dk; f++) row[f] = row[f] * Log2E + (previous is null ? 0 : previous[f]);
                new Span<float>(row + p.Dk, kp - p.Dk).Clear();
            }
            else new Span<float>(previous, kp).CopyTo(new Span<float>(row, kp));
            previous = row;
        }
    }

    /// <summary>
    /// Turns raw products <c>A[t][s] = k_t . k_s</c> into <c>beta_t 2^(b_t - b_s) A[t][s]</c> for s &lt; t and 0 on
    /// and above the diagonal, over the column vectors the causal product computed (rows below <paramref name="rows"/>).
    /// (<see cref="Solve{TSimd, T}"/> reads only below the diagonal; the zeros keep the matrix what it says it is.)
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void StrictlyLowerMask<TSimd, T>(float* a, long stride, int rows, float* log2Gate, float* index, float* beta)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int w = TSimd.Count;
        T zero = TSimd.Zero;
        for (int t = 0; t < rows; t++)
        {
            int vectors = (t + CpuLinearKernels.RowBlock - t % CpuLinearKernels.RowBlock + w - 1) / w;
            T bt = TSimd.Broadcast(log2Gate[t]), end = TSimd.Broadcast(t), scale = TSimd.Broadcast(beta[t]);
            float* row = a + t * stride;
            for (int v = 0; v < vectors; v++)
            {
                T exponent = TSimd.KeepInRange(TSimd.Min(TSimd.Subtract(bt, TSimd.Load(log2Gate + v * w)), zero), TSimd.Load(index + v * w), zero, end);
                TSimd.Store(row + v * w, TSimd.Multiply(TSimd.Multiply(TSimd.Load(row + v * w), TSimd.Exp2NonPositive(exponent)), scale));
            }
        }
    }

    /// <summary>Row t of <c>[rows][columns]</c> (columns a whole number of vectors) times <c>factor[t]</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ScaleRows<TSimd, T>(float* x, int columns, int rows, float* factor) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int w = TSimd.Count;
        for (int t = 0; t < rows; t++)
        {
            T f = TSimd.Broadcast(factor[t]);
            float* row = x + (long)t * columns;
            for (int e = 0; e < columns; e += w) TSimd.Store(row + e, TSimd.Multiply(TSimd.Load(row + e), f));
        }
    }

    /// <summary>
    /// Solves <c>(I + A) U = R</c> in place (R given in U), A strictly lower triangular <c>[rows][rows]</c>, by forward
    /// substitution in blocks of four rows: the rows above a block are subtracted by one GEMM
    /// (<c>U_i -= A_i,&lt;i U_&lt;i</c>), then the block's own rows one after the other.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Solve<TSimd, T>(float* a, long lda, float* u, int columns, int rows, float* minusOne) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int w = TSimd.Count;
        const int block = CpuLinearKernels.RowBlock;
        for (int i = 0; i < rows; i += block)
        {
            if (i > 0)
                CpuLinearKernels.Gemm<TSimd, T>(a + i * lda, lda, u, columns, i, u + (long)i * columns, columns, block, columns / w, minusOne, null, 1f, false, false);
            for (int r = i + 1; r < i + block; r++)
            {
                float* target = u + (long)r * columns;
                for (int j = i; j < r; j++)
                {
                    float factor = a[r * lda + j];
                    if (factor == 0) continue;
                    T f = TSimd.Broadcast(-factor);
                    float* source = u + (long)j * columns;
                    for (int e = 0; e < columns; e += w) TSimd.Store(target + e, TSimd.MultiplyAdd(TSimd.Load(source + e), f, TSimd.Load(target + e)));
                }
            }
        }
    }

    // ---- Decode: T tokens straight through the state, each token one pass (V-major) or two (K-major) over it ----

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WorkDecode<TSimd, T>(Plan p) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int kp = p.KeyPad, vp = p.ValuePad;
        float* scratch = CpuScratch.Get(5L * kp + 4L * vp + Math.Max(p.Dk, p.Dv) + 64);
        var d = new DecodeScratch(scratch, kp, vp);
        for (int item = Interlocked.Increment(ref p.NextItem) - 1; item < p.Items; item = Interlocked.Increment(ref p.NextItem) - 1)
            DecodeItem<TSimd, T>(p, item / p.Heads, item % p.Heads, d);
    }

    /// <summary>Scratch of a decode step: q, k, gates, gated k and q over Dk; v, u and two accumulators over Dv.</summary>
    private readonly struct DecodeScratch(float* start, int kp, int vp)
    {
        public readonly float* Q = start, K = start + kp, Gate = start + 2L * kp, GatedK = start + 3L * kp, GatedQ = start + 4L * kp;
        public readonly float* V = start + 5L * kp, U = start + 5L * kp + vp, AccK = start + 5L * kp + 2L * vp, AccQ = start + 5L * kp + 3L * vp;
        public readonly float* Raw = start + 5L * kp + 4L * vp;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DecodeItem<TSimd, T>(Plan p, int batch, int head, in DecodeScratch d) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        var problem = p.Problem;
        int dk = p.Dk, dv = p.Dv, w = TSimd.Count;
        bool verify = problem.Call == LinearCall.Verify;
        int qh = problem.QueryHead(head), kh = problem.KeyHead(head), vh = problem.ValueHead(head);
        for (int t = 0; t < problem.Length; t++)
        {
            new Span<float>(d.Q, p.KeyPad).Clear();
            new Span<float>(d.K, p.KeyPad).Clear();
            new Span<float>(d.V, p.ValuePad).Clear();
            CpuPacking.ReadRow(d.Q, p.Q.Row(batch, qh, t), p.Q.S3, dk, p.Type);
            CpuPacking.ReadRow(d.K, p.K.Row(batch, kh, t), p.K.S3, dk, p.Type);
            CpuPacking.ReadRow(d.V, p.V.Row(batch, vh, t), p.V.S3, dv, p.Type);
            if (p.Normalize)
            {
                L2Normalize(d.Q, dk);
                L2Normalize(d.K, dk);
            }
            float beta;
            CpuPacking.ReadRow(&beta, p.Beta.Row(batch, head, t), 1, 1, p.BetaType);
            if (p.PerKey)
            {
                CpuPacking.ReadRow(d.Gate, p.Gate.Row(batch, head, t), p.Gate.S3, dk, ElementType.Float32);
                for (int i = 0; i < dk; i++) d.Gate[i] = MathF.Exp(d.Gate[i]);
            }
            else new Span<float>(d.Gate, dk).Fill(p.Gated ? MathF.Exp(*(float*)p.Gate.Row(batch, head, t)) : 1f);
            float qk = 0;
            for (int i = 0; i < dk; i++)
            {
                d.GatedK[i] = d.Gate[i] * d.K[i];
                d.GatedQ[i] = d.Gate[i] * d.Q[i];
                qk += d.Q[i] * d.K[i];
            }
            // Source rows: the state, or the previous intermediate state when verifying; targets: in place, or intermediate t.
            bool fromIntermediate = verify && t > 0;
            byte* Source(long row) => fromIntermediate ? p.Final.Row(batch, t - 1, head, row) : p.Initial.Row(batch, head, row);
            byte* Target(long row) => verify ? p.Final.Row(batch, t, head, row) : p.Initial.Row(batch, head, row);
            long sourceStride = fromIntermediate ? p.Final.S4 : p.Initial.S3, targetStride = verify ? p.Final.S4 : p.Initial.S3;
            bool contiguous = sourceStride == 1 && targetStride == 1;
            float scale = p.Scale;
            if (p.ValueMajor)
            {
                // Row e holds S[:, e]: one pass reads it, finds u_e and o_e, and writes it back.
                for (int e = 0; e < dv; e++)
                {
                    float* source = (float*)Source(e), target = (float*)Target(e);
                    float kS, qS;
                    if (contiguous)
                    {
                        T ak = TSimd.Zero, aq = TSimd.Zero;
                        int i = 0;
                        for (; i + w <= dk; i += w)
                        {
                            T x = TSimd.Load(source + i);
                            ak = TSimd.MultiplyAdd(x, TSimd.Load(d.GatedK + i), ak);
                            aq = TSimd.MultiplyAdd(x, TSimd.Load(d.GatedQ + i), aq);
                        }
                        kS = TSimd.Sum(ak);
                        qS = TSimd.Sum(aq);
                        for (; i < dk; i++)
                        {
                            kS += source[i] * d.GatedK[i];
                            qS += source[i] * d.GatedQ[i];
                        }
                        float u = beta * (d.V[e] - kS);
                        T uv = TSimd.Broadcast(u);
                        i = 0;
                        for (; i + w <= dk; i += w)
                            TSimd.Store(target + i, TSimd.MultiplyAdd(TSimd.Load(d.K + i), uv, TSimd.Multiply(TSimd.Load(d.Gate + i), TSimd.Load(source + i))));
                        for (; i < dk; i++) target[i] = d.Gate[i] * source[i] + d.K[i] * u;
                        d.AccQ[e] = scale * (qS + qk * u);
                    }
                    else
                    {
                        kS = 0;
                        qS = 0;
                        for (int i = 0; i < dk; i++)
                        {
                            float x = source[i * sourceStride];
                            kS += x * d.GatedK[i];
                            qS += x * d.GatedQ[i];
                        }
                        float u = beta * (d.V[e] - kS);
                        for (int i = 0; i < dk; i++) target[i * targetStride] = d.Gate[i] * source[i * sourceStride] + d.K[i] * u;
                        d.AccQ[e] = scale * (qS + qk * u);
                    }
                }
            }
            else
            {
                // Row i holds S[i, :]. Unit column strides: the first pass streams the rows once for (G S)^T k (column
                // sums in registers), the second is the linear family's decode pass, T = G S + k u^T with
                // o = scale T^T q read off the rows it writes (T^T q = (G S)^T q + (q.k) u).
                if (contiguous)
                {
                    KeyMajorSums<TSimd, T>((float*)Source(0), fromIntermediate ? p.Final.S3 : p.Initial.S2, dk, dv, d.GatedK, d.AccK);
                    for (int e = 0; e < dv; e++) d.U[e] = beta * (d.V[e] - d.AccK[e]);
                    CpuLinearKernels.DecodeRows<TSimd, T>((float*)Source(0), fromIntermediate ? p.Final.S3 : p.Initial.S2, (float*)Target(0), verify ? p.Final.S3 : p.Initial.S2,
                        dk, dv, d.Gate, d.K, d.Q, d.U, d.AccQ);
                    for (int e = 0; e < dv; e++) d.AccQ[e] *= scale;
                }
                else
                {
                    // Other strides, element by element: (G S)^T k and (G S)^T q, then G S + k u^T.
                    new Span<float>(d.AccK, p.ValuePad).Clear();
                    new Span<float>(d.AccQ, p.ValuePad).Clear();
                    for (int i = 0; i < dk; i++)
                    {
                        float* source = (float*)Source(i);
                        float gk = d.GatedK[i], gq = d.GatedQ[i];
                        for (int e = 0; e < dv; e++)
                        {
                            float x = source[e * sourceStride];
                            d.AccK[e] += x * gk;
                            d.AccQ[e] += x * gq;
                        }
                    }
                    for (int e = 0; e < dv; e++)
                    {
                        d.U[e] = beta * (d.V[e] - d.AccK[e]);
                        d.AccQ[e] = scale * (d.AccQ[e] + qk * d.U[e]);
                    }
                    for (int i = 0; i < dk; i++)
                    {
                        float* source = (float*)Source(i), target = (float*)Target(i);
                        float g = d.Gate[i], ki = d.K[i];
                        for (int e = 0; e < dv; e++) target[e * targetStride] = g * source[e * sourceStride] + ki * d.U[e];
                    }
                }
            }
            CpuPacking.WriteRow(p.O.Row(batch, head, t), p.O.S3, d.AccQ, 1f, dv, p.Type);
        }
    }

    /// <summary>
    /// The K-major first pass of a decode step, <c>acc[e] = sum_i g[i] S[i][e]</c> for <c>e &lt; columns</c> (unit column
    /// stride, rows <paramref name="stride"/> floats apart): one streaming pass over the rows per block of up to eight
    /// vectors of columns (the whole row at Dv = 128 in 512-bit vectors), the sums in registers; columns past the last
    /// whole vector are summed scalar. Rows are summed in order, as a per-row loop would.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void KeyMajorSums<TSimd, T>(float* s, long stride, int rows, int columns, float* g, float* acc)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int w = TSimd.Count;
        int group = TSimd.Registers >= 32 ? 8 : 4;
        int vectors = columns / w;
        for (int j = 0; j < vectors; j += group)
        {
            long e = (long)j * w;
            switch (Math.Min(group, vectors - j))
            {
                case 8: SumsBlock<TSimd, T, CpuLinearKernels.Eight>(s + e, stride, rows, g, acc + e); break;
                case 7: SumsBlock<TSimd, T, CpuLinearKernels.Seven>(s + e, stride, rows, g, acc + e); break;
                case 6: SumsBlock<TSimd, T, CpuLinearKernels.Six>(s + e, stride, rows, g, acc + e); break;
                case 5: SumsBlock<TSimd, T, CpuLinearKernels.Five>(s + e, stride, rows, g, acc + e); break;
                case 4: SumsBlock<TSimd, T, Four>(s + e, stride, rows, g, acc + e); break;
                case 3: SumsBlock<TSimd, T, Three>(s + e, stride, rows, g, acc + e); break;
                case 2: SumsBlock<TSimd, T, Two>(s + e, stride, rows, g, acc + e); break;
                default: SumsBlock<TSimd, T, One>(s + e, stride, rows, g, acc + e); break;
            }
        }
        for (int e = vectors * w; e < columns; e++)
        {
            float sum = 0;
            for (int i = 0; i < rows; i++) sum += s[i * stride + e] * g[i];
            acc[e] = sum;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SumsBlock<TSimd, T, TN>(float* s, long stride, int rows, float* g, float* acc)
        where TSimd : struct, ISimd<T> where T : unmanaged where TN : struct, IConstant
    {
        int w = TSimd.Count;
        int n = TN.Value;
        T a0 = TSimd.Zero, a1 = TSimd.Zero, a2 = TSimd.Zero, a3 = TSimd.Zero, a4 = TSimd.Zero, a5 = TSimd.Zero, a6 = TSimd.Zero, a7 = TSimd.Zero;
        for (int i = 0; i < rows; i++, s += stride)
        {
            T gi = TSimd.Broadcast(g[i]);
            a0 = TSimd.MultiplyAdd(TSimd.Load(s), gi, a0);
            if (n > 1) a1 = TSimd.MultiplyAdd(TSimd.Load(s + w), gi, a1);
            if (n > 2) a2 = TSimd.MultiplyAdd(TSimd.Load(s + 2 * w), gi, a2);
            if (n > 3) a3 = TSimd.MultiplyAdd(TSimd.Load(s + 3 * w), gi, a3);
            if (n > 4) a4 = TSimd.MultiplyAdd(TSimd.Load(s + 4 * w), gi, a4);
            if (n > 5) a5 = TSimd.MultiplyAdd(TSimd.Load(s + 5 * w), gi, a5);
            if (n > 6) a6 = TSimd.MultiplyAdd(TSimd.Load(s + 6 * w), gi, a6);
            if (n > 7) a7 = TSimd.MultiplyAdd(TSimd.Load(s + 7 * w), gi, a7);
        }
        CpuLinearKernels.StoreVectors<TSimd, T, TN>(acc, a0, a1, a2, a3, a4, a5, a6, a7);
    }
}
