// The neighborhood family's case (NATTEN semantics): a 1-D, 2-D or 3-D token grid with per-axis kernel size,
// dilation, stride and causality, optional additional keys, relative-position bias and padding; kernels on every backend.
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

namespace NativeAttention;

/// <summary>
/// A reproducible <see cref="AttentionContext.Neighborhood"/> problem. Q is <c>[B, Hq, X.., Dqk]</c>, K and V
/// <c>[B, Hkv, X.., D]</c>, drawn uniformly from <c>[-InputScale, InputScale]</c>; <see cref="AdditionalKeys"/> extra
/// key/value tokens (visible to every query) are drawn after them. Equality is equality of <see cref="ToSpec"/>.
/// </summary>
public sealed record NeighborhoodCase : IAttentionCase
{
    /// <summary>Names of the additional key and value tensors in <see cref="CaseTensors"/>.</summary>
    public const string AdditionalKeysName = "options.AdditionalKeys", AdditionalValuesName = "options.AdditionalValues";

    /// <summary>Name of the relative-position bias tensor in <see cref="CaseTensors"/>.</summary>
    public const string RelativePositionBiasName = "options.RelativePositionBias";

    private const string Grammar =
        "dtype (f32|f16|bf16), B<batch>, H<q>/<kv> or H<h>, grid=<x>[x<y>[x<z>]] (or N<n> for a 1-D grid), k=<kernel per axis> " +
        "(one number: every axis; default 3), dil=<per axis>, stride=<per axis>, causal (every axis) or causal=<0|1 per axis>, " +
        "D<qk>/<v> or D<d>, extra=<additional tokens>, rpb (a relative-position bias), valid=<extent per axis> (of the last sample; " +
        "earlier samples are whole), scale=<x>, amp=<input scale>, qamp=<query scale>, seed=<int>";

    /// <summary>The neighborhood family (CPU, OpenCL and CUDA kernels).</summary>
    public static CaseFamily Registration { get; } = new("neighborhood", "neighborhood attention on 1-D to 3-D grids (NATTEN)", Grammar, Parse, HasKernels: true,
    [
        "neighborhood f32 B1 H2/1 grid=33 k=7 D32/32 seed=51",
        "neighborhood f16 B2 H2/2 grid=12x10 k=5x3 D16/16 dil=2x1 stride=1x3 causal=0x1 extra=4 seed=52",
        "neighborhood bf16 B1 H4/2 grid=6x5x4 k=3 D16/24 causal seed=53",
        "neighborhood f32 B2 H4/2 grid=11x9 k=5x3 D16/16 dil=1x2 rpb valid=7x8 extra=2 seed=54",
        "neighborhood f16 B1 H2/1 grid=9x9 k=5 D32/32 extra=3 amp=0.001 qamp=1000 seed=55",
    ])
    {
        Sample = Sample,
    };

    /// <summary>
    /// A random neighborhood problem: 1 to 3 axes (lengths up to 40, 11, 6), kernel, dilation, stride and causal flags
    /// per axis, B 1..2, GQA, Dqk/Dv weighted to common sizes, any dtype, sometimes additional keys, a relative-position
    /// bias or a valid extent.
    /// </summary>
    public static NeighborhoodCase Sample(Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        int axes = random.Next(1, 4);
        int maxLength = axes switch { 1 => 40, 2 => 11, _ => 6 };
        var grid = new int[axes];
        var kernel = new int[axes];
        var dilation = new int[axes];
        var stride = new int[axes];
        var causal = new bool[axes];
        for (int a = 0; a < axes; a++)
        {
            grid[a] = random.Next(1, maxLength + 1);
            dilation[a] = random.Next(4) == 0 ? Math.Min(grid[a], random.Next(2, 4)) : 1;
            kernel[a] = random.Next(1, grid[a] / dilation[a] + 1);
            stride[a] = random.Next(3) == 0 ? random.Next(1, kernel[a] + 1) : 1;
            causal[a] = random.Next(4) == 0;
        }
        int[]? valid = null;
        if (random.Next(4) == 0)
            valid = [.. Enumerable.Range(0, axes).Select(a => random.Next(kernel[a] * dilation[a], grid[a] + 1))];
        int[] dims = [1, 4, 8, 16, 19, 32, 64];
        int kv = random.Next(1, 3), dqk = dims[random.Next(dims.Length)];
        ElementType[] types = [ElementType.Float32, ElementType.Float32, ElementType.Float16, ElementType.BFloat16];
        return new NeighborhoodCase
        {
            ElementType = types[random.Next(types.Length)], Batch = random.Next(1, 3), KeyValueHeads = kv, QueryHeads = kv * random.Next(1, 4),
            Grid = grid, KernelSize = kernel, Dilation = dilation, Stride = stride, Causal = causal,
            HeadDim = dqk, ValueDim = random.Next(3) == 0 ? dims[random.Next(dims.Length)] : dqk,
            AdditionalKeys = random.Next(4) == 0 ? random.Next(1, 7) : 0, RelativePositionBias = random.Next(3) == 0, ValidExtent = valid,
            Seed = random.Next(), InputScale = random.Next(3) == 0 ? 4 : 1,
        };
    }

    /// <summary>Storage type of Q, K, V and O.</summary>
    public ElementType ElementType { get; init; } = ElementType.Float32;
    /// <summary>Batch size B.</summary>
    public int Batch { get; init; } = 1;
    /// <summary>Query heads Hq.</summary>
    public int QueryHeads { get; init; } = 1;
    /// <summary>Key/value heads Hkv (divides Hq).</summary>
    public int KeyValueHeads { get; init; } = 1;
    /// <summary>The spatial shape: one to three axis lengths.</summary>
    public int[] Grid { get; init; } = [1];
    /// <summary>Kernel size per axis (null: 3, or less where the axis is shorter).</summary>
    public int[]? KernelSize { get; init; }
    /// <summary>Dilation per axis (null: 1).</summary>
    public int[]? Dilation { get; init; }
    /// <summary>Query stride per axis (null: 1).</summary>
    public int[]? Stride { get; init; }
    /// <summary>Causal flag per axis (null: none).</summary>
    public bool[]? Causal { get; init; }
    /// <summary>Query/key head dimension.</summary>
    public int HeadDim { get; init; } = 64;
    /// <summary>Value head dimension.</summary>
    public int ValueDim { get; init; } = 64;
    /// <summary>Additional key/value tokens every query sees (0: none).</summary>
    public int AdditionalKeys { get; init; }
    /// <summary>Score scale (null: <c>1 / sqrt(Dqk)</c>).</summary>
    public float? Scale { get; init; }
    /// <summary>A float32 relative-position bias <c>[Hq, 2k-1 per axis]</c>, drawn after the other inputs.</summary>
    public bool RelativePositionBias { get; init; }
    /// <summary>The valid extent per axis of the last sample (earlier samples are whole); null: every sample is whole.</summary>
    public int[]? ValidExtent { get; init; }

    /// <summary>The valid extent of sample <paramref name="sample"/> on axis <paramref name="axis"/>.</summary>
    private int ExtentOf(int sample, int axis) => ValidExtent is { } e && sample == Batch - 1 ? e[axis] : Grid[axis];
    /// <summary>Seed of the input generator.</summary>
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
    public string KernelName => "neighborhood";

    private int Tokens => Grid.Aggregate(1, (a, b) => a * b);

    /// <inheritdoc/>
    public CaseSizes Sizes => new(Batch, QueryHeads, KeyValueHeads, Tokens, Tokens + AdditionalKeys, HeadDim, ValueDim);

    /// <inheritdoc/>
    public bool IsMemoryBound => false;

    /// <summary>The kernel size of axis <paramref name="axis"/>.</summary>
    public int KernelOf(int axis) => KernelSize?[axis] ?? Math.Max(1, Math.Min(3, Grid[axis] / DilationOf(axis)));

    private int DilationOf(int axis) => Dilation?[axis] ?? 1;

    /// <summary>The options of a run on <paramref name="tensors"/> (additional keys taken from them).</summary>
    public NeighborhoodOptions OptionsFor(CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        return new NeighborhoodOptions
        {
            KernelSize = [.. Enumerable.Range(0, Grid.Length).Select(KernelOf)],
            Dilation = Dilation, Stride = Stride, Causal = Causal, Scale = Scale,
            AdditionalKeys = tensors.Find(AdditionalKeysName), AdditionalValues = tensors.Find(AdditionalValuesName),
            RelativePositionBias = tensors.Find(RelativePositionBiasName),
            ValidExtent = ValidExtent is null ? null : ValidExtents(),
        };
    }

    private int[,] ValidExtents()
    {
        var extents = new int[Batch, Grid.Length];
        for (int b = 0; b < Batch; b++)
            for (int a = 0; a < Grid.Length; a++) extents[b, a] = ExtentOf(b, a);
        return extents;
    }

    /// <inheritdoc/>
    public CaseTensors CreateTensors()
    {
        if (Problem() is { } problem) throw new ArgumentException($"The case \"{ToSpec()}\" is not a valid problem: {problem}.", "case");
        var random = new Random(Seed);
        var tensors = new List<CaseTensor>
        {
            new(CaseTensors.QueryName, CaseData.Random(ElementType, [Batch, QueryHeads, .. Grid, HeadDim], random, QueryScale ?? InputScale), CaseTensorRole.Input),
            new(CaseTensors.KeyName, CaseData.Random(ElementType, [Batch, KeyValueHeads, .. Grid, HeadDim], random, InputScale), CaseTensorRole.Input),
            new(CaseTensors.ValueName, CaseData.Random(ElementType, [Batch, KeyValueHeads, .. Grid, ValueDim], random, InputScale), CaseTensorRole.Input),
        };
        if (AdditionalKeys > 0)
        {
            tensors.Add(new(AdditionalKeysName, CaseData.Random(ElementType, [Batch, KeyValueHeads, AdditionalKeys, HeadDim], random, InputScale), CaseTensorRole.Option));
            tensors.Add(new(AdditionalValuesName, CaseData.Random(ElementType, [Batch, KeyValueHeads, AdditionalKeys, ValueDim], random, InputScale), CaseTensorRole.Option));
        }
        if (RelativePositionBias)
            tensors.Add(new(RelativePositionBiasName, CaseData.Random(ElementType.Float32, [QueryHeads, .. Enumerable.Range(0, Grid.Length).Select(a => 2 * KernelOf(a) - 1)], random, 1.0),
                CaseTensorRole.Option));
        tensors.Add(new(CaseTensors.OutputName, CaseData.Zeros(ElementType, [Batch, QueryHeads, .. Grid, ValueDim]), CaseTensorRole.Output));
        tensors.Add(new(CaseTensors.LogSumExpName, CaseData.Zeros(ElementType.Float32, [Batch, QueryHeads, .. Grid]), CaseTensorRole.Output));
        return new CaseTensors(tensors);
    }

    /// <summary>Calls <see cref="AttentionContext.Neighborhood"/>.</summary>
    public void Invoke(AttentionContext context, CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(tensors);
        context.Neighborhood(tensors.Query, tensors.Key, tensors.Value, tensors.Output, OptionsFor(tensors), tensors.LogSumExp);
    }

    /// <inheritdoc/>
    public ReferenceResult ExactReference(CaseTensors tensors) =>
        Reference.Neighborhood(tensors.Query, tensors.Key, tensors.Value, OptionsFor(tensors));

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
        double valueScale = Math.Max(CaseData.MaxAbs(tensors.Value), tensors.Find(AdditionalValuesName) is { } ev ? CaseData.MaxAbs(ev) : 0);
        return CaseVerifier.CompareToReference(exact, CaseData.Rounded(exact, ElementType), tensors.Output, tensors.LogSumExp, ElementType, valueScale);
    }

    /// <summary>FLOPs on visible pairs: (2 Dqk + 2 Dv) per (query, visible key), additional keys included.</summary>
    public double Flops()
    {
        double total = 0;
        for (int b = 0; b < Batch; b++)
        {
            // Padding queries (past the sample's valid extent) see nothing; valid ones see windows inside the extent.
            long pairs = 1, queries = 1;
            for (int a = 0; a < Grid.Length; a++)
            {
                int extent = ExtentOf(b, a);
                long axisSum = 0;
                for (int x = 0; x < extent; x++)
                    axisSum += NeighborhoodProblem.WindowOnAxis(x, extent, KernelOf(a), DilationOf(a), Stride?[a] ?? 1, Causal?[a] ?? false).Count;
                pairs *= axisSum;
                queries *= extent;
            }
            total += pairs + (double)queries * AdditionalKeys;
        }
        return total * QueryHeads * (2.0 * HeadDim + 2.0 * ValueDim);
    }

    /// <summary>Bytes of Q, K, V, the additional tokens and O, each once.</summary>
    public double MinimumBytes() =>
        (double)ElementType.SizeOf() * Batch *
        ((double)QueryHeads * Tokens * (HeadDim + ValueDim) + (double)KeyValueHeads * (Tokens + AdditionalKeys) * (HeadDim + ValueDim));

    /// <inheritdoc/>
    public string ToSpec()
    {
        var spec = new StringBuilder();
        spec.Append(CultureInfo.InvariantCulture,
            $"neighborhood {AttentionCase.TypeName(ElementType)} B{Batch} H{QueryHeads}/{KeyValueHeads} grid={SpecTokens.Join(Grid, 'x')}");
        if (KernelSize is { } k) spec.Append(" k=").Append(SpecTokens.Join(k, 'x'));
        spec.Append(CultureInfo.InvariantCulture, $" D{HeadDim}/{ValueDim}");
        if (Dilation is { } d) spec.Append(" dil=").Append(SpecTokens.Join(d, 'x'));
        if (Stride is { } s) spec.Append(" stride=").Append(SpecTokens.Join(s, 'x'));
        if (Causal is { } c) spec.Append(" causal=").Append(SpecTokens.Join(c.Select(b => b ? 1 : 0), 'x'));
        if (AdditionalKeys > 0) spec.Append(CultureInfo.InvariantCulture, $" extra={AdditionalKeys}");
        if (RelativePositionBias) spec.Append(" rpb");
        if (ValidExtent is { } valid) spec.Append(" valid=").Append(SpecTokens.Join(valid, 'x'));
        if (Scale is float scale) spec.Append(" scale=").Append(SpecTokens.Number(scale));
        return SpecTokens.Finish(spec, InputScale, Seed, QueryScale);
    }

    /// <summary>The spec.</summary>
    public override string ToString() => ToSpec();

    /// <summary>Cases are equal when they write the same spec (which names every field).</summary>
    public bool Equals(NeighborhoodCase? other) => other is not null && ToSpec() == other.ToSpec();

    /// <inheritdoc/>
    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(ToSpec());

    /// <inheritdoc/>
    public IEnumerable<IAttentionCase> Shrink()
    {
        if (Batch > 1) yield return this with { Batch = 1 };
        if (QueryHeads > KeyValueHeads) yield return this with { QueryHeads = KeyValueHeads };
        if (AdditionalKeys > 0) yield return this with { AdditionalKeys = 0 };
        if (RelativePositionBias) yield return this with { RelativePositionBias = false };
        if (ValidExtent is not null) yield return this with { ValidExtent = null };
        if (HeadDim > 1) yield return this with { HeadDim = HeadDim / 2 };
        if (ValueDim > 1) yield return this with { ValueDim = ValueDim / 2 };
        if (ElementType != ElementType.Float32) yield return this with { ElementType = ElementType.Float32 };
        if (QueryScale is not null) yield return this with { InputScale = 1, QueryScale = null };
    }

    /// <summary>Why this is not a valid problem, or null.</summary>
    internal string? Problem()
    {
        if (Grid is not { Length: >= 1 and <= 3 } grid) return "grid= takes one to three axis lengths";
        int axes = grid.Length;
        if (Batch < 1 || QueryHeads < 1 || KeyValueHeads < 1 || HeadDim < 1 || ValueDim < 1 || grid.Any(g => g < 1) || AdditionalKeys < 0)
            return "every size must be at least 1";
        if (QueryHeads % KeyValueHeads != 0) return $"query heads ({QueryHeads}) must be a multiple of key/value heads ({KeyValueHeads})";
        if ((KernelSize is { } k && k.Length != axes) || (Dilation is { } d && d.Length != axes) || (Stride is { } s && s.Length != axes) || (Causal is { } c && c.Length != axes))
            return $"k=, dil=, stride= and causal= take one entry per grid axis ({axes})";
        for (int a = 0; a < axes; a++)
        {
            int ks = KernelOf(a), dil = DilationOf(a), stride = Stride?[a] ?? 1;
            if (dil < 1 || ks < 1 || (long)ks * dil > grid[a]) return $"axis {a}: need 1 <= k and k x dilation ({ks} x {dil}) <= the axis length {grid[a]}";
            if (stride < 1 || stride > ks) return $"axis {a}: need 1 <= stride ({stride}) <= k ({ks})";
        }
        if (ValidExtent is { } valid)
        {
            if (valid.Length != axes) return $"valid= takes one extent per grid axis ({axes})";
            for (int a = 0; a < axes; a++)
                if (valid[a] > grid[a] || (long)KernelOf(a) * DilationOf(a) > valid[a])
                    return $"axis {a}: need k x dilation ({KernelOf(a)} x {DilationOf(a)}) <= valid extent ({valid[a]}) <= the axis length {grid[a]}";
        }
        if (SpecTokens.ScaleProblem(InputScale, QueryScale) is { } scaleProblem) return scaleProblem;
        return null;
    }

    private static bool Parse(IReadOnlyList<string> tokens, string spec, [NotNullWhen(true)] out IAttentionCase? result, [NotNullWhen(false)] out string? error) =>
        SpecTokens.Read(tokens, spec, Grammar, new NeighborhoodCase(), Apply, c => c.Problem(), out result, out error, Broadcast);

    /// <summary><paramref name="c"/> with one lower-cased spec token applied, or null when the token is not one of this family's.</summary>
    private static NeighborhoodCase? Apply(NeighborhoodCase c, string t) => t switch
    {
        // Plain causal means every axis: an empty list until Broadcast knows the grid's rank.
        "causal" => c with { Causal = [] },
        "rpb" => c with { RelativePositionBias = true },
        _ when SpecTokens.List(SpecTokens.Value(t, "valid="), 'x') is { } valid => c with { ValidExtent = valid },
        _ when SpecTokens.Type(t) is { } type => c with { ElementType = type },
        _ when SpecTokens.Integer(SpecTokens.Value(t, "seed=")) is int seed => c with { Seed = seed },
        _ when SpecTokens.TryDouble(SpecTokens.Value(t, "amp="), out double amp) => c with { InputScale = amp },
        _ when SpecTokens.TryDouble(SpecTokens.Value(t, "qamp="), out double queryAmp) => c with { QueryScale = queryAmp },
        _ when SpecTokens.TryFloat(SpecTokens.Value(t, "scale="), out float scale) => c with { Scale = scale },
        _ when SpecTokens.Integer(SpecTokens.Value(t, "extra=")) is int extra => c with { AdditionalKeys = extra },
        _ when SpecTokens.List(SpecTokens.Value(t, "grid="), 'x') is { } grid => c with { Grid = grid },
        _ when SpecTokens.List(SpecTokens.Value(t, "k="), 'x') is { } k => c with { KernelSize = k },
        _ when SpecTokens.List(SpecTokens.Value(t, "dil="), 'x') is { } dil => c with { Dilation = dil },
        _ when SpecTokens.List(SpecTokens.Value(t, "stride="), 'x') is { } stride => c with { Stride = stride },
        _ when SpecTokens.List(SpecTokens.Value(t, "causal="), 'x') is { } flags && flags.All(f => f is 0 or 1) => c with { Causal = [.. flags.Select(f => f == 1)] },
        _ when SpecTokens.Size(t, 'n', 'x') is var (nq, nk) && nq == nk => c with { Grid = [nq] },
        _ when SpecTokens.Size(t, 'b', '\0') is var (batch, _) => c with { Batch = batch },
        _ when SpecTokens.Size(t, 'h', '/') is var (q, kv) => c with { QueryHeads = q, KeyValueHeads = kv },
        _ when SpecTokens.Size(t, 'd', '/') is var (dqk, dv) => c with { HeadDim = dqk, ValueDim = dv },
        _ => null,
    };

    /// <summary>One kernel size, or a plain <c>causal</c>, stands for every axis of the grid.</summary>
    private static NeighborhoodCase Broadcast(NeighborhoodCase c)
    {
        int axes = c.Grid.Length;
        if (c.KernelSize is [int k] && axes > 1) c = c with { KernelSize = [.. Enumerable.Repeat(k, axes)] };
        if (c.Causal is []) c = c with { Causal = [.. Enumerable.Repeat(true, axes)] };
        return c;
    }
}
