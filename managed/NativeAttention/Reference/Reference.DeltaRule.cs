// The delta rule (DeltaNet, Gated DeltaNet, KDA) in float64, token by token through the state recurrence exactly as
// written, (I - beta k k^T) G S + beta k v^T: no chunks, no WY/UT form. Head mapping, gates, normalisation, state
// layouts and packed sequences are worked out here, on their own.
namespace NativeAttention;

public static partial class Reference
{
    /// <summary>
    /// The delta rule in float64 by the naive recurrence. Per sequence and output head, from
    /// <paramref name="initialState"/> (zero when null), for t = 1..N: <c>S_t = (I - beta_t k_t k_t^T) G_t S_{t-1} +
    /// beta_t k_t v_t^T</c> and <c>o_t = scale S_t^T q_t</c>, where <c>G_t</c> is 1 (DeltaNet), <c>exp(LogGate[b, h, t])</c>
    /// (Gated DeltaNet) or <c>diag(exp(LogGate[b, h, t, :]))</c> (KDA); beta is <c>beta[b, h, t]</c>; with
    /// <see cref="DeltaRuleOptions.L2NormalizeQueryKey"/> q and k are first divided by <c>sqrt(|x|^2 + 1e-6)</c>; scale
    /// defaults to <c>1 / sqrt(Dk)</c>. Output head h of H = max(Hq, Hk, Hv) reads query head <c>h Hq / H</c>, key head
    /// <c>h Hk / H</c> and value head <c>h Hv / H</c>. With <see cref="DeltaRuleOptions.CuSeqLens"/> (B = 1) each packed
    /// sequence is a call of its own with its own state.
    /// </summary>
    /// <param name="query">Q <c>[B, Hq, N, Dk]</c>.</param>
    /// <param name="key">K <c>[B, Hk, N, Dk]</c>.</param>
    /// <param name="value">V <c>[B, Hv, N, Dv]</c>.</param>
    /// <param name="beta">beta <c>[B, H, N]</c>, every value in [0, 2].</param>
    /// <param name="options">Options; null for DeltaNet with the defaults.</param>
    /// <param name="initialState">Optional float32 state <c>[S, H, Dk, Dv]</c> (<c>[S, H, Dv, Dk]</c> V-major).</param>
    /// <returns>Output <c>[B, H, N, Dv]</c> and the final state in the options' layout.</returns>
    /// <exception cref="ArgumentException">A tensor or option is invalid, as for <see cref="AttentionContext.DeltaRuleChunked"/>.</exception>
    /// <exception cref="ObjectDisposedException">A tensor's storage was released.</exception>
    public static ReferenceResult DeltaRuleChunked(TensorView query, TensorView key, TensorView value, TensorView beta, DeltaRuleOptions? options = null, TensorView? initialState = null) =>
        DeltaRecurrence(query, key, value, beta, options ?? new DeltaRuleOptions(), initialState, DeltaMode.Prefill);

    /// <summary>
    /// One recurrent decode call in float64: the T tokens advance <paramref name="state"/> <c>[B, H, ..]</c> as
    /// <see cref="DeltaRuleChunked"/> would from that initial state (the tensor itself is not changed). Not packed.
    /// </summary>
    /// <returns>Output <c>[B, H, T, Dv]</c> and, as FinalState, the advanced state.</returns>
    /// <exception cref="ArgumentException">A tensor or option is invalid, as for <see cref="AttentionContext.DeltaRuleDecodeStep"/>.</exception>
    public static ReferenceResult DeltaRuleDecodeStep(TensorView query, TensorView key, TensorView value, TensorView beta, TensorView state, DeltaRuleOptions? options = null) =>
        DeltaRecurrence(query, key, value, beta, options ?? new DeltaRuleOptions(), state, DeltaMode.Decode);

    /// <summary>A verify call in float64: T &lt;= 8 draft tokens from <paramref name="state"/>, keeping the state after every one.</summary>
    /// <returns>Output <c>[B, H, T, Dv]</c> and, as FinalState, the intermediate states <c>[B, T, H, ..]</c>.</returns>
    /// <exception cref="ArgumentException">A tensor or option is invalid, as for <see cref="AttentionContext.DeltaRuleDecodeStep"/>.</exception>
    public static ReferenceResult DeltaRuleVerify(TensorView query, TensorView key, TensorView value, TensorView beta, TensorView state, DeltaRuleOptions? options = null) =>
        DeltaRecurrence(query, key, value, beta, options ?? new DeltaRuleOptions(), state, DeltaMode.Verify);

    private enum DeltaMode { Prefill, Decode, Verify }

    private static ReferenceResult DeltaRecurrence(TensorView query, TensorView key, TensorView value, TensorView beta, DeltaRuleOptions o, TensorView? initialState, DeltaMode mode)
    {
        bool stepping = mode != DeltaMode.Prefill;
        string stateName = stepping ? "state" : nameof(initialState);
        const string qLayout = "[B, Hq, N, Dk]", kLayout = "[B, Hk, N, Dk]", vLayout = "[B, Hv, N, Dv]";
        var qs = Check.Rank(query, 4, nameof(query), qLayout);
        var ks = Check.Rank(key, 4, nameof(key), kLayout);
        var vs = Check.Rank(value, 4, nameof(value), vLayout);
        Check.Positive(query, nameof(query), qLayout);
        Check.Positive(key, nameof(key), kLayout);
        Check.Positive(value, nameof(value), vLayout);
        int batch = qs[0], hq = qs[1], n = qs[2], dk = qs[3], hk = ks[1], hv = vs[1], dv = vs[3];
        if (ks[0] != batch || ks[2] != n || ks[3] != dk) Check.Fail(nameof(key), $"key has shape {Check.Text(ks)}; expected [{batch}, Hk, {n}, {dk}] {kLayout}.");
        if (vs[0] != batch || vs[2] != n) Check.Fail(nameof(value), $"value has shape {Check.Text(vs)}; expected [{batch}, Hv, {n}, Dv] {vLayout}.");
        int heads = Math.Max(hq, Math.Max(hk, hv));
        if (heads % hq != 0) Check.Fail(nameof(query), $"query has {hq} heads, which does not divide H = {heads}.");
        if (heads % hk != 0) Check.Fail(nameof(key), $"key has {hk} heads, which does not divide H = {heads}.");
        if (heads % hv != 0) Check.Fail(nameof(value), $"value has {hv} heads, which does not divide H = {heads}.");
        Check.HeadDims(dk, nameof(query), dv, nameof(value));
        Check.Type(key, query.ElementType, nameof(key));
        Check.Type(value, query.ElementType, nameof(value));
        Check.Shape(beta, [batch, heads, n], nameof(beta), "[B, H, N]");
        foreach (double x in ReadHost(beta))
            if (!(x >= 0 && x <= 2)) Check.Fail(nameof(beta), $"beta holds {x}; every beta must lie in [0, 2].");
        if (!Enum.IsDefined(o.Variant)) Check.Fail("options.Variant", $"options.Variant is {o.Variant}, which is not a known variant.");
        if (!Enum.IsDefined(o.StateLayout)) Check.Fail("options.StateLayout", $"options.StateLayout is {o.StateLayout}, which is not a known layout.");
        bool valueMajor = o.StateLayout == DeltaStateLayout.ValueMajor;
        double scale = Check.Scale(o.Scale, dk, "options.Scale");

        int[] bounds = o.CuSeqLens.ToArray();
        if (bounds.Length > 0)
        {
            if (stepping) Check.Fail("options.CuSeqLens", "options.CuSeqLens is set; decode steps take no packed sequences.");
            if (bounds.Length < 2) Check.Fail("options.CuSeqLens", $"options.CuSeqLens has {bounds.Length} entries; expected at least 2.");
            if (batch != 1) Check.Fail(nameof(query), $"query has batch {batch}; packed sequences need batch 1.");
            if (bounds[0] != 0 || bounds[^1] != n) Check.Fail("options.CuSeqLens", $"options.CuSeqLens must run from 0 to N = {n}.");
            for (int s = 1; s < bounds.Length; s++)
                if (bounds[s] < bounds[s - 1]) Check.Fail("options.CuSeqLens", $"options.CuSeqLens decreases at entry {s}.");
        }
        int sequences = bounds.Length > 0 ? bounds.Length - 1 : batch;
        // The state's two trailing axes in memory: [Dk, Dv] K-major, [Dv, Dk] V-major.
        int rows = valueMajor ? dv : dk, columns = valueMajor ? dk : dv;
        if (stepping && !initialState.HasValue) Check.Fail("state", "A decode step needs the state it advances.");
        if (mode == DeltaMode.Verify && n > 8) Check.Fail(nameof(query), $"query has {n} tokens; verify takes at most 8 draft tokens.");
        if (initialState is { } s0)
        {
            Check.Shape(s0, [sequences, heads, rows, columns], stateName, valueMajor ? "float32 [S, H, Dv, Dk] (V-major)" : "float32 [S, H, Dk, Dv] (K-major)");
            Check.Type(s0, ElementType.Float32, stateName);
        }
        bool perKey = o.Variant == DeltaRuleVariant.Kda;
        if (o.Variant == DeltaRuleVariant.DeltaNet)
        {
            if (o.LogGate.HasValue) Check.Fail("options.LogGate", "options.LogGate is set but options.Variant is DeltaNet, which has no gate.");
        }
        else if (o.LogGate is not { } gate)
            Check.Fail("options.LogGate", $"options.LogGate is missing; {o.Variant} needs float32 log gates.");
        else
        {
            Check.Shape(gate, perKey ? [batch, heads, n, dk] : [batch, heads, n], "options.LogGate", perKey ? "float32 [B, H, N, Dk]" : "float32 [B, H, N]");
            Check.Type(gate, ElementType.Float32, "options.LogGate");
            foreach (double x in ReadHost(gate))
                if (!(x <= 0) || double.IsInfinity(x))
                    Check.Fail("options.LogGate", $"options.LogGate holds {x}; every log gate must be finite and <= 0.");
        }
        if (o.ChunkSize < 0) Check.Fail("options.ChunkSize", $"options.ChunkSize is {o.ChunkSize}; expected 0 or more.");

        var a = Arith.Exact;
        var q = Read(query, a);
        var k = Read(key, a);
        var v = Read(value, a);
        var betas = ReadHost(beta);
        double[]? gates = o.LogGate is { } lg ? ReadHost(lg) : null;
        double[]? initial = initialState is { } si ? ReadHost(si) : null;
        double epsilon = DeltaRuleOptions.L2NormEpsilon;

        var output = new double[(long)batch * heads * n * dv];
        long stateSize = (long)dk * dv;
        var kept = mode == DeltaMode.Verify ? new double[batch * n * heads * stateSize] : new double[sequences * heads * stateSize];
        // The state as a matrix S[i, e], i < Dk, e < Dv, whatever the memory layout.
        var state = new double[dk, dv];
        var decayed = new double[dk, dv];
        var qt = new double[dk];
        var kt = new double[dk];
        var kTimesDecayed = new double[dv];
        for (int s = 0; s < sequences; s++)
        for (int h = 0; h < heads; h++)
        {
            int b = bounds.Length > 0 ? 0 : s;
            int first = bounds.Length > 0 ? bounds[s] : 0, last = bounds.Length > 0 ? bounds[s + 1] : n;
            int qh = h * hq / heads, kh = h * hk / heads, vh = h * hv / heads;
            for (int i = 0; i < dk; i++)
            for (int e = 0; e < dv; e++)
                state[i, e] = initial is null ? 0 : initial[((long)s * heads + h) * stateSize + (valueMajor ? (long)e * dk + i : (long)i * dv + e)];
            for (int t = first; t < last; t++)
            {
                for (int i = 0; i < dk; i++)
                {
                    qt[i] = q[(((long)b * hq + qh) * n + t) * dk + i];
                    kt[i] = k[(((long)b * hk + kh) * n + t) * dk + i];
                }
                if (o.L2NormalizeQueryKey)
                {
                    double qq = 0, kk = 0;
                    for (int i = 0; i < dk; i++)
                    {
                        qq += qt[i] * qt[i];
                        kk += kt[i] * kt[i];
                    }
                    for (int i = 0; i < dk; i++)
                    {
                        qt[i] /= Math.Sqrt(qq + epsilon);
                        kt[i] /= Math.Sqrt(kk + epsilon);
                    }
                }
                double bt = betas[((long)b * heads + h) * n + t];
                // G_t S_{t-1}: row i of S decays by g_t (one gate per token) or g_t[i] (one per key dimension).
                for (int i = 0; i < dk; i++)
                {
                    double g = o.Variant switch
                    {
                        DeltaRuleVariant.GatedDeltaNet => Math.Exp(gates![((long)b * heads + h) * n + t]),
                        DeltaRuleVariant.Kda => Math.Exp(gates![(((long)b * heads + h) * n + t) * dk + i]),
                        _ => 1,
                    };
                    for (int e = 0; e < dv; e++) decayed[i, e] = g * state[i, e];
                }
                // S_t = (I - beta k k^T) (G S) + beta k v^T = G S - beta k (k^T G S) + beta k v^T.
                for (int e = 0; e < dv; e++)
                {
                    double sum = 0;
                    for (int i = 0; i < dk; i++) sum += kt[i] * decayed[i, e];
                    kTimesDecayed[e] = sum;
                }
                for (int i = 0; i < dk; i++)
                for (int e = 0; e < dv; e++)
                    state[i, e] = decayed[i, e] - bt * kt[i] * kTimesDecayed[e] + bt * kt[i] * v[(((long)b * hv + vh) * n + t) * dv + e];
                // o_t = scale S_t^T q_t.
                for (int e = 0; e < dv; e++)
                {
                    double sum = 0;
                    for (int i = 0; i < dk; i++) sum += state[i, e] * qt[i];
                    output[(((long)b * heads + h) * n + t) * dv + e] = scale * sum;
                }
                if (mode == DeltaMode.Verify) Store(state, kept, ((long)b * n + t) * heads + h);
            }
            if (mode != DeltaMode.Verify) Store(state, kept, (long)s * heads + h);
        }
        int[] keptShape = mode == DeltaMode.Verify ? [batch, n, heads, rows, columns] : [sequences, heads, rows, columns];
        return new ReferenceResult(output, [batch, heads, n, dv], FinalState: kept, FinalStateShape: keptShape);

        // Writes the matrix into state slot `slot` of `into`, in the options' memory layout.
        void Store(double[,] matrix, double[] into, long slot)
        {
            for (int i = 0; i < dk; i++)
            for (int e = 0; e < dv; e++)
                into[slot * stateSize + (valueMajor ? (long)e * dk + i : (long)i * dv + e)] = matrix[i, e];
        }
    }
}
