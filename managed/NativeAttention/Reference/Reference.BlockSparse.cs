// Block-sparse attention in float64: every query against every key, a key visible when its block is listed for the
// query's block row as full, or as partial and the element predicate allows the pair.
namespace NativeAttention;

public static partial class Reference
{
    /// <summary>
    /// Block-sparse attention in float64, for both mask formats. Query i (in query block <c>i / Bq</c>) of batch b and
    /// head h sees key j (in key block <c>j / Bk</c>) when the mask row of (b, h, query block) lists that key block as
    /// full, or lists it as partial and <see cref="BlockSparseOptions.Predicate"/> holds for (b, i, j): causal, window
    /// (optionally causal too) and prefix-LM are aligned bottom-right as in flash attention (query i sits at
    /// <c>i' = i + Nk - Nq</c>; prefix-LM keeps <c>j &lt; prefix[b]</c> or <c>j &lt;= i'</c>), documents compare
    /// <c>QueryDocuments[b * Nq + i]</c> with <c>KeyDocuments[b * Nk + j]</c>. A batch extent of 1 broadcasts; a head
    /// extent of 1 is shared by every head, of Hkv by each GQA group, of Hq is per head. Over that set it is exactly
    /// flash attention: <c>o_i = softmax_j(s_ij) v_j</c> with <c>s = scale q_i . k_j</c>, then <c>c tanh(s / c)</c>
    /// under a softcap c, query head h reading kv head <c>h / (Hq / Hkv)</c>. Rows that see nothing output zeros and
    /// LSE = -inf. Any positive block size is accepted here (the kernels take 16 to 128).
    /// </summary>
    /// <returns>Output <c>[B, Hq, Nq, Dv]</c> and LSE <c>[B, Hq, Nq]</c>.</returns>
    /// <exception cref="ArgumentException">A tensor, the mask or an option is invalid, as for <see cref="AttentionContext.BlockSparse"/>.</exception>
    /// <exception cref="ObjectDisposedException">A tensor's storage was released.</exception>
    public static ReferenceResult BlockSparse(TensorView query, TensorView key, TensorView value, BlockSparseOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var qs = Check.Rank(query, 4, nameof(query), FlashQLayout);
        var ks = Check.Rank(key, 4, nameof(key), FlashKLayout);
        var vs = Check.Rank(value, 4, nameof(value), FlashVLayout);
        Check.Positive(query, nameof(query), FlashQLayout);
        Check.Positive(key, nameof(key), FlashKLayout);
        Check.Positive(value, nameof(value), FlashVLayout);
        int batch = qs[0], hq = qs[1], nq = qs[2], d = qs[3], hkv = ks[1], nk = ks[2], dv = vs[3];
        if (ks[0] != batch) Check.Fail(nameof(key), $"key has batch {ks[0]}; query has batch {batch} ({FlashKLayout}).");
        if (ks[3] != d) Check.Fail(nameof(key), $"key has head dim {ks[3]}; query has {d} ({FlashKLayout}).");
        if (hq % hkv != 0) Check.Fail(nameof(key), $"key has {hkv} heads, which does not divide the query's {hq} heads (GQA/MQA need Hq % Hkv == 0).");
        if (vs[0] != batch || vs[1] != hkv || vs[2] != nk)
            Check.Fail(nameof(value), $"value has shape {Check.Text(vs)}; expected [{batch}, {hkv}, {nk}, Dv] to match key {FlashVLayout}.");
        Check.HeadDims(d, nameof(query), dv, nameof(value));
        Check.Type(key, query.ElementType, nameof(key));
        Check.Type(value, query.ElementType, nameof(value));
        double scale = Check.Scale(options.Scale, d, "options.Scale");
        double softcap = options.Softcap;
        if (!(softcap >= 0) || double.IsInfinity(softcap)) Check.Fail("options.Softcap", $"options.Softcap is {softcap}; expected 0 (off) or a positive finite cap.");

        var mask = options.Mask;
        if (mask is null) Check.Fail("options.Mask", "options.Mask is null; expected a FlexBlockMask or a BlockCsrMask.");
        if (mask.QueryBlockSize < 1)
            Check.Fail("options.Mask.QueryBlockSize", $"options.Mask.QueryBlockSize is {mask.QueryBlockSize}; expected a positive block size.");
        if (mask.KeyBlockSize < 1)
            Check.Fail("options.Mask.KeyBlockSize", $"options.Mask.KeyBlockSize is {mask.KeyBlockSize}; expected a positive block size.");
        int bq = mask.QueryBlockSize, bk = mask.KeyBlockSize;
        int queryBlocks = (int)(((long)nq + bq - 1) / bq), keyBlocks = (int)(((long)nk + bk - 1) / bk);

        // The mask as one table: kind[b, h, query block, key block] = none, full or partial.
        var kind = mask switch
        {
            FlexBlockMask flex => FlexBlockKinds(flex, batch, hq, hkv, queryBlocks, keyBlocks, nk),
            BlockCsrMask csr => CsrBlockKinds(csr, batch, hq, hkv, queryBlocks, keyBlocks, nk),
            _ => throw new ArgumentException($"options.Mask is a {mask.GetType().Name}; expected a FlexBlockMask or a BlockCsrMask.", "options.Mask"),
        };
        var predicate = options.Predicate;
        CheckPredicate(predicate, batch, nq, nk);
        var queryDocs = predicate.QueryDocuments.ToArray();
        var keyDocs = predicate.KeyDocuments.ToArray();
        var prefixes = predicate.PrefixLengths.ToArray();

        var a = Arith.Exact;
        var q = Read(query, a);
        var k = Read(key, a);
        var v = Read(value, a);
        var output = new double[(long)batch * hq * nq * dv];
        var lse = new double[(long)batch * hq * nq];
        var scores = new double[nk];
        var offsets = new int[nk];
        int queryHeadsPerKvHead = hq / hkv;
        for (int b = 0; b < batch; b++)
        for (int h = 0; h < hq; h++)
        {
            int kvHead = h / queryHeadsPerKvHead;
            for (int i = 0; i < nq; i++)
            {
                int queryRow = (b * hq + h) * nq + i;
                long position = (long)i + nk - nq;
                int count = 0;
                for (int j = 0; j < nk; j++)
                {
                    var block = kind[b, h, i / bq, j / bk];
                    bool visible = block == BlockKind.Full || (block == BlockKind.Partial && predicate.Kind switch
                    {
                        ElementPredicateKind.Causal => FlashVisible(causal: true, -1, -1, position, j),
                        ElementPredicateKind.Window => FlashVisible(predicate.WindowCausal, predicate.WindowLeft, predicate.WindowRight, position, j),
                        ElementPredicateKind.Document => queryDocs[b * nq + i] == keyDocs[b * nk + j],
                        ElementPredicateKind.PrefixLM => j < prefixes[prefixes.Length == 1 ? 0 : b] || j <= position,
                        _ => true,
                    });
                    if (!visible) continue;
                    int keyRow = (b * hkv + kvHead) * nk + j;
                    double s = scale * a.Dot(q, queryRow * d, k, keyRow * d, d);
                    if (softcap > 0) s = softcap * Math.Tanh(s / softcap);
                    scores[count] = s;
                    offsets[count++] = keyRow * dv;
                }
                lse[queryRow] = SoftmaxRow(a, scores.AsSpan(0, count), offsets.AsSpan(0, count), v, double.NegativeInfinity, output.AsSpan(queryRow * dv, dv));
            }
        }
        return new ReferenceResult(output, [batch, hq, nq, dv], lse, [batch, hq, nq]);
    }

    private enum BlockKind : byte { None, Full, Partial }

    /// <summary>
    /// Checks a FlexAttention-style mask and spells it out per (batch, head, query block, key block). Row r of the
    /// <c>[MaskBatch, MaskHeads, QueryBlocks]</c> count arrays lists its blocks in slots
    /// <c>r * MaxBlocksPerRow ..</c> of the index arrays.
    /// </summary>
    private static BlockKind[,,,] FlexBlockKinds(FlexBlockMask mask, int batch, int heads, int kvHeads, int queryBlocks, int keyBlocks, int nk)
    {
        const string name = "options.Mask";
        Check.OneOrAll(mask.MaskBatch, batch, $"{name}.MaskBatch", "batch");
        MaskHeadsOk(mask.MaskHeads, heads, kvHeads, $"{name}.MaskHeads");
        if (mask.MaxBlocksPerRow < 0)
            Check.Fail($"{name}.MaxBlocksPerRow", $"{name}.MaxBlocksPerRow is {mask.MaxBlocksPerRow}; expected a non-negative capacity.");
        int capacity = mask.MaxBlocksPerRow;
        long rows = (long)mask.MaskBatch * mask.MaskHeads * queryBlocks;
        string rowShape = $"[{mask.MaskBatch}, {mask.MaskHeads}, {queryBlocks}]";
        string slotShape = $"[{mask.MaskBatch}, {mask.MaskHeads}, {queryBlocks}, {capacity}]";
        var partialCounts = mask.PartialCounts.ToArray();
        var partialIndices = mask.PartialIndices.ToArray();
        var fullCounts = mask.FullCounts.ToArray();
        var fullIndices = mask.FullIndices.ToArray();
        Check.Length(partialCounts.Length, rows, $"{name}.PartialCounts", rowShape);
        Check.Length(partialIndices.Length, rows * capacity, $"{name}.PartialIndices", slotShape);
        bool hasFull = fullCounts.Length != 0 || fullIndices.Length != 0;
        if (hasFull)
        {
            Check.Length(fullCounts.Length, rows, $"{name}.FullCounts", rowShape + " (or empty for no full blocks)");
            Check.Length(fullIndices.Length, rows * capacity, $"{name}.FullIndices", slotShape + " (or empty for no full blocks)");
        }

        var maskKinds = new BlockKind[mask.MaskBatch, mask.MaskHeads, queryBlocks, keyBlocks];
        for (int mb = 0; mb < mask.MaskBatch; mb++)
        for (int mh = 0; mh < mask.MaskHeads; mh++)
        for (int r = 0; r < queryBlocks; r++)
        {
            int row = (mb * mask.MaskHeads + mh) * queryBlocks + r;
            string where = $"[b={mb}, h={mh}, query block {r}]";
            if (hasFull) MarkFlexRow(maskKinds, mb, mh, r, BlockKind.Full, fullCounts[row], fullIndices, row * capacity, capacity, "FullCounts", "FullIndices", where, keyBlocks, nk, mask.KeyBlockSize);
            MarkFlexRow(maskKinds, mb, mh, r, BlockKind.Partial, partialCounts[row], partialIndices, row * capacity, capacity, "PartialCounts", "PartialIndices", where, keyBlocks, nk, mask.KeyBlockSize);
        }
        return Broadcast(maskKinds, batch, heads);
    }

    private static void MarkFlexRow(BlockKind[,,,] kinds, int mb, int mh, int r, BlockKind kind, int count, int[] indices, int first, int capacity,
        string countsName, string indicesName, string where, int keyBlocks, int nk, int keyBlockSize)
    {
        if (count < 0 || count > capacity)
            Check.Fail($"options.Mask.{countsName}", $"options.Mask.{countsName}{where} is {count}; expected a count in [0, MaxBlocksPerRow = {capacity}].");
        if (count > keyBlocks)
            Check.Fail($"options.Mask.{countsName}", $"options.Mask.{countsName}{where} is {count}, more than the {keyBlocks} key blocks there are.");
        for (int slot = 0; slot < count; slot++)
        {
            int block = indices[first + slot];
            if (block < 0 || block >= keyBlocks)
                Check.Fail($"options.Mask.{indicesName}", $"options.Mask.{indicesName}{where} slot {slot} is {block}; expected a key block index in [0, {keyBlocks}) (Nk = {nk}, KeyBlockSize = {keyBlockSize}).");
            if (slot > 0 && block < indices[first + slot - 1])
                Check.Fail($"options.Mask.{indicesName}", $"options.Mask.{indicesName}{where} slot {slot} is {block}, smaller than slot {slot - 1}; blocks of a row must be listed in ascending order.");
            if (kinds[mb, mh, r, block] != BlockKind.None)
                Check.Fail($"options.Mask.{indicesName}", $"options.Mask.{indicesName}{where} slot {slot} lists key block {block} a second time; a block appears at most once per row, full and partial together.");
            kinds[mb, mh, r, block] = kind;
        }
    }

    /// <summary>
    /// Checks a block CSR mask and spells it out: for mask head h, query block r lists (as partial) the key blocks
    /// <c>ColumnIndices[h * ColumnCapacity + n]</c> for n in <c>[RowOffsets[h, r], RowOffsets[h, r + 1])</c>.
    /// </summary>
    private static BlockKind[,,,] CsrBlockKinds(BlockCsrMask mask, int batch, int heads, int kvHeads, int queryBlocks, int keyBlocks, int nk)
    {
        const string name = "options.Mask";
        MaskHeadsOk(mask.MaskHeads, heads, kvHeads, $"{name}.MaskHeads");
        if (mask.ColumnCapacity < 0)
            Check.Fail($"{name}.ColumnCapacity", $"{name}.ColumnCapacity is {mask.ColumnCapacity}; expected a non-negative capacity.");
        var offsets = mask.RowOffsets.ToArray();
        var columns = mask.ColumnIndices.ToArray();
        Check.Length(offsets.Length, (long)mask.MaskHeads * (queryBlocks + 1), $"{name}.RowOffsets", $"[{mask.MaskHeads}, {queryBlocks + 1}]");
        Check.Length(columns.Length, (long)mask.MaskHeads * mask.ColumnCapacity, $"{name}.ColumnIndices", $"[{mask.MaskHeads}, {mask.ColumnCapacity}]");
        var maskKinds = new BlockKind[1, mask.MaskHeads, queryBlocks, keyBlocks];
        for (int h = 0; h < mask.MaskHeads; h++)
        {
            int rowBase = h * (queryBlocks + 1), columnBase = h * mask.ColumnCapacity;
            if (offsets[rowBase] != 0)
                Check.Fail($"{name}.RowOffsets", $"{name}.RowOffsets[h={h}, 0] is {offsets[rowBase]}; expected 0.");
            for (int r = 0; r < queryBlocks; r++)
            {
                int begin = offsets[rowBase + r], end = offsets[rowBase + r + 1];
                if (end < begin)
                    Check.Fail($"{name}.RowOffsets", $"{name}.RowOffsets[h={h}, {r + 1}] is {end}, below RowOffsets[h={h}, {r}] = {begin}; offsets must be non-decreasing.");
                if (end > mask.ColumnCapacity)
                    Check.Fail($"{name}.RowOffsets", $"{name}.RowOffsets[h={h}, {r + 1}] is {end}; expected at most ColumnCapacity = {mask.ColumnCapacity}.");
                if (end - begin > keyBlocks)
                    Check.Fail($"{name}.RowOffsets", $"{name}.RowOffsets[h={h}] gives query block {r} {end - begin} blocks, more than the {keyBlocks} key blocks there are.");
                for (int n = begin; n < end; n++)
                {
                    int block = columns[columnBase + n];
                    if (block < 0 || block >= keyBlocks)
                        Check.Fail($"{name}.ColumnIndices", $"{name}.ColumnIndices[h={h}, {n}] (query block {r}) is {block}; expected a key block index in [0, {keyBlocks}) (Nk = {nk}, KeyBlockSize = {mask.KeyBlockSize}).");
                    if (n > begin && block < columns[columnBase + n - 1])
                        Check.Fail($"{name}.ColumnIndices", $"{name}.ColumnIndices[h={h}, {n}] (query block {r}) is {block}, smaller than the entry before it; blocks of a row must be listed in ascending order.");
                    if (maskKinds[0, h, r, block] != BlockKind.None)
                        Check.Fail($"{name}.ColumnIndices", $"{name}.ColumnIndices[h={h}, {n}] (query block {r}) lists key block {block} a second time; a block appears at most once per row.");
                    maskKinds[0, h, r, block] = BlockKind.Partial;
                }
            }
        }
        return Broadcast(maskKinds, batch, heads);
    }

    /// <summary>A mask's head extent: 1 (every head shares it), the kv head count (each GQA group shares one) or the query head count.</summary>
    private static void MaskHeadsOk(int maskHeads, int heads, int kvHeads, string name)
    {
        if (maskHeads == 1 || maskHeads == kvHeads || maskHeads == heads) return;
        Check.Fail(name, $"{name} is {maskHeads}; expected 1, the {kvHeads} key/value heads or the {heads} query heads.");
    }

    /// <summary>
    /// The mask table spelled out per (batch, query head): a batch extent of 1 repeats over the batch; query head h
    /// reads mask head h * maskHeads / heads (all read head 0 when maskHeads is 1; a head per kv head serves the
    /// heads / maskHeads consecutive query heads of that group).
    /// </summary>
    private static BlockKind[,,,] Broadcast(BlockKind[,,,] maskKinds, int batch, int heads)
    {
        int maskBatch = maskKinds.GetLength(0), maskHeads = maskKinds.GetLength(1), rows = maskKinds.GetLength(2), columns = maskKinds.GetLength(3);
        var kinds = new BlockKind[batch, heads, rows, columns];
        for (int b = 0; b < batch; b++)
        for (int h = 0; h < heads; h++)
        for (int r = 0; r < rows; r++)
        for (int c = 0; c < columns; c++)
            kinds[b, h, r, c] = maskKinds[maskBatch == 1 ? 0 : b, h * maskHeads / heads, r, c];
        return kinds;
    }

    private static void CheckPredicate(ElementPredicate? predicate, int batch, int nq, int nk)
    {
        const string name = "options.Predicate";
        if (predicate is null) Check.Fail(name, $"{name} is null; use ElementPredicate.All for none.");
        switch (predicate.Kind)
        {
            case ElementPredicateKind.None:
            case ElementPredicateKind.Causal:
                break;
            case ElementPredicateKind.Window:
                if (predicate.WindowLeft < -1) Check.Fail($"{name}.WindowLeft", $"{name}.WindowLeft is {predicate.WindowLeft}; expected -1 (unbounded) or a non-negative extent.");
                if (predicate.WindowRight < -1) Check.Fail($"{name}.WindowRight", $"{name}.WindowRight is {predicate.WindowRight}; expected -1 (unbounded) or a non-negative extent.");
                break;
            case ElementPredicateKind.Document:
                Check.Length(predicate.QueryDocuments.Length, (long)batch * nq, $"{name}.QueryDocuments", $"[B, Nq] = [{batch}, {nq}]");
                Check.Length(predicate.KeyDocuments.Length, (long)batch * nk, $"{name}.KeyDocuments", $"[B, Nk] = [{batch}, {nk}]");
                break;
            case ElementPredicateKind.PrefixLM:
                var prefixes = predicate.PrefixLengths.ToArray();
                if (prefixes.Length != 1 && prefixes.Length != batch)
                    Check.Fail($"{name}.PrefixLengths", $"{name}.PrefixLengths has {prefixes.Length} elements; expected 1 or the batch size {batch}.");
                foreach (int prefix in prefixes)
                    if (prefix < 0) Check.Fail($"{name}.PrefixLengths", $"{name}.PrefixLengths holds {prefix}; prefix lengths are never negative.");
                break;
            default:
                Check.Fail($"{name}.Kind", $"{name}.Kind is {predicate.Kind}, which is not a known predicate.");
                break;
        }
    }
}
