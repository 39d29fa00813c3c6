// Host side of the flash kernels shared by OpenCL and CUDA: option support, kernel arguments, variant choice.
namespace NativeAttention.Gpu;

internal static class GpuFlash
{
    /// <summary>Throws <see cref="NotSupportedException"/> for options the GPU kernels do not implement yet.</summary>
    public static void ThrowIfUnsupported(FlashProblem problem, Backend backend)
    {
        var o = problem.Options;
        string? option =
            o.Softcap != 0 ? "Softcap" :
            o.AlibiSlopes is not null ? "AlibiSlopes" :
            o.Bias is not null ? "Bias" :
            o.LowRankBias is not null ? "LowRankBias" :
            o.Sinks is not null ? "Sinks" :
            o.ScoreFunction != ScoreFunction.Softmax ? "ScoreFunction.Sigmoid" : null;
        if (option is not null)
            throw new NotSupportedException($"FlashOptions.{option} is not implemented by the {backend} flash kernel yet; the Cpu backend and Reference.Flash support it.");
    }

    /// <summary>The kernel arguments of a validated call; offsets include each storage's offset inside its root buffer.</summary>
    public static FlashParams Params(FlashProblem problem, in TensorView q, in TensorView k, in TensorView v, in TensorView o, in TensorView? lse)
    {
        var p = new FlashParams
        {
            QOffset = ElementOffset(q), KOffset = ElementOffset(k), VOffset = ElementOffset(v), OOffset = ElementOffset(o),
            QStrideB = q.Strides[0], QStrideH = q.Strides[1], QStrideN = q.Strides[2], QStrideD = q.Strides[3],
            KStrideB = k.Strides[0], KStrideH = k.Strides[1], KStrideN = k.Strides[2], KStrideD = k.Strides[3],
            VStrideB = v.Strides[0], VStrideH = v.Strides[1], VStrideN = v.Strides[2], VStrideD = v.Strides[3],
            OStrideB = o.Strides[0], OStrideH = o.Strides[1], OStrideN = o.Strides[2], OStrideD = o.Strides[3],
            Batch = problem.Batch, HeadsQ = problem.QueryHeads, HeadsKv = problem.KeyValueHeads, Group = problem.GroupSize,
            Nq = problem.QueryLength, Nk = problem.KeyLength, Dqk = problem.HeadDim, Dv = problem.ValueDim,
            WindowLeft = problem.Options.WindowLeft, WindowRight = problem.Options.WindowRight,
            Causal = problem.Options.Causal ? 1 : 0,
            Scale = problem.Scale, ScaleLog2 = (float)(problem.Scale * 1.4426950408889634),
        };
        if (lse is { } l)
        {
            p.HasLse = 1;
            p.LseOffset = ElementOffset(l);
            (p.LseStrideB, p.LseStrideH, p.LseStrideN) = (l.Strides[0], l.Strides[1], l.Strides[2]);
        }
        return p;
    }

    /// <summary>Picks the variant for a call: tensor cores when allowed and the layout suits them, else the portable kernel.</summary>
    public static FlashVariant Choose(FlashProblem problem, in FlashParams p, bool tensorCoresAvailable)
    {
        bool masked = problem.Options.Causal || problem.Options.WindowLeft >= 0 || problem.Options.WindowRight >= 0;
        bool tensorCores = tensorCoresAvailable && TensorCoresFit(problem, p);
        int bucket = tensorCores ? problem.HeadDim : FlashVariant.Bucket(Math.Max(problem.HeadDim, problem.ValueDim));
        var probe = new FlashVariant(problem.ElementType, bucket, bucket, masked, false, tensorCores,
            tensorCores ? MmaTile.For(problem.HeadDim) : default);
        return probe with { EvenN = !tensorCores && problem.KeyLength % probe.Tiles.BlockN == 0 };
    }

    private static bool TensorCoresFit(FlashProblem problem, in FlashParams p)
    {
        if (problem.ElementType == ElementType.Float32 || problem.HeadDim != problem.ValueDim) return false;
        if (!FlashVariant.TensorCoreHeadDims.Contains(problem.HeadDim)) return false;
        if (p.QStrideD != 1 || p.KStrideD != 1 || p.VStrideD != 1 || p.OStrideD != 1) return false;
        // 16-byte cp.async and 4-byte output stores need every row start aligned to 8 elements.
        ReadOnlySpan<long> aligned =
        [
            p.QOffset, p.KOffset, p.VOffset, p.OOffset, p.QStrideB, p.QStrideH, p.QStrideN, p.KStrideB, p.KStrideH, p.KStrideN,
            p.VStrideB, p.VStrideH, p.VStrideN, p.OStrideB, p.OStrideH, p.OStrideN,
        ];
        foreach (long value in aligned)
            if (value % 8 != 0) return false;
        return true;
    }

    /// <summary>The element offset of a view's origin from the start of its root device buffer.</summary>
    private static long ElementOffset(in TensorView view)
    {
        var buffer = (DeviceBuffer)view.Storage!;
        return buffer.ByteOffset / view.ElementType.SizeOf() + view.Offset;
    }
}
