// The GPU half of Flex attention: the ILGPU-compiled flex kernel, loaded and launched by NativeAttention's runtime.
// (The contract between the public Flex API and the GPU path; the kernel itself is not written yet.)
using NativeAttention.Gpu;

namespace NativeAttention.Ilgpu.Flex.Gpu;

/// <summary>Runs Flex attention on a CUDA or OpenCL context of NativeAttention.</summary>
internal static class FlexGpu
{
    /// <summary>
    /// Runs the flex kernel on arguments the public API has already validated: Q <c>[B, Hq, Nq, Dqk]</c>, K
    /// <c>[B, Hkv, Nk, Dqk]</c>, V <c>[B, Hkv, Nk, Dv]</c>, O <c>[B, Hq, Nq, Dv]</c>, LSE <c>[B, Hq, Nq]</c> when given,
    /// device tensors of <paramref name="context"/>. A block mask, when given, lists the partial and full blocks: the
    /// kernel skips empty blocks and does not evaluate the mask modification on full ones.
    /// </summary>
    public static void Run<TScore, TMask>(GpuContext context, TensorView query, TensorView key, TensorView value, TensorView output,
        TensorView? logSumExp, float scale, FlexBlockMask? blockMask, TScore scoreMod, TMask maskMod)
        where TScore : struct, IScoreMod where TMask : struct, IMaskMod =>
        throw new NotSupportedException("Flex attention on CUDA and OpenCL is not implemented yet.");

    /// <summary>
    /// Evaluates <paramref name="maskMod"/> on the device for every element and classifies each
    /// <c>queryBlock x keyBlock</c> block as empty, partial or full.
    /// </summary>
    public static FlexBlockMask CreateBlockMask<TMask>(GpuContext context, TMask maskMod, int batch, int heads, int queryLength, int keyLength,
        int queryBlockSize, int keyBlockSize) where TMask : struct, IMaskMod =>
        throw new NotSupportedException("Creating a block mask on CUDA and OpenCL is not implemented yet.");
}
