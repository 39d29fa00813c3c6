// Linear attention in float64, computed token by token through the state recurrence (no chunks).
namespace NativeAttention;

public static partial class Reference
{
    /// <summary>
    /// Linear attention in float64 by the naive recurrence. Causal: starting from <paramref name="initialState"/>
    /// (zero when null), for t = 1..N it effectively computes <c>S_t = g_t S_{t-1} + phi(k_t) v_t^T</c>,
    /// <c>z_t = g_t z_{t-1} + phi(k_t)</c> and <c>o_t = scale phi(q_t)^T S_t</c>, divided by
    /// <c>scale phi(q_t) . z_t + Epsilon</c> when <see cref="LinearOptions.Normalize"/> is set. The gate g_t is 1,
    /// <c>exp(HeadLogDecay[h])</c> or <c>exp(LogGate[b, h, t])</c>; the initial state is decayed by every gate,
    /// which is what makes a call split in two equal one call. Non-causal: <c>o_t = scale phi(q_t)^T (phi(K)^T V)</c>,
    /// normalised likewise by <c>scale phi(q_t) . sum_s phi(k_s) + Epsilon</c>. The state is <c>[B, H, F, C]</c>: row r
    /// belongs to feature r of phi, columns 0..Dv-1 hold S and, with Normalize, column Dv holds z.
    /// </summary>
    /// <returns>
    /// Output <c>[B, H, N, Dv]</c>; for causal calls also the final state <c>[B, H, F, C]</c>; no LSE.
    /// </returns>
    /// <exception cref="ArgumentException">A tensor or option is invalid, as for <see cref="AttentionContext.LinearChunked"/>.</exception>
    /// <exception cref="ObjectDisposedException">A tensor's storage was released.</exception>
    public static ReferenceResult LinearChunked(TensorView query, TensorView key, TensorView value, LinearOptions? options = null, TensorView? initialState = null)
    {
        options ??= new LinearOptions();
        var o = options;
        const string qLayout = "[B, H, N, Dk]", vLayout = "[B, H, N, Dv]";
        var qs = Check.Rank(query, 4, nameof(query), qLayout);
        var ks = Check.Rank(key, 4, nameof(key), qLayout);
        var vs = Check.Rank(value, 4, nameof(value), vLayout);
        Check.Positive(query, nameof(query), qLayout);
        Check.Positive(key, nameof(key), qLayout);
        Check.Positive(value, nameof(value), vLayout);
        int batch = qs[0], heads = qs[1], n = qs[2], dk = qs[3], dv = vs[3];
        if (!ks.SequenceEqual(qs)) Check.Fail(nameof(key), $"key has shape {Check.Text(ks)}; expected the query's shape {Check.Text(qs)} {qLayout}.");
        if (vs[0] != batch || vs[1] != heads || vs[2] != n) Check.Fail(nameof(value), $"value has shape {Check.Text(vs)}; expected [{batch}, {heads}, {n}, Dv] {vLayout}.");
        Check.HeadDims(dk, nameof(query), dv, nameof(value));
        Check.Type(key, query.ElementType, nameof(key));
        Check.Type(value, query.ElementType, nameof(value));
        if (!Enum.IsDefined(o.FeatureMap))
            Check.Fail("options.FeatureMap", $"options.FeatureMap is {o.FeatureMap}, which is not a known feature map.");
        // phi's output: Taylor2 is [1, x, x_i x_j / sqrt(2)], 1 + Dk + Dk^2 features; the other maps keep Dk.
        int f = o.FeatureMap == FeatureMap.Taylor2 ? 1 + dk + dk * dk : dk;
        // The state is [S | z]: with normalisation one more column holds the normaliser.
        int c = o.Normalize ? dv + 1 : dv;
        int[] stateShape = [batch, heads, f, c];
        if (!o.Causal)
        {
            if (initialState.HasValue) Check.Fail(nameof(initialState), "A non-causal call takes no initial state: phi(Q)(phi(K)^T V) has no order to continue.");
            if (o.Decay != DecayKind.None) Check.Fail("options.Decay", $"options.Decay is {o.Decay}; decay needs an order and applies to causal calls only.");
        }
        if (initialState is { } s0)
        {
            Check.Shape(s0, stateShape, nameof(initialState), o.Normalize ? "float32 [B, H, F, Dv + 1] (the last column holds the normaliser)" : "float32 [B, H, F, Dv]");
            Check.Type(s0, ElementType.Float32, nameof(initialState));
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
            case DecayKind.PerToken:
                if (o.LogGate is not { } gate)
                {
                    Check.Fail("options.LogGate", "options.LogGate is missing; DecayKind.PerToken needs float32 log gates [B, H, N].");
                    break;
                }
                Check.Shape(gate, [batch, heads, n], "options.LogGate", "float32 [B, H, N]");
                Check.Type(gate, ElementType.Float32, "options.LogGate");
                break;
            default:
                Check.Fail("options.Decay", $"options.Decay is {o.Decay}, which is not a known decay.");
                break;
        }
        if (o.Decay != DecayKind.PerHead && !o.HeadLogDecay.IsEmpty)
            Check.Fail("options.HeadLogDecay", $"options.HeadLogDecay is set but options.Decay is {o.Decay}; set Decay = PerHead or leave it empty.");
        if (o.Decay != DecayKind.PerToken && o.LogGate.HasValue)
            Check.Fail("options.LogGate", $"options.LogGate is set but options.Decay is {o.Decay}; set Decay = PerToken or leave it null.");
        if (o.ChunkSize < 1) Check.Fail("options.ChunkSize", $"options.ChunkSize is {o.ChunkSize}; expected at least 1.");
        if (!(o.Epsilon >= 0) || !float.IsFinite(o.Epsilon)) Check.Fail("options.Epsilon", $"options.Epsilon is {o.Epsilon}; expected a finite value >= 0.");
        if (!float.IsFinite(o.Scale)) Check.Fail("options.Scale", $"options.Scale is {o.Scale}; expected a finite value.");

        var a = Arith.Exact;
        var q = Read(query, a);
        var k = Read(key, a);
        var v = Read(value, a);
        double[]? gates = o.Decay == DecayKind.PerToken && o.LogGate is { } lg ? Read(lg, a) : null;
        double[]? headLogDecay = o.Decay == DecayKind.PerHead ? Array.ConvertAll(o.HeadLogDecay.ToArray(), x => (double)x) : null;
        double[]? initial = initialState is { } s ? Read(s, a) : null;
        double scale = o.Scale, epsilon = o.Epsilon;

        var output = new double[(long)batch * heads * n * dv];
        double[]? final = o.Causal ? new double[(long)batch * heads * f * c] : null;
        var state = new double[f * c];
        var phiQ = new double[f];
        var phiK = new double[f];
        for (int b = 0; b < batch; b++)
        for (int h = 0; h < heads; h++)
        {
            int head = b * heads + h;
            // The state holds [S | z]: column Dv is the normaliser when normalising. Non-causal calls sum every token
            // into it first, then read it for every query.
            Array.Clear(state);
            if (initial is not null) Array.Copy(initial, (long)head * f * c, state, 0, f * c);
            if (!o.Causal)
            {
                for (int t = 0; t < n; t++)
                    AccumulateState(state, 1, Features(o.FeatureMap, k, (head * n + t) * dk, dk, phiK), v, (head * n + t) * dv, dv, c);
            }
            for (int t = 0; t < n; t++)
            {
                int token = head * n + t;
                if (o.Causal)
                {
                    double g = o.Decay switch
                    {
                        DecayKind.PerHead => Math.Exp(headLogDecay![h]),
                        DecayKind.PerToken => Math.Exp(gates![token]),
                        _ => 1,
                    };
                    AccumulateState(state, g, Features(o.FeatureMap, k, token * dk, dk, phiK), v, token * dv, dv, c);
                }
                Features(o.FeatureMap, q, token * dk, dk, phiQ);
                double normaliser = 0;
                for (int e = 0; e < dv; e++)
                {
                    double sum = 0;
                    for (int r = 0; r < f; r++) sum += phiQ[r] * state[r * c + e];
                    output[(long)token * dv + e] = scale * sum;
                }
                if (o.Normalize)
                {
                    for (int r = 0; r < f; r++) normaliser += phiQ[r] * state[r * c + dv];
                    double denominator = scale * normaliser + epsilon;
                    for (int e = 0; e < dv; e++) output[(long)token * dv + e] /= denominator;
                }
            }
            if (final is not null) Array.Copy(state, 0, final, (long)head * f * c, f * c);
        }
        return new ReferenceResult(output, [batch, heads, n, dv], FinalState: final, FinalStateShape: final is null ? null : stateShape);
    }

    /// <summary><c>state = g state + phi(k) [v, 1]^T</c>, the 1 only when the state has a normaliser column.</summary>
    private static void AccumulateState(double[] state, double g, double[] phiK, double[] v, int vOffset, int dv, int columns)
    {
        for (int r = 0; r < phiK.Length; r++)
        {
            for (int e = 0; e < dv; e++) state[r * columns + e] = g * state[r * columns + e] + phiK[r] * v[vOffset + e];
            if (columns > dv) state[r * columns + dv] = g * state[r * columns + dv] + phiK[r];
        }
    }

    /// <summary>
    /// Applies the feature map to <c>x[offset .. offset + length)</c> and writes phi(x) to <paramref name="phi"/>
    /// (1 + length + length^2 values for Taylor2, length otherwise). Taylor2 lays out [1, x, x_i x_j / sqrt(2) row-major in (i, j)].
    /// </summary>
    internal static double[] Features(FeatureMap map, double[] x, int offset, int length, double[] phi)
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
