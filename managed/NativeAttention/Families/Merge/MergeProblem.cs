// Validated description of a MergeStates call: S partial results of the same rows, each with its log-sum-exp.
namespace NativeAttention;

/// <summary>
/// The sizes of a <see cref="AttentionContext.MergeStates"/> call. The partial outputs are <c>[S, ..., Dv]</c>
/// (rank &gt;= 3), the partial log-sum-exps float32 <c>[S, ...]</c>, the output <c>[..., Dv]</c> and the optional merged
/// log-sum-exp float32 <c>[...]</c>.
/// </summary>
public sealed class MergeProblem
{
    private const string PartialLayout = "[S, ..., Dv] with at least 3 dimensions";

    /// <summary>This thread's problem for <see cref="AttentionContext.MergeStates"/> calls, refilled by each (see <see cref="CreateForCall"/>).</summary>
    [ThreadStatic] private static MergeProblem? t_call;

    private MergeProblem() { }

    /// <summary>Number of partial results S.</summary>
    public int Splits { get; private set; }
    /// <summary>Number of rows: the product of the dimensions between S and Dv.</summary>
    public long Rows { get; private set; }
    /// <summary>The value dimension Dv.</summary>
    public int ValueDim { get; private set; }
    /// <summary>The shape of one partial output, <c>[..., Dv]</c>.</summary>
    public int[] OutputShape { get; private set; } = [];
    /// <summary>The row index space, <c>[...]</c>.</summary>
    public int[] RowShape { get; private set; } = [];

    /// <summary>Every tensor of the call by name: the partial outputs and log-sum-exps, the output, the optional merged log-sum-exp.</summary>
    internal IReadOnlyList<NamedTensor> Tensors { get; private set; } = [];

    /// <summary>Validates a merge; throws <see cref="ArgumentException"/> naming the tensor at fault.</summary>
    public static MergeProblem Create(in TensorView partialOutputs, in TensorView partialLogSumExp, in TensorView output, in TensorView? logSumExp) =>
        Validate(partialOutputs, partialLogSumExp, output, logSumExp, reuse: null);

    /// <summary>
    /// <see cref="Create"/> into this thread's reusable problem, for <see cref="AttentionContext.MergeStates"/>: no
    /// allocation once warm (its shape arrays and tensor list are refilled). The result is valid until this thread
    /// validates its next merge; nothing may keep it, and the caller ends the call with <see cref="ReleaseCall"/>.
    /// </summary>
    internal static MergeProblem CreateForCall(in TensorView partialOutputs, in TensorView partialLogSumExp, in TensorView output, in TensorView? logSumExp) =>
        Validate(partialOutputs, partialLogSumExp, output, logSumExp, t_call ??= new MergeProblem());

    /// <summary>Drops what a finished <see cref="CreateForCall"/> problem refers to (the caller's tensors).</summary>
    internal void ReleaseCall()
    {
        if (Tensors is NamedTensor[] tensors) Array.Clear(tensors);
    }

    private static MergeProblem Validate(in TensorView partialOutputs, in TensorView partialLogSumExp, in TensorView output, in TensorView? logSumExp, MergeProblem? reuse)
    {
        var p = CreateForInputs(partialOutputs, partialLogSumExp, reuse);
        TensorChecks.Shape(output, p.OutputShape, nameof(output), "[..., Dv]: one partial output's shape");
        TensorChecks.Writable(output, nameof(output));
        TensorChecks.NoAlias(output, nameof(output), partialOutputs, nameof(partialOutputs));
        TensorChecks.NoAlias(output, nameof(output), partialLogSumExp, nameof(partialLogSumExp));
        if (logSumExp is { } lse)
        {
            TensorChecks.Written(lse, p.RowShape, ElementType.Float32, nameof(logSumExp), "float32 [...]: the output without its last dimension");
            TensorChecks.NoAlias(lse, nameof(logSumExp), output, nameof(output), partialOutputs, nameof(partialOutputs), partialLogSumExp, nameof(partialLogSumExp));
        }
        var tensors = p.Tensors as NamedTensor[] is { Length: 4 } reused ? reused : new NamedTensor[4];
        tensors[0] = new(nameof(partialOutputs), partialOutputs);
        tensors[1] = new(nameof(partialLogSumExp), partialLogSumExp);
        tensors[2] = new(nameof(output), output);
        tensors[3] = new(nameof(logSumExp), logSumExp);
        p.Tensors = tensors;
        return p;
    }

    /// <summary>Validates the partials alone (the reference has no output tensor).</summary>
    internal static MergeProblem CreateForInputs(in TensorView partialOutputs, in TensorView partialLogSumExp) => CreateForInputs(partialOutputs, partialLogSumExp, reuse: null);

    /// <summary>Validates the partials into <paramref name="reuse"/> (its shape arrays kept when they fit), or a new problem.</summary>
    private static MergeProblem CreateForInputs(in TensorView partialOutputs, in TensorView partialLogSumExp, MergeProblem? reuse)
    {
        if (partialOutputs.IsDefault) TensorChecks.Throw($"partialOutputs is default(TensorView); expected {PartialLayout}.", nameof(partialOutputs));
        partialOutputs.Storage!.ThrowIfDisposed();
        if (partialOutputs.Rank < 3) TensorChecks.Throw($"partialOutputs has rank {partialOutputs.Rank}; expected {PartialLayout}.", nameof(partialOutputs));
        TensorChecks.Positive(partialOutputs, nameof(partialOutputs), PartialLayout);
        var rows = partialOutputs.Shape[1..^1];
        // Compared first, the expected shape formatted only to throw: a valid call allocates nothing here.
        var lseShape = partialLogSumExp.IsDefault ? default : partialLogSumExp.Shape;
        if (lseShape.Length != rows.Length + 1 || lseShape[0] != partialOutputs.Shape[0] || !lseShape[1..].SequenceEqual(rows))
            TensorChecks.Shape(partialLogSumExp, [partialOutputs.Shape[0], .. rows], nameof(partialLogSumExp), "float32 [S, ...]: the partial outputs without Dv");
        else partialLogSumExp.Storage!.ThrowIfDisposed();   // what TensorChecks.Shape checks before the shape
        TensorChecks.Type(partialLogSumExp, ElementType.Float32, nameof(partialLogSumExp));
        long rowCount = 1;
        foreach (int s in rows) rowCount *= s;
        var p = reuse ?? new MergeProblem();
        p.RowShape = KeptArray.Refill(p.RowShape, rows);
        p.OutputShape = KeptArray.Refill(p.OutputShape, partialOutputs.Shape[1..]);
        (p.Splits, p.Rows, p.ValueDim) = (partialOutputs.Shape[0], rowCount, partialOutputs.Shape[^1]);
        return p;
    }
}
