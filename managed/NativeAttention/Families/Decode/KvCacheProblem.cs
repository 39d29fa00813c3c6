// Validated description of a KV-cache decoding call: sizes, per-element cache lengths, paging, rotary tables.
namespace NativeAttention;

/// <summary>
/// The sizes of a <see cref="AttentionContext.FlashKvCache"/> call after validation. Q is <c>[B, Hq, Nq, Dqk]</c>,
/// O is <c>[B, Hq, Nq, Dv]</c>, LSE float32 <c>[B, Hq, Nq]</c>; the caches are <c>[B, Hkv, Capacity, D]</c>, or
/// <c>[NumBlocks, Hkv, PageSize, D]</c> with a block table.
/// </summary>
public sealed class KvCacheProblem
{
    /// <summary>The most key-axis splits a call may ask for.</summary>
    public const int MaxSplits = 128;

    private const string QLayout = "[B, Hq, Nq, Dqk]";

    /// <summary>Tensors a call lists: Q, the caches, O, LSE, the new keys and values, the rotary tables, then the options'.</summary>
    private const int TensorCount = 9 + FlashProblem.OptionTensorCount;

    /// <summary>The cache options of a <see cref="AttentionContext.Flash"/> call handed to the decode kernels (<see cref="ForFlash"/>).</summary>
    private static readonly KvCacheOptions s_flashCache = new();

    /// <summary>This thread's problem for <see cref="AttentionContext.FlashKvCache"/> calls (see <see cref="CreateForCall"/>).</summary>
    [ThreadStatic] private static KvCacheProblem? t_call;

    /// <summary>This thread's problem for flash calls routed to the decode kernels (see <see cref="ForFlash"/>).</summary>
    [ThreadStatic] private static KvCacheProblem? t_flash;

    /// <summary>This thread's block owners, cleared and refilled by each paged call's check.</summary>
    [ThreadStatic] private static Dictionary<int, (int Batch, bool Written)>? t_blockOwners;

    private int[] _cacheLength;
    private int[]? _blockTable;

    /// <summary>The block table's storage, kept between the calls of a reused problem (<see cref="_blockTable"/> is null when contiguous).</summary>
    private int[]? _tableBuffer;

    private KvCacheProblem(FlashOptions options, KvCacheOptions cache, int[] cacheLength, int[]? blockTable)
    {
        Options = options;
        Cache = cache;
        _cacheLength = cacheLength;
        _blockTable = blockTable;
    }

    /// <summary>Batch size B.</summary>
    public int Batch { get; private set; }
    /// <summary>Query heads Hq.</summary>
    public int QueryHeads { get; private set; }
    /// <summary>Key/value heads Hkv (divides Hq).</summary>
    public int KeyValueHeads { get; private set; }
    /// <summary>Query length Nq.</summary>
    public int QueryLength { get; private set; }
    /// <summary>Tokens appended per batch element, Nnew (0 without <see cref="KvCacheOptions.NewKey"/>).</summary>
    public int NewLength { get; private set; }
    /// <summary>Query/key head dimension Dqk.</summary>
    public int HeadDim { get; private set; }
    /// <summary>Value head dimension Dv.</summary>
    public int ValueDim { get; private set; }
    /// <summary>The score scale after applying the default.</summary>
    public float Scale { get; private set; }
    /// <summary>The storage element type of Q, the caches, the new tokens and O.</summary>
    public ElementType ElementType { get; private set; }
    /// <summary>True when the caches are paged through <see cref="KvCacheOptions.BlockTable"/>.</summary>
    public bool IsPaged => _blockTable is not null;
    /// <summary>Tokens per block of a paged cache; the capacity per element of a contiguous one.</summary>
    public int PageSize { get; private set; }
    /// <summary>Blocks per batch element in the block table (1 for a contiguous cache).</summary>
    public int BlocksPerSequence { get; private set; }
    /// <summary>Tokens a batch element can hold: <c>BlocksPerSequence x PageSize</c>.</summary>
    public int Capacity => BlocksPerSequence * PageSize;
    /// <summary>Dimensions the rotary embedding turns (0: none).</summary>
    public int RotaryDim { get; private set; }
    /// <summary>Query heads per key/value head.</summary>
    public int GroupSize => QueryHeads / KeyValueHeads;
    /// <summary>The options validated.</summary>
    public FlashOptions Options { get; private set; }
    /// <summary>The cache options validated.</summary>
    public KvCacheOptions Cache { get; private set; }

    /// <summary>
    /// The row of per-element ALiBi slopes <c>[B', Hq]</c> that batch element 0 reads (<see cref="FlashProblem.AlibiRow"/>):
    /// 0 for a validated call, the flash problem's for one handed to the decode kernels (<see cref="ForFlash"/>).
    /// </summary>
    internal int AlibiRow { get; private set; }

    /// <summary>Elements from the first slope to the first that batch element 0 reads (<see cref="FlashProblem.AlibiRowOffset(in TensorView, int)"/>).</summary>
    internal long AlibiRowOffset(in TensorView slopes) => FlashProblem.AlibiRowOffset(slopes, AlibiRow);

    /// <summary>
    /// True for a <see cref="AttentionContext.Flash"/> call handed to the decode kernels (<see cref="ForFlash"/>): its
    /// automatic split count must not depend on the context's thread count, as flash results do not.
    /// </summary>
    internal bool IsFlashCall { get; private set; }

    /// <summary>
    /// Every tensor of the call by name, optional ones included (null when absent): Q, the caches, O, the log-sum-exp,
    /// the new keys and values, the rotary tables, then <see cref="FlashProblem.OptionTensors"/>.
    /// </summary>
    internal IReadOnlyList<NamedTensor> Tensors { get; private set; } = [];

    /// <summary>Tokens in the cache of element <paramref name="batch"/> before the append.</summary>
    public int CacheLength(int batch) => _cacheLength[batch];

    /// <summary>Keys element <paramref name="batch"/> attends to: <c>CacheSeqLens[b] + Nnew</c>.</summary>
    public int KeyLength(int batch) => _cacheLength[batch] + NewLength;

    /// <summary>The cache block (first axis of a paged cache) and slot of position <paramref name="position"/> of element <paramref name="batch"/>.</summary>
    public (int Block, int Slot) Locate(int batch, int position) => _blockTable is null
        ? (batch, position)
        : (_blockTable[batch * BlocksPerSequence + position / PageSize], position % PageSize);

    /// <summary>Every batch element's cache length before the append, <c>[B]</c>.</summary>
    internal ReadOnlySpan<int> CacheLengths => _cacheLength;

    /// <summary>The block table, row-major <c>[B, BlocksPerSequence]</c>, or null for a contiguous cache.</summary>
    internal int[]? BlockTableEntries => _blockTable;

    /// <summary>The rotary position of query <paramref name="queryIndex"/> of element <paramref name="batch"/>: <c>L_b - Nq + i</c>.</summary>
    public int QueryPosition(int batch, int queryIndex) => KeyLength(batch) - QueryLength + queryIndex;

    /// <summary>
    /// The flash problem batch element <paramref name="batch"/> reduces to once its keys are gathered, refilled into this
    /// problem's kept one (one element runs at a time): the call's options as they are, per-element ALiBi slopes
    /// <c>[B, Hq]</c> read from the element's row (<see cref="FlashProblem.AlibiRow"/>).
    /// </summary>
    internal FlashProblem ElementProblem(int batch) =>
        _element = FlashProblem.FromSizes(1, QueryHeads, KeyValueHeads, QueryLength, KeyLength(batch), HeadDim, ValueDim, Scale, ElementType,
            Options, AlibiRow + batch, _element);

    /// <summary>
    /// Element <paramref name="batch"/> of a <c>[B, ...]</c> tensor as a <c>[1, ...]</c> view, its axis 2 cut to the first
    /// <paramref name="length"/> positions when given (a contiguous cache's keys), over this problem's shape and stride
    /// arrays of slot <paramref name="slot"/> (<see cref="FlashViewSlots"/>; no allocation once warm): valid until the slot's next view, so a caller
    /// uses one element's views before asking for the next.
    /// </summary>
    internal TensorView ElementView(int slot, in TensorView tensor, int batch, int length = -1)
    {
        // tensor.Slice(0, batch, 1), then .Slice(2, 0, length).
        var (shape, strides) = (_views ??= new())[slot];
        tensor.Shape.CopyTo(shape);
        tensor.Strides.CopyTo(strides);
        shape[0] = 1;
        if (length >= 0) shape[2] = length;
        return new TensorView(tensor.Storage!, shape, strides, tensor.Offset + batch * strides[0], adopt: true);
    }

    /// <summary>The per-element flash problem <see cref="ElementProblem"/> refills.</summary>
    private FlashProblem? _element;

    /// <summary>Shape and stride arrays of <see cref="ElementView"/>, made on first use.</summary>
    private FlashViewSlots? _views;

    /// <summary>
    /// Validates a call. Throws <see cref="ArgumentException"/> naming the tensor or option at fault (<c>keyCache</c>,
    /// <c>cache.CacheSeqLens</c>, <c>cache.BlockTable</c>, <c>cache.RotaryCos</c>, ...), or
    /// <see cref="ObjectDisposedException"/> for released buffers.
    /// </summary>
    public static KvCacheProblem Create(in TensorView query, in TensorView keyCache, in TensorView valueCache, in TensorView output, KvCacheOptions cache, FlashOptions? options, in TensorView? logSumExp) =>
        Validate(query, keyCache, valueCache, output, requireOutput: true, cache, options, logSumExp, reuse: null);

    /// <summary>
    /// <see cref="Create"/> into this thread's reusable problem, for <see cref="AttentionContext.FlashKvCache"/>: no
    /// allocation once warm. The result is valid until this thread validates its next call; nothing may keep it.
    /// </summary>
    internal static KvCacheProblem CreateForCall(in TensorView query, in TensorView keyCache, in TensorView valueCache, in TensorView output, KvCacheOptions cache, FlashOptions? options, in TensorView? logSumExp) =>
        Validate(query, keyCache, valueCache, output, requireOutput: true, cache, options, logSumExp, t_call ??= new KvCacheProblem(FlashOptions.Default, s_flashCache, [], null));

    /// <summary>Validates everything but the outputs (the references allocate their own and leave the caches alone).</summary>
    internal static KvCacheProblem CreateForInputs(in TensorView query, in TensorView keyCache, in TensorView valueCache, KvCacheOptions cache, FlashOptions? options) =>
        Validate(query, keyCache, valueCache, default, requireOutput: false, cache, options, null, reuse: null);

    /// <summary>
    /// A validated <see cref="AttentionContext.Flash"/> call as the decode kernels take it: K and V are a contiguous
    /// cache <c>[B, Hkv, Nk, D]</c> holding Nk tokens per batch element, with nothing to append, rotate or page, and
    /// the split count automatic. Refills this thread's reusable problem (valid until its next routed call).
    /// </summary>
    internal static KvCacheProblem ForFlash(FlashProblem flash)
    {
        var p = t_flash ??= new KvCacheProblem(FlashOptions.Default, s_flashCache, [], null);
        if (p._cacheLength.Length != flash.Batch) p._cacheLength = new int[flash.Batch];
        Array.Fill(p._cacheLength, flash.KeyLength);
        p._blockTable = null;
        (p.Options, p.Cache, p.IsFlashCall, p.AlibiRow) = (flash.Options, s_flashCache, true, flash.AlibiRow);
        (p.Batch, p.QueryHeads, p.KeyValueHeads, p.QueryLength, p.NewLength) = (flash.Batch, flash.QueryHeads, flash.KeyValueHeads, flash.QueryLength, 0);
        (p.HeadDim, p.ValueDim, p.Scale, p.ElementType) = (flash.HeadDim, flash.ValueDim, flash.Scale, flash.ElementType);
        (p.PageSize, p.BlocksPerSequence, p.RotaryDim) = (flash.KeyLength, 1, 0);
        return p;
    }

    /// <summary>
    /// Drops what a finished <see cref="CreateForCall"/> problem refers to (the caller's tensors, options and block
    /// table), so the thread's reusable problem keeps no caller memory alive.
    /// </summary>
    internal void ReleaseCall()
    {
        if (Tensors is NamedTensor[] tensors) Array.Clear(tensors);
        (Options, Cache) = (FlashOptions.Default, s_flashCache);
        if (_element is { } element) FlashProblem.FromSizes(1, 1, 1, 1, 1, 1, 1, 1f, ElementType.Float32, FlashOptions.Default, 0, element);
    }

    /// <summary>Drops the options this thread's <see cref="ForFlash"/> problem refers to, after the flash call.</summary>
    internal static void ReleaseFlashCall()
    {
        if (t_flash is { } p) p.Options = FlashOptions.Default;
    }

    private static KvCacheProblem Validate(in TensorView query, in TensorView keyCache, in TensorView valueCache, in TensorView output, bool requireOutput,
        KvCacheOptions cache, FlashOptions? options, in TensorView? logSumExp, KvCacheProblem? reuse)
    {
        ArgumentNullException.ThrowIfNull(cache);
        options ??= FlashOptions.Default;
        var q = TensorChecks.Rank(query, 4, nameof(query), QLayout);
        TensorChecks.Positive(query, nameof(query), QLayout);
        int batch = q[0], hq = q[1], nq = q[2], dqk = q[3];
        bool paged = !cache.BlockTable.IsEmpty;
        string kLayout = paged ? "[NumBlocks, Hkv, PageSize, Dqk]" : "[B, Hkv, Capacity, Dqk]";
        string vLayout = paged ? "[NumBlocks, Hkv, PageSize, Dv]" : "[B, Hkv, Capacity, Dv]";
        var k = TensorChecks.Rank(keyCache, 4, nameof(keyCache), kLayout);
        var v = TensorChecks.Rank(valueCache, 4, nameof(valueCache), vLayout);
        TensorChecks.Positive(keyCache, nameof(keyCache), kLayout);
        TensorChecks.Positive(valueCache, nameof(valueCache), vLayout);
        int hkv = k[1], dv = v[3];
        if (k[3] != dqk) TensorChecks.Throw($"keyCache has head dim {k[3]}; query has {dqk} ({kLayout}).", nameof(keyCache));
        if (hq % hkv != 0) TensorChecks.Throw($"keyCache has {hkv} heads, which does not divide the query's {hq} heads (GQA/MQA need Hq % Hkv == 0).", nameof(keyCache));
        if (!paged && k[0] != batch) TensorChecks.Throw($"keyCache has batch {k[0]}; query has batch {batch} ({kLayout}).", nameof(keyCache));
        if (v[0] != k[0] || v[1] != hkv || v[2] != k[2])
            TensorChecks.Throw($"valueCache has shape {TensorView.Format(v)}; expected [{k[0]}, {hkv}, {k[2]}, Dv] to match keyCache {vLayout}.", nameof(valueCache));
        var type = TensorChecks.HeadDimsAndType(query, dqk, keyCache, nameof(keyCache), valueCache, nameof(valueCache), dv);

        var lengths = cache.CacheSeqLens.Span;
        if (lengths.Length != batch)
            TensorChecks.Throw($"cache.CacheSeqLens has {lengths.Length} entries; expected one per batch element ({batch}).", "cache.CacheSeqLens");
        var cacheLength = reuse?._cacheLength is { } reusedLengths && reusedLengths.Length == batch ? reusedLengths : new int[batch];
        lengths.CopyTo(cacheLength);
        for (int b = 0; b < batch; b++)
            if (cacheLength[b] < 0) TensorChecks.Throw($"cache.CacheSeqLens[{b}] is {cacheLength[b]}; expected a non-negative token count.", "cache.CacheSeqLens");

        int newLength = 0;
        if ((cache.NewKey is null) != (cache.NewValue is null))
            TensorChecks.Throw("cache.NewKey and cache.NewValue come together: give both or neither.", cache.NewKey is null ? "cache.NewKey" : "cache.NewValue");
        if (cache.NewKey is { } newKey && cache.NewValue is { } newValue)
        {
            var nk = TensorChecks.Rank(newKey, 4, "cache.NewKey", "[B, Hkv, Nnew, Dqk]");
            TensorChecks.Positive(newKey, "cache.NewKey", "[B, Hkv, Nnew, Dqk]");
            newLength = nk[2];
            TensorChecks.Shape(newKey, [batch, hkv, newLength, dqk], "cache.NewKey", "[B, Hkv, Nnew, Dqk]");
            TensorChecks.Shape(newValue, [batch, hkv, newLength, dv], "cache.NewValue", "[B, Hkv, Nnew, Dv]");
            TensorChecks.Type(newKey, type, "cache.NewKey");
            TensorChecks.Type(newValue, type, "cache.NewValue");
            // The caches are outputs of the append.
            TensorChecks.Writable(keyCache, nameof(keyCache));
            TensorChecks.Writable(valueCache, nameof(valueCache));
            TensorChecks.NoAlias(keyCache, nameof(keyCache), valueCache, nameof(valueCache));
            CheckAppendTarget(keyCache, nameof(keyCache), query, newKey, newValue, cache);
            CheckAppendTarget(valueCache, nameof(valueCache), query, newKey, newValue, cache);
        }

        int[]? table = null;
        int pageSize, blocksPerSequence;
        if (paged)
        {
            var blockTable = cache.BlockTable;
            pageSize = k[2];
            if (cache.PageSize != pageSize)
                TensorChecks.Throw($"cache.PageSize is {cache.PageSize}, but the caches hold {pageSize} tokens per block ({kLayout}).", "cache.PageSize");
            if (blockTable.Length % batch != 0)
                TensorChecks.Throw($"cache.BlockTable has {blockTable.Length} entries; expected [B, BlocksPerSequence] = {batch} x n with n >= 1.", "cache.BlockTable");
            table = reuse?._tableBuffer is { } reusedTable && reusedTable.Length == blockTable.Length ? reusedTable : new int[blockTable.Length];
            blockTable.Span.CopyTo(table);
            blocksPerSequence = table.Length / batch;
        }
        else
        {
            pageSize = k[2];
            blocksPerSequence = 1;
        }
        int capacity = pageSize * blocksPerSequence;
        for (int b = 0; b < batch; b++)
        {
            long needed = (long)cacheLength[b] + newLength;
            if (needed <= capacity) continue;
            if (newLength == 0)
                TensorChecks.Throw($"cache.CacheSeqLens[{b}] is {cacheLength[b]}, but the cache holds {capacity} tokens per batch element.", "cache.CacheSeqLens");
            if (paged)
                TensorChecks.Throw($"cache.BlockTable gives each batch element {blocksPerSequence} blocks of {pageSize} tokens ({capacity}); element {b} needs {needed} after appending {newLength} to {cacheLength[b]}.", "cache.BlockTable");
            TensorChecks.Throw($"keyCache holds {capacity} tokens per batch element; element {b} needs {needed} after appending {newLength} to {cacheLength[b]}.", nameof(keyCache));
        }
        if (table is not null) CheckBlocks(table, batch, blocksPerSequence, pageSize, k[0], cacheLength, newLength);

        if (requireOutput)
        {
            TensorChecks.Written(output, [batch, hq, nq, dv], type, nameof(output), "[B, Hq, Nq, Dv]");
            TensorChecks.NoAlias(output, nameof(output), query, nameof(query), keyCache, nameof(keyCache), valueCache, nameof(valueCache));
            if (cache.NewKey is { } nk2) TensorChecks.NoAlias(output, nameof(output), nk2, "cache.NewKey");
            if (cache.NewValue is { } nv2) TensorChecks.NoAlias(output, nameof(output), nv2, "cache.NewValue");
        }
        if (logSumExp is { } lse)
        {
            TensorChecks.Written(lse, [batch, hq, nq], ElementType.Float32, nameof(logSumExp), "float32 [B, Hq, Nq]");
            TensorChecks.NoAlias(lse, nameof(logSumExp), output, nameof(output));
            TensorChecks.NoAlias(lse, nameof(logSumExp), query, nameof(query), keyCache, nameof(keyCache), valueCache, nameof(valueCache));
        }

        int rotaryDim = 0;
        if (cache.RotaryCos is not null || cache.RotarySin is not null)
        {
            if (cache.RotaryCos is not { } cos) { TensorChecks.Throw("cache.RotarySin needs cache.RotaryCos.", "cache.RotaryCos"); return null!; }
            if (cache.RotarySin is not { } sin) { TensorChecks.Throw("cache.RotaryCos needs cache.RotarySin.", "cache.RotarySin"); return null!; }
            var c = TensorChecks.Rank(cos, 2, "cache.RotaryCos", "float32 [MaxPositions, RotaryDim / 2]");
            TensorChecks.Positive(cos, "cache.RotaryCos", "float32 [MaxPositions, RotaryDim / 2]");
            TensorChecks.Type(cos, ElementType.Float32, "cache.RotaryCos");
            TensorChecks.Shape(sin, c, "cache.RotarySin", "float32, the shape of cache.RotaryCos");
            TensorChecks.Type(sin, ElementType.Float32, "cache.RotarySin");
            int positions = c[0];
            rotaryDim = 2 * c[1];
            if (rotaryDim > dqk)
                TensorChecks.Throw($"cache.RotaryCos has {c[1]} columns, so RotaryDim = {rotaryDim} exceeds the head dim {dqk}.", "cache.RotaryCos");
            for (int b = 0; b < batch; b++)
            {
                int last = cacheLength[b] + newLength - 1;
                if (last >= positions)
                    TensorChecks.Throw($"cache.RotaryCos covers {positions} positions, but batch element {b} needs position {last}.", "cache.RotaryCos");
                int first = cacheLength[b] + newLength - nq;
                if (first < 0)
                    TensorChecks.Throw($"query has {nq} rows but batch element {b} has only {cacheLength[b] + newLength} keys, so rotary would place query 0 at position {first}.", nameof(query));
            }
        }

        if (options.Bias is not null)
            TensorChecks.Throw("A dense bias [B, Hq, Nq, Nk] does not fit per-element cache lengths; use ALiBi or sinks, or call Flash.", "options.Bias");
        if (options.LowRankBias is not null)
            TensorChecks.Throw("A low-rank bias does not fit per-element cache lengths; call Flash.", "options.LowRankBias");
        float scale = FlashProblem.CheckPerRowOptions(options, batch, hq, dqk);
        if (cache.Splits is int splits && (splits < 1 || splits > MaxSplits))
            TensorChecks.Throw($"cache.Splits is {splits}; expected null (automatic) or 1..{MaxSplits}.", "cache.Splits");

        var problem = reuse ?? new KvCacheProblem(options, cache, cacheLength, table);
        (problem.Options, problem.Cache, problem._cacheLength, problem._blockTable, problem.IsFlashCall, problem.AlibiRow) = (options, cache, cacheLength, table, false, 0);
        if (table is not null) problem._tableBuffer = table;
        (problem.Batch, problem.QueryHeads, problem.KeyValueHeads, problem.QueryLength, problem.NewLength) = (batch, hq, hkv, nq, newLength);
        (problem.HeadDim, problem.ValueDim, problem.Scale, problem.ElementType) = (dqk, dv, scale, type);
        (problem.PageSize, problem.BlocksPerSequence, problem.RotaryDim) = (pageSize, blocksPerSequence, rotaryDim);
        var tensors = problem.Tensors as NamedTensor[] is { Length: TensorCount } reused ? reused : new NamedTensor[TensorCount];
        tensors[0] = new(nameof(query), query);
        tensors[1] = new(nameof(keyCache), keyCache);
        tensors[2] = new(nameof(valueCache), valueCache);
        tensors[3] = new(nameof(output), requireOutput ? output : null);
        tensors[4] = new(nameof(logSumExp), logSumExp);
        tensors[5] = new("cache.NewKey", cache.NewKey);
        tensors[6] = new("cache.NewValue", cache.NewValue);
        tensors[7] = new("cache.RotaryCos", cache.RotaryCos);
        tensors[8] = new("cache.RotarySin", cache.RotarySin);
        FlashProblem.WriteOptionTensors(options, tensors.AsSpan(9));
        problem.Tensors = tensors;
        return problem;
    }

    /// <summary>A cache the append writes must overlap none of the tensors the call reads.</summary>
    private static void CheckAppendTarget(in TensorView target, string name, in TensorView query, in TensorView newKey, in TensorView newValue, KvCacheOptions cache)
    {
        TensorChecks.NoAlias(target, name, query, nameof(query));
        TensorChecks.NoAlias(target, name, newKey, "cache.NewKey");
        TensorChecks.NoAlias(target, name, newValue, "cache.NewValue");
        if (cache.RotaryCos is { } c) TensorChecks.NoAlias(target, name, c, "cache.RotaryCos");
        if (cache.RotarySin is { } s) TensorChecks.NoAlias(target, name, s, "cache.RotarySin");
    }

    /// <summary>
    /// Every block a batch element uses must exist, and a block the append writes must belong to that element alone
    /// (two elements writing, or one writing what another reads, would race).
    /// </summary>
    private static void CheckBlocks(int[] table, int batch, int blocksPerSequence, int pageSize, int numBlocks, int[] cacheLength, int newLength)
    {
        var owner = t_blockOwners ??= [];
        owner.Clear();
        for (int b = 0; b < batch; b++)
        {
            int length = cacheLength[b] + newLength;
            int used = (length + pageSize - 1) / pageSize;
            int firstWritten = newLength > 0 ? cacheLength[b] / pageSize : used;
            for (int slot = 0; slot < used; slot++)
            {
                int block = table[b * blocksPerSequence + slot];
                if ((uint)block >= (uint)numBlocks)
                    TensorChecks.Throw($"cache.BlockTable[{b}, {slot}] is {block}, outside the caches' {numBlocks} blocks.", "cache.BlockTable");
                bool written = slot >= firstWritten;
                if (owner.TryGetValue(block, out var previous))
                {
                    if (written || previous.Written)
                        TensorChecks.Throw($"cache.BlockTable uses block {block} for batch elements {previous.Batch} and {b} (or twice in one), and the append writes into it.", "cache.BlockTable");
                }
                else owner[block] = (b, written);
            }
        }
    }
}
