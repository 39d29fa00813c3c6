// The block-sparse family's case: a seeded random block mask (FlexAttention-style full and partial blocks, or block
// CSR) with an element predicate in partial blocks. The GPU backends run it (kernels/blocksparse/); on a backend
// without a kernel yet, Invoke gets the context's NotSupportedException.
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

namespace NativeAttention;

/// <summary>
/// A reproducible <see cref="AttentionContext.BlockSparse"/> problem: Q, K, V as in flash attention, and a block
/// mask drawn from the seed in which each (query head, query block, key block) is listed with probability
/// <see cref="Density"/>, as a full block with probability <see cref="FullFraction"/> and otherwise as a partial
/// one (where <see cref="Predicate"/> applies). <see cref="Csr"/> writes the mask as block CSR (every block partial).
/// </summary>
public sealed record BlockSparseCase : IAttentionCase
{
    private const string Grammar =
        "dtype (f32|f16|bf16), B<batch>, H<q>/<kv> or H<h>, N<q>x<k> or N<n>, D<qk>/<v> or D<d>, block=<bq>x<bk> or block=<b>, " +
        "density=<fraction of blocks listed>, full=<fraction of listed blocks that are full>, csr, predicate: causal, " +
        "window(<left>,<right>) or docs=<documents>, scale=<x>, amp=<input scale>, seed=<int>";

    /// <summary>The block-sparse family (kernels on OpenCL and CUDA so far).</summary>
    public static CaseFamily Registration { get; } = new("blocksparse", "block-sparse attention (FlexAttention masks, block CSR)", Grammar, Parse, HasKernels: false,
    [
        "blocksparse f32 B1 H2/1 N70x90 D32/32 block=16x32 density=0.6 full=0.5 causal seed=61",
        "blocksparse f16 B2 H2/2 N64x64 D16/16 block=8 density=0.4 full=0 window(10,3) seed=62",
        "blocksparse bf16 B1 H4/2 N40x56 D16/16 block=16 density=0.5 full=0 csr docs=3 seed=63",
    ], KernelBackends: [Backend.OpenCl, Backend.Cuda]);

    /// <summary>Storage type of Q, K, V and O.</summary>
    public ElementType ElementType { get; init; } = ElementType.Float32;
    /// <summary>Batch size B.</summary>
    public int Batch { get; init; } = 1;
    /// <summary>Query heads Hq.</summary>
    public int QueryHeads { get; init; } = 1;
    /// <summary>Key/value heads Hkv.</summary>
    public int KeyValueHeads { get; init; } = 1;
    /// <summary>Query length Nq.</summary>
    public int QueryLength { get; init; } = 1;
    /// <summary>Key length Nk.</summary>
    public int KeyLength { get; init; } = 1;
    /// <summary>Query/key head dimension.</summary>
    public int HeadDim { get; init; } = 64;
    /// <summary>Value head dimension.</summary>
    public int ValueDim { get; init; } = 64;
    /// <summary>Query block size Bq.</summary>
    public int QueryBlock { get; init; } = 64;
    /// <summary>Key block size Bk.</summary>
    public int KeyBlock { get; init; } = 64;
    /// <summary>Probability that a block is listed.</summary>
    public double Density { get; init; } = 0.5;
    /// <summary>Probability that a listed block is full (ignored with <see cref="Csr"/>, where every block is partial).</summary>
    public double FullFraction { get; init; } = 0.5;
    /// <summary>Write the mask as block CSR instead of a FlexAttention mask.</summary>
    public bool Csr { get; init; }
    /// <summary>The predicate in partial blocks: none, causal, window or documents.</summary>
    public ElementPredicateKind Predicate { get; init; }
    /// <summary>Window extents for <see cref="ElementPredicateKind.Window"/>.</summary>
    public int WindowLeft { get; init; } = -1;
    /// <summary>Window extents for <see cref="ElementPredicateKind.Window"/>.</summary>
    public int WindowRight { get; init; } = -1;
    /// <summary>Contiguous documents of equal length for <see cref="ElementPredicateKind.Document"/>.</summary>
    public int Documents { get; init; } = 1;
    /// <summary>Score scale (null: <c>1 / sqrt(Dqk)</c>).</summary>
    public float? Scale { get; init; }
    /// <summary>Seed of the inputs and the mask.</summary>
    public int Seed { get; init; } = 1;
    /// <summary>Inputs are uniform in <c>[-InputScale, InputScale]</c>.</summary>
    public double InputScale { get; init; } = 1.0;

    string IAttentionCase.FamilyName => Registration.Name;

    /// <inheritdoc/>
    public string KernelName => "blocksparse";

    /// <inheritdoc/>
    public CaseSizes Sizes => new(Batch, QueryHeads, KeyValueHeads, QueryLength, KeyLength, HeadDim, ValueDim);

    /// <inheritdoc/>
    public bool IsMemoryBound => QueryLength <= AttentionCase.DecodeQueryRows;

    private int QueryBlocks => (QueryLength + QueryBlock - 1) / QueryBlock;

    private int KeyBlocks => (KeyLength + KeyBlock - 1) / KeyBlock;

    /// <summary>The options: the seeded mask (one per query head, shared by the batch) and the predicate.</summary>
    public BlockSparseOptions Options()
    {
        var random = new Random(unchecked(Seed * 7919 + 3));
        int rows = QueryHeads * QueryBlocks, kb = KeyBlocks;
        var full = new List<int>[rows];
        var partial = new List<int>[rows];
        for (int r = 0; r < rows; r++)
        {
            (full[r], partial[r]) = ([], []);
            for (int c = 0; c < kb; c++)
            {
                if (random.NextDouble() >= Density) continue;
                bool isFull = !Csr && random.NextDouble() < FullFraction;
                (isFull ? full[r] : partial[r]).Add(c);
            }
        }
        BlockMask mask;
        if (Csr)
        {
            var offsets = new int[QueryHeads * (QueryBlocks + 1)];
            var columns = new int[QueryHeads * QueryBlocks * kb];
            for (int h = 0; h < QueryHeads; h++)
            {
                int n = 0;
                for (int qb = 0; qb < QueryBlocks; qb++)
                {
                    offsets[h * (QueryBlocks + 1) + qb] = n;
                    foreach (int c in partial[h * QueryBlocks + qb]) columns[h * QueryBlocks * kb + n++] = c;
                }
                offsets[h * (QueryBlocks + 1) + QueryBlocks] = n;
            }
            mask = new BlockCsrMask
            {
                QueryBlockSize = QueryBlock, KeyBlockSize = KeyBlock, MaskHeads = QueryHeads,
                RowOffsets = offsets, ColumnIndices = columns, ColumnCapacity = QueryBlocks * kb,
            };
        }
        else
        {
            mask = new FlexBlockMask
            {
                QueryBlockSize = QueryBlock, KeyBlockSize = KeyBlock, MaskHeads = QueryHeads, MaxBlocksPerRow = kb,
                PartialCounts = partial.Select(p => p.Count).ToArray(), PartialIndices = Flatten(partial, kb),
                FullCounts = full.Select(p => p.Count).ToArray(), FullIndices = Flatten(full, kb),
            };
        }
        var predicate = Predicate switch
        {
            ElementPredicateKind.Causal => ElementPredicate.CausalMask,
            ElementPredicateKind.Window => ElementPredicate.SlidingWindow(WindowLeft, WindowRight),
            ElementPredicateKind.Document => ElementPredicate.Documents(DocumentIds(QueryLength), DocumentIds(KeyLength)),
            _ => ElementPredicate.All,
        };
        return new BlockSparseOptions { Mask = mask, Predicate = predicate, Scale = Scale };
    }

    /// <summary>Document ids <c>[B, n]</c>: <see cref="Documents"/> contiguous runs of equal length.</summary>
    private int[] DocumentIds(int n)
    {
        var ids = new int[Batch * n];
        for (int b = 0; b < Batch; b++)
            for (int i = 0; i < n; i++) ids[b * n + i] = (int)((long)i * Documents / n);
        return ids;
    }

    private static int[] Flatten(List<int>[] rows, int capacity)
    {
        var flat = new int[rows.Length * capacity];
        for (int r = 0; r < rows.Length; r++) rows[r].CopyTo(flat, r * capacity);
        return flat;
    }

    /// <inheritdoc/>
    public CaseTensors CreateTensors()
    {
        if (Problem() is { } problem) throw new ArgumentException($"The case \"{ToSpec()}\" is not a valid problem: {problem}.", "case");
        var random = new Random(Seed);
        return new CaseTensors([
            new(CaseTensors.QueryName, CaseData.Random(ElementType, [Batch, QueryHeads, QueryLength, HeadDim], random, InputScale), CaseTensorRole.Input),
            new(CaseTensors.KeyName, CaseData.Random(ElementType, [Batch, KeyValueHeads, KeyLength, HeadDim], random, InputScale), CaseTensorRole.Input),
            new(CaseTensors.ValueName, CaseData.Random(ElementType, [Batch, KeyValueHeads, KeyLength, ValueDim], random, InputScale), CaseTensorRole.Input),
            new(CaseTensors.OutputName, CaseData.Zeros(ElementType, Batch, QueryHeads, QueryLength, ValueDim), CaseTensorRole.Output),
            new(CaseTensors.LogSumExpName, CaseData.Zeros(ElementType.Float32, Batch, QueryHeads, QueryLength), CaseTensorRole.Output),
        ]);
    }

    /// <summary>Calls <see cref="AttentionContext.BlockSparse"/> (a backend without a block-sparse kernel throws <see cref="NotSupportedException"/>).</summary>
    public void Invoke(AttentionContext context, CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(tensors);
        context.BlockSparse(tensors.Query, tensors.Key, tensors.Value, tensors.Output, Options(), tensors.LogSumExp);
    }

    /// <inheritdoc/>
    public ReferenceResult ExactReference(CaseTensors tensors) => Reference.BlockSparse(tensors.Query, tensors.Key, tensors.Value, Options());

    /// <summary>
    /// Until the family has a same-precision naive reference: the exact result stored in the case's type (the least
    /// error any implementation that writes that type makes).
    /// </summary>
    public ReferenceResult NaiveReference(CaseTensors tensors) => CaseData.Rounded(ExactReference(tensors), ElementType);

    /// <inheritdoc/>
    public ReferenceCheck Check(CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var exact = ExactReference(tensors);
        return CaseVerifier.CompareToReference(exact, CaseData.Rounded(exact, ElementType), tensors.Output, tensors.LogSumExp, ElementType, CaseData.MaxAbs(tensors.Value));
    }

    /// <summary>
    /// FLOPs on visible pairs, (2 Dqk + 2 Dv) each: every element of a full block, and the elements of partial blocks
    /// the predicate keeps (counted through <see cref="BlockSparseProblem.PredicateAllows"/> on zero tensors of the case's shape).
    /// </summary>
    public double Flops()
    {
        var options = Options();
        var problem = BlockSparseProblem.Create(
            CaseData.Zeros(ElementType, Batch, QueryHeads, QueryLength, HeadDim), CaseData.Zeros(ElementType, Batch, KeyValueHeads, KeyLength, HeadDim),
            CaseData.Zeros(ElementType, Batch, KeyValueHeads, KeyLength, ValueDim), CaseData.Zeros(ElementType, Batch, QueryHeads, QueryLength, ValueDim), options, null);
        long pairs = 0;
        for (int b = 0; b < Batch; b++)
            for (int h = 0; h < QueryHeads; h++)
                for (int qb = 0; qb < QueryBlocks; qb++)
                {
                    var row = problem.GetRow(b, h, qb);
                    int i0 = qb * QueryBlock, i1 = Math.Min(QueryLength, i0 + QueryBlock);
                    foreach (int c in row.Full) pairs += (long)(i1 - i0) * (Math.Min(KeyLength, (c + 1) * KeyBlock) - c * KeyBlock);
                    foreach (int c in row.Partial)
                        for (int i = i0; i < i1; i++)
                            for (int j = c * KeyBlock; j < Math.Min(KeyLength, (c + 1) * KeyBlock); j++)
                                if (problem.PredicateAllows(b, i, j)) pairs++;
                }
        return pairs * (2.0 * HeadDim + 2.0 * ValueDim);
    }

    /// <summary>Bytes of Q, K, V and O, each once.</summary>
    public double MinimumBytes() =>
        (double)ElementType.SizeOf() * Batch *
        ((double)QueryHeads * QueryLength * (HeadDim + ValueDim) + (double)KeyValueHeads * KeyLength * (HeadDim + ValueDim));

    /// <inheritdoc/>
    public string ToSpec()
    {
        var spec = new StringBuilder();
        spec.Append(CultureInfo.InvariantCulture,
            $"blocksparse {AttentionCase.TypeName(ElementType)} B{Batch} H{QueryHeads}/{KeyValueHeads} N{QueryLength}x{KeyLength} D{HeadDim}/{ValueDim} block={QueryBlock}x{KeyBlock}");
        spec.Append(" density=").Append(SpecTokens.Number(Density));
        spec.Append(" full=").Append(SpecTokens.Number(FullFraction));
        if (Csr) spec.Append(" csr");
        switch (Predicate)
        {
            case ElementPredicateKind.Causal: spec.Append(" causal"); break;
            case ElementPredicateKind.Window: spec.Append(CultureInfo.InvariantCulture, $" window({WindowLeft},{WindowRight})"); break;
            case ElementPredicateKind.Document: spec.Append(CultureInfo.InvariantCulture, $" docs={Documents}"); break;
        }
        if (Scale is float scale) spec.Append(" scale=").Append(SpecTokens.Number(scale));
        return SpecTokens.Finish(spec, InputScale, Seed);
    }

    /// <summary>The spec.</summary>
    public override string ToString() => ToSpec();

    /// <inheritdoc/>
    public IEnumerable<IAttentionCase> Shrink()
    {
        if (Batch > 1) yield return this with { Batch = 1 };
        if (QueryHeads > KeyValueHeads) yield return this with { QueryHeads = KeyValueHeads };
        if (HeadDim > 1) yield return this with { HeadDim = HeadDim / 2 };
        if (ValueDim > 1) yield return this with { ValueDim = ValueDim / 2 };
        if (ElementType != ElementType.Float32) yield return this with { ElementType = ElementType.Float32 };
        if (Predicate != ElementPredicateKind.None) yield return this with { Predicate = ElementPredicateKind.None };
    }

    /// <summary>Why this is not a valid problem, or null.</summary>
    internal string? Problem()
    {
        if (Batch < 1 || QueryHeads < 1 || KeyValueHeads < 1 || QueryLength < 1 || KeyLength < 1 || HeadDim < 1 || ValueDim < 1 || QueryBlock < 1 || KeyBlock < 1)
            return "every size must be at least 1";
        if (QueryHeads % KeyValueHeads != 0) return $"query heads ({QueryHeads}) must be a multiple of key/value heads ({KeyValueHeads})";
        if (!(Density >= 0 && Density <= 1) || !(FullFraction >= 0 && FullFraction <= 1)) return "density= and full= take fractions in [0, 1]";
        if (WindowLeft < -1 || WindowRight < -1) return "window bounds must be -1 (unbounded) or non-negative";
        if (Documents < 1) return "docs= takes at least 1 document";
        if (!double.IsFinite(InputScale) || InputScale <= 0) return "amp must be a positive number";
        return null;
    }

    private static bool Parse(IReadOnlyList<string> tokens, string spec, [NotNullWhen(true)] out IAttentionCase? result, [NotNullWhen(false)] out string? error) =>
        SpecTokens.Read(tokens, spec, Grammar, new BlockSparseCase(), Apply, c => c.Problem(), out result, out error);

    /// <summary><paramref name="c"/> with one lower-cased spec token applied, or null when the token is not one of this family's.</summary>
    private static BlockSparseCase? Apply(BlockSparseCase c, string t) => t switch
    {
        "causal" => c with { Predicate = ElementPredicateKind.Causal },
        "csr" => c with { Csr = true },
        _ when SpecTokens.Type(t) is { } type => c with { ElementType = type },
        _ when SpecTokens.Integer(SpecTokens.Value(t, "seed=")) is int seed => c with { Seed = seed },
        _ when SpecTokens.TryDouble(SpecTokens.Value(t, "amp="), out double amp) => c with { InputScale = amp },
        _ when SpecTokens.TryFloat(SpecTokens.Value(t, "scale="), out float scale) => c with { Scale = scale },
        _ when SpecTokens.TryDouble(SpecTokens.Value(t, "density="), out double density) => c with { Density = density },
        _ when SpecTokens.TryDouble(SpecTokens.Value(t, "full="), out double full) => c with { FullFraction = full },
        _ when SpecTokens.Integer(SpecTokens.Value(t, "docs=")) is int docs => c with { Predicate = ElementPredicateKind.Document, Documents = docs },
        _ when SpecTokens.Value(t, "block=") is { } block && SpecTokens.Size("b" + block, 'b', 'x') is var (bq, bk) => c with { QueryBlock = bq, KeyBlock = bk },
        _ when SpecTokens.Bracketed(t, "window(") is { } w && SpecTokens.Pair(w, ',') is var (left, right) =>
            c with { Predicate = ElementPredicateKind.Window, WindowLeft = left, WindowRight = right },
        _ when SpecTokens.Size(t, 'b', '\0') is var (batch, _) => c with { Batch = batch },
        _ when SpecTokens.Size(t, 'h', '/') is var (q, kv) => c with { QueryHeads = q, KeyValueHeads = kv },
        _ when SpecTokens.Size(t, 'n', 'x') is var (nq, nk) => c with { QueryLength = nq, KeyLength = nk },
        _ when SpecTokens.Size(t, 'd', '/') is var (dqk, dv) => c with { HeadDim = dqk, ValueDim = dv },
        _ => null,
    };
}
