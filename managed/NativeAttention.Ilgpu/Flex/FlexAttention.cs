// The public entry points of Flex attention: user-written C# score and mask modifications on any context.
using NativeAttention.Cpu;
using NativeAttention.Gpu;
using NativeAttention.Ilgpu.Flex;
using NativeAttention.Ilgpu.Flex.Gpu;

namespace NativeAttention;

/// <summary>
/// Flex attention (FlexAttention for .NET): attention whose scores and mask are C# structs the caller writes,
/// <see cref="IScoreMod"/> and <see cref="IMaskMod"/>. The score of query i and key j of query head h in batch b is
/// <c>scoreMod.Score(scale * q . k, b, h, i, j)</c> (natural-log units); the pair counts only where it is visible
/// (<see cref="FlexOptions.BlockMask"/> and <c>maskMod.Visible(b, h, i, j)</c>). A query row that sees no key writes
/// zeros and a log-sum-exp of -inf. GQA: h is the query head; Hq is a multiple of Hkv.
/// </summary>
/// <remarks>
/// On the CPU the .NET JIT compiles the flash kernel once per pair of struct types, with both calls inlined; a struct
/// that also implements <see cref="IScoreModVector"/> is called eight query columns at a time. The first call with a
/// new pair of types pays that compilation (see bench/results/cpu.md, "Flex"). On CUDA and OpenCL contexts ILGPU
/// compiles the kernel for the struct types. On CUDA devices of compute capability 8.0 and above, fp16 and bf16 calls
/// with head dims up to 128 run a tensor-core kernel (mma.sync, fp32 accumulation; the probabilities are rounded to the
/// input type before P V, as in the built-in tensor-core kernels) once a one-time self-check per context has found it
/// equal to the scalar kernel (a mismatch keeps the scalar kernel and writes a Trace warning);
/// <c>NATIVEATTENTION_FLEX_MMA=0</c> keeps every call on the scalar kernel. An exception thrown by a modification surfaces as a
/// <see cref="FlexModificationException"/> naming the struct and the reason: both modifications are first called at the
/// corners of the index space (first and last batch, head, query and key) before anything runs, which catches a table
/// field that is too short; <see cref="CreateBlockMask{TMask}"/> evaluates the mask at every element, so with its block
/// mask every mask fault surfaces there. A score modification that throws only inside the index space ends the call
/// with the same exception, with the output partly written. As in FlexAttention, the score modification may be called
/// for pairs the mask hides (inside the tiles that are computed); their results are discarded.
/// <para>
/// Fields that must work on every backend are ILGPU <c>ArrayView&lt;T&gt;</c>s from <see cref="Ilgpu.FlexViews.Of{T}"/>
/// (or of the buffers of the accelerator an <see cref="Ilgpu.IlgpuAttention"/> context was created from). They are
/// checked against the context before anything runs: a view of memory the context cannot read throws an
/// <see cref="ArgumentException"/> whose parameter is <c>scoreMod</c> or <c>maskMod</c>, naming the field. On CUDA and
/// OpenCL a modification with a view field is not probed on the host (its views are device memory); instead its view
/// reads are bounds-checked on the device, and one out of range ends the call with a
/// <see cref="FlexModificationException"/> naming the struct, the view and the index, after the kernel ran (the output
/// is then not valid).
/// </para>
/// </remarks>
public static class FlexAttention
{
    /// <summary>The block size of <see cref="CreateBlockMask{TMask}"/> when none is given (FlexAttention's default).</summary>
    public const int DefaultBlockSize = 128;

    /// <summary>
    /// Flex attention: O <c>[B, Hq, Nq, Dv]</c> from Q <c>[B, Hq, Nq, Dqk]</c>, K <c>[B, Hkv, Nk, Dqk]</c> and V
    /// <c>[B, Hkv, Nk, Dv]</c>, with the user's score and mask modifications. Storage types as <see cref="AttentionContext.Flash"/> takes them.
    /// </summary>
    /// <param name="context">The context that runs it (CPU, CUDA or OpenCL).</param>
    /// <param name="query">Q, <c>[B, Hq, Nq, Dqk]</c>.</param>
    /// <param name="key">K, <c>[B, Hkv, Nk, Dqk]</c>, Hq a multiple of Hkv.</param>
    /// <param name="value">V, <c>[B, Hkv, Nk, Dv]</c>.</param>
    /// <param name="output">O, <c>[B, Hq, Nq, Dv]</c>, not overlapping any input.</param>
    /// <param name="scoreMod">The score modification (<see cref="NoScoreMod"/> for none).</param>
    /// <param name="maskMod">The mask modification (<see cref="NoMask"/> for none).</param>
    /// <param name="options">Scale and block mask; null for the defaults.</param>
    /// <param name="logSumExp">Optional float32 <c>[B, Hq, Nq]</c> output, natural log.</param>
    /// <exception cref="ArgumentException">A tensor or option is invalid; the message names it (<c>options.BlockMask.PartialIndices</c>, ...).</exception>
    /// <exception cref="FlexModificationException">A modification threw; the message names the struct, where and why.</exception>
    /// <exception cref="ObjectDisposedException">The context or a buffer was disposed.</exception>
    /// <exception cref="NotSupportedException">The context's backend has no flex kernel.</exception>
    public static void Flex<TScore, TMask>(this AttentionContext context, TensorView query, TensorView key, TensorView value, TensorView output,
        TScore scoreMod, TMask maskMod, FlexOptions? options = null, TensorView? logSumExp = null)
        where TScore : struct, IScoreMod where TMask : struct, IMaskMod
    {
        ArgumentNullException.ThrowIfNull(context);
        options ??= FlexOptions.Default;
        var problem = FlexProblem.CreateForCall(query, key, value, output, logSumExp, options.Scale, options.BlockMask);
        try
        {
            context.CheckExternalCall(problem.Tensors);
            FlexViewFields.Check(context, scoreMod, nameof(scoreMod));
            FlexViewFields.Check(context, maskMod, nameof(maskMod));
            if (context is CpuContext && (FlexViewFields.HasViews(typeof(TScore)) || FlexViewFields.HasViews(typeof(TMask))))
                FlexAssertGuard.EnsureInstalled();   // a view read out of range becomes a FlexModificationException
            // Views of device memory cannot be read on the host: on CUDA and OpenCL, modifications with view fields are
            // not probed; their reads are bounds-checked on the device instead (FlexViewChecks).
            if (context is not GpuContext || !(FlexViewFields.HasViews(typeof(TScore)) || FlexViewFields.HasViews(typeof(TMask))))
                problem.ProbeModifications(scoreMod, maskMod);
            switch (context)
            {
                case CpuContext cpu:
                    CpuFlex.Run(problem, query, key, value, output, logSumExp, scoreMod, maskMod, cpu.Threads, cpu.ForcedVectorBits);
                    break;
                case GpuContext gpu:
                    FlexGpu.Run(gpu, query, key, value, output, logSumExp, problem.Scale, options.BlockMask, scoreMod, maskMod);
                    break;
                default:
                    throw new NotSupportedException($"Flex attention has no kernel on the {context.Backend} backend.");
            }
        }
        finally
        {
            problem.ReleaseCall();   // the per-thread problem must not keep the caller's tensors alive
        }
    }

    /// <summary>
    /// Evaluates <paramref name="maskMod"/> at every (query, key) of <paramref name="batch"/> x <paramref name="heads"/>
    /// and returns the block mask of it for <see cref="FlexOptions.BlockMask"/>: blocks all of whose pairs are visible
    /// full, those with some visible partial, the rest left out (skipped). The mask is called with batch index
    /// <c>0..batch-1</c> and head index <c>0..heads-1</c>: pass <paramref name="batch"/> = 1 and
    /// <paramref name="heads"/> = 1 for a mask that does not depend on them (shared by every batch and head), Hq for one
    /// per query head (Hkv makes the head index the GQA group). The result may be reused by every call of these sizes.
    /// </summary>
    /// <param name="context">The context whose workers (CPU) or device (CUDA, OpenCL) evaluate the mask.</param>
    /// <param name="maskMod">The mask modification.</param>
    /// <param name="batch">The mask's batch extent: 1 (shared) or B.</param>
    /// <param name="heads">The mask's head extent: 1 (shared), Hkv or Hq.</param>
    /// <param name="queryLength">Nq.</param>
    /// <param name="keyLength">Nk.</param>
    /// <param name="queryBlockSize">Query block size, 16 to 128.</param>
    /// <param name="keyBlockSize">Key block size, 16 to 128.</param>
    /// <exception cref="ArgumentException">A size is not positive, or a block size is outside 16..128.</exception>
    /// <exception cref="FlexModificationException">The mask modification threw; the message names the struct, the element and why.</exception>
    public static FlexBlockMask CreateBlockMask<TMask>(this AttentionContext context, TMask maskMod, int batch, int heads, int queryLength, int keyLength,
        int queryBlockSize = DefaultBlockSize, int keyBlockSize = DefaultBlockSize)
        where TMask : struct, IMaskMod
    {
        ArgumentNullException.ThrowIfNull(context);
        FlexProblem.CheckBlockMaskArguments(batch, heads, queryLength, keyLength, queryBlockSize, keyBlockSize);
        context.CheckExternalCall([]);
        FlexViewFields.Check(context, maskMod, nameof(maskMod));
        if (context is CpuContext && FlexViewFields.HasViews(typeof(TMask))) FlexAssertGuard.EnsureInstalled();
        return context switch
        {
            CpuContext cpu => CpuFlex.CreateBlockMask(maskMod, batch, heads, queryLength, keyLength, queryBlockSize, keyBlockSize, cpu.Threads),
            GpuContext gpu => FlexGpu.CreateBlockMask(gpu, maskMod, batch, heads, queryLength, keyLength, queryBlockSize, keyBlockSize),
            _ => throw new NotSupportedException($"CreateBlockMask has no implementation on the {context.Backend} backend."),
        };
    }
}
