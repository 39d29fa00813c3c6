// Validated description of a chunked linear attention call. (Skeleton: the references helper completes it.)
namespace NativeAttention;

/// <summary>The sizes of a linear attention call after validation.</summary>
public sealed class LinearProblem
{
    /// <summary>Validates a call.</summary>
    public static LinearProblem Create(in TensorView query, in TensorView key, in TensorView value, in TensorView output, LinearOptions? options, in TensorView? initialState, in TensorView? finalState) =>
        throw new NotSupportedException("pending");
}
