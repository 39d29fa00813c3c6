// Host side of the neighborhood kernels (kernels/neighborhood/), shared by OpenCL and CUDA: the dense shortcut, the
// kernel arguments, the query tile, the variant choice and the launch.
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

/// <summary>
/// Neighborhood attention on a GPU. Grids of one or two axes run as three-axis grids padded in front with axes of length
/// 1. One work-group per (batch x query head, query tile), all on grid x, so B x Hq is not held to CUDA's 65535 limit
/// on grid y. A query tile is a box of queries inside one dilation group per axis whose shape the host picks per call:
/// the box that reads the fewest union-window keys per query slot.
/// </summary>
internal static class GpuNeighborhood
{
    private const int Axes = 3;

    /// <summary>
    /// Runs a validated call whose tensors the context already checked (location and owner, by name). When every query
    /// sees the whole grid and there are no additional keys, runs the dense flash kernel on the flattened grid instead.
    /// </summary>
    /// <exception cref="NotSupportedException">More than <c>2^31 - 1</c> work-groups.</exception>
    public static void Run(IGpuKernelHost host, NeighborhoodProblem problem, in TensorView query, in TensorView key, in TensorView value,
        in TensorView output, in TensorView? logSumExp)
    {
        if (TryRunDense(host, problem, query, key, value, output, logSumExp)) return;
        var options = problem.Options;
        var p = Params(problem, query, key, value, output, logSumExp);
        var (q, k, v, o, ek, ev) = (GpuFlash.Buffer(query), GpuFlash.Buffer(key), GpuFlash.Buffer(value), GpuFlash.Buffer(output),
            GpuFlash.Buffer(options.AdditionalKeys), GpuFlash.Buffer(options.AdditionalValues));
        bool tensorCores = TensorCoresFit(problem, p) && host.TensorCoresFit([q, k, v, o, ek, ev]);
        var variant = tensorCores
            ? new NeighborhoodVariant(problem.ElementType, problem.HeadDim, true, NeighborhoodVariant.TileFor(problem.HeadDim))
            : NeighborhoodVariant.Portable(problem.ElementType, FlashVariant.Bucket(Math.Max(problem.HeadDim, problem.ValueDim)), host.LocalMemoryBytes);
        long groups = SetTiles(ref p, variant.Tiles.BlockM) * problem.Batch * problem.QueryHeads;
        if (groups > int.MaxValue)
            throw new NotSupportedException($"Neighborhood needs {groups} work-groups (B x Hq x query tiles); a launch holds at most {int.MaxValue}.");
        var api = host.Api;
        var scratch = host.Scratch;
        lock (scratch.Gate)
        {
            // Valid extents [B][3] (internal axes) ride in a scratch slot, uploaded only when they changed.
            DeviceBuffer? extents = null;
            if (problem.HasValidExtent)
            {
                int count = problem.Batch * Axes;
                Span<int> values = count <= StackExtents ? stackalloc int[StackExtents] : new int[count];
                values = values[..count];
                WriteExtents(problem, values);
                extents = scratch.Upload(ExtentSlot, values, ReadOnlySpan<int>.Empty);
            }
            var launch = KernelLaunch<NeighborhoodVariant>.For(variant, api);   // cached: no name string or closure per call
            host.Launch(launch.Name, launch.Source, NeighborhoodVariant.EntryPoint,
                [q, k, v, o, GpuFlash.Buffer(logSumExp), ek, ev, GpuFlash.Buffer(options.RelativePositionBias), extents],
                MemoryMarshal.AsBytes(new ReadOnlySpan<NeighborhoodParams>(in p)), (int)groups, 1, variant.Threads, variant.DynamicSharedBytes);
        }
    }

    /// <summary>The scratch slot of the valid extents (GpuDecode uses slots 0 to 2).</summary>
    private const int ExtentSlot = 3;

    /// <summary>Extents up to this many (B x 3) are gathered on the stack.</summary>
    private const int StackExtents = 768;

    /// <summary>Writes the valid extent of every sample per internal axis, <c>[B][3]</c>, into <paramref name="extents"/>; padding axes in front hold 1.</summary>
    private static void WriteExtents(NeighborhoodProblem problem, Span<int> extents)
    {
        int rank = problem.SpatialRank, pad = Axes - rank;
        for (int b = 0; b < problem.Batch; b++)
            for (int a = 0; a < Axes; a++)
                extents[b * Axes + a] = a < pad ? 1 : problem.ValidExtentOf(b, a - pad);
    }

    /// <summary>
    /// The kernel arguments of a validated call, query tile not yet chosen (<see cref="SetTiles"/>). Internal axis a
    /// holds spatial axis <c>a - (3 - rank)</c>; the padding axes in front have length 1 and strides 0.
    /// </summary>
    public static unsafe NeighborhoodParams Params(NeighborhoodProblem problem, in TensorView q, in TensorView k, in TensorView v, in TensorView o, in TensorView? lse)
    {
        int rank = problem.SpatialRank, pad = Axes - rank, last = 1 + rank;
        var p = new NeighborhoodParams
        {
            Qkvo = new QkvoParams
            {
                QOffset = GpuFlash.ElementOffset(q), KOffset = GpuFlash.ElementOffset(k),
                VOffset = GpuFlash.ElementOffset(v), OOffset = GpuFlash.ElementOffset(o),
                QStrideB = q.Strides[0], QStrideH = q.Strides[1], QStrideN = q.Strides[last], QStrideD = q.Strides[last + 1],
                KStrideB = k.Strides[0], KStrideH = k.Strides[1], KStrideN = k.Strides[last], KStrideD = k.Strides[last + 1],
                VStrideB = v.Strides[0], VStrideH = v.Strides[1], VStrideN = v.Strides[last], VStrideD = v.Strides[last + 1],
                OStrideB = o.Strides[0], OStrideH = o.Strides[1], OStrideN = o.Strides[last], OStrideD = o.Strides[last + 1],
                Batch = problem.Batch, HeadsQ = problem.QueryHeads, HeadsKv = problem.KeyValueHeads, Group = problem.GroupSize,
                Nq = problem.TokenCount, Nk = problem.TokenCount, Dqk = problem.HeadDim, Dv = problem.ValueDim,
            },
            NExtra = problem.AdditionalKeyCount,
            HasLse = lse is null ? 0 : 1,
            HasExtent = problem.HasValidExtent ? 1 : 0,
            ScaleLog2 = (float)(problem.Scale * MathConstants.Log2EDouble),
        };
        if (lse is { } l)
        {
            p.Qkvo.LseOffset = GpuFlash.ElementOffset(l);
            (p.Qkvo.LseStrideB, p.Qkvo.LseStrideH, p.Qkvo.LseStrideN) = (l.Strides[0], l.Strides[1], l.Strides[last]);
        }
        for (int a = 0; a < Axes; a++)
        {
            int s = a - pad;   // the spatial axis behind internal axis a; negative for a padding axis
            bool real = s >= 0;
            p.Length[a] = real ? problem.SpatialShape[s] : 1;
            p.KernelSize[a] = real ? problem.KernelSize[s] : 1;
            p.Dilation[a] = real ? problem.Dilation[s] : 1;
            p.Stride[a] = real ? problem.Stride[s] : 1;
            p.Causal[a] = real && problem.Causal[s] ? 1 : 0;
            p.QStrideX[a] = real ? q.Strides[2 + s] : 0;
            p.KStrideX[a] = real ? k.Strides[2 + s] : 0;
            p.VStrideX[a] = real ? v.Strides[2 + s] : 0;
            p.OStrideX[a] = real ? o.Strides[2 + s] : 0;
            p.LseStrideX[a] = real && lse is { } lv ? lv.Strides[2 + s] : 0;
        }
        if (problem.Options.AdditionalKeys is { } ek && problem.Options.AdditionalValues is { } ev)
        {
            p.EkOffset = GpuFlash.ElementOffset(ek);
            (p.EkStrideB, p.EkStrideH, p.EkStrideN, p.EkStrideD) = (ek.Strides[0], ek.Strides[1], ek.Strides[2], ek.Strides[3]);
            p.EvOffset = GpuFlash.ElementOffset(ev);
            (p.EvStrideB, p.EvStrideH, p.EvStrideN, p.EvStrideD) = (ev.Strides[0], ev.Strides[1], ev.Strides[2], ev.Strides[3]);
        }
        if (problem.Options.RelativePositionBias is { } rpb)
        {
            p.HasRpb = 1;
            p.RpbOffset = GpuFlash.ElementOffset(rpb);
            p.RpbStrideH = rpb.Strides[0];
            for (int a = pad; a < Axes; a++) p.RpbStrideX[a] = rpb.Strides[1 + a - pad];
        }
        return p;
    }

    /// <summary>
    /// Picks the query tile for work-groups of <paramref name="blockM"/> queries and stores it with the tile count per
    /// axis; returns the tiles per (batch, head). Among boxes of at most <paramref name="blockM"/> queries (no wider per
    /// axis than the largest dilation group), the one whose union window per query slot is smallest; ties go to the box
    /// with more queries. A union window along an axis spans at most <c>tile + kernel + stride - 2</c> positions.
    /// </summary>
    public static unsafe long SetTiles(ref NeighborhoodParams p, int blockM)
    {
        Span<int> length = stackalloc int[Axes], kernel = stackalloc int[Axes], dilation = stackalloc int[Axes], stride = stackalloc int[Axes];
        for (int a = 0; a < Axes; a++) (length[a], kernel[a], dilation[a], stride[a]) = (p.Length[a], p.KernelSize[a], p.Dilation[a], p.Stride[a]);
        Span<int> widest = stackalloc int[Axes];
        for (int a = 0; a < Axes; a++) widest[a] = Math.Min(GroupLength(length[a], dilation[a], 0), blockM);
        Span<int> best = stackalloc int[Axes];
        best.Fill(1);
        double bestCost = double.MaxValue;
        int bestQueries = 0;
        for (int t0 = 1; t0 <= widest[0]; t0++)
            for (int t1 = 1; t1 <= widest[1] && t0 * t1 <= blockM; t1++)
                for (int t2 = 1; t2 <= widest[2] && t0 * t1 * t2 <= blockM; t2++)
                {
                    double union = Math.Min(GroupLength(length[0], dilation[0], 0), t0 + kernel[0] + stride[0] - 2)
                          * (double)Math.Min(GroupLength(length[1], dilation[1], 0), t1 + kernel[1] + stride[1] - 2)
                          * Math.Min(GroupLength(length[2], dilation[2], 0), t2 + kernel[2] + stride[2] - 2);
                    int queries = t0 * t1 * t2;
                    double cost = union / queries;
                    if (cost < bestCost * (1 - 1e-9) || (cost <= bestCost * (1 + 1e-9) && queries > bestQueries))
                    {
                        (best[0], best[1], best[2]) = (t0, t1, t2);
                        (bestCost, bestQueries) = (cost, queries);
                    }
                }
        long tiles = 1;
        for (int a = 0; a < Axes; a++)
        {
            p.Tile[a] = best[a];
            int count = 0;
            for (int g = 0; g < dilation[a]; g++) count += (GroupLength(length[a], dilation[a], g) + best[a] - 1) / best[a];
            p.Tiles[a] = count;
            tiles *= count;
        }
        return tiles;
    }

    /// <summary>Positions in dilation group <paramref name="group"/> of an axis: those x &lt; length with x mod dilation = group.</summary>
    private static int GroupLength(int length, int dilation, int group) => (length - group + dilation - 1) / dilation;

    /// <summary>
    /// True when the tensor-core kernel can run the call: 16-bit storage, Dqk = Dv in <see cref="NeighborhoodVariant.TensorCoreHeadDims"/>,
    /// unit feature strides, and every other offset and stride a multiple of 8 elements (16-byte cp.async rows, 4-byte
    /// output stores).
    /// </summary>
    private static unsafe bool TensorCoresFit(NeighborhoodProblem problem, in NeighborhoodParams p)
    {
        if (problem.ElementType == ElementType.Float32 || problem.HeadDim != problem.ValueDim) return false;
        if (!NeighborhoodVariant.TensorCoreHeadDims.Contains(problem.HeadDim)) return false;
        ref readonly var t = ref p.Qkvo;
        if (t.QStrideD != 1 || t.KStrideD != 1 || t.VStrideD != 1 || t.OStrideD != 1) return false;
        bool extra = problem.AdditionalKeyCount > 0;
        if (extra && (p.EkStrideD != 1 || p.EvStrideD != 1)) return false;
        ReadOnlySpan<long> aligned =
        [
            t.QOffset, t.KOffset, t.VOffset, t.OOffset, t.QStrideB, t.QStrideH, t.KStrideB, t.KStrideH, t.VStrideB, t.VStrideH, t.OStrideB, t.OStrideH,
            p.QStrideX[0], p.QStrideX[1], p.QStrideX[2], p.KStrideX[0], p.KStrideX[1], p.KStrideX[2],
            p.VStrideX[0], p.VStrideX[1], p.VStrideX[2], p.OStrideX[0], p.OStrideX[1], p.OStrideX[2],
            extra ? p.EkOffset : 0, extra ? p.EkStrideB : 0, extra ? p.EkStrideH : 0, extra ? p.EkStrideN : 0,
            extra ? p.EvOffset : 0, extra ? p.EvStrideB : 0, extra ? p.EvStrideH : 0, extra ? p.EvStrideN : 0,
        ];
        foreach (long value in aligned)
            if (value % 8 != 0) return false;
        return true;
    }

    /// <summary>
    /// Runs flash attention when every query's window is the whole grid and there are no additional keys, no
    /// relative-position bias and no padding, provided every tensor's spatial axes flatten into one strided token axis
    /// (<see cref="WholeGridFlash"/>: this thread's kept flattened views and flash problem, so the call allocates
    /// nothing). Returns false when it did not run.
    /// </summary>
    private static bool TryRunDense(IGpuKernelHost host, NeighborhoodProblem problem, in TensorView query, in TensorView key, in TensorView value,
        in TensorView output, in TensorView? logSumExp)
    {
        if (WholeGridFlash.TryPrepare(problem, query, key, value, output, logSumExp) is not { } dense) return false;
        try
        {
            GpuFlash.Run(host, dense.Problem, dense.Query, dense.Key, dense.Value, dense.Output, dense.LogSumExp);
        }
        finally
        {
            dense.Release();
        }
        return true;
    }
}
