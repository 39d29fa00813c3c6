// Neighborhood attention (NATTEN semantics) in float64: every query against every key of the grid, a key visible when
// it lies in the query's window on every axis, plus the additional keys.
namespace NativeAttention;

public static partial class Reference
{
    /// <summary>
    /// Neighborhood attention in float64. The query at spatial multi-index x sees key y of the grid when, on every
    /// axis, y's coordinate lies in x's window (NATTEN's rule, see <see cref="NeighborhoodVisibleOnAxis"/>), and sees
    /// every additional key; query head h reads kv head <c>h / (Hq / Hkv)</c>.
    /// <c>o_x = softmax_j(s_xj) v_j</c> over that set and <c>LSE_x = log sum_j exp(s_xj)</c>, where
    /// <c>s_xj = scale q_x . k_j</c> (scale defaulting to <c>1/sqrt(Dqk)</c>) plus, for a grid key j and with a
    /// relative-position bias, <c>bias[h, (j_0 - x_0) / d_0 + k_0 - 1, ..]</c>. With a valid extent per sample, the
    /// sample's grid is cut to that box: windows are taken inside it, keys outside it are never visible, and queries
    /// outside it output zeros with LSE -inf.
    /// </summary>
    /// <returns>Output <c>[B, Hq, X.., Dv]</c> and LSE <c>[B, Hq, X..]</c>.</returns>
    /// <exception cref="ArgumentException">A tensor or option is invalid, as for <see cref="AttentionContext.Neighborhood"/>.</exception>
    /// <exception cref="ObjectDisposedException">A tensor's storage was released.</exception>
    public static ReferenceResult Neighborhood(TensorView query, TensorView key, TensorView value, NeighborhoodOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        const string layouts = "[B, H, X, D], [B, H, X, Y, D] or [B, H, X, Y, Z, D]";
        // A rank outside 4..6 is checked against the nearest legal one, so the message names the layouts.
        int rank = Math.Clamp(query.Rank, 4, 6);
        var qs = Check.Rank(query, rank, nameof(query), layouts);
        var ks = Check.Rank(key, rank, nameof(key), "the query's rank, [B, Hkv, X.., Dqk]");
        var vs = Check.Rank(value, rank, nameof(value), "the query's rank, [B, Hkv, X.., Dv]");
        Check.Positive(query, nameof(query), layouts);
        Check.Positive(key, nameof(key), "[B, Hkv, X.., Dqk]");
        Check.Positive(value, nameof(value), "[B, Hkv, X.., Dv]");
        int axes = rank - 3;
        int batch = qs[0], hq = qs[1], d = qs[rank - 1], hkv = ks[1], dv = vs[rank - 1];
        int[] grid = qs[2..(rank - 1)];
        string gridText = Check.Text(grid);
        if (ks[0] != batch) Check.Fail(nameof(key), $"key has batch {ks[0]}; query has batch {batch}.");
        if (!ks[2..(rank - 1)].SequenceEqual(grid))
            Check.Fail(nameof(key), $"key has spatial shape {Check.Text(ks[2..(rank - 1)])}; expected the query's {gridText}.");
        if (ks[rank - 1] != d) Check.Fail(nameof(key), $"key has head dim {ks[rank - 1]}; query has {d}.");
        if (hq % hkv != 0) Check.Fail(nameof(key), $"key has {hkv} heads, which does not divide the query's {hq} heads (GQA/MQA need Hq % Hkv == 0).");
        if (vs[0] != batch || vs[1] != hkv || !vs[2..(rank - 1)].SequenceEqual(grid))
            Check.Fail(nameof(value), $"value has shape {Check.Text(vs)}; expected [{batch}, {hkv}, {string.Join(", ", grid)}, Dv] to match key.");
        Check.HeadDims(d, nameof(query), dv, nameof(value));
        var type = query.ElementType;
        Check.Type(key, type, nameof(key));
        Check.Type(value, type, nameof(value));

        int extra = 0;
        if (options.AdditionalKeys.HasValue != options.AdditionalValues.HasValue)
        {
            string missing = options.AdditionalKeys.HasValue ? "options.AdditionalValues" : "options.AdditionalKeys";
            Check.Fail(missing, $"{missing} is missing; additional keys and values come together or not at all.");
        }
        if (options.AdditionalKeys is { } extraKeys && options.AdditionalValues is { } extraValues)
        {
            const string ekName = "options.AdditionalKeys", evName = "options.AdditionalValues";
            var es = Check.Rank(extraKeys, 4, ekName, "[B, Hkv, Nextra, Dqk]");
            Check.Positive(extraKeys, ekName, "[B, Hkv, Nextra, Dqk]");
            extra = es[2];
            Check.Shape(extraKeys, [batch, hkv, extra, d], ekName, "[B, Hkv, Nextra, Dqk]");
            Check.Shape(extraValues, [batch, hkv, extra, dv], evName, "[B, Hkv, Nextra, Dv]");
            Check.Type(extraKeys, type, ekName);
            Check.Type(extraValues, type, evName);
        }
        double scale = Check.Scale(options.Scale, d, "options.Scale");

        // Per-axis parameters, defaults resolved here: dilation 1, stride 1, not causal.
        if (options.KernelSize is null || options.KernelSize.Length != axes)
            Check.Fail("options.KernelSize", $"options.KernelSize has {options.KernelSize?.Length ?? 0} entries; expected one per spatial axis ({axes}) of {gridText}.");
        CheckPerAxis(options.Dilation?.Length, axes, "options.Dilation", gridText);
        CheckPerAxis(options.Stride?.Length, axes, "options.Stride", gridText);
        CheckPerAxis(options.Causal?.Length, axes, "options.Causal", gridText);
        var kernel = options.KernelSize.ToArray();
        var dilation = options.Dilation?.ToArray() ?? Enumerable.Repeat(1, axes).ToArray();
        var stride = options.Stride?.ToArray() ?? Enumerable.Repeat(1, axes).ToArray();
        var causal = options.Causal?.ToArray() ?? new bool[axes];
        for (int ax = 0; ax < axes; ax++)
        {
            if (dilation[ax] < 1) Check.Fail("options.Dilation", $"options.Dilation[{ax}] is {dilation[ax]}; expected at least 1.");
            if (kernel[ax] < 1 || (long)kernel[ax] * dilation[ax] > grid[ax])
                Check.Fail("options.KernelSize", $"options.KernelSize[{ax}] is {kernel[ax]}; expected 1 <= k and k * dilation ({kernel[ax]} * {dilation[ax]}) <= axis length {grid[ax]} of {gridText}.");
            if (stride[ax] < 1 || stride[ax] > kernel[ax])
                Check.Fail("options.Stride", $"options.Stride[{ax}] is {stride[ax]}; expected 1 <= stride <= kernel size {kernel[ax]}.");
        }

        // The bias extent: 2k - 1 offsets per axis, one table per query head.
        double[]? bias = null;
        var biasExtent = new int[axes];
        for (int ax = 0; ax < axes; ax++) biasExtent[ax] = 2 * kernel[ax] - 1;
        if (options.RelativePositionBias is { } rpbView)
        {
            const string rpbName = "options.RelativePositionBias";
            int[] want = [hq, .. biasExtent];
            if (rpbView.Rank != axes + 1 || !rpbView.Shape.SequenceEqual(want))
                Check.Fail(rpbName, $"{rpbName} has shape {Check.Text(rpbView.Shape)}; expected float32 {Check.Text(want)} ([Hq] then 2k-1 per axis).");
            Check.Type(rpbView, ElementType.Float32, rpbName);
            bias = ReadHost(rpbView);
        }

        // The valid box of every sample (the whole grid without the option).
        var valid = new int[batch, axes];
        for (int b = 0; b < batch; b++)
            for (int ax = 0; ax < axes; ax++) valid[b, ax] = grid[ax];
        if (options.ValidExtent is { } given)
        {
            const string veName = "options.ValidExtent";
            if (given.GetLength(0) != batch || given.GetLength(1) != axes)
                Check.Fail(veName, $"{veName} is [{given.GetLength(0)}, {given.GetLength(1)}]; expected [{batch}, {axes}].");
            for (int b = 0; b < batch; b++)
                for (int ax = 0; ax < axes; ax++)
                {
                    int e = given[b, ax];
                    if (e < 1 || e > grid[ax]) Check.Fail(veName, $"{veName}[{b}, {ax}] is {e}; expected 1 <= extent <= {grid[ax]}.");
                    if ((long)kernel[ax] * dilation[ax] > e)
                        Check.Fail(veName, $"{veName}[{b}, {ax}] is {e}; expected at least k * dilation = {kernel[ax]} * {dilation[ax]} (the kernel must fit the valid extent).");
                    valid[b, ax] = e;
                }
        }

        var a = Arith.Exact;
        var q = Read(query, a);
        var k = Read(key, a);
        var v = Read(value, a);
        var ek = options.AdditionalKeys is { } ekView ? Read(ekView, a) : [];
        var ev = options.AdditionalValues is { } evView ? Read(evView, a) : [];
        int tokens = 1;
        foreach (int size in grid) tokens *= size;

        // The coordinates of every token of the grid, row-major (the last axis fastest).
        var coordinates = new int[tokens, axes];
        for (int t = 0; t < tokens; t++)
            for (int ax = axes - 1, rest = t; ax >= 0; rest /= grid[ax], ax--)
                coordinates[t, ax] = rest % grid[ax];

        // Grid keys and additional keys of one kv head side by side, so one softmax row covers both.
        var keyRows = new double[tokens + extra][];
        var values = new double[(tokens + extra) * dv];
        var offsets = new int[tokens + extra];
        var scores = new double[tokens + extra];
        var output = new double[(long)batch * hq * tokens * dv];
        var lse = new double[(long)batch * hq * tokens];
        int queryHeadsPerKvHead = hq / hkv;
        for (int b = 0; b < batch; b++)
        for (int h = 0; h < hq; h++)
        {
            int kvHead = h / queryHeadsPerKvHead;
            for (int y = 0; y < tokens + extra; y++)
            {
                bool isExtra = y >= tokens;
                var keySource = isExtra ? ek : k;
                var valueSource = isExtra ? ev : v;
                int row = isExtra ? (b * hkv + kvHead) * extra + (y - tokens) : (b * hkv + kvHead) * tokens + y;
                keyRows[y] = keySource.AsSpan(row * d, d).ToArray();
                Array.Copy(valueSource, row * dv, values, y * dv, dv);
            }
            for (int x = 0; x < tokens; x++)
            {
                int queryRow = (b * hq + h) * tokens + x;
                int count = 0;
                bool isQuery = true;
                for (int ax = 0; ax < axes; ax++) isQuery &= coordinates[x, ax] < valid[b, ax];
                for (int y = 0; y < tokens + extra && isQuery; y++)
                {
                    bool visible = true;
                    for (int ax = 0; ax < axes && y < tokens; ax++)
                        visible &= coordinates[y, ax] < valid[b, ax] &&
                            NeighborhoodVisibleOnAxis(coordinates[x, ax], coordinates[y, ax], valid[b, ax], kernel[ax], dilation[ax], stride[ax], causal[ax]);
                    if (!visible) continue;
                    double score = scale * a.Dot(q, queryRow * d, keyRows[y], 0, d);
                    if (bias is not null && y < tokens)
                    {
                        // Row-major index into [Hq, 2k0-1, ..]: the head, then per axis the offset in group steps + k - 1.
                        long at = h;
                        for (int ax = 0; ax < axes; ax++)
                        {
                            int offset = (coordinates[y, ax] - coordinates[x, ax]) / dilation[ax];
                            at = at * biasExtent[ax] + offset + kernel[ax] - 1;
                        }
                        score += bias[at];
                    }
                    scores[count] = score;
                    offsets[count++] = y * dv;
                }
                lse[queryRow] = SoftmaxRow(a, scores.AsSpan(0, count), offsets.AsSpan(0, count), values, double.NegativeInfinity, output.AsSpan(queryRow * dv, dv));
            }
        }
        int[] outShape = [batch, hq, .. grid, dv];
        int[] lseShape = [batch, hq, .. grid];
        return new ReferenceResult(output, outShape, lse, lseShape);
    }

    private static void CheckPerAxis(int? length, int axes, string name, string gridText)
    {
        if (length is int n && n != axes)
            Check.Fail(name, $"{name} has {n} entries; expected one per spatial axis ({axes}) of {gridText}, or null for the default.");
    }

    /// <summary>
    /// Whether, along one axis of <paramref name="length"/> positions, the query at <paramref name="x"/> sees the key at
    /// <paramref name="y"/> (DESIGN.md, "Neighborhood", and NATTEN):
    /// <list type="bullet">
    /// <item>dilation d splits the axis into d interleaved groups (position mod d); query and key must share a group,
    /// and the rest works on positions inside the group (position / d);</item>
    /// <item>stride s cuts the group's queries into tiles of s; a tile's queries use the window of its leader: the
    /// centre (tile start + s / 2) for a non-causal axis, the last query for a causal one, either clamped to the
    /// group's last position;</item>
    /// <item>non-causal: the k keys from <c>leader - k / 2</c> (so an even k takes k/2 left and k/2 - 1 right), moved
    /// inward just enough to lie inside the group: the window never shrinks;</item>
    /// <item>causal: the keys from <c>leader - k + 1</c> (not below 0) up to and including the query itself.</item>
    /// </list>
    /// </summary>
    private static bool NeighborhoodVisibleOnAxis(int x, int y, int length, int kernel, int dilation, int stride, bool causal)
    {
        if (x % dilation != y % dilation) return false;
        int group = x % dilation;
        int groupLength = 0;
        for (int p = group; p < length; p += dilation) groupLength++;
        int queryInGroup = x / dilation, keyInGroup = y / dilation;
        int tileStart = queryInGroup / stride * stride;
        if (causal)
        {
            int leader = Math.Min(tileStart + stride - 1, groupLength - 1);
            return keyInGroup <= queryInGroup && keyInGroup >= leader - kernel + 1;
        }
        else
        {
            int leader = Math.Min(tileStart + stride / 2, groupLength - 1);
            int first = leader - kernel / 2;
            if (first < 0) first = 0;                                   // shifted right at the start
            if (first + kernel > groupLength) first = groupLength - kernel; // shifted left at the end
            return keyInGroup >= first && keyInGroup < first + kernel;
        }
    }
}
