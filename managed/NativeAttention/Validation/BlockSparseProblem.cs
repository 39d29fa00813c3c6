// Validated description of a block-sparse attention call. (Skeleton: the references helper completes it.)
namespace NativeAttention;

/// <summary>The sizes of a block-sparse attention call after validation.</summary>
public sealed class BlockSparseProblem
{
    /// <summary>Validates a call.</summary>
    public static BlockSparseProblem Create(in TensorView query, in TensorView key, in TensorView value, in TensorView output, BlockSparseOptions options, in TensorView? logSumExp) =>
        throw new NotSupportedException("pending");
}
