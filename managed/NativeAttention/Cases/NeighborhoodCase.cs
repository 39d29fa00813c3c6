// The neighborhood family's case (NATTEN semantics): a 1-D, 2-D or 3-D token grid with per-axis kernel size,
// dilation, stride and causality, and optional additional keys. Reference-only until the family's kernels land: its
// tensors, references and FLOP count work; Invoke calls the context, which throws NotSupportedException today.
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

    private const string Grammar =
        "dtype (f32|f16|bf16), B<batch>, H<q>/<kv> or H<h>, grid=<x>[x<y>[x<z>]] (or N<n> for a 1-D grid), k=<kernel per axis> " +
        "(one number: every axis; default 3), dil=<per axis>, stride=<per axis>, causal (every axis) or causal=<0|1 per axis>, " +
        "D<qk>/<v> or D<d>, extra=<additional tokens>, scale=<x>, amp=<input scale>, seed=<int>";

    /// <summary>The neighborhood family (CPU, OpenCL and CUDA kernels).</summary>
    public static CaseFamily Registration { get; } = new("neighborhood", "neighborhood attention on 1-D to 3-D grids (NATTEN)", Grammar, Parse, HasKernels: false,
    [
        "neighborhood f32 B1 H2/1 grid=33 k=7 D32/32 seed=51",
        "neighborhood f16 B2 H2/2 grid=12x10 k=5x3 D16/16 dil=2x1 stride=1x3 causal=0x1 extra=4 seed=52",
        "neighborhood bf16 B1 H4/2 grid=6x5x4 k=3 D16/24 causal seed=53",
    ], KernelBackends: [Backend.Cpu, Backend.OpenCl, Backend.Cuda]);

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
    /// <summary>Seed of the input generator.</summary>
    public int Seed { get; init; } = 1;
    /// <summary>Inputs are uniform in <c>[-InputScale, InputScale]</c>.</summary>
    public double InputScale { get; init; } = 1.0;

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
        };
    }

    /// <inheritdoc/>
    public CaseTensors CreateTensors()
    {
        if (Problem() is { } problem) throw new ArgumentException($"The case \"{ToSpec()}\" is not a valid problem: {problem}.", "case");
        var random = new Random(Seed);
        var tensors = new List<CaseTensor>
        {
            new(CaseTensors.QueryName, CaseData.Random(ElementType, [Batch, QueryHeads, .. Grid, HeadDim], random, InputScale), CaseTensorRole.Input),
            new(CaseTensors.KeyName, CaseData.Random(ElementType, [Batch, KeyValueHeads, .. Grid, HeadDim], random, InputScale), CaseTensorRole.Input),
            new(CaseTensors.ValueName, CaseData.Random(ElementType, [Batch, KeyValueHeads, .. Grid, ValueDim], random, InputScale), CaseTensorRole.Input),
        };
        if (AdditionalKeys > 0)
        {
            tensors.Add(new(AdditionalKeysName, CaseData.Random(ElementType, [Batch, KeyValueHeads, AdditionalKeys, HeadDim], random, InputScale), CaseTensorRole.Option));
            tensors.Add(new(AdditionalValuesName, CaseData.Random(ElementType, [Batch, KeyValueHeads, AdditionalKeys, ValueDim], random, InputScale), CaseTensorRole.Option));
        }
        tensors.Add(new(CaseTensors.OutputName, CaseData.Zeros(ElementType, [Batch, QueryHeads, .. Grid, ValueDim]), CaseTensorRole.Output));
        tensors.Add(new(CaseTensors.LogSumExpName, CaseData.Zeros(ElementType.Float32, [Batch, QueryHeads, .. Grid]), CaseTensorRole.Output));
        return new CaseTensors(tensors);
    }

    /// <summary>Calls <see cref="AttentionContext.Neighborhood"/>, which throws <see cref="NotSupportedException"/> on every backend today.</summary>
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
        long pairs = 1;
        for (int a = 0; a < Grid.Length; a++)
        {
            long axisSum = 0;
            for (int x = 0; x < Grid[a]; x++)
                axisSum += NeighborhoodProblem.WindowOnAxis(x, Grid[a], KernelOf(a), DilationOf(a), Stride?[a] ?? 1, Causal?[a] ?? false).Count;
            pairs *= axisSum;
        }
        pairs += (long)Tokens * AdditionalKeys;
        return (double)pairs * Batch * QueryHeads * (2.0 * HeadDim + 2.0 * ValueDim);
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
        if (Scale is float scale) spec.Append(" scale=").Append(SpecTokens.Number(scale));
        return SpecTokens.Finish(spec, InputScale, Seed);
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
        if (HeadDim > 1) yield return this with { HeadDim = HeadDim / 2 };
        if (ValueDim > 1) yield return this with { ValueDim = ValueDim / 2 };
        if (ElementType != ElementType.Float32) yield return this with { ElementType = ElementType.Float32 };
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
        if (!double.IsFinite(InputScale) || InputScale <= 0) return "amp must be a positive number";
        return null;
    }

    private static bool Parse(IReadOnlyList<string> tokens, string spec, [NotNullWhen(true)] out IAttentionCase? result, [NotNullWhen(false)] out string? error) =>
        SpecTokens.Read(tokens, spec, Grammar, new NeighborhoodCase(), Apply, c => c.Problem(), out result, out error, Broadcast);

    /// <summary><paramref name="c"/> with one lower-cased spec token applied, or null when the token is not one of this family's.</summary>
    private static NeighborhoodCase? Apply(NeighborhoodCase c, string t) => t switch
    {
        // Plain causal means every axis: an empty list until Broadcast knows the grid's rank.
        "causal" => c with { Causal = [] },
        _ when SpecTokens.Type(t) is { } type => c with { ElementType = type },
        _ when SpecTokens.Integer(SpecTokens.Value(t, "seed=")) is int seed => c with { Seed = seed },
        _ when SpecTokens.TryDouble(SpecTokens.Value(t, "amp="), out double amp) => c with { InputScale = amp },
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
