// Validated description of a block-sparse attention call: flash sizes, block counts and a checked block mask.
namespace NativeAttention;

/// <summary>
/// The sizes of a block-sparse attention call after validation; tensors as in <see cref="FlashProblem"/>. The mask
/// has been checked completely: block sizes from 16 to 128, array lengths matching their documented shapes, counts
/// within capacity and at most the key block count, every listed index a key block of this problem, indices ascending
/// within a row and no key block listed twice in one row (full and partial together), CSR offsets starting at 0,
/// non-decreasing and within capacity, batch extents 1 or B, head extents 1, Hkv or Hq; the predicate's document ids
/// <c>[B, Nq]</c> and <c>[B, Nk]</c>, prefix lengths <c>[1]</c> or <c>[B]</c>, non-negative. <see cref="Mask"/> holds
/// the mask as Flex whatever its input format, and <see cref="GetRow"/> hands out a row's blocks without further checks.
/// </summary>
public sealed class BlockSparseProblem
{
    /// <summary>Tensors a call lists: Q, K, V, O, LSE.</summary>
    private const int TensorCount = 5;

    /// <summary>This thread's problem for <see cref="AttentionContext.BlockSparse"/> calls, refilled by each (see <see cref="CreateForCall"/>).</summary>
    [ThreadStatic] private static BlockSparseProblem? t_call;

    /// <summary>What an idle reusable problem refers to instead of a caller's options.</summary>
    private static readonly BlockSparseOptions s_noOptions = new()
    {
        Mask = new FlexBlockMask { QueryBlockSize = BlockMask.MinBlockSize, KeyBlockSize = BlockMask.MinBlockSize, MaxBlocksPerRow = 0, PartialCounts = default, PartialIndices = default },
    };

    /// <summary>
    /// A reusable problem's block CSR masks converted to Flex (<see cref="ConvertCsr"/>): the mask object and the arrays
    /// it views, refilled while the converted shape stays the same.
    /// </summary>
    private FlexBlockMask? _csrMask;
    private int[] _csrCounts = [], _csrIndices = [];

    private BlockSparseProblem(BlockSparseOptions options) => Options = options;

    /// <summary>Batch size B.</summary>
    public int Batch { get; private set; }
    /// <summary>Query heads Hq.</summary>
    public int QueryHeads { get; private set; }
    /// <summary>Key/value heads Hkv (divides Hq).</summary>
    public int KeyValueHeads { get; private set; }
    /// <summary>Query length Nq.</summary>
    public int QueryLength { get; private set; }
    /// <summary>Key length Nk.</summary>
    public int KeyLength { get; private set; }
    /// <summary>Query/key head dimension Dqk.</summary>
    public int HeadDim { get; private set; }
    /// <summary>Value head dimension Dv.</summary>
    public int ValueDim { get; private set; }
    /// <summary>The score scale after applying the default.</summary>
    public float Scale { get; private set; }
    /// <summary>The storage element type of Q, K, V and O.</summary>
    public ElementType ElementType { get; private set; }
    /// <summary>The options validated.</summary>
    public BlockSparseOptions Options { get; private set; }
    /// <summary>Query block size Bq.</summary>
    public int QueryBlockSize { get; private set; }
    /// <summary>Key block size Bk.</summary>
    public int KeyBlockSize { get; private set; }
    /// <summary>
    /// The validated mask as a <see cref="FlexBlockMask"/> (a block CSR mask converted, every block partial): what the
    /// kernels read. Its MaskHeads is 1, Hkv or Hq (<see cref="MaskRow"/> resolves a query head).
    /// </summary>
    public FlexBlockMask Mask { get; private set; } = null!;
    /// <summary>Query blocks, <c>ceil(Nq / Bq)</c>; the last one may be short.</summary>
    public int QueryBlocks { get; private set; }
    /// <summary>Key blocks, <c>ceil(Nk / Bk)</c>; the last one may be short.</summary>
    public int KeyBlocks { get; private set; }

    /// <summary>Query heads per key/value head.</summary>
    public int GroupSize => QueryHeads / KeyValueHeads;

    /// <summary>
    /// Every tensor of the call by name, optional ones included (null when absent): Q, K, V, O, the log-sum-exp. The
    /// mask and the document ids are host arrays, not tensors.
    /// </summary>
    internal IReadOnlyList<NamedTensor> Tensors { get; private set; } = [];

    /// <summary>
    /// Validates a call and returns its sizes. Throws <see cref="ArgumentException"/> naming the offending tensor,
    /// option or mask array (with the row and value for bad block indices), or <see cref="ObjectDisposedException"/>.
    /// </summary>
    public static BlockSparseProblem Create(in TensorView query, in TensorView key, in TensorView value, in TensorView output, BlockSparseOptions options, in TensorView? logSumExp) =>
        Validate(query, key, value, output, requireOutput: true, options, logSumExp, reuse: null);

    /// <summary>
    /// <see cref="Create"/> into this thread's reusable problem, for <see cref="AttentionContext.BlockSparse"/>: no
    /// allocation once warm (a block CSR mask is converted into arrays the problem keeps). The result is valid until this
    /// thread validates its next block-sparse call; nothing may keep it, and the caller ends the call with <see cref="ReleaseCall"/>.
    /// </summary>
    internal static BlockSparseProblem CreateForCall(in TensorView query, in TensorView key, in TensorView value, in TensorView output, BlockSparseOptions options, in TensorView? logSumExp) =>
        Validate(query, key, value, output, requireOutput: true, options, logSumExp, t_call ??= new BlockSparseProblem(s_noOptions));

    /// <summary>Drops what a finished <see cref="CreateForCall"/> problem refers to (the caller's tensors, options and mask).</summary>
    internal void ReleaseCall()
    {
        if (Tensors is NamedTensor[] tensors) Array.Clear(tensors);
        Options = s_noOptions;
        Mask = (FlexBlockMask)s_noOptions.Mask;
    }

    /// <summary>Validates the inputs, options and mask only, for callers that allocate their own outputs (the references).</summary>
    internal static BlockSparseProblem CreateForInputs(in TensorView query, in TensorView key, in TensorView value, BlockSparseOptions options) =>
        Validate(query, key, value, default, requireOutput: false, options, null, reuse: null);

    private static BlockSparseProblem Validate(in TensorView query, in TensorView key, in TensorView value, in TensorView output, bool requireOutput, BlockSparseOptions options, in TensorView? logSumExp,
        BlockSparseProblem? reuse)
    {
        ArgumentNullException.ThrowIfNull(options);
        var shapes = AttentionShapes.Of(query, key, value);
        var (batch, hq, hkv, nq, nk, dqk, dv, type) = shapes;

        shapes.CheckOutputs(query, key, value, output, requireOutput, logSumExp);

        float scale = options.Scale ?? (float)(1.0 / Math.Sqrt(dqk));
        if (!float.IsFinite(scale)) TensorChecks.Throw($"Scale is {scale}; expected a finite value.", "options.Scale");
        if (!(options.Softcap >= 0) || !float.IsFinite(options.Softcap))
            TensorChecks.Throw($"options.Softcap is {options.Softcap}; expected 0 (off) or a positive finite cap.", "options.Softcap");

        var mask = options.Mask;
        if (mask is null) TensorChecks.Throw("options.Mask is null; expected a FlexBlockMask or a BlockCsrMask.", "options.Mask");
        CheckBlockSize(mask.QueryBlockSize, "options.Mask.QueryBlockSize");
        CheckBlockSize(mask.KeyBlockSize, "options.Mask.KeyBlockSize");
        int queryBlocks = (int)(((long)nq + mask.QueryBlockSize - 1) / mask.QueryBlockSize);
        int keyBlocks = (int)(((long)nk + mask.KeyBlockSize - 1) / mask.KeyBlockSize);
        FlexBlockMask flexMask;
        switch (mask)
        {
            case FlexBlockMask flex:
                CheckFlex(flex, batch, hq, hkv, queryBlocks, keyBlocks, nk, "options.Mask");
                flexMask = flex;
                break;
            case BlockCsrMask csr:
                CheckCsr(csr, hq, hkv, queryBlocks, keyBlocks, nk);
                flexMask = reuse is null ? BlockMasks.FromCsr(csr) : reuse.ConvertCsr(csr, queryBlocks);
                break;
            default:
                TensorChecks.Throw($"options.Mask is a {mask.GetType().Name}; expected a FlexBlockMask or a BlockCsrMask.", "options.Mask");
                return null;
        }
        CheckPredicate(options.Predicate, batch, nq, nk);

        var problem = reuse ?? new BlockSparseProblem(options);
        problem.Options = options;
        (problem.Batch, problem.QueryHeads, problem.KeyValueHeads, problem.QueryLength, problem.KeyLength) = (batch, hq, hkv, nq, nk);
        (problem.HeadDim, problem.ValueDim, problem.Scale, problem.ElementType) = (dqk, dv, scale, type);
        (problem.QueryBlockSize, problem.KeyBlockSize, problem.QueryBlocks, problem.KeyBlocks, problem.Mask) = (mask.QueryBlockSize, mask.KeyBlockSize, queryBlocks, keyBlocks, flexMask);
        var tensors = problem.Tensors as NamedTensor[] is { Length: TensorCount } reused ? reused : new NamedTensor[TensorCount];
        tensors[0] = new(nameof(query), query);
        tensors[1] = new(nameof(key), key);
        tensors[2] = new(nameof(value), value);
        tensors[3] = new(nameof(output), requireOutput ? output : null);
        tensors[4] = new(nameof(logSumExp), logSumExp);
        problem.Tensors = tensors;
        return problem;
    }

    /// <summary>
    /// A validated block CSR mask as the Flex mask <see cref="BlockMasks.FromCsr"/> makes of it (MaskBatch 1, every
    /// block partial, capacity the longest row), written into arrays this problem keeps: the mask object is reused while
    /// its sizes stay the same, and only its arrays are refilled.
    /// </summary>
    private FlexBlockMask ConvertCsr(BlockCsrMask csr, int queryBlocks)
    {
        var offsets = csr.RowOffsets.Span;
        var columns = csr.ColumnIndices.Span;
        int heads = csr.MaskHeads, rows = heads * queryBlocks, capacity = 0;
        for (int h = 0; h < heads; h++)
            for (int r = 0; r < queryBlocks; r++)
                capacity = Math.Max(capacity, offsets[h * (queryBlocks + 1) + r + 1] - offsets[h * (queryBlocks + 1) + r]);
        long slots = (long)rows * capacity;
        if (_csrCounts.Length != rows || _csrIndices.Length != slots)
        {
            (_csrCounts, _csrIndices) = (new int[rows], new int[slots]);
            _csrMask = null;   // it views the old arrays
        }
        Array.Clear(_csrIndices);
        for (int h = 0; h < heads; h++)
            for (int r = 0; r < queryBlocks; r++)
            {
                int begin = offsets[h * (queryBlocks + 1) + r], end = offsets[h * (queryBlocks + 1) + r + 1], row = h * queryBlocks + r;
                _csrCounts[row] = end - begin;
                columns.Slice(h * csr.ColumnCapacity + begin, end - begin).CopyTo(_csrIndices.AsSpan(row * capacity));
            }
        if (_csrMask is not { } m || m.MaskHeads != heads || m.MaxBlocksPerRow != capacity || m.QueryBlockSize != csr.QueryBlockSize || m.KeyBlockSize != csr.KeyBlockSize)
            _csrMask = new FlexBlockMask
            {
                QueryBlockSize = csr.QueryBlockSize, KeyBlockSize = csr.KeyBlockSize, MaskBatch = 1, MaskHeads = heads,
                MaxBlocksPerRow = capacity, PartialCounts = _csrCounts, PartialIndices = _csrIndices,
            };
        return _csrMask;
    }

    private static void CheckBlockSize(int size, string name)
    {
        if (size < BlockMask.MinBlockSize || size > BlockMask.MaxBlockSize)
            TensorChecks.Throw($"{name} is {size}; expected a block size from {BlockMask.MinBlockSize} to {BlockMask.MaxBlockSize}.", name);
    }

    /// <summary>A mask's head extent is 1 (shared), Hkv (one mask per GQA group) or Hq (one per query head).</summary>
    private static void CheckMaskHeads(int maskHeads, int queryHeads, int keyValueHeads, string name)
    {
        if (maskHeads != 1 && maskHeads != keyValueHeads && maskHeads != queryHeads)
            TensorChecks.Throw($"{name} is {maskHeads}; expected 1 (shared by every head), {keyValueHeads} (Hkv: one per GQA group) or {queryHeads} (Hq: one per query head).", name);
    }

    /// <summary>
    /// Checks a <see cref="FlexBlockMask"/> for a call of these sizes as <see cref="Create"/> does (block sizes, array
    /// lengths, counts, indices), naming it <paramref name="name"/> in messages (Flex attention's <c>options.BlockMask</c>).
    /// </summary>
    /// <remarks>Allocates nothing when the mask is valid (messages are formatted only to throw).</remarks>
    internal static void CheckFlexMask(FlexBlockMask mask, int batch, int heads, int keyValueHeads, int queryLength, int keyLength, string name)
    {
        if (mask.QueryBlockSize is < BlockMask.MinBlockSize or > BlockMask.MaxBlockSize) CheckBlockSize(mask.QueryBlockSize, $"{name}.QueryBlockSize");
        if (mask.KeyBlockSize is < BlockMask.MinBlockSize or > BlockMask.MaxBlockSize) CheckBlockSize(mask.KeyBlockSize, $"{name}.KeyBlockSize");
        int queryBlocks = (int)(((long)queryLength + mask.QueryBlockSize - 1) / mask.QueryBlockSize);
        int keyBlocks = (int)(((long)keyLength + mask.KeyBlockSize - 1) / mask.KeyBlockSize);
        CheckFlex(mask, batch, heads, keyValueHeads, queryBlocks, keyBlocks, keyLength, name);
    }

    private static void CheckFlex(FlexBlockMask mask, int batch, int heads, int keyValueHeads, int queryBlocks, int keyBlocks, int nk, string name)
    {
        // Each check compares first and formats its message only to throw: a valid mask allocates nothing (Flex validates
        // its block mask on every call).
        if (mask.MaskBatch != 1 && mask.MaskBatch != batch) TensorChecks.Broadcast(mask.MaskBatch, batch, $"{name}.MaskBatch", "batch");
        if (mask.MaskHeads != 1 && mask.MaskHeads != keyValueHeads && mask.MaskHeads != heads) CheckMaskHeads(mask.MaskHeads, heads, keyValueHeads, $"{name}.MaskHeads");
        if (mask.MaxBlocksPerRow < 0)
            TensorChecks.Throw($"{name}.MaxBlocksPerRow is {mask.MaxBlocksPerRow}; expected a non-negative capacity.", $"{name}.MaxBlocksPerRow");
        long rows = (long)mask.MaskBatch * mask.MaskHeads * queryBlocks;
        long slots = rows * mask.MaxBlocksPerRow;
        if (mask.PartialCounts.Length != rows)
            CheckLength(mask.PartialCounts.Length, rows, $"{name}.PartialCounts", $"[{mask.MaskBatch}, {mask.MaskHeads}, {queryBlocks}]");
        if (mask.PartialIndices.Length != slots)
            CheckLength(mask.PartialIndices.Length, slots, $"{name}.PartialIndices", $"[{mask.MaskBatch}, {mask.MaskHeads}, {queryBlocks}, {mask.MaxBlocksPerRow}]");
        bool hasFull = !mask.FullCounts.IsEmpty || !mask.FullIndices.IsEmpty;
        if (hasFull)
        {
            if (mask.FullCounts.Length != rows)
                CheckLength(mask.FullCounts.Length, rows, $"{name}.FullCounts", $"[{mask.MaskBatch}, {mask.MaskHeads}, {queryBlocks}] (or empty for no full blocks)");
            if (mask.FullIndices.Length != slots)
                CheckLength(mask.FullIndices.Length, slots, $"{name}.FullIndices", $"[{mask.MaskBatch}, {mask.MaskHeads}, {queryBlocks}, {mask.MaxBlocksPerRow}] (or empty for no full blocks)");
        }
        const int StackBlocks = 512;
        Span<int> seen = keyBlocks <= StackBlocks ? stackalloc int[StackBlocks] : new int[keyBlocks];
        seen = seen[..keyBlocks];
        seen.Clear();
        int stamp = 0;
        var partialCounts = mask.PartialCounts.Span;
        var partialIndices = mask.PartialIndices.Span;
        var fullCounts = mask.FullCounts.Span;
        var fullIndices = mask.FullIndices.Span;
        for (int row = 0; row < rows; row++)
        {
            stamp++;
            var where = (row, mask.MaskHeads, queryBlocks);
            if (hasFull) CheckRow(name, fullCounts[row], fullIndices.Slice(row * mask.MaxBlocksPerRow, mask.MaxBlocksPerRow), "FullCounts", "FullIndices", where, seen, stamp, keyBlocks, nk, mask.KeyBlockSize);
            CheckRow(name, partialCounts[row], partialIndices.Slice(row * mask.MaxBlocksPerRow, mask.MaxBlocksPerRow), "PartialCounts", "PartialIndices", where, seen, stamp, keyBlocks, nk, mask.KeyBlockSize);
        }
    }

    private static string FlexRowName((int Row, int MaskHeads, int QueryBlocks) at) => FlexRowName(at.Row, at.MaskHeads, at.QueryBlocks);

    private static string FlexRowName(int row, int maskHeads, int queryBlocks)
    {
        int qb = row % queryBlocks, h = row / queryBlocks % maskHeads, b = row / queryBlocks / maskHeads;
        return $"[b={b}, h={h}, query block {qb}]";
    }

    /// <summary>Checks one row's count and block indices; <paramref name="at"/> names the row in messages (formatted only to throw).</summary>
    private static void CheckRow(string name, int count, ReadOnlySpan<int> slots, string countsName, string indicesName, (int Row, int MaskHeads, int QueryBlocks) at, Span<int> seen, int stamp,
        int keyBlocks, int nk, int keyBlockSize)
    {
        if (count < 0 || count > slots.Length)
            TensorChecks.Throw($"{name}.{countsName}{FlexRowName(at)} is {count}; expected a count in [0, MaxBlocksPerRow = {slots.Length}].", $"{name}.{countsName}");
        if (count > keyBlocks)
            TensorChecks.Throw($"{name}.{countsName}{FlexRowName(at)} is {count}; expected at most the {keyBlocks} key blocks (Nk = {nk}, KeyBlockSize = {keyBlockSize}).", $"{name}.{countsName}");
        for (int n = 0; n < count; n++)
        {
            int block = slots[n];
            if ((uint)block >= (uint)keyBlocks)
                TensorChecks.Throw($"{name}.{indicesName}{FlexRowName(at)} slot {n} is {block}; expected a key block index in [0, {keyBlocks}) (Nk = {nk}, KeyBlockSize = {keyBlockSize}).", $"{name}.{indicesName}");
            if (seen[block] == stamp)
                TensorChecks.Throw($"{name}.{indicesName}{FlexRowName(at)} slot {n} lists key block {block} a second time; a block appears at most once per row, full and partial together.", $"{name}.{indicesName}");
            if (n > 0 && block < slots[n - 1])
                TensorChecks.Throw($"{name}.{indicesName}{FlexRowName(at)} slot {n} is {block}, below slot {n - 1} = {slots[n - 1]}; a row lists its blocks in ascending order.", $"{name}.{indicesName}");
            seen[block] = stamp;
        }
    }

    private static void CheckCsr(BlockCsrMask mask, int heads, int keyValueHeads, int queryBlocks, int keyBlocks, int nk)
    {
        const string name = "options.Mask";
        CheckMaskHeads(mask.MaskHeads, heads, keyValueHeads, $"{name}.MaskHeads");
        if (mask.ColumnCapacity < 0)
            TensorChecks.Throw($"{name}.ColumnCapacity is {mask.ColumnCapacity}; expected a non-negative capacity.", $"{name}.ColumnCapacity");
        // Compared first, the shape text formatted only to throw: a valid mask allocates nothing.
        if (mask.RowOffsets.Length != (long)mask.MaskHeads * (queryBlocks + 1))
            CheckLength(mask.RowOffsets.Length, (long)mask.MaskHeads * (queryBlocks + 1), $"{name}.RowOffsets", $"[{mask.MaskHeads}, {queryBlocks + 1}]");
        if (mask.ColumnIndices.Length != (long)mask.MaskHeads * mask.ColumnCapacity)
            CheckLength(mask.ColumnIndices.Length, (long)mask.MaskHeads * mask.ColumnCapacity, $"{name}.ColumnIndices", $"[{mask.MaskHeads}, {mask.ColumnCapacity}]");
        var offsets = mask.RowOffsets.Span;
        var columns = mask.ColumnIndices.Span;
        const int StackBlocks = 512;
        Span<int> seen = keyBlocks <= StackBlocks ? stackalloc int[StackBlocks] : new int[keyBlocks];
        seen = seen[..keyBlocks];
        seen.Clear();
        int stamp = 0;
        for (int h = 0; h < mask.MaskHeads; h++)
        {
            var rowOffsets = offsets.Slice(h * (queryBlocks + 1), queryBlocks + 1);
            var headColumns = columns.Slice(h * mask.ColumnCapacity, mask.ColumnCapacity);
            if (rowOffsets[0] != 0)
                TensorChecks.Throw($"{name}.RowOffsets[h={h}, 0] is {rowOffsets[0]}; expected 0.", $"{name}.RowOffsets");
            for (int r = 0; r < queryBlocks; r++)
            {
                int begin = rowOffsets[r], end = rowOffsets[r + 1];
                if (end < begin)
                    TensorChecks.Throw($"{name}.RowOffsets[h={h}, {r + 1}] is {end}, below RowOffsets[h={h}, {r}] = {begin}; offsets must be non-decreasing.", $"{name}.RowOffsets");
                if (end > mask.ColumnCapacity)
                    TensorChecks.Throw($"{name}.RowOffsets[h={h}, {r + 1}] is {end}; expected at most ColumnCapacity = {mask.ColumnCapacity}.", $"{name}.RowOffsets");
                if (end - begin > keyBlocks)
                    TensorChecks.Throw($"{name}.RowOffsets[h={h}] gives query block {r} {end - begin} blocks; expected at most the {keyBlocks} key blocks (Nk = {nk}, KeyBlockSize = {mask.KeyBlockSize}).", $"{name}.RowOffsets");
                stamp++;
                for (int n = begin; n < end; n++)
                {
                    int block = headColumns[n];
                    if ((uint)block >= (uint)keyBlocks)
                        TensorChecks.Throw($"{name}.ColumnIndices[h={h}, {n}] (query block {r}) is {block}; expected a key block index in [0, {keyBlocks}) (Nk = {nk}, KeyBlockSize = {mask.KeyBlockSize}).", $"{name}.ColumnIndices");
                    if (seen[block] == stamp)
                        TensorChecks.Throw($"{name}.ColumnIndices[h={h}, {n}] (query block {r}) lists key block {block} a second time; a block appears at most once per row.", $"{name}.ColumnIndices");
                    if (n > begin && block < headColumns[n - 1])
                        TensorChecks.Throw($"{name}.ColumnIndices[h={h}, {n}] (query block {r}) is {block}, below the previous index {headColumns[n - 1]}; a row lists its blocks in ascending order.", $"{name}.ColumnIndices");
                    seen[block] = stamp;
                }
            }
        }
    }

    private static void CheckPredicate(ElementPredicate? predicate, int batch, int nq, int nk)
    {
        const string name = "options.Predicate";
        if (predicate is null) TensorChecks.Throw($"{name} is null; use ElementPredicate.All for none.", name);
        switch (predicate.Kind)
        {
            case ElementPredicateKind.None:
            case ElementPredicateKind.Causal:
                break;
            case ElementPredicateKind.Window:
                if (predicate.WindowLeft < -1) TensorChecks.Throw($"{name}.WindowLeft is {predicate.WindowLeft}; expected -1 (unbounded) or a non-negative extent.", $"{name}.WindowLeft");
                if (predicate.WindowRight < -1) TensorChecks.Throw($"{name}.WindowRight is {predicate.WindowRight}; expected -1 (unbounded) or a non-negative extent.", $"{name}.WindowRight");
                break;
            case ElementPredicateKind.Document:
                // Compared first, the shape text formatted only to throw.
                if (predicate.QueryDocuments.Length != (long)batch * nq)
                    CheckLength(predicate.QueryDocuments.Length, (long)batch * nq, $"{name}.QueryDocuments", $"[B, Nq] = [{batch}, {nq}]");
                if (predicate.KeyDocuments.Length != (long)batch * nk)
                    CheckLength(predicate.KeyDocuments.Length, (long)batch * nk, $"{name}.KeyDocuments", $"[B, Nk] = [{batch}, {nk}]");
                break;
            case ElementPredicateKind.PrefixLM:
                var prefixes = predicate.PrefixLengths.Span;
                if (prefixes.Length != 1 && prefixes.Length != batch)
                    TensorChecks.Throw($"{name}.PrefixLengths has {prefixes.Length} elements; expected 1 (shared) or B = {batch}.", $"{name}.PrefixLengths");
                for (int b = 0; b < prefixes.Length; b++)
                    if (prefixes[b] < 0)
                        TensorChecks.Throw($"{name}.PrefixLengths[{b}] is {prefixes[b]}; expected a non-negative prefix length.", $"{name}.PrefixLengths");
                break;
            default:
                TensorChecks.Throw($"{name}.Kind is {predicate.Kind}, which is not a known predicate.", $"{name}.Kind");
                break;
        }
    }

    private static void CheckLength(int actual, long expected, string name, string shape)
    {
        if (actual != expected)
            TensorChecks.Throw($"{name} has {actual} elements; expected {expected} for shape {shape}.", name);
    }

    /// <summary>The mask row index (into the count arrays) of query block <paramref name="queryBlock"/> of (batch, query head).</summary>
    public int MaskRow(int batch, int head, int queryBlock)
    {
        int b = Mask.MaskBatch == 1 ? 0 : batch;
        int h = head / (QueryHeads / Mask.MaskHeads);
        return (b * Mask.MaskHeads + h) * QueryBlocks + queryBlock;
    }

    /// <summary>
    /// The key blocks query block <paramref name="queryBlock"/> of (<paramref name="batch"/>, query head
    /// <paramref name="head"/>) computes: <see cref="BlockRow.Full"/> without the predicate, <see cref="BlockRow.Partial"/>
    /// with it. Broadcast mask axes are resolved here. Allocates nothing.
    /// </summary>
    public BlockRow GetRow(int batch, int head, int queryBlock)
    {
        int row = MaskRow(batch, head, queryBlock);
        var partial = Mask.PartialIndices.Span.Slice(row * Mask.MaxBlocksPerRow, Mask.PartialCounts.Span[row]);
        var full = Mask.FullCounts.IsEmpty
            ? ReadOnlySpan<int>.Empty
            : Mask.FullIndices.Span.Slice(row * Mask.MaxBlocksPerRow, Mask.FullCounts.Span[row]);
        return new BlockRow(full, partial);
    }

    /// <summary>
    /// Whether query <paramref name="queryIndex"/> may see key <paramref name="keyIndex"/> inside a partial block, under
    /// <see cref="BlockSparseOptions.Predicate"/>: causal and window are bottom-right aligned as in flash attention
    /// (query i sits at <c>i + Nk - Nq</c>); documents compare <c>QueryDocuments[b * Nq + i]</c> with
    /// <c>KeyDocuments[b * Nk + j]</c>.
    /// </summary>
    public bool PredicateAllows(int batch, int queryIndex, int keyIndex)
    {
        var p = Options.Predicate;
        if (p.Kind == ElementPredicateKind.Document)
            return p.QueryDocuments.Span[batch * QueryLength + queryIndex] == p.KeyDocuments.Span[batch * KeyLength + keyIndex];
        var (start, end) = PredicateKeys(batch, queryIndex);
        return keyIndex >= start && keyIndex < end;
    }

    /// <summary>True when the predicate keeps, for each query, one run of keys (<see cref="PredicateKeys"/>); false for documents.</summary>
    public bool PredicateIsRange => Options.Predicate.Kind != ElementPredicateKind.Document;

    /// <summary>
    /// The keys <c>[Start, End)</c> the predicate keeps for query <paramref name="queryIndex"/> of sample
    /// <paramref name="batch"/>, for every predicate but documents: all keys (none), bottom-right causal, the window
    /// (and causal with <see cref="ElementPredicate.WindowCausal"/>), or prefix-LM, <c>[0, max(prefix, i + Nk - Nq + 1))</c>.
    /// </summary>
    public (int Start, int End) PredicateKeys(int batch, int queryIndex)
    {
        var p = Options.Predicate;
        switch (p.Kind)
        {
            case ElementPredicateKind.Causal:
                return FlashProblem.VisibleKeys(queryIndex, QueryLength, KeyLength, causal: true, -1, -1);
            case ElementPredicateKind.Window:
                return FlashProblem.VisibleKeys(queryIndex, QueryLength, KeyLength, p.WindowCausal, p.WindowLeft, p.WindowRight);
            case ElementPredicateKind.PrefixLM:
            {
                var prefixes = p.PrefixLengths.Span;
                int prefix = prefixes[prefixes.Length == 1 ? 0 : batch];
                var (_, causalEnd) = FlashProblem.VisibleKeys(queryIndex, QueryLength, KeyLength, causal: true, -1, -1);
                return (0, Math.Max(causalEnd, Math.Min(prefix, KeyLength)));
            }
            case ElementPredicateKind.Document:
                throw new InvalidOperationException("Document predicates are not a key range; use PredicateAllows.");
            default:
                return (0, KeyLength);
        }
    }

    /// <summary>The number of (query, key) pairs computed for one (batch, head), counting every element of listed blocks.</summary>
    public long ComputedPairs(int batch, int head)
    {
        long total = 0;
        for (int r = 0; r < QueryBlocks; r++)
        {
            int rows = Math.Min(QueryBlockSize, QueryLength - r * QueryBlockSize);
            var row = GetRow(batch, head, r);
            foreach (int c in row.Full) total += (long)rows * Math.Min(KeyBlockSize, KeyLength - c * KeyBlockSize);
            foreach (int c in row.Partial) total += (long)rows * Math.Min(KeyBlockSize, KeyLength - c * KeyBlockSize);
        }
        return total;
    }
}

/// <summary>The key blocks of one (batch, head, query block) row of a block mask.</summary>
public readonly ref struct BlockRow
{
    /// <summary>Creates a row.</summary>
    public BlockRow(ReadOnlySpan<int> full, ReadOnlySpan<int> partial)
    {
        Full = full;
        Partial = partial;
    }

    /// <summary>Key blocks computed without the element predicate.</summary>
    public ReadOnlySpan<int> Full { get; }

    /// <summary>Key blocks where the element predicate applies.</summary>
    public ReadOnlySpan<int> Partial { get; }
}
