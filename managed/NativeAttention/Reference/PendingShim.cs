namespace NativeAttention;
/// <summary>x</summary>
public sealed record ReferenceResult(double[] Output, int[] OutputShape, double[] LogSumExp, int[] LogSumExpShape, double[]? FinalState = null);
/// <summary>x</summary>
public static class Reference
{
    /// <summary>x</summary>
    public static ReferenceResult Flash(TensorView query, TensorView key, TensorView value, FlashOptions? options = null) => throw new NotSupportedException();
    /// <summary>x</summary>
    public static ReferenceResult FlashNaive(TensorView query, TensorView key, TensorView value, FlashOptions? options, ElementType precision) => throw new NotSupportedException();
}
