// The tensors of one case, each named as the entry point's parameter it feeds and marked with its role, so one
// runner can place any family's tensors on any backend (option tensors included) and bring the outputs back.
namespace NativeAttention;

/// <summary>What a case tensor is to the kernel call, which decides how the runner moves it.</summary>
public enum CaseTensorRole
{
    /// <summary>Read by the kernel (Q, K, V, partial outputs, an initial state).</summary>
    Input,
    /// <summary>A tensor-valued option (ALiBi slopes, a bias, sinks, additional keys, a log gate): read by the kernel.</summary>
    Option,
    /// <summary>Written by the kernel (output, log-sum-exp, a final state, an appended cache): copied back after a run.</summary>
    Output,
    /// <summary>Written and read by the case's own calls (e.g. split-KV partials): placed, never copied back.</summary>
    Scratch,
}

/// <summary>One tensor of a case.</summary>
/// <param name="Name">The name of the entry-point parameter or option it feeds, e.g. <c>query</c>, <c>logSumExp</c>, <c>bias</c>.</param>
/// <param name="View">The tensor.</param>
/// <param name="Role">What the kernel does with it.</param>
public readonly record struct CaseTensor(string Name, TensorView View, CaseTensorRole Role);

/// <summary>
/// The tensors of one case, by name: on the host as <see cref="IAttentionCase.CreateTensors"/> makes them, or placed
/// on a device by <see cref="CaseRunner"/>. The Q/K/V families name theirs after the entry point's parameters, so
/// <see cref="Query"/>, <see cref="Key"/>, <see cref="Value"/>, <see cref="Output"/> and <see cref="LogSumExp"/> reach
/// them directly; other tensors are read with the indexer.
/// </summary>
public sealed record CaseTensors
{
    /// <summary>Names of the tensors most families share.</summary>
    public const string QueryName = "query", KeyName = "key", ValueName = "value", OutputName = "output", LogSumExpName = "logSumExp";

    private CaseTensor[] _tensors;

    /// <summary>The tensors of a flash call: Q, K, V (inputs), O and the float32 LSE (outputs).</summary>
    /// <param name="Query">Q <c>[B, Hq, Nq, Dqk]</c>.</param>
    /// <param name="Key">K <c>[B, Hkv, Nk, Dqk]</c>.</param>
    /// <param name="Value">V <c>[B, Hkv, Nk, Dv]</c>.</param>
    /// <param name="Output">O <c>[B, Hq, Nq, Dv]</c>.</param>
    /// <param name="LogSumExp">float32 LSE <c>[B, Hq, Nq]</c>.</param>
    public CaseTensors(TensorView Query, TensorView Key, TensorView Value, TensorView Output, TensorView LogSumExp)
        : this([
            new CaseTensor(QueryName, Query, CaseTensorRole.Input), new CaseTensor(KeyName, Key, CaseTensorRole.Input),
            new CaseTensor(ValueName, Value, CaseTensorRole.Input), new CaseTensor(OutputName, Output, CaseTensorRole.Output),
            new CaseTensor(LogSumExpName, LogSumExp, CaseTensorRole.Output),
        ])
    {
    }

    /// <summary>Any list of tensors.</summary>
    /// <exception cref="ArgumentException">Two tensors share a name, or a tensor is <c>default(TensorView)</c>.</exception>
    public CaseTensors(IEnumerable<CaseTensor> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        _tensors = [.. tensors];
        for (int i = 0; i < _tensors.Length; i++)
        {
            if (_tensors[i].View.IsDefault)
                throw new ArgumentException($"Case tensor '{_tensors[i].Name}' is default(TensorView).", nameof(tensors));
            for (int j = 0; j < i; j++)
                if (_tensors[j].Name == _tensors[i].Name)
                    throw new ArgumentException($"Two case tensors are named '{_tensors[i].Name}'.", nameof(tensors));
        }
    }

    /// <summary>Every tensor, in the order the case listed them.</summary>
    public IReadOnlyList<CaseTensor> All => _tensors;

    /// <summary>The tensor named <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">The case has no tensor of that name.</exception>
    public TensorView this[string name] =>
        Find(name) ?? throw new KeyNotFoundException($"This case has no tensor named '{name}'; it has {string.Join(", ", _tensors.Select(t => t.Name))}.");

    /// <summary>The tensor named <paramref name="name"/>, or null when the case has none.</summary>
    public TensorView? Find(string name)
    {
        foreach (var t in _tensors)
            if (t.Name == name) return t.View;
        return null;
    }

    /// <summary>A copy with the tensor named <paramref name="name"/> replaced by <paramref name="view"/> (same role).</summary>
    /// <exception cref="KeyNotFoundException">The case has no tensor of that name.</exception>
    public CaseTensors With(string name, TensorView view) => this with { _tensors = Replace(_tensors, name, view) };

    /// <summary>A copy whose tensors are <paramref name="map"/>'s views of these (same names and roles).</summary>
    public CaseTensors Map(Func<CaseTensor, TensorView> map)
    {
        ArgumentNullException.ThrowIfNull(map);
        return new CaseTensors(_tensors.Select(t => t with { View = map(t) }));
    }

    /// <summary>The tensor named <c>query</c>.</summary>
    public TensorView Query { get => this[QueryName]; init => _tensors = Replace(_tensors, QueryName, value); }

    /// <summary>The tensor named <c>key</c>.</summary>
    public TensorView Key { get => this[KeyName]; init => _tensors = Replace(_tensors, KeyName, value); }

    /// <summary>The tensor named <c>value</c>.</summary>
    public TensorView Value { get => this[ValueName]; init => _tensors = Replace(_tensors, ValueName, value); }

    /// <summary>The tensor named <c>output</c>.</summary>
    public TensorView Output { get => this[OutputName]; init => _tensors = Replace(_tensors, OutputName, value); }

    /// <summary>The tensor named <c>logSumExp</c>.</summary>
    public TensorView LogSumExp { get => this[LogSumExpName]; init => _tensors = Replace(_tensors, LogSumExpName, value); }

    /// <summary>The names and shapes, e.g. <c>query [1, 2, 8, 16], ...</c>.</summary>
    public override string ToString() => string.Join(", ", _tensors.Select(t => $"{t.Name} {TensorView.Format(t.View.Shape)}"));

    private static CaseTensor[] Replace(CaseTensor[] tensors, string name, TensorView view)
    {
        var copy = (CaseTensor[])tensors.Clone();
        for (int i = 0; i < copy.Length; i++)
            if (copy[i].Name == name)
            {
                copy[i] = copy[i] with { View = view };
                return copy;
            }
        throw new KeyNotFoundException($"This case has no tensor named '{name}'.");
    }
}
