// Linear attention in float64, computed token by token through the state recurrence (no chunks): prefill, decode
// steps and verify, with head mapping, per-key gates and packed sequences worked out here, on their own.
namespace NativeAttention;

public static partial class Reference
{
    /// <summary>
    /// Linear attention in float64 by the naive recurrence. Causal: starting from <paramref name="initialState"/>
    /// (zero when null), for t = 1..N it effectively computes <c>S_t = g_t S_{t-1} + phi(k_t) v_t^T</c>,
    /// <c>z_t = g_t z_{t-1} + phi(k_t)</c> and <c>o_t = scale phi(q_t)^T S_t</c>, divided by
    /// <c>scale phi(q_t) . z_t + Epsilon</c> when <see cref="LinearOptions.Normalize"/> is set. The gate g_t is 1,
    /// <c>exp(HeadLogDecay[h])</c>, <c>exp(LogGate[b, h, t])</c> or, per key dimension, row r of the state decays by
    /// <c>exp(LogGate[b, h, t, r])</c>; the initial state is decayed by every gate, which is what makes a call split in
    /// two equal one call. Non-causal: <c>o_t = scale phi(q_t)^T (phi(K)^T V)</c>, normalised likewise by
    /// <c>scale phi(q_t) . sum_s phi(k_s) + Epsilon</c>. Output head h of H = max(Hq, Hk, Hv) reads query head
    /// <c>h Hq / H</c>, key head <c>h Hk / H</c> and value head <c>h Hv / H</c>. With <see cref="LinearOptions.CuSeqLens"/>
    /// (B = 1) each packed sequence is a call of its own with its own state <c>[S, H, F, C]</c>. The state is
    /// <c>[B, H, F, C]</c>: row r belongs to feature r of phi, columns 0..Dv-1 hold S and, with Normalize, column Dv holds z.
    /// </summary>
    /// <returns>
    /// Output <c>[B, H, N, Dv]</c>; for causal calls also the final state <c>[B, H, F, C]</c> (<c>[S, H, F, C]</c>
    /// packed); no LSE.
    /// </returns>
    /// <exception cref="ArgumentException">A tensor or option is invalid, as for <see cref="AttentionContext.LinearChunked"/>.</exception>
    /// <exception cref="ObjectDisposedException">A tensor's storage was released.</exception>
    public static ReferenceResult LinearChunked(TensorView query, TensorView key, TensorView value, LinearOptions? options = null, TensorView? initialState = null) =>
        LinearRecurrence(query, key, value, options ?? new LinearOptions(), initialState, LinearMode.Prefill);

    /// <summary>
    /// One recurrent decode call in float64: the T tokens of Q, K, V advance <paramref name="state"/>
    /// <c>[B, H, F, C]</c> as <see cref="LinearChunked"/> would from that initial state (the tensor itself is not
    /// changed). The call must be causal and not packed.
    /// </summary>
    /// <returns>Output <c>[B, H, T, Dv]</c> and, as FinalState, the advanced state <c>[B, H, F, C]</c>.</returns>
    /// <exception cref="ArgumentException">A tensor or option is invalid, as for <see cref="AttentionContext.LinearDecodeStep"/>.</exception>
    public static ReferenceResult LinearDecodeStep(TensorView query, TensorView key, TensorView value, TensorView state, LinearOptions? options = null) =>
        LinearRecurrence(query, key, value, options ?? new LinearOptions(), state, LinearMode.Decode);

    /// <summary>
    /// A verify call in float64: T &lt;= 8 draft tokens from <paramref name="state"/>, keeping the state after every one.
    /// </summary>
    /// <returns>Output <c>[B, H, T, Dv]</c> and, as FinalState, the intermediate states <c>[B, T, H, F, C]</c>.</returns>
    /// <exception cref="ArgumentException">A tensor or option is invalid, as for <see cref="AttentionContext.LinearDecodeStep"/>.</exception>
    public static ReferenceResult LinearVerify(TensorView query, TensorView key, TensorView value, TensorView state, LinearOptions? options = null) =>
        LinearRecurrence(query, key, value, options ?? new LinearOptions(), state, LinearMode.Verify);

    private enum LinearMode { Prefill, Decode, Verify }

    private static ReferenceResult LinearRecurrence(TensorView query, TensorView key, TensorView value, LinearOptions o, TensorView? initialState, LinearMode mode)
    {
        bool stepping = mode != LinearMode.Prefill;
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
        // Heads: H is the largest count, and every count must divide it.
        int heads = Math.Max(hq, Math.Max(hk, hv));
        if (heads % hq != 0) Check.Fail(nameof(query), $"query has {hq} heads, which does not divide H = {heads}.");
        if (heads % hk != 0) Check.Fail(nameof(key), $"key has {hk} heads, which does not divide H = {heads}.");
        if (heads % hv != 0) Check.Fail(nameof(value), $"value has {hv} heads, which does not divide H = {heads}.");
        Check.HeadDims(dk, nameof(query), dv, nameof(value));
        Check.Type(key, query.ElementType, nameof(key));
        Check.Type(value, query.ElementType, nameof(value));
        if (!Enum.IsDefined(o.FeatureMap))
            Check.Fail("options.FeatureMap", $"options.FeatureMap is {o.FeatureMap}, which is not a known feature map.");
        // phi's output: Taylor2 is [1, x, x_i x_j / sqrt(2)], 1 + Dk + Dk^2 features; the other maps keep Dk.
        int f = o.FeatureMap == FeatureMap.Taylor2 ? 1 + dk + dk * dk : dk;
        // The state is [S | z]: with normalisation one more column holds the normaliser.
        int c = o.Normalize ? dv + 1 : dv;

        // Packed sequences: [start, end) of each along N; without packing, one per batch element over all of N.
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
        int[] stateShape = [sequences, heads, f, c];
        if (!o.Causal)
        {
            if (stepping) Check.Fail("options.Causal", "options.Causal is false; decode steps are causal.");
            if (initialState.HasValue) Check.Fail(nameof(initialState), "A non-causal call takes no initial state: phi(Q)(phi(K)^T V) has no order to continue.");
            if (o.Decay != DecayKind.None) Check.Fail("options.Decay", $"options.Decay is {o.Decay}; decay needs an order and applies to causal calls only.");
        }
        if (stepping && !initialState.HasValue) Check.Fail("state", "A decode step needs the state it advances.");
        if (mode == LinearMode.Verify && n > 8) Check.Fail(nameof(query), $"query has {n} tokens; verify takes at most 8 draft tokens.");
        if (initialState is { } s0)
        {
            Check.Shape(s0, stateShape, stateName, o.Normalize ? "float32 [B, H, F, Dv + 1] (the last column holds the normaliser)" : "float32 [B, H, F, Dv]");
            Check.Type(s0, ElementType.Float32, stateName);
        }
        switch (o.Decay)
        {
            case DecayKind.None:
                break;
            case DecayKind.PerHead:
            {
                var decay = o.HeadLogDecay.ToArray();
                if (decay.Length != heads)
                    Check.Fail("options.HeadLogDecay", $"options.HeadLogDecay has {decay.Length} values; expected one log decay per head, [H] = [{heads}].");
                for (int h = 0; h < heads; h++)
                    if (!(decay[h] <= 0) || !float.IsFinite(decay[h]))
                        Check.Fail("options.HeadLogDecay", $"options.HeadLogDecay[{h}] is {decay[h]}; expected a finite log decay <= 0.");
                break;
            }
            case DecayKind.PerToken or DecayKind.PerTokenPerKey:
            {
                bool perKey = o.Decay == DecayKind.PerTokenPerKey;
                if (perKey && o.FeatureMap == FeatureMap.Taylor2)
                    Check.Fail("options.Decay", "A per-key gate needs features that are key dimensions; Taylor2's are not.");
                if (o.LogGate is not { } gate)
                {
                    Check.Fail("options.LogGate", $"options.LogGate is missing; DecayKind.{o.Decay} needs float32 log gates.");
                    break;
                }
                Check.Shape(gate, perKey ? [batch, heads, n, dk] : [batch, heads, n], "options.LogGate", perKey ? "float32 [B, H, N, Dk]" : "float32 [B, H, N]");
                Check.Type(gate, ElementType.Float32, "options.LogGate");
                foreach (double x in ReadHost(gate))
                    if (!(x <= 0) || double.IsInfinity(x))
                        Check.Fail("options.LogGate", $"options.LogGate holds {x}; every log gate must be finite and <= 0.");
                break;
            }
            default:
                Check.Fail("options.Decay", $"options.Decay is {o.Decay}, which is not a known decay.");
                break;
        }
        if (o.Decay != DecayKind.PerHead && !o.HeadLogDecay.IsEmpty)
            Check.Fail("options.HeadLogDecay", $"options.HeadLogDecay is set but options.Decay is {o.Decay}; set Decay = PerHead or leave it empty.");
        if (o.Decay is not (DecayKind.PerToken or DecayKind.PerTokenPerKey) && o.LogGate.HasValue)
            Check.Fail("options.LogGate", $"options.LogGate is set but options.Decay is {o.Decay}; set a per-token decay or leave it null.");
        if (o.ChunkSize < 0) Check.Fail("options.ChunkSize", $"options.ChunkSize is {o.ChunkSize}; expected 0 or more.");
        if (!(o.Epsilon >= 0) || !float.IsFinite(o.Epsilon)) Check.Fail("options.Epsilon", $"options.Epsilon is {o.Epsilon}; expected a finite value >= 0.");
        if (!float.IsFinite(o.Scale)) Check.Fail("options.Scale", $"options.Scale is {o.Scale}; expected a finite value.");

        var a = Arith.Exact;
        var q = Read(query, a);
        var k = Read(key, a);
        var v = Read(value, a);
        double[]? gates = o.LogGate is { } lg ? Read(lg, a) : null;
        double[]? headLogDecay = o.Decay == DecayKind.PerHead ? Array.ConvertAll(o.HeadLogDecay.ToArray(), x => (double)x) : null;
        double[]? initial = initialState is { } si ? Read(si, a) : null;
        double scale = o.Scale, epsilon = o.Epsilon;

        var output = new double[(long)batch * heads * n * dv];
        // Prefill and decode keep one state per sequence; verify keeps one per (batch, token).
        double[]? kept = !o.Causal ? null : mode == LinearMode.Verify ? new double[(long)batch * n * heads * f * c] : new double[(long)sequences * heads * f * c];
        var state = new double[f * c];
        var phiQ = new double[f];
        var phiK = new double[f];
        var rowGate = new double[f];
        for (int s = 0; s < sequences; s++)
        for (int h = 0; h < heads; h++)
        {
            // Sequence s is batch element b over tokens [first, last) of N.
            int b = bounds.Length > 0 ? 0 : s;
            int first = bounds.Length > 0 ? bounds[s] : 0, last = bounds.Length > 0 ? bounds[s + 1] : n;
            long qRow(int t) => (((long)b * hq + (long)h * hq / heads) * n + t) * dk;
            long kRow(int t) => (((long)b * hk + (long)h * hk / heads) * n + t) * dk;
            long vRow(int t) => (((long)b * hv + (long)h * hv / heads) * n + t) * dv;
            Array.Clear(state);
            if (initial is not null) Array.Copy(initial, ((long)s * heads + h) * f * c, state, 0, f * c);
            if (!o.Causal)
            {
                Array.Fill(rowGate, 1.0);
                for (int t = first; t < last; t++)
                    AccumulateState(state, rowGate, Features(o.FeatureMap, k, kRow(t), dk, phiK), v, vRow(t), dv, c);
            }
            for (int t = first; t < last; t++)
            {
                if (o.Causal)
                {
                    for (int r = 0; r < f; r++)
                        rowGate[r] = o.Decay switch
                        {
                            DecayKind.PerHead => Math.Exp(headLogDecay![h]),
                            DecayKind.PerToken => Math.Exp(gates![((long)b * heads + h) * n + t]),
                            DecayKind.PerTokenPerKey => Math.Exp(gates![(((long)b * heads + h) * n + t) * dk + r]),
                            _ => 1,
                        };
                    AccumulateState(state, rowGate, Features(o.FeatureMap, k, kRow(t), dk, phiK), v, vRow(t), dv, c);
                    if (mode == LinearMode.Verify)
                        Array.Copy(state, 0, kept!, (((long)b * n + t) * heads + h) * f * c, f * c);
                }
                Features(o.FeatureMap, q, qRow(t), dk, phiQ);
                long o0 = (((long)b * heads + h) * n + t) * dv;
                for (int e = 0; e < dv; e++)
                {
                    double sum = 0;
                    for (int r = 0; r < f; r++) sum += phiQ[r] * state[r * c + e];
                    output[o0 + e] = scale * sum;
                }
                if (o.Normalize)
                {
                    double normaliser = 0;
                    for (int r = 0; r < f; r++) normaliser += phiQ[r] * state[r * c + dv];
                    double denominator = scale * normaliser + epsilon;
                    for (int e = 0; e < dv; e++) output[o0 + e] /= denominator;
                }
            }
            if (kept is not null && mode != LinearMode.Verify) Array.Copy(state, 0, kept, ((long)s * heads + h) * f * c, f * c);
        }
        int[]? keptShape = kept is null ? null : mode == LinearMode.Verify ? [batch, n, heads, f, c] : stateShape;
        return new ReferenceResult(output, [batch, heads, n, dv], FinalState: kept, FinalStateShape: keptShape);
    }

    /// <summary><c>state[r] = g[r] state[r] + phi(k)[r] [v, 1]</c> for every row r, the 1 only when the state has a normaliser column.</summary>
    private static void AccumulateState(double[] state, double[] rowGate, double[] phiK, double[] v, long vOffset, int dv, int columns)
    {
        for (int r = 0; r < phiK.Length; r++)
        {
            double g = rowGate[r];
            for (int e = 0; e < dv; e++) state[r * columns + e] = g * state[r * columns + e] + phiK[r] * v[vOffset + e];
            if (columns > dv) state[r * columns + dv] = g * state[r * columns + dv] + phiK[r];
        }
    }

    /// <summary>
    /// Applies the feature map to <c>x[offset .. offset + length)</c> and writes phi(x) to <paramref name="phi"/>
    /// (1 + length + length^2 values for Taylor2, length otherwise). Taylor2 lays out [1, x, x_i x_j / sqrt(2) row-major in (i, j)].
    /// </summary>
    internal static double[] Features(FeatureMap map, double[] x, long offset, int length, double[] phi)
    {
        switch (map)
        {
            case FeatureMap.EluPlusOne:
                for (int i = 0; i < length; i++) phi[i] = x[offset + i] > 0 ? x[offset + i] + 1 : Math.Exp(x[offset + i]);
                break;
            case FeatureMap.Relu:
                for (int i = 0; i < length; i++) phi[i] = Math.Max(x[offset + i], 0);
                break;
            case FeatureMap.Taylor2:
                phi[0] = 1;
                for (int i = 0; i < length; i++) phi[1 + i] = x[offset + i];
                for (int i = 0; i < length; i++)
                for (int j = 0; j < length; j++)
                    phi[1 + length + i * length + j] = x[offset + i] * x[offset + j] / Math.Sqrt(2);
                break;
            default:
                Array.Copy(x, offset, phi, 0, length);
                break;
        }
        return phi;
    }
}
