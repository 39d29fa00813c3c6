// The block-sparse family's case: a seeded random block mask (FlexAttention-style full and partial blocks, or block
// CSR, BSR or a dense block matrix) with an element predicate in partial blocks. Kernels run on the CPU, OpenCL and
// CUDA (kernels/blocksparse/).
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

namespace NativeAttention;

/// <summary>
/// A reproducible <see cref="AttentionContext.BlockSparse"/> problem: Q, K, V as in flash attention, and a block
/// mask drawn from the seed in which each (query head, query block, key block) is listed with probability
/// <see cref="Density"/>, as a full block with probability <see cref="FullFraction"/> and otherwise as a partial
/// one (where <see cref="Predicate"/> applies). <see cref="Csr"/> writes the mask as block CSR (every block partial);
/// <see cref="Format"/> can also pass it through FlashInfer's BSR or a dense block matrix. With <see cref="Tril"/> only
/// blocks on or below the block diagonal are listed: the diagonal always (partial), the others with the probability
/// that makes <see cref="Density"/> the expected fraction of those blocks (the benchmarks' "25% of causal blocks").
/// </summary>
public sealed record BlockSparseCase : IAttentionCase
{
    private const string Grammar =
        "dtype (f32|f16|bf16), B<batch>, H<q>/<kv> or H<h>, N<q>x<k> or N<n>, D<qk>/<v> or D<d>, block=<bq>x<bk> or block=<b>, " +
        "density=<fraction of blocks listed>, full=<fraction of listed blocks that are full>, tril, csr|bsr|dense, mask=head|group|shared, " +
        "predicate: causal, window(<left>,<right>) [wcausal], prefix=<keys> or docs=<documents>, softcap=<c>, scale=<x>, amp=<input scale>, qamp=<query scale>, seed=<int>";

    /// <summary>The block-sparse family: kernels on the CPU, OpenCL and CUDA.</summary>
    public static CaseFamily Registration { get; } = new("blocksparse", "block-sparse attention (FlexAttention masks, block CSR/BSR, dense)", Grammar, Parse, HasKernels: true,
    [
        "blocksparse f32 B1 H2/1 N70x90 D32/32 block=16x32 density=0.6 full=0.5 causal seed=61",
        "blocksparse f16 B2 H2/2 N64x64 D16/16 block=16 density=0.4 full=0 window(10,3) wcausal seed=62",
        "blocksparse bf16 B1 H4/2 N40x56 D16/16 block=16 density=0.5 full=0 csr docs=3 mask=group seed=63",
        "blocksparse f32 B2 H4/1 N100 D24/16 block=32x16 density=0.7 full=0.3 dense prefix=20 softcap=5 mask=shared seed=64",
        "blocksparse f32 B1 H4/2 N1x300 D32 block=16x64 density=0.5 full=0.5 bsr seed=65",
        "blocksparse f16 B1 H2/1 N96 D32/32 block=32 density=0.6 full=0.5 causal amp=0.001 qamp=1000 seed=66",
    ])
    {
        Sample = SampleCase,
    };

    /// <summary>Where the mask's rows come from: one per query head, one per GQA group, or one shared by every head.</summary>
    public enum MaskSharing
    {
        /// <summary>MaskHeads = Hq.</summary>
        PerHead,
        /// <summary>MaskHeads = Hkv.</summary>
        PerGroup,
        /// <summary>MaskHeads = 1.</summary>
        Shared,
    }

    /// <summary>The layout the mask is written in before it reaches the call (every one but CSR arrives as Flex).</summary>
    public enum MaskFormat
    {
        /// <summary>A <see cref="FlexBlockMask"/> directly.</summary>
        Flex,
        /// <summary>A <see cref="BlockCsrMask"/> (every block partial).</summary>
        Csr,
        /// <summary>Through <see cref="BlockMasks.ToBsr"/> and back (every block partial).</summary>
        Bsr,
        /// <summary>Through <see cref="BlockMasks.ToDense"/> and back.</summary>
        Dense,
    }

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
    /// <summary>Write the mask as block CSR instead of a FlexAttention mask (the same as <see cref="Format"/> = Csr).</summary>
    public bool Csr
    {
        get => Format == MaskFormat.Csr;
        init => Format = value ? MaskFormat.Csr : MaskFormat.Flex;
    }
    /// <summary>The layout the mask passes through.</summary>
    public MaskFormat Format { get; init; }
    /// <summary>Whose rows the mask holds.</summary>
    public MaskSharing Sharing { get; init; }
    /// <summary>List only blocks on or below the block diagonal (the diagonal always).</summary>
    public bool Tril { get; init; }
    /// <summary>Window predicate also causal.</summary>
    public bool WindowCausal { get; init; }
    /// <summary>Prefix length of sample 0 for <see cref="ElementPredicateKind.PrefixLM"/>; odd samples get half of it.</summary>
    public int Prefix { get; init; }
    /// <summary>Softcap (0: off).</summary>
    public float Softcap { get; init; }
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
    /// <summary>Inputs are uniform in <c>[-InputScale, InputScale]</c> (queries: see <see cref="QueryScale"/>).</summary>
    public double InputScale { get; init; } = 1.0;
    /// <summary>
    /// Queries are uniform in <c>[-QueryScale, QueryScale]</c> when set (null: <see cref="InputScale"/>); spec token
    /// <c>qamp=</c>. With small keys and values, queries of the inverse magnitude keep the scores near magnitude 1.
    /// </summary>
    public double? QueryScale { get; init; }

    string IAttentionCase.FamilyName => Registration.Name;

    /// <inheritdoc/>
    public string KernelName => "blocksparse";

    /// <inheritdoc/>
    public CaseSizes Sizes => new(Batch, QueryHeads, KeyValueHeads, QueryLength, KeyLength, HeadDim, ValueDim);

    /// <inheritdoc/>
    public bool IsMemoryBound => QueryLength <= AttentionCase.DecodeQueryRows;

    private int QueryBlocks => (QueryLength + QueryBlock - 1) / QueryBlock;

    private int KeyBlocks => (KeyLength + KeyBlock - 1) / KeyBlock;

    /// <summary>Mask heads for <see cref="Sharing"/>.</summary>
    private int MaskHeads => Sharing switch { MaskSharing.Shared => 1, MaskSharing.PerGroup => KeyValueHeads, _ => QueryHeads };

    /// <summary>The options: the seeded mask (rows per <see cref="Sharing"/>, shared by the batch), its format and the predicate.</summary>
    public BlockSparseOptions Options()
    {
        var random = new Random(unchecked(Seed * 7919 + 3));
        int heads = MaskHeads, rows = heads * QueryBlocks, kb = KeyBlocks;
        bool partialOnly = Format is MaskFormat.Csr or MaskFormat.Bsr;
        // Under Tril, blocks every query of the row sees causally are listed with the probability that keeps the expected
        // fraction of causal blocks at Density; blocks on the causal frontier (seen by some queries only) always, as partial.
        long causalBlocks = 0, frontier = 0;
        for (int qb = 0; qb < QueryBlocks; qb++)
        {
            var (seen, crossing) = CausalBlocks(qb);
            causalBlocks += seen;
            frontier += crossing;
        }
        double below = causalBlocks > frontier ? Math.Clamp((Density * causalBlocks - frontier) / (causalBlocks - frontier), 0, 1) : 0;
        var full = new List<int>[rows];
        var partial = new List<int>[rows];
        for (int r = 0; r < rows; r++)
        {
            (full[r], partial[r]) = ([], []);
            var (seenBlocks, crossingBlocks) = CausalBlocks(r % QueryBlocks);
            int fullyVisible = seenBlocks - crossingBlocks;
            for (int c = 0; c < kb; c++)
            {
                if (Tril)
                {
                    if (c >= seenBlocks) break;
                    if (c >= fullyVisible)
                    {
                        partial[r].Add(c);
                        continue;
                    }
                    if (random.NextDouble() >= below) continue;
                }
                else if (random.NextDouble() >= Density) continue;
                bool isFull = random.NextDouble() < FullFraction && !partialOnly; // always drawn: every format lists the same blocks
                (isFull ? full[r] : partial[r]).Add(c);
            }
        }
        BlockMask mask;
        if (Format == MaskFormat.Csr)
        {
            var offsets = new int[heads * (QueryBlocks + 1)];
            var columns = new int[heads * QueryBlocks * kb];
            for (int h = 0; h < heads; h++)
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
                QueryBlockSize = QueryBlock, KeyBlockSize = KeyBlock, MaskHeads = heads,
                RowOffsets = offsets, ColumnIndices = columns, ColumnCapacity = QueryBlocks * kb,
            };
        }
        else
        {
            var flex = new FlexBlockMask
            {
                QueryBlockSize = QueryBlock, KeyBlockSize = KeyBlock, MaskHeads = heads, MaxBlocksPerRow = kb,
                PartialCounts = partial.Select(p => p.Count).ToArray(), PartialIndices = Flatten(partial, kb),
                FullCounts = full.Select(p => p.Count).ToArray(), FullIndices = Flatten(full, kb),
            };
            mask = Format switch
            {
                MaskFormat.Bsr => BlockMasks.FromBsr(BlockMasks.ToBsr(flex)),
                MaskFormat.Dense => BlockMasks.FromDense(BlockMasks.ToDense(flex, kb)),
                _ => flex,
            };
        }
        var predicate = Predicate switch
        {
            ElementPredicateKind.Causal => ElementPredicate.CausalMask,
            ElementPredicateKind.Window => ElementPredicate.SlidingWindow(WindowLeft, WindowRight, WindowCausal),
            ElementPredicateKind.Document => ElementPredicate.Documents(DocumentIds(QueryLength), DocumentIds(KeyLength)),
            ElementPredicateKind.PrefixLM => ElementPredicate.PrefixLM(Enumerable.Range(0, Batch).Select(b => b % 2 == 0 ? Prefix : Prefix / 2).ToArray()),
            _ => ElementPredicate.All,
        };
        return new BlockSparseOptions { Mask = mask, Predicate = predicate, Scale = Scale, Softcap = Softcap };
    }

    /// <summary>
    /// Under bottom-right causal masking, the key blocks query block <paramref name="queryBlock"/> sees at all (blocks
    /// 0 .. Seen - 1) and how many of those, the last ones, only some of its queries see (the frontier).
    /// </summary>
    private (int Seen, int Crossing) CausalBlocks(int queryBlock)
    {
        var (seen, frontier) = new BlockGrid(QueryLength, KeyLength, QueryBlock, KeyBlock).Causal(queryBlock);
        return (seen, seen - frontier);
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
            new(CaseTensors.QueryName, CaseData.Random(ElementType, [Batch, QueryHeads, QueryLength, HeadDim], random, QueryScale ?? InputScale), CaseTensorRole.Input),
            new(CaseTensors.KeyName, CaseData.Random(ElementType, [Batch, KeyValueHeads, KeyLength, HeadDim], random, InputScale), CaseTensorRole.Input),
            new(CaseTensors.ValueName, CaseData.Random(ElementType, [Batch, KeyValueHeads, KeyLength, ValueDim], random, InputScale), CaseTensorRole.Input),
            new(CaseTensors.OutputName, CaseData.Zeros(ElementType, Batch, QueryHeads, QueryLength, ValueDim), CaseTensorRole.Output),
            new(CaseTensors.LogSumExpName, CaseData.Zeros(ElementType.Float32, Batch, QueryHeads, QueryLength), CaseTensorRole.Output),
        ]);
    }

    /// <summary>Calls <see cref="AttentionContext.BlockSparse"/>.</summary>
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
        if (Tril) spec.Append(" tril");
        if (Format != MaskFormat.Flex) spec.Append(' ').Append(Format.ToString().ToLowerInvariant());
        if (Sharing != MaskSharing.PerHead) spec.Append(Sharing == MaskSharing.Shared ? " mask=shared" : " mask=group");
        switch (Predicate)
        {
            case ElementPredicateKind.Causal: spec.Append(" causal"); break;
            case ElementPredicateKind.Window:
                spec.Append(CultureInfo.InvariantCulture, $" window({WindowLeft},{WindowRight})");
                if (WindowCausal) spec.Append(" wcausal");
                break;
            case ElementPredicateKind.Document: spec.Append(CultureInfo.InvariantCulture, $" docs={Documents}"); break;
            case ElementPredicateKind.PrefixLM: spec.Append(CultureInfo.InvariantCulture, $" prefix={Prefix}"); break;
        }
        if (Softcap > 0) spec.Append(" softcap=").Append(SpecTokens.Number(Softcap));
        if (Scale is float scale) spec.Append(" scale=").Append(SpecTokens.Number(scale));
        return SpecTokens.Finish(spec, InputScale, Seed, QueryScale);
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
        if (Predicate != ElementPredicateKind.None)
            yield return this with { Predicate = ElementPredicateKind.None, WindowLeft = -1, WindowRight = -1, WindowCausal = false, Documents = 1, Prefix = 0 };
        if (Format != MaskFormat.Flex) yield return this with { Format = MaskFormat.Flex };
        if (Sharing != MaskSharing.PerHead) yield return this with { Sharing = MaskSharing.PerHead };
        if (Softcap > 0) yield return this with { Softcap = 0 };
        if (QueryScale is not null) yield return this with { InputScale = 1, QueryScale = null };
    }

    /// <summary>A random valid case over every option, small enough for the float64 reference (fuzz and the tests' generators).</summary>
    public static IAttentionCase SampleCase(Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        T Pick<T>(params T[] values) => values[random.Next(values.Length)];
        int hkv = Pick(1, 1, 2), group = Pick(1, 1, 2, 3);
        int bq = Pick(16, 16, 32, 48, 64, 128), bk = Pick(16, 16, 32, 64, 128);
        int nq = Pick(1, 1 + random.Next(40), 1 + random.Next(200)), nk = Pick(nq, 1 + random.Next(300));
        var predicate = Pick(ElementPredicateKind.None, ElementPredicateKind.Causal, ElementPredicateKind.Causal, ElementPredicateKind.Window,
            ElementPredicateKind.Document, ElementPredicateKind.PrefixLM);
        int dqk = Pick(8, 16, 32, 64, 19), dv = Pick(dqk, dqk, 24);
        var sampled = new BlockSparseCase
        {
            ElementType = Pick(ElementType.Float32, ElementType.Float32, ElementType.Float16, ElementType.BFloat16),
            Batch = Pick(1, 1, 2), QueryHeads = hkv * group, KeyValueHeads = hkv, QueryLength = nq, KeyLength = nk, HeadDim = dqk, ValueDim = dv,
            QueryBlock = bq, KeyBlock = bk, Density = Pick(0.0, 0.3, 0.6, 1.0), FullFraction = Pick(0.0, 0.5, 1.0), Tril = Pick(false, false, true),
            Format = Pick(MaskFormat.Flex, MaskFormat.Flex, MaskFormat.Csr, MaskFormat.Bsr, MaskFormat.Dense),
            Sharing = Pick(MaskSharing.PerHead, MaskSharing.PerGroup, MaskSharing.Shared),
            Predicate = predicate, WindowLeft = Pick(-1, 0, 5, 40), WindowRight = Pick(-1, 0, 3, 30), WindowCausal = Pick(false, true),
            Documents = Pick(1, 2, 5), Prefix = random.Next(nk + 1), Softcap = Pick(0f, 0f, 2f, 30f), Scale = Pick<float?>(null, null, 0.3f),
            InputScale = Pick(1.0, 1.0, 4.0), Seed = random.Next(),
        };
        // Options of other predicates keep their defaults, so that the case and its spec say the same.
        return sampled with
        {
            WindowLeft = predicate == ElementPredicateKind.Window ? sampled.WindowLeft : -1,
            WindowRight = predicate == ElementPredicateKind.Window ? sampled.WindowRight : -1,
            WindowCausal = predicate == ElementPredicateKind.Window && sampled.WindowCausal,
            Documents = predicate == ElementPredicateKind.Document ? sampled.Documents : 1,
            Prefix = predicate == ElementPredicateKind.PrefixLM ? sampled.Prefix : 0,
        };
    }

    /// <summary>Why this is not a valid problem, or null.</summary>
    internal string? Problem()
    {
        if (Batch < 1 || QueryHeads < 1 || KeyValueHeads < 1 || QueryLength < 1 || KeyLength < 1 || HeadDim < 1 || ValueDim < 1 || QueryBlock < 1 || KeyBlock < 1)
            return "every size must be at least 1";
        if (QueryHeads % KeyValueHeads != 0) return $"query heads ({QueryHeads}) must be a multiple of key/value heads ({KeyValueHeads})";
        if (QueryBlock < BlockMask.MinBlockSize || QueryBlock > BlockMask.MaxBlockSize || KeyBlock < BlockMask.MinBlockSize || KeyBlock > BlockMask.MaxBlockSize)
            return $"block sizes must be from {BlockMask.MinBlockSize} to {BlockMask.MaxBlockSize}";
        if (!(Density >= 0 && Density <= 1) || !(FullFraction >= 0 && FullFraction <= 1)) return "density= and full= take fractions in [0, 1]";
        if (WindowLeft < -1 || WindowRight < -1) return "window bounds must be -1 (unbounded) or non-negative";
        if (Documents < 1) return "docs= takes at least 1 document";
        if (Prefix < 0) return "prefix= takes a non-negative length";
        if (!(Softcap >= 0) || !float.IsFinite(Softcap)) return "softcap= takes 0 (off) or a positive finite cap";
        if (SpecTokens.ScaleProblem(InputScale, QueryScale) is { } scaleProblem) return scaleProblem;
        return null;
    }

    private static bool Parse(IReadOnlyList<string> tokens, string spec, [NotNullWhen(true)] out IAttentionCase? result, [NotNullWhen(false)] out string? error) =>
        SpecTokens.Read(tokens, spec, Grammar, new BlockSparseCase(), Apply, c => c.Problem(), out result, out error);

    /// <summary><paramref name="c"/> with one lower-cased spec token applied, or null when the token is not one of this family's.</summary>
    private static BlockSparseCase? Apply(BlockSparseCase c, string t) => t switch
    {
        "causal" => c with { Predicate = ElementPredicateKind.Causal },
        "csr" => c with { Format = MaskFormat.Csr },
        "bsr" => c with { Format = MaskFormat.Bsr },
        "dense" => c with { Format = MaskFormat.Dense },
        "tril" => c with { Tril = true },
        "wcausal" => c with { WindowCausal = true },
        "mask=head" => c with { Sharing = MaskSharing.PerHead },
        "mask=group" => c with { Sharing = MaskSharing.PerGroup },
        "mask=shared" => c with { Sharing = MaskSharing.Shared },
        _ when SpecTokens.Integer(SpecTokens.Value(t, "prefix=")) is int prefix => c with { Predicate = ElementPredicateKind.PrefixLM, Prefix = prefix },
        _ when SpecTokens.TryFloat(SpecTokens.Value(t, "softcap="), out float softcap) => c with { Softcap = softcap },
        _ when SpecTokens.Type(t) is { } type => c with { ElementType = type },
        _ when SpecTokens.Integer(SpecTokens.Value(t, "seed=")) is int seed => c with { Seed = seed },
        _ when SpecTokens.TryDouble(SpecTokens.Value(t, "amp="), out double amp) => c with { InputScale = amp },
        _ when SpecTokens.TryDouble(SpecTokens.Value(t, "qamp="), out double queryAmp) => c with { QueryScale = queryAmp },
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
