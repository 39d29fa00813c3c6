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

    private MergeProblem() { }

    /// <summary>Number of partial results S.</summary>
    public int Splits { get; private init; }
    /// <summary>Number of rows: the product of the dimensions between S and Dv.</summary>
    public long Rows { get; private init; }
    /// <summary>The value dimension Dv.</summary>
    public int ValueDim { get; private init; }
    /// <summary>The shape of one partial output, <c>[..., Dv]</c>.</summary>
    public int[] OutputShape { get; private init; } = [];
    /// <summary>The row index space, <c>[...]</c>.</summary>
    public int[] RowShape { get; private init; } = [];

    /// <summary>Every tensor of the call by name: the partial outputs and log-sum-exps, the output, the optional merged log-sum-exp.</summary>
    internal IReadOnlyList<NamedTensor> Tensors { get; private set; } = [];

    /// <summary>Validates a merge; throws <see cref="ArgumentException"/> naming the tensor at fault.</summary>
    public static MergeProblem Create(in TensorView partialOutputs, in TensorView partialLogSumExp, in TensorView output, in TensorView? logSumExp)
    {
        var p = CreateForInputs(partialOutputs, partialLogSumExp);
        TensorChecks.Shape(output, p.OutputShape, nameof(output), "[..., Dv]: one partial output's shape");
        TensorChecks.Writable(output, nameof(output));
        TensorChecks.NoAlias(output, nameof(output), partialOutputs, nameof(partialOutputs));
        TensorChecks.NoAlias(output, nameof(output), partialLogSumExp, nameof(partialLogSumExp));
        if (logSumExp is { } lse)
        {
            TensorChecks.Written(lse, p.RowShape, ElementType.Float32, nameof(logSumExp), "float32 [...]: the output without its last dimension");
            TensorChecks.NoAlias(lse, nameof(logSumExp), output, nameof(output), partialOutputs, nameof(partialOutputs), partialLogSumExp, nameof(partialLogSumExp));
        }
        p.Tensors =
        [
            new(nameof(partialOutputs), partialOutputs), new(nameof(partialLogSumExp), partialLogSumExp),
            new(nameof(output), output), new(nameof(logSumExp), logSumExp),
        ];
        return p;
    }

    /// <summary>Validates the partials alone (the reference has no output tensor).</summary>
    internal static MergeProblem CreateForInputs(in TensorView partialOutputs, in TensorView partialLogSumExp)
    {
        if (partialOutputs.IsDefault) TensorChecks.Throw($"partialOutputs is default(TensorView); expected {PartialLayout}.", nameof(partialOutputs));
        partialOutputs.Storage!.ThrowIfDisposed();
        if (partialOutputs.Rank < 3) TensorChecks.Throw($"partialOutputs has rank {partialOutputs.Rank}; expected {PartialLayout}.", nameof(partialOutputs));
        TensorChecks.Positive(partialOutputs, nameof(partialOutputs), PartialLayout);
        var rowShape = partialOutputs.Shape[1..^1].ToArray();
        TensorChecks.Shape(partialLogSumExp, [partialOutputs.Shape[0], .. rowShape], nameof(partialLogSumExp), "float32 [S, ...]: the partial outputs without Dv");
        TensorChecks.Type(partialLogSumExp, ElementType.Float32, nameof(partialLogSumExp));
        long rows = 1;
        foreach (int s in rowShape) rows *= s;
        return new MergeProblem
        {
            Splits = partialOutputs.Shape[0], Rows = rows, ValueDim = partialOutputs.Shape[^1],
            OutputShape = partialOutputs.Shape[1..].ToArray(), RowShape = rowShape,
        };
    }
}
