// Validated description of a neighborhood attention call. (Skeleton: the references helper completes it.)
namespace NativeAttention;

/// <summary>The sizes of a neighborhood attention call after validation.</summary>
public sealed class NeighborhoodProblem
{
    /// <summary>Validates a call.</summary>
    public static NeighborhoodProblem Create(in TensorView query, in TensorView key, in TensorView value, in TensorView output, NeighborhoodOptions options, in TensorView? logSumExp) =>
        throw new NotSupportedException("pending");
}
