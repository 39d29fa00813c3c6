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
    /// normalised likewise by <c>scale phi(q_t) . sum_s phi(k_s) + Epsilon</c>. See <see cref="LinearProblem"/> for the
    /// state layout (with Normalize the state carries z as an extra last column).
    /// </summary>
    /// <returns>
    /// Output <c>[B, H, N, Dv]</c>; for causal calls also the final state <c>[B, H, F, C]</c>; no LSE.
    /// </returns>
    /// <exception cref="ArgumentException">A tensor or option is invalid, as for <see cref="AttentionContext.LinearChunked"/>.</exception>
    /// <exception cref="ObjectDisposedException">A tensor's storage was released.</exception>
    public static ReferenceResult LinearChunked(TensorView query, TensorView key, TensorView value, LinearOptions? options = null, TensorView? initialState = null)
    {
        var p = LinearProblem.CreateForInputs(query, key, value, options, initialState, wantsFinalState: false);
        var o = p.Options;
        var a = Arith.Exact;
        int batch = p.Batch, heads = p.Heads, n = p.Length, dk = p.KeyDim, dv = p.ValueDim, f = p.FeatureSize, c = p.StateColumns;
        var q = Read(query, a);
        var k = Read(key, a);
        var v = Read(value, a);
        double[]? gates = o.Decay == DecayKind.PerToken && o.LogGate is { } lg ? Read(lg, a) : null;
        double[]? initial = initialState is { } s0 ? Read(s0, a) : null;
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
                        DecayKind.PerHead => Math.Exp(o.HeadLogDecay.Span[h]),
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
        return new ReferenceResult(output, [batch, heads, n, dv], FinalState: final, FinalStateShape: final is null ? null : p.StateShape);
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
    /// (length <see cref="LinearOptions.FeatureSize"/>). Taylor2 lays out [1, x, x_i x_j / sqrt(2) row-major in (i, j)].
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
