// Neighborhood attention kernels against the float64 reference and metamorphic properties, written once per backend.
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace NativeAttention.Tests;

/// <summary>Where a test tensor's elements lie in memory; every layout is the same logical <c>[B, H, X.., D]</c> tensor.</summary>
public enum NeighborhoodLayout
{
    /// <summary>Row-major.</summary>
    Contiguous,
    /// <summary>Heads after the spatial axes in memory, <c>[B, X.., H, D]</c>.</summary>
    HeadsLast,
    /// <summary>Every axis padded by one element in memory (rows do not abut; the grid cannot be flattened).</summary>
    Padded,
    /// <summary>The head dimension outermost after the batch in memory: element stride is not 1.</summary>
    HeadDimMajor,
}

/// <summary>One random neighborhood problem: sizes, per-axis options, storage, layout and data seed.</summary>
public sealed record NeighborhoodCase
{
    public int Batch { get; init; } = 1;
    public int KeyValueHeads { get; init; } = 1;
    public int GroupSize { get; init; } = 1;
    public int HeadDim { get; init; } = 8;
    public int ValueDim { get; init; } = 8;
    public int[] Grid { get; init; } = [8];
    public int[] Kernel { get; init; } = [3];
    public int[] Dilation { get; init; } = [1];
    public int[] Stride { get; init; } = [1];
    public bool[] Causal { get; init; } = [false];
    public int Extra { get; init; }
    public float? Scale { get; init; }
    public double InputScale { get; init; } = 1;
    public ElementType Type { get; init; } = ElementType.Float32;
    public NeighborhoodLayout Layout { get; init; }
    public int Seed { get; init; }
    /// <summary>A relative-position bias <c>[Hq, 2k-1..]</c> drawn from the data seed.</summary>
    public bool Rpb { get; init; }
    /// <summary>When set, a valid extent per sample and axis drawn from this seed inside <c>[k d, length]</c>.</summary>
    public int? PadSeed { get; init; }

    /// <summary>When set, these valid extents <c>[sample, axis]</c> (instead of any drawn from <see cref="PadSeed"/>).</summary>
    public int[,]? FixedValidExtent { get; init; }

    /// <summary>The valid extents: <see cref="FixedValidExtent"/>, else those <see cref="PadSeed"/> draws for the current grid and kernel, else null.</summary>
    public int[,]? ValidExtent()
    {
        if (FixedValidExtent is { } fixedExtent) return fixedExtent;
        if (PadSeed is not int seed) return null;
        var random = new Random(seed);
        var extent = new int[Batch, Grid.Length];
        for (int b = 0; b < Batch; b++)
            for (int a = 0; a < Grid.Length; a++)
            {
                int least = Kernel[a] * Dilation[a];
                extent[b, a] = random.Next(3) == 0 ? Grid[a] : random.Next(least, Grid[a] + 1);
            }
        return extent;
    }

    public int QueryHeads => KeyValueHeads * GroupSize;
    public int Tokens => Grid.Aggregate(1, (a, b) => a * b);

    public override string ToString() =>
        $"B={Batch} Hq={QueryHeads} Hkv={KeyValueHeads} Dqk={HeadDim} Dv={ValueDim} grid=[{string.Join(",", Grid)}] k=[{string.Join(",", Kernel)}] " +
        $"d=[{string.Join(",", Dilation)}] s=[{string.Join(",", Stride)}] causal=[{string.Join(",", Causal)}] extra={Extra} scale={Scale?.ToString() ?? "default"} " +
        $"amp={InputScale} {Type} {Layout} seed={Seed}" + (Rpb ? " rpb" : "") +
        (ValidExtent() is { } e ? " valid=" + string.Join(";", Enumerable.Range(0, Batch).Select(b => string.Join(",", Enumerable.Range(0, Grid.Length).Select(a => e[b, a])))) : "");
}

/// <summary>The tensors of one case, in the case's layout, with the call's options.</summary>
public sealed class NeighborhoodData
{
    public required TensorView Query, Key, Value, Output, LogSumExp;
    public TensorView? ExtraKeys, ExtraValues, Bias;
    public required NeighborhoodOptions Options;

    public static NeighborhoodData Create(NeighborhoodCase c)
    {
        var random = new Random(c.Seed);
        int[] Shape(int heads, int dim) => [c.Batch, heads, .. c.Grid, dim];
        TensorView Input(int heads, int dim) => NeighborhoodTests.Tensor(c.Type, c.Layout, Shape(heads, dim), random, c.InputScale);
        var extraKeys = c.Extra > 0 ? NeighborhoodTests.Tensor(c.Type, c.Layout, [c.Batch, c.KeyValueHeads, c.Extra, c.HeadDim], random, c.InputScale) : (TensorView?)null;
        var extraValues = c.Extra > 0 ? NeighborhoodTests.Tensor(c.Type, c.Layout, [c.Batch, c.KeyValueHeads, c.Extra, c.ValueDim], random, c.InputScale) : (TensorView?)null;
        // The bias in float32, padded (strided) when the case is; its rank is 2 to 4, so no other layout applies.
        var bias = c.Rpb
            ? NeighborhoodTests.Tensor(ElementType.Float32, c.Layout == NeighborhoodLayout.Padded ? c.Layout : NeighborhoodLayout.Contiguous,
                [c.QueryHeads, .. c.Kernel.Select(k => 2 * k - 1)], random, 2.0)
            : (TensorView?)null;
        return new NeighborhoodData
        {
            Query = Input(c.QueryHeads, c.HeadDim),
            Key = Input(c.KeyValueHeads, c.HeadDim),
            Value = Input(c.KeyValueHeads, c.ValueDim),
            Output = NeighborhoodTests.Tensor(c.Type, c.Layout, Shape(c.QueryHeads, c.ValueDim), null, 1),
            LogSumExp = NeighborhoodTests.Tensor(ElementType.Float32, c.Layout == NeighborhoodLayout.Padded ? c.Layout : NeighborhoodLayout.Contiguous,
                [c.Batch, c.QueryHeads, .. c.Grid], null, 1),
            ExtraKeys = extraKeys,
            ExtraValues = extraValues,
            Bias = bias,
            Options = new NeighborhoodOptions
            {
                KernelSize = c.Kernel, Dilation = c.Dilation, Stride = c.Stride, Causal = c.Causal, Scale = c.Scale,
                AdditionalKeys = extraKeys, AdditionalValues = extraValues, RelativePositionBias = bias, ValidExtent = c.ValidExtent(),
            },
        };
    }

    /// <summary>Runs the call on <paramref name="context"/> (device backends get mirrors, and the outputs come back).</summary>
    public void Run(AttentionContext context, bool withLse = true)
    {
        using var on = new OnContext(context);
        TensorView? Put(TensorView? host) => host is { } view ? on.Put(view) : null;
        var (q, k, v, o, lse) = (on.Put(Query), on.Put(Key), on.Put(Value), on.Put(Output), on.Put(LogSumExp));
        context.Neighborhood(q, k, v, o, Options with { AdditionalKeys = Put(ExtraKeys), AdditionalValues = Put(ExtraValues), RelativePositionBias = Put(Bias) },
            withLse ? lse : null);
        on.Back(o, Output);
        if (withLse) on.Back(lse, LogSumExp);
    }
}

/// <summary>
/// Neighborhood attention on one backend: random problems over every option against <see cref="Reference.Neighborhood"/>
/// under FlashAttention's error rule, and metamorphic properties against the backend's own flash attention.
/// </summary>
public abstract class NeighborhoodTests
{
    /// <summary>The backend under test.</summary>
    protected abstract Backend Backend { get; }

    /// <summary>
    /// A context on the backend with 2 threads; skips while the backend has no neighborhood kernel
    /// (<see cref="CaseFamily.RunsOn"/> of the family's registration), or when its runtime is missing (<see cref="TestBackend"/>).
    /// </summary>
    private AttentionContext CreateContext()
    {
        Skip.If(!global::NativeAttention.NeighborhoodCase.Registration.RunsOn(Backend), $"The {Backend} backend has no neighborhood kernel yet.");
        return TestBackend.CreateOrSkip(Backend, threads: 2);
    }

    private static readonly Gen<ElementType> Types = Gen.Elements(ElementType.Float32, ElementType.Float32, ElementType.Float16, ElementType.BFloat16);
    private static readonly Gen<NeighborhoodLayout> Layouts = Gen.Elements(Enum.GetValues<NeighborhoodLayout>());

    /// <summary>One axis: (length, kernel, dilation, stride, causal), always valid.</summary>
    private static Gen<(int Length, int Kernel, int Dilation, int Stride, bool Causal)> Axis(int maxLength) =>
        from length in Gen.Choose(1, maxLength)
        from dilation in Gen.Elements(1, 1, 1, 2, 3).Select(d => Math.Min(d, length))
        from kernel in Gen.Choose(1, length / dilation)
        from stride in Gen.Choose(1, kernel).Select(s => s)
        from strided in Gen.Elements(false, false, true)
        from causal in Gen.Elements(false, false, false, true)
        select (length, kernel, dilation, strided ? stride : 1, causal);

    /// <summary>Random valid problems over every option (grids kept small: the reference is quadratic in tokens).</summary>
    public static Gen<NeighborhoodCase> Cases { get; } =
        from rank in Gen.Elements(1, 1, 2, 2, 3)
        from axes in Axis(rank switch { 1 => 40, 2 => 11, _ => 6 }).ArrayOf(rank)
        from batch in Gen.Elements(1, 1, 2)
        from hkv in Gen.Elements(1, 2)
        from groupSize in Gen.Elements(1, 1, 2, 3)
        from dqk in Gen.Elements(1, 4, 8, 16, 19, 32, 64)
        from dvChoice in Gen.Elements(0, 0, 5, 24)
        from extra in Gen.Elements(0, 0, 1, 3, 6)
        from scale in Gen.Elements<float?>(null, null, 0.3f, 2f)
        from amp in Gen.Elements(1.0, 1.0, 4.0)
        from type in Types
        from layout in Layouts
        from seed in Gen.Choose(0, int.MaxValue)
        from rpb in Gen.Elements(false, false, true)
        from padSeed in Gen.Elements<int?>(null, null, 1, 2, 3, 4)
        select new NeighborhoodCase
        {
            Rpb = rpb, PadSeed = padSeed,
            Batch = batch, KeyValueHeads = hkv, GroupSize = groupSize, HeadDim = dqk, ValueDim = dvChoice == 0 ? dqk : dvChoice,
            Grid = axes.Select(a => a.Length).ToArray(), Kernel = axes.Select(a => a.Kernel).ToArray(),
            Dilation = axes.Select(a => a.Dilation).ToArray(), Stride = axes.Select(a => a.Stride).ToArray(),
            Causal = axes.Select(a => a.Causal).ToArray(), Extra = extra, Scale = scale, InputScale = amp, Type = type, Layout = layout, Seed = seed,
        };

    /// <summary>
    /// A tensor of logical shape <paramref name="shape"/> (<c>[B, H, .., D]</c>) laid out as <paramref name="layout"/>
    /// says, filled with uniform values in <c>[-amp, amp]</c> (rounded to <paramref name="type"/>), or zeros without a random source.
    /// </summary>
    internal static TensorView Tensor(ElementType type, NeighborhoodLayout layout, int[] shape, Random? random, double amp)
    {
        int rank = shape.Length;
        // Memory order of the logical axes, and extra elements per axis.
        int[] order = layout switch
        {
            NeighborhoodLayout.HeadsLast => [0, .. Enumerable.Range(2, rank - 3), 1, rank - 1],
            NeighborhoodLayout.HeadDimMajor => [0, rank - 1, .. Enumerable.Range(1, rank - 2)],
            _ => Enumerable.Range(0, rank).ToArray(),
        };
        if (rank < 3) order = Enumerable.Range(0, rank).ToArray();
        int pad = layout == NeighborhoodLayout.Padded ? 1 : 0;
        int[] physical = order.Select(a => shape[a] + pad).ToArray();
        long n = physical.Aggregate(1L, (a, b) => a * b);
        TensorView storage = type switch
        {
            ElementType.Float32 => TensorView.FromMemory(new float[n].AsMemory(), physical),
            ElementType.Float16 => TensorView.FromMemory(new Half[n].AsMemory(), physical),
            _ => TensorView.FromMemory(new BFloat16[n].AsMemory(), physical),
        };
        if (pad > 0)
        {
            // Fill the padding with NaN so that a kernel reading it shows.
            var nan = new double[n];
            Array.Fill(nan, double.NaN);
            storage.CopyFrom(nan);
            for (int a = 0; a < rank; a++) storage = storage.Slice(a, 0, physical[a] - 1);
        }
        var inverse = new int[rank];
        for (int i = 0; i < rank; i++) inverse[order[i]] = i;
        var view = storage.Permute(inverse);
        long count = shape.Aggregate(1L, (a, b) => a * b);
        var values = new double[count];
        if (random is not null)
            for (long i = 0; i < count; i++) values[i] = (random.NextDouble() * 2 - 1) * amp;
        view.CopyFrom(values);
        return view;
    }

    /// <summary>
    /// FlashAttention's error rule (<see cref="CaseVerifier.CompareToReference"/>). The same-precision naive result is
    /// <see cref="Reference.FlashNaive"/> over the grid keys followed by the additional keys, with an additive bias
    /// <c>[B, Hq, tokens, keys]</c> read off the float64 reference itself (<see cref="BiasByReference"/>): -inf on the
    /// pairs it reports invisible, the relative-position bias on the others, so the yardstick shares no window or
    /// bias-index logic with any kernel.
    /// </summary>
    internal static ReferenceCheck Check(NeighborhoodCase c, NeighborhoodData data)
    {
        var exact = Reference.Neighborhood(data.Query, data.Key, data.Value, data.Options);
        int tokens = c.Tokens, keys = tokens + c.Extra;
        var biasValues = BiasByReference(c, data.Options);
        var bias = TensorView.FromMemory(new float[biasValues.Length].AsMemory(), c.Batch, c.QueryHeads, tokens, keys);
        bias.CopyFrom(biasValues);
        var q = Flat(data.Query, c.Type, [c.Batch, c.QueryHeads, tokens, c.HeadDim]);
        var k = Concat(c, data.Key, data.ExtraKeys, c.HeadDim);
        var v = Concat(c, data.Value, data.ExtraValues, c.ValueDim);
        var naive = Reference.FlashNaive(q, k, v, new FlashOptions { Scale = c.Scale, Bias = bias }, c.Type);
        double valueScale = v.ToDoubleArray().Select(Math.Abs).Max();
        return CaseVerifier.CompareToReference(exact, naive, data.Output, data.LogSumExp, c.Type, valueScale);
    }

    /// <summary>
    /// bias[b, h, x, y] for grid keys y: log of the weight the reference gives y when every q.k is 0 plus the row's LSE
    /// (that is the relative-position bias, or 0 without one), -inf where the weight is 0 (invisible); additional keys
    /// get 0, or -inf for query rows that see no grid key (padding queries, which see nothing).
    /// </summary>
    private static double[] BiasByReference(NeighborhoodCase c, NeighborhoodOptions options)
    {
        int tokens = c.Tokens, keys = tokens + c.Extra, rows = c.Batch * c.QueryHeads;
        var bias = new double[(long)rows * tokens * keys];
        var zeroQueries = TensorView.FromMemory(new float[rows * tokens].AsMemory(), [c.Batch, c.QueryHeads, .. c.Grid, 1]);
        var zeroKeys = TensorView.FromMemory(new float[c.Batch * tokens].AsMemory(), [c.Batch, 1, .. c.Grid, 1]);
        var gridOnly = options with { AdditionalKeys = null, AdditionalValues = null, Scale = null };
        var seesGrid = new bool[rows * tokens];
        // One-hot values for keys [first, first + chunk), at most 256 wide.
        for (int first = 0; first < tokens; first += 256)
        {
            int chunk = Math.Min(256, tokens - first);
            var oneHot = new double[(long)c.Batch * tokens * chunk];
            for (int b = 0; b < c.Batch; b++)
                for (int t = first; t < first + chunk; t++) oneHot[((long)b * tokens + t) * chunk + t - first] = 1;
            var values = TensorView.FromMemory(new float[oneHot.Length].AsMemory(), [c.Batch, 1, .. c.Grid, chunk]);
            values.CopyFrom(oneHot);
            var r = Reference.Neighborhood(zeroQueries, zeroKeys, values, gridOnly);
            for (int row = 0; row < rows; row++)
                for (int x = 0; x < tokens; x++)
                {
                    double lse = r.LogSumExp![(long)row * tokens + x];
                    for (int j = 0; j < chunk; j++)
                    {
                        double w = r.Output[((long)row * tokens + x) * chunk + j];
                        bias[((long)row * tokens + x) * keys + first + j] = w > 0 ? Math.Log(w) + lse : double.NegativeInfinity;
                        seesGrid[row * tokens + x] |= w > 0;
                    }
                }
        }
        for (int row = 0; row < rows; row++)
            for (int x = 0; x < tokens; x++)
                for (int y = tokens; y < keys; y++)
                    bias[((long)row * tokens + x) * keys + y] = seesGrid[row * tokens + x] ? 0 : double.NegativeInfinity;
        return bias;
    }

    private static TensorView Flat(TensorView view, ElementType type, int[] shape)
    {
        var flat = NeighborhoodTests.Tensor(type, NeighborhoodLayout.Contiguous, shape, null, 1);
        flat.CopyFrom(view.ToDoubleArray());
        return flat;
    }

    /// <summary>Grid rows then additional rows per (batch, kv head), as one <c>[B, Hkv, tokens + extra, dim]</c> tensor.</summary>
    private static TensorView Concat(NeighborhoodCase c, TensorView grid, TensorView? extra, int dim)
    {
        int tokens = c.Tokens, keys = tokens + c.Extra;
        var g = grid.ToDoubleArray();
        var e = extra?.ToDoubleArray() ?? [];
        var all = new double[(long)c.Batch * c.KeyValueHeads * keys * dim];
        for (int bh = 0; bh < c.Batch * c.KeyValueHeads; bh++)
        {
            Array.Copy(g, (long)bh * tokens * dim, all, (long)bh * keys * dim, (long)tokens * dim);
            if (c.Extra > 0) Array.Copy(e, (long)bh * c.Extra * dim, all, ((long)bh * keys + tokens) * dim, (long)c.Extra * dim);
        }
        var view = NeighborhoodTests.Tensor(c.Type, NeighborhoodLayout.Contiguous, [c.Batch, c.KeyValueHeads, keys, dim], null, 1);
        view.CopyFrom(all);
        return view;
    }

    private void CheckCases(Gen<NeighborhoodCase> cases, int count, int? vectorBits = null, int threads = 2)
    {
        using var context = (vectorBits is not null || threads != 2) && Backend == Backend.Cpu
            ? new Cpu.CpuContext(new ContextOptions { Threads = threads }) { ForcedVectorBits = vectorBits }
            : CreateContext();
        Properties.Check(Arb.From(cases), c =>
        {
            var data = NeighborhoodData.Create(c);
            long banded = Cpu.Neighborhood1D.CallsOnThisThread;
            data.Run(context);
            if (Backend == Backend.Cpu)
            {
                long ran = Cpu.Neighborhood1D.CallsOnThisThread - banded, expected = TakesBandedPath(c, data, context) ? 1 : 0;
                Assert.True(ran == expected, $"{c}: the banded 1-D CPU path ran {ran} times; expected {expected}");
            }
            var result = Check(c, data);
            if (!result.Passed) Assert.Fail($"{c}: {result}");
        }, count);
    }

    /// <summary>
    /// Whether the CPU call takes the banded 1-D kernel (<see cref="Cpu.Neighborhood1D"/>): the shapes it accepts, unless
    /// the whole-grid window sends the call to dense flash first. Written from the path's documented conditions.
    /// </summary>
    private static bool TakesBandedPath(NeighborhoodCase c, NeighborhoodData data, AttentionContext context)
    {
        int bits = (context as Cpu.CpuContext)?.ForcedVectorBits ?? Cpu.CpuFeatures.VectorBits;
        bool dense = c.Grid.Length == 1 && c.Kernel[0] == c.Grid[0] && c.Extra == 0 && !c.Rpb && c.PadSeed is null;
        bool accepted = bits == 512 && System.Runtime.Intrinsics.X86.Avx512F.IsSupported && c.Grid.Length == 1 && c.Type == ElementType.Float32
            && c.Stride[0] == 1 && c.Extra == 0 && data.Query.Strides[^1] == 1 && data.Key.Strides[^1] == 1 && data.Value.Strides[^1] == 1
            && data.Output.Strides[^1] == 1;
        return accepted && !dense;
    }

    [SkippableFact]
    public void Neighborhood_RandomProblems_MatchReference() => CheckCases(Cases, count: 60);

    /// <summary>
    /// The family's sampled cases (what `verify` and `fuzz` run) at small magnitudes: small keys and values, large
    /// queries, mostly binary16 with frequent subnormals.
    /// </summary>
    [SkippableFact]
    public void Neighborhood_SmallInputs_MatchReference()
    {
        using var context = CreateContext();
        SmallInputs.Check(context, global::NativeAttention.NeighborhoodCase.Registration, count: 12);
    }

    /// <summary>1-D float32 problems of the banded CPU path's shapes: every kernel size, dilation, causal flag, padding, bias, GQA and Dv.</summary>
    public static Gen<NeighborhoodCase> OneDimensionalCases { get; } =
        from longGrid in Gen.Elements(false, false, false, true)
        from length in longGrid ? Gen.Choose(260, 600) : Gen.Choose(1, 90)
        from dilation in Gen.Elements(1, 1, 2, 3, 4).Select(d => Math.Min(d, length))
        from kernel in longGrid ? Gen.Choose(1, Math.Min(70, length / dilation)) : Gen.Choose(1, length / dilation)
        from causal in Gen.Elements(false, false, true)
        from batch in Gen.Elements(1, 1, 2)
        from hkv in Gen.Elements(1, 2)
        from groupSize in Gen.Elements(1, 1, 2, 3)
        from dqk in Gen.Elements(1, 8, 16, 19, 32, 64, 80)
        from dvChoice in Gen.Elements(0, 0, 5, 24, 48, 72)
        from scale in Gen.Elements<float?>(null, null, 0.3f, 2f)
        from amp in Gen.Elements(1.0, 1.0, 4.0)
        from layout in Gen.Elements(NeighborhoodLayout.Contiguous, NeighborhoodLayout.HeadsLast, NeighborhoodLayout.Padded)
        from seed in Gen.Choose(0, int.MaxValue)
        from rpb in Gen.Elements(false, false, true)
        from padSeed in Gen.Elements<int?>(null, null, 1, 2, 3)
        select new NeighborhoodCase
        {
            Rpb = rpb, PadSeed = padSeed, Batch = longGrid ? 1 : batch, KeyValueHeads = hkv, GroupSize = longGrid ? 1 : groupSize,
            HeadDim = dqk, ValueDim = dvChoice == 0 ? dqk : dvChoice, Grid = [length], Kernel = [kernel], Dilation = [dilation], Stride = [1],
            Causal = [causal], Scale = scale, InputScale = amp, Type = ElementType.Float32, Layout = layout, Seed = seed,
        };

    /// <summary>
    /// The 1-D shapes of the banded CPU path (several work items per dilation group on the longer grids) against the
    /// reference; <see cref="CheckCases"/> also asserts that the CPU runs them on that path.
    /// </summary>
    [SkippableFact]
    public void Neighborhood_OneDimensional_BandedPathShapes_MatchReference() => CheckCases(OneDimensionalCases, count: 40);

    /// <summary>
    /// 1-D float32 problems whose blocks form chains on the banded CPU path (17 &lt;= k &lt;= 33: runs of full interior
    /// blocks sharing key loads, links with and without the third block's diagonal 32, runs of two or more blocks
    /// ending at item and border edges), with causal, dilation, padding, bias, GQA and Dv != Dqk.
    /// </summary>
    public static Gen<NeighborhoodCase> ChainCases { get; } =
        from kernel in Gen.Elements(17, 18, 21, 24, 31, 32, 33, 33, 33)
        from dilation in Gen.Elements(1, 1, 2, 3)
        from length in Gen.Choose((kernel + 40) * dilation, 800)
        from causal in Gen.Elements(false, false, true)
        from hkv in Gen.Elements(1, 2)
        from groupSize in Gen.Elements(1, 1, 2)
        from dqk in Gen.Elements(8, 32, 64)
        from dvChoice in Gen.Elements(0, 0, 24)
        from layout in Gen.Elements(NeighborhoodLayout.Contiguous, NeighborhoodLayout.HeadsLast)
        from seed in Gen.Choose(0, int.MaxValue)
        from rpb in Gen.Elements(false, true)
        from padSeed in Gen.Elements<int?>(null, null, 1, 2)
        select new NeighborhoodCase
        {
            Rpb = rpb, PadSeed = padSeed, KeyValueHeads = hkv, GroupSize = groupSize, HeadDim = dqk, ValueDim = dvChoice == 0 ? dqk : dvChoice,
            Grid = [length], Kernel = [kernel], Dilation = [dilation], Stride = [1], Causal = [causal], Type = ElementType.Float32, Layout = layout, Seed = seed,
        };

    [SkippableFact]
    public void Neighborhood_OneDimensional_ChainShapes_MatchReference() => CheckCases(ChainCases, count: 16);

    /// <summary>
    /// 1-D float32 problems with dilation 2-8 and a grid that is not a multiple of the dilation: groups of different
    /// lengths, at dilation 2-4 at and around the banded CPU path's item size (256 queries), so that the groups of one
    /// grid have different item counts (a last item of one query); with causal, padding, bias, GQA and Dv != Dqk.
    /// Grids stay near 1000 tokens: the check builds the dense bias of every query row.
    /// </summary>
    public static Gen<NeighborhoodCase> DilatedChunkCases { get; } =
        from dilation in Gen.Elements(2, 3, 4, 4, 5, 8)
        from groupLength in dilation <= 4 ? Gen.Elements(180, 255, 256, 256, 257) : Gen.Choose(20, 120)
        from extra in Gen.Choose(1, dilation - 1)
        from kernel in Gen.Elements(3, 8, 17, 33, 33).Select(k => Math.Min(k, groupLength))
        from causal in Gen.Elements(false, false, true)
        from batch in Gen.Elements(1, 1, 2)
        from groupSize in Gen.Elements(1, 1, 2)
        from dqk in Gen.Elements(8, 16, 64)
        from dvChoice in Gen.Elements(0, 0, 24)
        from layout in Gen.Elements(NeighborhoodLayout.Contiguous, NeighborhoodLayout.HeadsLast)
        from seed in Gen.Choose(0, int.MaxValue)
        from rpb in Gen.Elements(false, true)
        from padSeed in Gen.Elements<int?>(null, null, 1, 2)
        select new NeighborhoodCase
        {
            Rpb = rpb, PadSeed = padSeed, Batch = batch, KeyValueHeads = 1, GroupSize = groupSize, HeadDim = dqk, ValueDim = dvChoice == 0 ? dqk : dvChoice,
            Grid = [groupLength * dilation + extra], Kernel = [kernel], Dilation = [dilation], Stride = [1], Causal = [causal], Type = ElementType.Float32,
            Layout = layout, Seed = seed,
        };

    [SkippableFact]
    public void Neighborhood_OneDimensional_DilatedChunks_MatchReference() => CheckCases(DilatedChunkCases, count: 16);

    [SkippableFact]
    public void Neighborhood_LargerGrids_MatchReference() =>
        // Grids past one query tile, so that several tiles, border shifts and dilation groups meet.
        CheckCases(from c in Cases
                   from grid in Gen.Elements<int[]>([150], [23, 17], [9, 7, 6])
                   from kernel in Gen.Elements(1, 3, 4, 5)
                   from dilation in Gen.Elements(1, 2)
                   from stride in Gen.Elements(1, 2)
                   from causal in Gen.Elements(false, true)
                   let kernels = grid.Select(g => Math.Min(kernel, g / dilation)).ToArray()
                   select c with
                   {
                       Grid = grid, Kernel = kernels, Dilation = grid.Select(_ => dilation).ToArray(),
                       Stride = kernels.Select(k => Math.Min(stride, k)).ToArray(), Causal = grid.Select((_, a) => causal && a == 0).ToArray(),
                       Batch = 1, HeadDim = Math.Min(c.HeadDim, 32), ValueDim = Math.Min(c.ValueDim, 32),
                   }, count: 12);

    [SkippableFact]
    public void Neighborhood_LargeKernels_MatchReference() =>
        // Kernels close to the axis length: a query tile's windows share most of their keys, so key tiles that lie inside
        // every window (full: no mask) meet partial ones, and key tiles span several rows of the union box.
        CheckCases(from c in Cases
                   from grid in Gen.Elements<int[]>([80], [14, 11], [8, 7, 6])
                   from shrink in Gen.Choose(0, 4)
                   from stride in Gen.Elements(1, 1, 2)
                   from causal in Gen.Elements(false, false, true)
                   let kernels = grid.Select(g => Math.Max(1, g - shrink)).ToArray()
                   select c with
                   {
                       Grid = grid, Kernel = kernels, Dilation = grid.Select(_ => 1).ToArray(),
                       Stride = kernels.Select(k => Math.Min(stride, k)).ToArray(), Causal = grid.Select((_, a) => causal && a == 0).ToArray(),
                       Batch = 1, HeadDim = Math.Min(c.HeadDim, 32), ValueDim = Math.Min(c.ValueDim, 32),
                   }, count: 10);

    [SkippableFact]
    public void Neighborhood_TwoDimensionalBoxes_MatchReference() =>
        // 2-D grids, one query head per key/value head, Dv up to 32: on the CPU at 512 bits, 4 x 4 query boxes whose P V
        // runs over each query column's window columns only (interior boxes: consecutive window starts; border boxes: one
        // start; causal columns: windows of different lengths, which take the full block).
        CheckCases(from c in Cases
                   from grid in Gen.Elements<int[]>([23, 17], [12, 20], [16, 16])
                   from kernel in Gen.Elements(3, 4, 5, 7)
                   from dilation in Gen.Elements(1, 1, 2)
                   from causal in Gen.Elements(false, false, true)
                   from valueDim in Gen.Elements(8, 16, 24, 32)
                   let kernels = grid.Select(g => Math.Min(kernel, g / dilation)).ToArray()
                   select c with
                   {
                       Grid = grid, Kernel = kernels, Dilation = grid.Select(_ => dilation).ToArray(), Stride = grid.Select(_ => 1).ToArray(),
                       Causal = grid.Select((_, a) => causal && a == 1).ToArray(), GroupSize = 1,
                       HeadDim = Math.Min(c.HeadDim, 32), ValueDim = valueDim, Batch = Math.Min(c.Batch, 2),
                   }, count: 16);

    [SkippableFact]
    public void Neighborhood_PaddedTwoDimensionalBatches_OneWorker_MatchReference() =>
        // The same 2-D boxes, every batch padded (samples of different valid extents, so items of one key box take
        // different tile counts) and run by one worker, so the order in which a worker meets them (and reuses the key
        // tables of its previous item) is fixed: a reuse that misses a change of tile count shows on every run.
        CheckCases(from c in Cases
                   from grid in Gen.Elements<int[]>([23, 17], [16, 16])
                   from kernel in Gen.Elements(3, 5, 7)
                   from pad in Gen.Elements(1, 2, 3, 4)
                   let kernels = grid.Select(g => Math.Min(kernel, g)).ToArray()
                   select c with
                   {
                       Grid = grid, Kernel = kernels, Dilation = [1, 1], Stride = [1, 1], Causal = [false, false], GroupSize = 1,
                       HeadDim = Math.Min(c.HeadDim, 32), ValueDim = Math.Min(c.ValueDim, 32), Batch = 3, PadSeed = pad,
                   }, count: 10, threads: 1);

    [SkippableFact]
    public void Neighborhood_TransposedValidExtents_OneWorker_MatchReference() =>
        // Two samples whose valid extents are each other's transpose, run by one worker: their key boxes hold as many
        // keys in transposed shapes (8 x 10 and 10 x 8 at 7 x 7 with 4 x 4 query boxes), so a worker that keeps the key
        // tables of its previous item must tell the two boxes apart by their extent, not by their key count.
        CheckCases(from c in Cases
                   from kernel in Gen.Elements(3, 5, 7)
                   from cut in Gen.Choose(1, 2)
                   let shortSide = kernel + cut
                   select c with
                   {
                       Grid = [16, 16], Kernel = [kernel, kernel], Dilation = [1, 1], Stride = [1, 1], Causal = [false, false], GroupSize = 1,
                       HeadDim = Math.Min(c.HeadDim, 32), ValueDim = Math.Min(c.ValueDim, 32), Batch = 2, PadSeed = null,
                       FixedValidExtent = new[,] { { shortSide, 16 }, { 16, shortSide } },
                       // K and V read in place (float32, contiguous): the tables' strides are then the same for both
                       // samples (packed, they follow each item's union of boxes and differ anyway).
                       Type = ElementType.Float32, Layout = NeighborhoodLayout.Contiguous,
                   }, count: 6, threads: 1);

    [SkippableFact]
    public void Neighborhood_EveryVectorWidth_MatchesReference()
    {
        Skip.If(Backend != Backend.Cpu, "Vector widths are a CPU notion.");
        foreach (int bits in new[] { 0, 128, 256, 512 }.Where(b => b <= Cpu.CpuFeatures.VectorBits))
            CheckCases(Cases, count: 8, vectorBits: bits);
    }

    [SkippableFact]
    public void Neighborhood_ManyQueryHeadsPerKeyValueHead_MatchesReference()
    {
        // Groups wider than a column group (4 columns scalar, 16 at 128 bits, 64 at 512) split an item's columns into
        // several column groups, each with its own union and intersection of windows.
        var wide = from c in Cases from g in Gen.Elements(5, 9, 20, 70) select c with { GroupSize = g, KeyValueHeads = 1, Batch = 1 };
        if (Backend == Backend.Cpu)
            foreach (int bits in new[] { 0, 128 }.Where(b => b <= Cpu.CpuFeatures.VectorBits))
                CheckCases(wide, count: 6, vectorBits: bits);
        CheckCases(wide, count: 6);
    }

    // ---- Metamorphic properties against the backend's own flash attention ----

    private static readonly Gen<NeighborhoodCase> Float32Cases = Cases.Select(c => c with { Type = ElementType.Float32, Extra = 0, Rpb = false, PadSeed = null });

    /// <summary>Runs flash on <c>[B, H, n, D]</c> copies of the given logical rows; returns the output rows.</summary>
    private static double[] Flash(AttentionContext context, NeighborhoodCase c, double[] q, double[] k, double[] v, int tokens, FlashOptions options)
    {
        TensorView Make(double[] data, int heads, int dim)
        {
            var t = Tensor(ElementType.Float32, NeighborhoodLayout.Contiguous, [c.Batch, heads, tokens, dim], null, 1);
            t.CopyFrom(data);
            return t;
        }
        var o = Tensor(ElementType.Float32, NeighborhoodLayout.Contiguous, [c.Batch, c.QueryHeads, tokens, c.ValueDim], null, 1);
        using var on = new OnContext(context);
        var placed = on.Put(o);
        context.Flash(on.Put(Make(q, c.QueryHeads, c.HeadDim)), on.Put(Make(k, c.KeyValueHeads, c.HeadDim)), on.Put(Make(v, c.KeyValueHeads, c.ValueDim)), placed, options with { Scale = c.Scale });
        on.Back(placed, o);
        return o.ToDoubleArray();
    }

    private static void AssertNear(double[] expected, double[] actual, string what, double tolerance = 2e-5)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Select(Math.Abs).DefaultIfEmpty(0).Max();
        for (int i = 0; i < expected.Length; i++)
            if (!(Math.Abs(expected[i] - actual[i]) <= tolerance * (1 + scale)) && !(expected[i] == actual[i]))
                Assert.Fail($"{what}: element {i} is {actual[i]}, expected {expected[i]}");
    }

    /// <summary>
    /// Rows <c>[B, H, tokens, D]</c> of <paramref name="rows"/> gathered for the tokens <paramref name="select"/> lists
    /// (grid-flat indices), as <c>[B, H, select.Length, D]</c>.
    /// </summary>
    private static double[] Gather(double[] rows, int batchHeads, int tokens, int dim, int[] select)
    {
        var result = new double[(long)batchHeads * select.Length * dim];
        for (int bh = 0; bh < batchHeads; bh++)
            for (int i = 0; i < select.Length; i++)
                Array.Copy(rows, ((long)bh * tokens + select[i]) * dim, result, ((long)bh * select.Length + i) * dim, dim);
        return result;
    }

    private static void Scatter(double[] rows, double[] into, int batchHeads, int tokens, int dim, int[] select)
    {
        for (int bh = 0; bh < batchHeads; bh++)
            for (int i = 0; i < select.Length; i++)
                Array.Copy(rows, ((long)bh * select.Length + i) * dim, into, ((long)bh * tokens + select[i]) * dim, dim);
    }

    /// <summary>Grid-flat indices of the tokens whose coordinates satisfy <paramref name="keep"/>, in row-major order.</summary>
    private static int[] Tokens(int[] grid, Func<int[], bool> keep)
    {
        var result = new List<int>();
        int tokens = grid.Aggregate(1, (a, b) => a * b);
        var coordinate = new int[grid.Length];
        for (int t = 0; t < tokens; t++)
        {
            for (int a = grid.Length - 1, rest = t; a >= 0; rest /= grid[a], a--) coordinate[a] = rest % grid[a];
            if (keep(coordinate)) result.Add(t);
        }
        return result.ToArray();
    }

    private void CheckMetamorphic(Gen<NeighborhoodCase> cases, int count, Func<AttentionContext, NeighborhoodCase, NeighborhoodData, double[]> expected)
    {
        using var context = CreateContext();
        Properties.Check(Arb.From(cases), c =>
        {
            var data = NeighborhoodData.Create(c);
            data.Run(context, withLse: false);
            AssertNear(expected(context, c, data), data.Output.ToDoubleArray(), c.ToString());
        }, count);
    }

    [SkippableFact]
    public void Neighborhood_KernelEqualToGrid_EqualsFullFlash() =>
        // Contiguous layouts take the dense flash path; padded ones cannot be flattened and run the tiled kernel.
        CheckMetamorphic(from c in Float32Cases from layout in Gen.Elements(NeighborhoodLayout.Contiguous, NeighborhoodLayout.Padded)
                         select c with { Kernel = c.Grid, Dilation = c.Grid.Select(_ => 1).ToArray(), Stride = c.Grid.Select((g, a) => Math.Min(c.Stride[a], g)).ToArray(),
                                         Causal = c.Grid.Select(_ => false).ToArray(), Layout = layout },
            count: 16, (context, c, d) => Flash(context, c, d.Query.ToDoubleArray(), d.Key.ToDoubleArray(), d.Value.ToDoubleArray(), c.Tokens, new FlashOptions()));

    [SkippableFact]
    public void Neighborhood_StrideEqualToKernel_EqualsOneFlashCallPerBlock() =>
        // Lengths are whole multiples of the kernel, so every block is a full tile of its own.
        CheckMetamorphic(from c in Float32Cases
                         from blocks in Gen.Choose(1, 3).ArrayOf(c.Grid.Length)
                         select c with
                         {
                             Grid = c.Kernel.Select((k, a) => Math.Max(1, Math.Min(k, 5)) * blocks[a]).ToArray(),
                             Kernel = c.Kernel.Select(k => Math.Max(1, Math.Min(k, 5))).ToArray(),
                             Stride = c.Kernel.Select(k => Math.Max(1, Math.Min(k, 5))).ToArray(),
                             Dilation = c.Grid.Select(_ => 1).ToArray(), Causal = c.Grid.Select(_ => false).ToArray(),
                         },
            count: 16, (context, c, d) =>
            {
                var q = d.Query.ToDoubleArray();
                var k = d.Key.ToDoubleArray();
                var v = d.Value.ToDoubleArray();
                var result = new double[(long)c.Batch * c.QueryHeads * c.Tokens * c.ValueDim];
                int[] perAxis = c.Grid.Select((g, a) => g / c.Kernel[a]).ToArray();
                foreach (int[] block in Tokens(perAxis, _ => true).Select(t => Coordinates(perAxis, t)))
                {
                    var select = Tokens(c.Grid, x => x.Select((xi, a) => xi / c.Kernel[a] == block[a]).All(b => b));
                    var o = Flash(context, c, Gather(q, c.Batch * c.QueryHeads, c.Tokens, c.HeadDim, select), Gather(k, c.Batch * c.KeyValueHeads, c.Tokens, c.HeadDim, select),
                        Gather(v, c.Batch * c.KeyValueHeads, c.Tokens, c.ValueDim, select), select.Length, new FlashOptions());
                    Scatter(o, result, c.Batch * c.QueryHeads, c.Tokens, c.ValueDim, select);
                }
                return result;
            });

    private static int[] Coordinates(int[] grid, int t)
    {
        var coordinate = new int[grid.Length];
        for (int a = grid.Length - 1; a >= 0; t /= grid[a], a--) coordinate[a] = t % grid[a];
        return coordinate;
    }

    [SkippableFact]
    public void Neighborhood_Dilation_EqualsIndependentSubGrids()
    {
        using var context = CreateContext();
        var cases = from c in Float32Cases
                    from dilation in Gen.Elements(2, 3).ArrayOf(c.Grid.Length)
                    select c with { Dilation = c.Grid.Select((g, a) => Math.Max(1, Math.Min(dilation[a], g / c.Kernel[a]))).ToArray() };
        Properties.Check(Arb.From(cases), c =>
        {
            var data = NeighborhoodData.Create(c);
            data.Run(context, withLse: false);
            var actual = data.Output.ToDoubleArray();
            var expected = new double[actual.Length];
            // One dilation-1 call per combination of per-axis groups, on the sub-grid of that group's positions.
            int[] groupCounts = c.Dilation;
            foreach (int[] group in Tokens(groupCounts, _ => true).Select(t => Coordinates(groupCounts, t)))
            {
                var select = Tokens(c.Grid, x => x.Select((xi, a) => xi % c.Dilation[a] == group[a]).All(b => b));
                int[] subGrid = c.Grid.Select((g, a) => (g - group[a] + c.Dilation[a] - 1) / c.Dilation[a]).ToArray();
                var sub = c with { Grid = subGrid, Dilation = subGrid.Select(_ => 1).ToArray(), Layout = NeighborhoodLayout.Contiguous };
                var subData = NeighborhoodData.Create(sub);
                subData.Query.CopyFrom(Gather(data.Query.ToDoubleArray(), c.Batch * c.QueryHeads, c.Tokens, c.HeadDim, select));
                subData.Key.CopyFrom(Gather(data.Key.ToDoubleArray(), c.Batch * c.KeyValueHeads, c.Tokens, c.HeadDim, select));
                subData.Value.CopyFrom(Gather(data.Value.ToDoubleArray(), c.Batch * c.KeyValueHeads, c.Tokens, c.ValueDim, select));
                subData.Run(context, withLse: false);
                Scatter(subData.Output.ToDoubleArray(), expected, c.Batch * c.QueryHeads, c.Tokens, c.ValueDim, select);
            }
            AssertNear(expected, actual, c.ToString());
        }, 16);
    }

    [SkippableFact]
    public void Neighborhood_Causal1D_EqualsCausalSlidingWindowFlash() =>
        CheckMetamorphic(from c in Float32Cases
                         from length in Gen.Choose(1, 200)
                         from kernel in Gen.Choose(1, length)
                         select c with { Grid = [length], Kernel = [kernel], Dilation = [1], Stride = [1], Causal = [true] },
            count: 16, (context, c, d) => Flash(context, c, d.Query.ToDoubleArray(), d.Key.ToDoubleArray(), d.Value.ToDoubleArray(), c.Tokens,
                new FlashOptions { Causal = true, WindowLeft = c.Kernel[0] - 1 }));

    [SkippableFact]
    public void Neighborhood_SizeOneAxis_Equals2DGrid()
    {
        using var context = CreateContext();
        var cases = from c0 in Float32Cases
                    from axes in Axis(9).ArrayOf(2)
                    let c = c0 with
                    {
                        Grid = axes.Select(a => a.Length).ToArray(), Kernel = axes.Select(a => a.Kernel).ToArray(), Dilation = axes.Select(a => a.Dilation).ToArray(),
                        Stride = axes.Select(a => a.Stride).ToArray(), Causal = axes.Select(a => a.Causal).ToArray(),
                    }
                    from at in Gen.Choose(0, 2)
                    from causal in Gen.Elements(false, true)
                    select (c, at, causal);
        Properties.Check(Arb.From(cases), x =>
        {
            var (c, at, causal) = x;
            var flat = NeighborhoodData.Create(c);
            flat.Run(context);
            int[] Insert(int[] values, int value) => [.. values[..at], value, .. values[at..]];
            var c3 = c with
            {
                Grid = Insert(c.Grid, 1), Kernel = Insert(c.Kernel, 1), Dilation = Insert(c.Dilation, 1), Stride = Insert(c.Stride, 1),
                Causal = [.. c.Causal[..at], causal, .. c.Causal[at..]],
            };
            var cube = NeighborhoodData.Create(c3);
            cube.Run(context);
            AssertNear(flat.Output.ToDoubleArray(), cube.Output.ToDoubleArray(), c3.ToString());
            AssertNear(flat.LogSumExp.ToDoubleArray(), cube.LogSumExp.ToDoubleArray(), c3.ToString() + " (LSE)");
        }, 16);
    }

    [SkippableFact]
    public void Neighborhood_StrideLargerThanKernel_ThrowsNamingStride()
    {
        using var context = CreateContext();
        var data = NeighborhoodData.Create(new NeighborhoodCase());
        var ex = Assert.ThrowsAny<ArgumentException>(() => context.Neighborhood(data.Query, data.Key, data.Value, data.Output,
            new NeighborhoodOptions { KernelSize = [3], Stride = [4] }));
        Assert.Contains("options.Stride", ex.ParamName ?? ex.Message);
    }

    [SkippableFact]
    public void Neighborhood_Padding_EqualsRunningTheCroppedGrid()
    {
        // Every option (RPB, additional keys, GQA, dtypes, layouts) with a valid extent per sample: each sample's valid
        // box equals a call on that box alone; padding queries are exactly zero with LSE -inf.
        using var context = CreateContext();
        var cases = from c in Cases select c with { PadSeed = c.Seed % 1000 + 1 };
        Properties.Check(Arb.From(cases), c =>
        {
            var data = NeighborhoodData.Create(c);
            data.Run(context);
            var extent = c.ValidExtent()!;
            var output = data.Output;
            var lse = data.LogSumExp;
            for (int b = 0; b < c.Batch; b++)
            {
                int[] box = Enumerable.Range(0, c.Grid.Length).Select(a => extent[b, a]).ToArray();
                TensorView Crop(TensorView view, int spatialFrom = 2)
                {
                    view = view.Slice(0, b, 1);
                    for (int a = 0; a < box.Length; a++) view = view.Slice(spatialFrom + a, 0, box[a]);
                    return view;
                }
                var sub = c with { Batch = 1, Grid = box, PadSeed = null, Layout = NeighborhoodLayout.Contiguous };
                var subData = NeighborhoodData.Create(sub);
                subData.Query.CopyFrom(Crop(data.Query).ToDoubleArray());
                subData.Key.CopyFrom(Crop(data.Key).ToDoubleArray());
                subData.Value.CopyFrom(Crop(data.Value).ToDoubleArray());
                if (c.Extra > 0)
                {
                    subData.ExtraKeys!.Value.CopyFrom(data.ExtraKeys!.Value.Slice(0, b, 1).ToDoubleArray());
                    subData.ExtraValues!.Value.CopyFrom(data.ExtraValues!.Value.Slice(0, b, 1).ToDoubleArray());
                }
                if (c.Rpb) subData.Bias!.Value.CopyFrom(data.Bias!.Value.ToDoubleArray());
                subData.Run(context);
                // The same kernel on the same rows: equal up to float32 reassociation, scaled to the storage type.
                double tolerance = c.Type == ElementType.Float32 ? 2e-5 : c.Type == ElementType.Float16 ? 2e-3 : 2e-2;
                AssertNear(subData.Output.ToDoubleArray(), Crop(output).ToDoubleArray(), c + $" sample {b}", tolerance);
                AssertNear(subData.LogSumExp.ToDoubleArray(), Crop(lse).ToDoubleArray(), c + $" sample {b} (LSE)", 2e-5);
                // Padding rows: zero output and -inf LSE.
                var all = output.Slice(0, b, 1).ToDoubleArray();
                var allLse = lse.Slice(0, b, 1).ToDoubleArray();
                int tokens = c.Tokens;
                for (int h = 0; h < c.QueryHeads; h++)
                    for (int t = 0; t < tokens; t++)
                    {
                        var x = Coordinates(c.Grid, t);
                        if (x.Select((xi, a) => xi < box[a]).All(inside => inside)) continue;
                        Assert.Equal(double.NegativeInfinity, allLse[h * tokens + t]);
                        for (int d = 0; d < c.ValueDim; d++) Assert.Equal(0.0, all[((long)h * tokens + t) * c.ValueDim + d]);
                    }
            }
        }, 16);
    }

    [SkippableFact]
    public void Neighborhood_BadInput_ThrowsNamingTheOptionBeforeAnyKernelRuns()
    {
        using var context = CreateContext();
        var data = NeighborhoodData.Create(new NeighborhoodCase { Batch = 2, Grid = [8], Kernel = [3] });
        void Throws(NeighborhoodOptions options, string name)
        {
            var ex = Assert.ThrowsAny<ArgumentException>(() => context.Neighborhood(data.Query, data.Key, data.Value, data.Output, options, data.LogSumExp));
            Assert.Equal(name, ex.ParamName);
        }
        var options = new NeighborhoodOptions { KernelSize = [3] };
        Throws(options with { KernelSize = [9] }, "options.KernelSize");                        // larger than the axis
        Throws(options with { KernelSize = [3], Dilation = [3] }, "options.KernelSize");        // 3 * 3 > 8
        Throws(options with { Dilation = [0] }, "options.Dilation");
        Throws(options with { Stride = [4] }, "options.Stride");                                // stride > kernel
        Throws(options with { Stride = [0] }, "options.Stride");
        Throws(options with { KernelSize = [3, 3] }, "options.KernelSize");                     // one entry per axis
        Throws(options with { RelativePositionBias = TestTensors.Zeros(ElementType.Float32, [1, 3]) }, "options.RelativePositionBias");
        Throws(options with { RelativePositionBias = TestTensors.Zeros(ElementType.Float32, [2, 5]) }, "options.RelativePositionBias");
        Throws(options with { ValidExtent = new[,] { { 8 } } }, "options.ValidExtent");          // one sample of two
        Throws(options with { ValidExtent = new[,] { { 8 }, { 2 } } }, "options.ValidExtent");   // kernel does not fit
        Throws(options with { ValidExtent = new[,] { { 8 }, { 9 } } }, "options.ValidExtent");   // past the axis
        // Nothing was written.
        Assert.All(data.Output.ToDoubleArray(), x => Assert.Equal(0.0, x));
    }

}

[Trait("Backend", "Cpu")]
public sealed class CpuNeighborhoodTests : NeighborhoodTests
{
    protected override Backend Backend => Backend.Cpu;
}

[Trait("Backend", "OpenCl")]
public sealed class OpenClNeighborhoodTests : NeighborhoodTests
{
    protected override Backend Backend => Backend.OpenCl;

    /// <summary>The local memory every OpenCL device has (Apple, Mali and some Intel and Qualcomm devices have no more).</summary>
    private const int MinimumLocalMemory = 32 * 1024;

    /// <summary>
    /// On a device with 32 KB of local memory (a pretend limit on the context), head dims 128 and 256 run the kernel
    /// with half-size key tiles, over every option the random cases draw, and match the reference; the plain variants
    /// that would not fit are never built.
    /// </summary>
    [SkippableFact]
    public void Neighborhood_On32KLocalMemory_SmallTileVariant_MatchesReference()
    {
        using var context = (NativeAttention.Gpu.OpenCl.OpenClContext)TestBackend.CreateOrSkip(Backend, threads: 2);
        context.LocalMemoryLimit = MinimumLocalMemory;
        var cases = from c in Cases
                    from d in Gen.Elements(72, 128, 160, 256)
                    from dv in Gen.Elements(d, d, 8, 200)
                    select c with { HeadDim = d, ValueDim = dv, Batch = 1 };
        Properties.Check(Arb.From(cases), c =>
        {
            var data = NeighborhoodData.Create(c);
            data.Run(context);
            var result = Check(c, data);
            if (!result.Passed) Assert.Fail($"{c}: {result}");
        }, 10);
        var variants = NativeAttention.Gpu.NeighborhoodVariant.AllVariants(NativeAttention.Gpu.KernelApi.OpenCl).Cast<NativeAttention.Gpu.NeighborhoodVariant>().ToArray();
        Assert.Contains(variants, v => v.SmallTile && context.HasModule(v.Name));
        Assert.DoesNotContain(variants, v => !v.SmallTile && v.LocalBytes > MinimumLocalMemory && context.HasModule(v.Name));
    }

    /// <summary>
    /// The host picks a neighborhood variant by <see cref="NativeAttention.Gpu.NeighborhoodVariant.LocalBytes"/>: that
    /// must be what each compiled kernel declares (as OpenCL reports it), and every small-tile variant must fit 32 KB.
    /// </summary>
    [SkippableFact]
    public void NeighborhoodKernels_DeclareTheLocalMemoryTheHostAssumes_AndTheSmallTileOnesFit32K()
    {
        using var context = (NativeAttention.Gpu.OpenCl.OpenClContext)TestBackend.CreateOrSkip(Backend);
        var api = NativeAttention.Gpu.KernelApi.OpenCl;
        var variants = NativeAttention.Gpu.NeighborhoodVariant.AllVariants(api).Cast<NativeAttention.Gpu.NeighborhoodVariant>()
            .Where(v => v.ElementType == ElementType.Float32).ToArray();
        foreach (var variant in variants)
        {
            using var module = context.BuildSource(variant.Source(api), NativeAttention.Gpu.NeighborhoodVariant.EntryPoint);
            long bytes = module.LocalMemoryBytes(context.Device);
            Assert.True(bytes == variant.LocalBytes, $"{variant.Name}: OpenCL reports {bytes} bytes of local memory, the host assumes {variant.LocalBytes}");
            if (variant.SmallTile) Assert.True(bytes <= MinimumLocalMemory, $"{variant.Name}: {bytes} bytes of local memory");
            else if (bytes > MinimumLocalMemory) Assert.Contains(variant with { SmallTile = true }, variants);
        }
        foreach (int d in NativeAttention.Gpu.FlashVariant.HeadDimBuckets.ToArray())
            Assert.Contains(variants, v => v.HeadDim == d && v.LocalBytes <= MinimumLocalMemory);
    }
}

[Trait("Backend", "Cuda")]
public sealed class CudaNeighborhoodTests : NeighborhoodTests
{
    protected override Backend Backend => Backend.Cuda;
}
