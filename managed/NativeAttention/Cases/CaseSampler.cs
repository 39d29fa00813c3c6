// Random valid AttentionCases weighted towards the tails kernels get wrong, and a shrinker towards smaller ones:
// one distribution shared by the property tests (through their FsCheck generator) and the tool's `fuzz` command;
// other families draw through their registered CaseFamily.Sample.
namespace NativeAttention;

/// <summary>
/// Draws valid flash <see cref="AttentionCase"/>s from a seeded <see cref="Random"/>: every dtype and layout, GQA
/// groups, lengths around tile boundaries (1, 2, 15/16/17 ... 127/128/129, up to 200), head dims 1..256 weighted to
/// 16/32/64/128 and odd sizes, Nq != Nk, causal, and (optionally) sliding windows. The same seed gives the same
/// sequence of cases on every machine.
/// </summary>
public sealed class CaseSampler
{
    private static readonly ElementType[] Types = [ElementType.Float32, ElementType.Float16, ElementType.BFloat16];
    private static readonly int[] TileLengths = [1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129];
    private static readonly int[] CommonHeadDims = [16, 32, 64, 128];
    private static readonly int[] LargeHeadDims = [96, 127, 160, 255, 256];
    private static readonly int[] GroupSizes = [1, 1, 2, 3];

    private readonly Random _random;
    private readonly bool _allowWindows;
    private readonly bool _allowKvCache;

    /// <summary>A sampler whose sequence of cases is fixed by <paramref name="seed"/>.</summary>
    /// <param name="seed">Seed of the sampler (each case also carries its own input seed).</param>
    /// <param name="allowWindows">Whether cases may have sliding windows.</param>
    /// <param name="allowKvCache">Whether a quarter of the cases run through FlashKvCache (<see cref="AttentionCase.KvCache"/>).</param>
    public CaseSampler(int seed, bool allowWindows = true, bool allowKvCache = false)
    {
        _random = new Random(seed);
        _allowWindows = allowWindows;
        _allowKvCache = allowKvCache;
    }

    /// <summary>
    /// Whether <see cref="NextCase()"/> gives a quarter of its cases generated option tensors (ALiBi, biases, sinks;
    /// <see cref="AttentionCase.OptionTensors"/>).
    /// </summary>
    public bool AllowOptionTensors { get; init; }

    /// <summary>
    /// Whether <see cref="NextCase()"/> turns its KV-cache cases into <see cref="KvCacheCase"/>s with a random cache
    /// layout (capacity, paging, ragged lengths, an append).
    /// </summary>
    public bool AllowCacheLayouts { get; init; }

    /// <summary>
    /// Whether <see cref="NextCase()"/> and <see cref="NextCase(CaseFamily)"/> draw a quarter of their cases at small
    /// magnitudes (<see cref="WithSmallInputs"/> at 0.1, 0.01 or 0.001).
    /// </summary>
    public bool AllowSmallInputs { get; init; }

    /// <summary>The magnitudes <see cref="AllowSmallInputs"/> draws from.</summary>
    public static IReadOnlyList<double> SmallAmplitudes { get; } = [0.1, 0.01, 0.001];

    /// <summary>The next random case.</summary>
    public AttentionCase Next()
    {
        var c = Flash(_random, _allowWindows);
        return _allowKvCache && _random.Next(4) == 0 ? c with { KvCache = true } : c;
    }

    /// <summary>
    /// The next random case of the flash family: <see cref="Next"/>'s case, then, as <see cref="AllowOptionTensors"/>
    /// and <see cref="AllowCacheLayouts"/> allow, option tensors and a cache layout. With neither allowed it is
    /// <see cref="Next"/>'s case and draws nothing more.
    /// </summary>
    public IAttentionCase NextCase()
    {
        var c = Next();
        if (AllowOptionTensors && _random.Next(4) == 0) c = c with { OptionTensors = OptionTensors(_random, c, biases: !c.KvCache) };
        IAttentionCase drawn = AllowCacheLayouts && c.KvCache ? KvCacheCase.Sample(_random, c) : c;
        return MaybeSmall(drawn);
    }

    /// <summary><paramref name="c"/>, or with <see cref="AllowSmallInputs"/> a quarter of the time its small-input variant.</summary>
    private IAttentionCase MaybeSmall(IAttentionCase c) =>
        AllowSmallInputs && _random.Next(4) == 0 ? WithSmallInputs(c, SmallAmplitudes[_random.Next(SmallAmplitudes.Count)]) : c;

    /// <summary>
    /// <paramref name="c"/> with keys and values (appended tokens and additional keys included; option tensors keep their
    /// own amplitude) uniform in <c>[-amplitude, amplitude]</c> and, where the family has queries, queries in <c>[-1/amplitude, 1/amplitude]</c>:
    /// the scores keep magnitude 1, so a wrong score still moves the output, while binary16 inputs at 0.01 hold about
    /// 6 subnormals in 10^3 and at 0.001 about 6 in 100 (with all three inputs small, softmax would be nearly flat and
    /// the output nearly the mean of V whatever the scores). Flash (with its KV-cache and split-key forms),
    /// neighborhood and block-sparse cases get both, and so do linear cases whose feature map is homogeneous
    /// (identity, relu, precomputed: phi(q / a) . phi(a k) = phi(q) . phi(k), the scores of the magnitude-1 problem);
    /// a merge case's partial outputs get the amplitude, and so do all three inputs of a delta-rule case that
    /// L2-normalises its queries and keys in the kernel (small binary16 queries and keys through the normalisation, values
    /// and outputs small). Linear cases with elu + 1 or the Taylor map (whose features of large queries would be an
    /// ill-conditioned problem, not a small one) and delta-rule cases without the normalisation (whose keys feed the state
    /// update as well as the scores) are returned unchanged.
    /// </summary>
    /// <param name="c">The case.</param>
    /// <param name="amplitude">The magnitude of keys and values, in (0, 1].</param>
    /// <param name="type">The storage type to give the case instead of its own, or null to keep it.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="amplitude"/> is not in (0, 1].</exception>
    public static IAttentionCase WithSmallInputs(IAttentionCase c, double amplitude, ElementType? type = null)
    {
        ArgumentNullException.ThrowIfNull(c);
        if (!(amplitude > 0 && amplitude <= 1)) throw new ArgumentOutOfRangeException(nameof(amplitude), amplitude, "The amplitude must be in (0, 1].");
        double query = 1 / amplitude;
        return c switch
        {
            AttentionCase a => a with { InputScale = amplitude, QueryScale = query, ElementType = type ?? a.ElementType },
            KvCacheCase k => k with { Attention = (AttentionCase)WithSmallInputs(k.Attention, amplitude, type) },
            SplitKeysCase s => s with { Flash = (AttentionCase)WithSmallInputs(s.Flash, amplitude, type) },
            NeighborhoodCase n => n with { InputScale = amplitude, QueryScale = query, ElementType = type ?? n.ElementType },
            BlockSparseCase b => b with { InputScale = amplitude, QueryScale = query, ElementType = type ?? b.ElementType },
            LinearCase l when l.FeatureMap is FeatureMap.Identity or FeatureMap.Relu or FeatureMap.Precomputed =>
                l with { InputScale = amplitude, QueryScale = query, ElementType = type ?? l.ElementType },
            MergeCase m => m with { InputScale = amplitude, ElementType = type ?? m.ElementType },
            DeltaRuleCase d when d.L2Norm => d with { InputScale = amplitude, ElementType = type ?? d.ElementType },
            _ => c,
        };
    }

    /// <summary>
    /// The next random case of <paramref name="family"/>: <see cref="NextCase()"/> for flash, else the family's own
    /// <see cref="CaseFamily.Sample"/> drawing from this sampler's generator.
    /// </summary>
    /// <exception cref="NotSupportedException">The family has no sampler.</exception>
    public IAttentionCase NextCase(CaseFamily family)
    {
        ArgumentNullException.ThrowIfNull(family);
        if (ReferenceEquals(family, AttentionCase.Registration)) return NextCase();
        return family.Sample is { } sample ? MaybeSmall(sample(_random)) : throw new NotSupportedException($"The {family.Name} family has no case sampler.");
    }

    /// <summary>
    /// Random option tensors for <paramref name="case"/>: ALiBi slopes of either rank, sinks unless the case scores by
    /// sigmoid, and with <paramref name="biases"/> a dense bias (any dtype and broadcast, possibly key-major) and a
    /// low-rank bias (rank 1..8, any dtype and broadcasts); at least one of them, amplitude 0.5..4, own seed.
    /// </summary>
    public static FlashOptionSpec OptionTensors(Random random, AttentionCase @case, bool biases = true)
    {
        ArgumentNullException.ThrowIfNull(random);
        ArgumentNullException.ThrowIfNull(@case);
        var broadcasts = Enum.GetValues<OptionBroadcast>();
        var spec = new FlashOptionSpec
        {
            AlibiRank = random.Next(3),
            Sinks = @case.Flash.ScoreFunction == ScoreFunction.Softmax && random.Next(3) == 0,
            Amplitude = new[] { 0.5, 1.0, 2.0, 4.0 }[random.Next(4)],
            Seed = random.Next(1, 1000),
        };
        if (biases && random.Next(2) == 0)
            spec = spec with
            {
                DenseBias = true, DenseBiasType = Types[random.Next(Types.Length)], DenseBiasBroadcast = broadcasts[random.Next(broadcasts.Length)],
                DenseBiasTransposed = random.Next(3) == 0,
            };
        if (biases && random.Next(3) == 0)
            spec = spec with
            {
                LowRank = random.Next(1, 9), LowRankType = Types[random.Next(Types.Length)],
                LowRankUBroadcast = broadcasts[random.Next(broadcasts.Length)], LowRankWBroadcast = broadcasts[random.Next(broadcasts.Length)],
            };
        return spec.AlibiRank > 0 || spec.Sinks || spec.DenseBias || spec.LowRank > 0 ? spec : spec with { AlibiRank = 1 };
    }

    /// <summary>A random flash case drawn from <paramref name="random"/>.</summary>
    public static AttentionCase Flash(Random random, bool allowWindows)
    {
        ArgumentNullException.ThrowIfNull(random);
        var type = Types[random.Next(Types.Length)];
        var layout = random.Next(2) == 0 ? TensorLayout.HeadsFirst : TensorLayout.SequenceFirst;
        int batch = random.Next(1, 3);
        int kvHeads = random.Next(1, 4);
        int groupSize = GroupSizes[random.Next(GroupSizes.Length)];
        int nq = Length(random);
        int nk = Weighted(random, 2, 3) == 0 ? nq : Length(random);
        int dqk = HeadDim(random);
        int dv = Weighted(random, 2, 1) == 0 ? dqk : HeadDim(random);
        bool causal = random.Next(2) == 1;
        (int left, int right) window = allowWindows && Weighted(random, 3, 1) == 1
            ? (random.Next(-1, 41), random.Next(-1, 41))
            : (-1, -1);
        int seed = random.Next(0, int.MaxValue);
        return new AttentionCase
        {
            Family = AttentionFamily.Flash, ElementType = type, Layout = layout, Batch = batch,
            QueryHeads = kvHeads * groupSize, KeyValueHeads = kvHeads, QueryLength = nq, KeyLength = nk,
            HeadDim = dqk, ValueDim = dv, Seed = seed,
            Flash = new FlashOptions { Causal = causal, WindowLeft = window.left, WindowRight = window.right },
        };
    }

    /// <summary>A sequence length: weights 3 for 1..40, 2 for the tile boundaries, 1 for 41..200.</summary>
    public static int Length(Random random) => Weighted(random, 3, 2, 1) switch
    {
        0 => random.Next(1, 41),
        1 => TileLengths[random.Next(TileLengths.Length)],
        _ => random.Next(41, 201),
    };

    /// <summary>A head dimension: weights 3 for 16/32/64/128, 2 for 1..80, 1 for 96, 127, 160, 255, 256.</summary>
    public static int HeadDim(Random random) => Weighted(random, 3, 2, 1) switch
    {
        0 => CommonHeadDims[random.Next(CommonHeadDims.Length)],
        1 => random.Next(1, 81),
        _ => LargeHeadDims[random.Next(LargeHeadDims.Length)],
    };

    /// <summary>
    /// Smaller variants of a case, most aggressive first: batch to 1, fewer heads, halved lengths and dims, the
    /// plain layout, float32, no mask. Every variant is valid and keeps the input seed, so a failure that survives
    /// shrinking still replays from its spec.
    /// </summary>
    public static IEnumerable<AttentionCase> Shrink(AttentionCase c)
    {
        ArgumentNullException.ThrowIfNull(c);
        if (c.Batch > 1) yield return c with { Batch = 1 };
        if (c.QueryHeads > c.KeyValueHeads) yield return c with { QueryHeads = c.KeyValueHeads };
        if (c.KeyValueHeads > 1) yield return c with { KeyValueHeads = 1, QueryHeads = c.QueryHeads / c.KeyValueHeads };
        if (c.QueryLength > 1) yield return c with { QueryLength = c.QueryLength / 2 };
        if (c.KeyLength > 1) yield return c with { KeyLength = c.KeyLength / 2 };
        if (c.HeadDim > 1) yield return c with { HeadDim = c.HeadDim / 2 };
        if (c.ValueDim > 1) yield return c with { ValueDim = c.ValueDim / 2 };
        if (c.Layout != TensorLayout.HeadsFirst) yield return c with { Layout = TensorLayout.HeadsFirst };
        if (c.ElementType != ElementType.Float32) yield return c with { ElementType = ElementType.Float32 };
        if (c.Flash.WindowLeft >= 0 || c.Flash.WindowRight >= 0) yield return c with { Flash = c.Flash with { WindowLeft = -1, WindowRight = -1 } };
        if (c.Flash.Causal) yield return c with { Flash = c.Flash with { Causal = false } };
        if (c.KvCache) yield return c with { KvCache = false };
        if (c.OptionTensors is not null) yield return c with { OptionTensors = null };
        if (c.QueryScale is not null) yield return c with { InputScale = 1, QueryScale = null };
    }

    /// <summary>
    /// Greedy shrinking: repeatedly moves to the first variant from <see cref="Shrink"/> for which
    /// <paramref name="fails"/> still holds, until none does or <paramref name="maxAttempts"/> candidates were tried.
    /// Deterministic for a deterministic <paramref name="fails"/>.
    /// </summary>
    /// <returns>The smallest failing case found (<paramref name="failing"/> itself when no variant fails) and the attempts made.</returns>
    public static (AttentionCase Smallest, int Attempts) Minimize(AttentionCase failing, Func<AttentionCase, bool> fails, int maxAttempts = 200) =>
        Minimize(failing, fails, Shrink, maxAttempts);

    /// <summary>
    /// Greedy shrinking of any case through its own <see cref="IAttentionCase.Shrink"/>, as <see cref="Minimize(AttentionCase, Func{AttentionCase, bool}, int)"/> does for flash cases.
    /// </summary>
    public static (IAttentionCase Smallest, int Attempts) MinimizeCase(IAttentionCase failing, Func<IAttentionCase, bool> fails, int maxAttempts = 200) =>
        Minimize(failing, fails, c => c.Shrink(), maxAttempts);

    private static (T Smallest, int Attempts) Minimize<T>(T failing, Func<T, bool> fails, Func<T, IEnumerable<T>> shrink, int maxAttempts)
    {
        ArgumentNullException.ThrowIfNull(failing);
        ArgumentNullException.ThrowIfNull(fails);
        var current = failing;
        int attempts = 0;
        bool shrunk = true;
        while (shrunk && attempts < maxAttempts)
        {
            shrunk = false;
            foreach (var candidate in shrink(current))
            {
                if (attempts++ >= maxAttempts) break;
                if (fails(candidate))
                {
                    current = candidate;
                    shrunk = true;
                    break;
                }
            }
        }
        return (current, attempts);
    }

    /// <summary>Picks index i with probability weights[i] / sum(weights).</summary>
    private static int Weighted(Random random, params ReadOnlySpan<int> weights)
    {
        int total = 0;
        foreach (int w in weights) total += w;
        int pick = random.Next(total);
        for (int i = 0; i < weights.Length; i++)
        {
            if (pick < weights[i]) return i;
            pick -= weights[i];
        }
        return weights.Length - 1;
    }
}
