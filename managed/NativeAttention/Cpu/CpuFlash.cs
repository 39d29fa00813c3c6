// CPU flash attention forward. (Skeleton: the CPU kernel helper writes the real kernel.)
namespace NativeAttention.Cpu;

internal static class CpuFlash
{
    public static void Run(FlashProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp, int threads) =>
        throw new NotSupportedException("pending");
}
