// Host side of kernels/merge/merge_states.h, shared by OpenCL and CUDA: the kernel arguments, the launch size and the launch.
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

internal static class GpuMerge
{
    /// <summary>Rows per work-group (NA_MERGE_THREADS).</summary>
    public const int Threads = MergeVariant.Threads;

    /// <summary>The kernel's entry point.</summary>
    public const string EntryPoint = MergeVariant.EntryPoint;

    /// <summary>The variant name, e.g. <c>merge_states.f16.f32</c> (output type, partial type).</summary>
    public static string Name(ElementType output, ElementType partialOutputs) => new MergeVariant(output, partialOutputs).Name;

    /// <summary>The specialised source for <paramref name="api"/>.</summary>
    public static string Source(KernelApi api, ElementType output, ElementType partialOutputs) =>
        new MergeVariant(output, partialOutputs).Source(api);

    /// <summary>The kernel arguments of a validated merge.</summary>
    /// <exception cref="NotSupportedException">More than 4 row axes (the kernel indexes at most 4).</exception>
    public static unsafe MergeParams Params(MergeProblem problem, in TensorView po, in TensorView pl, in TensorView o, in TensorView? lse)
    {
        int axes = problem.RowShape.Length;
        if (axes > 4)
            throw new NotSupportedException($"MergeStates on a GPU handles at most 4 dimensions between S and Dv; these tensors have {axes}.");
        if (problem.Rows > int.MaxValue)
            throw new NotSupportedException($"MergeStates on a GPU handles at most {int.MaxValue} rows; this call has {problem.Rows}.");
        var p = new MergeParams
        {
            PoOffset = GpuFlash.ElementOffset(po), PoStrideS = po.Strides[0], PoStrideD = po.Strides[axes + 1],
            PlOffset = GpuFlash.ElementOffset(pl), PlStrideS = pl.Strides[0],
            OOffset = GpuFlash.ElementOffset(o), OStrideD = o.Strides[axes],
            LseOffset = lse is { } l ? GpuFlash.ElementOffset(l) : 0,
            Splits = problem.Splits, Dv = problem.ValueDim, Rows = (int)problem.Rows, HasLse = lse is null ? 0 : 1,
        };
        for (int a = 0; a < 4; a++)
        {
            int source = a - (4 - axes);  // padded axes at the front have size 1 and stride 0
            if (source < 0) { p.RowShape[a] = 1; continue; }
            p.RowShape[a] = problem.RowShape[source];
            p.PoStrideR[a] = po.Strides[source + 1];
            p.PlStrideR[a] = pl.Strides[source + 1];
            p.OStrideR[a] = o.Strides[source];
            if (lse is { } lv) p.LseStrideR[a] = lv.Strides[source];
        }
        return p;
    }

    /// <summary>Work-groups needed for all rows.</summary>
    public static int Groups(MergeProblem problem) => (int)((problem.Rows + Threads - 1) / Threads);

    /// <summary>Runs a validated merge whose tensors the context already checked (location and owner, by name).</summary>
    public static void Run(IGpuKernelHost host, MergeProblem problem, in TensorView partialOutputs, in TensorView partialLogSumExp,
        in TensorView output, in TensorView? logSumExp)
    {
        var p = Params(problem, partialOutputs, partialLogSumExp, output, logSumExp);
        var variant = new MergeVariant(output.ElementType, partialOutputs.ElementType);
        var launch = KernelLaunch<MergeVariant>.For(variant, host.Api);   // cached: no name string or closure per call
        host.Launch(launch.Name, launch.Source, EntryPoint,
            [GpuFlash.Buffer(partialOutputs), GpuFlash.Buffer(partialLogSumExp), GpuFlash.Buffer(output), GpuFlash.Buffer(logSumExp)],
            MemoryMarshal.AsBytes(new ReadOnlySpan<MergeParams>(in p)), Groups(problem), 1, Threads);
    }
}
