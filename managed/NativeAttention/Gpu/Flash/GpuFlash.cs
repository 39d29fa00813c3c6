// Host side of the flash kernels shared by OpenCL and CUDA: option tensors, kernel arguments, variant choice, launch.
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

internal static class GpuFlash
{

    /// <summary>
    /// Runs a validated call whose tensors the context already checked (location and owner, by name): picks the
    /// variant (tensor cores when the host allows them for these buffers) and launches one work-group per
    /// (batch x query head, query block), all on grid x with query blocks fastest, so B x Hq is not held to CUDA's
    /// 65535 limit on grid y.
    /// </summary>
    /// <exception cref="NotSupportedException">More than <c>2^31 - 1</c> work-groups.</exception>
    public static void Run(IGpuKernelHost host, FlashProblem problem, in TensorView query, in TensorView key, in TensorView value,
        in TensorView output, in TensorView? logSumExp)
    {
        var p = Params(problem, query, key, value, output, logSumExp);
        var options = problem.Options;
        ReadOnlySpan<DeviceBuffer?> buffers =
        [
            Buffer(query), Buffer(key), Buffer(value), Buffer(output), Buffer(logSumExp),
            Buffer(options.Bias), Buffer(options.LowRankBias?.U), Buffer(options.LowRankBias?.W), Buffer(options.AlibiSlopes), Buffer(options.Sinks),
        ];
        var variant = Choose(problem, p, host.TensorCoresFit(buffers[..4]));
        var api = host.Api;
        int blockM = variant.Tiles.BlockM;
        long groups = (long)((problem.QueryLength + blockM - 1) / blockM) * problem.Batch * problem.QueryHeads;
        if (groups > int.MaxValue)
            throw new NotSupportedException($"Flash needs {groups} work-groups (B x Hq x query blocks of {blockM}); a launch holds at most {int.MaxValue}.");
        var launch = KernelLaunch<FlashVariant>.For(variant, api);
        host.Launch(launch.Name, launch.Source, FlashVariant.EntryPoint, buffers, MemoryMarshal.AsBytes(new ReadOnlySpan<FlashParams>(in p)),
            (int)groups, 1, variant.Threads, variant.DynamicSharedBytes);
    }

    /// <summary>The device buffer of a checked view (null when absent).</summary>
    public static DeviceBuffer? Buffer(in TensorView? view) => view is { } v ? (DeviceBuffer)v.Storage! : null;

    /// <summary>The kernel arguments of a validated call; offsets include each storage's offset inside its root buffer.</summary>
    public static FlashParams Params(FlashProblem problem, in TensorView q, in TensorView k, in TensorView v, in TensorView o, in TensorView? lse)
    {
        var p = new FlashParams
        {
            Qkvo = QkvoParams.From(q, k, v, o, lse, problem.Batch, problem.QueryHeads, problem.KeyValueHeads,
                problem.QueryLength, problem.KeyLength, problem.HeadDim, problem.ValueDim),
            HasLse = lse is null ? 0 : 1,
            WindowLeft = problem.Options.WindowLeft, WindowRight = problem.Options.WindowRight,
            Causal = problem.Options.Causal ? 1 : 0,
            Scale = problem.Scale, ScaleLog2 = (float)(problem.Scale * MathConstants.Log2EDouble),
        };
        var options = problem.Options;
        p.SoftcapLog2 = (float)(options.Softcap * MathConstants.Log2EDouble);
        p.SigmoidBias = options.SigmoidBias;
        if (options.Bias is { } bias)
        {
            // Size-1 batch/head axes broadcast: stride 0 reads the same plane for every (b, h).
            p.BiasOffset = ElementOffset(bias);
            p.BiasStrideB = bias.Shape[0] == 1 ? 0 : bias.Strides[0];
            p.BiasStrideH = bias.Shape[1] == 1 ? 0 : bias.Strides[1];
            (p.BiasStrideN, p.BiasStrideK) = (bias.Strides[2], bias.Strides[3]);
        }
        if (options.LowRankBias is { } lowRank)
        {
            var (u, w) = (lowRank.U, lowRank.W);
            p.Rank = u.Shape[3];
            p.UOffset = ElementOffset(u);
            p.UStrideB = u.Shape[0] == 1 ? 0 : u.Strides[0];
            p.UStrideH = u.Shape[1] == 1 ? 0 : u.Strides[1];
            (p.UStrideN, p.UStrideR) = (u.Strides[2], u.Strides[3]);
            p.WOffset = ElementOffset(w);
            p.WStrideB = w.Shape[0] == 1 ? 0 : w.Strides[0];
            p.WStrideH = w.Shape[1] == 1 ? 0 : w.Strides[1];
            (p.WStrideN, p.WStrideR) = (w.Strides[2], w.Strides[3]);
        }
        if (options.AlibiSlopes is { } slopes)
        {
            p.AlibiOffset = ElementOffset(slopes);
            (p.AlibiStrideB, p.AlibiStrideH) = AlibiStrides(slopes);
        }
        if (options.Sinks is { } sinks)
        {
            p.SinksOffset = ElementOffset(sinks);
            p.SinksStrideH = sinks.Strides[0];
        }
        return p;
    }

    /// <summary>Batch and head strides of ALiBi slopes: <c>[Hq]</c> slopes get batch stride 0.</summary>
    public static (long Batch, long Head) AlibiStrides(in TensorView slopes) =>
        slopes.Rank == 1 ? (0L, slopes.Strides[0]) : (slopes.Strides[0], slopes.Strides[1]);

    /// <summary>Picks the variant for a call: tensor cores when allowed and the layout suits them, else the portable kernel.</summary>
    public static FlashVariant Choose(FlashProblem problem, in FlashParams p, bool tensorCoresAvailable)
    {
        bool masked = problem.Options.Causal || problem.Options.WindowLeft >= 0 || problem.Options.WindowRight >= 0;
        bool tensorCores = tensorCoresAvailable && TensorCoresFit(problem, p);
        int bucket = tensorCores ? problem.HeadDim : FlashVariant.Bucket(Math.Max(problem.HeadDim, problem.ValueDim));
        var options = ScoreOptions.Of(problem.Options);
        var probe = new FlashVariant(problem.ElementType, bucket, bucket, masked, false, tensorCores,
            tensorCores ? MmaTile.For(problem.HeadDim, masked, options) : default, options);
        return probe with { EvenN = !tensorCores && problem.KeyLength % probe.Tiles.BlockN == 0 };
    }

    private static bool TensorCoresFit(FlashProblem problem, in FlashParams p)
    {
        if (problem.ElementType == ElementType.Float32 || problem.HeadDim != problem.ValueDim) return false;
        if (!FlashVariant.TensorCoreHeadDims.Contains(problem.HeadDim)) return false;
        return TensorCoreLayout(p.Qkvo);
    }

    /// <summary>
    /// True when Q, K, V and O suit the tensor-core kernels (flash and block-sparse): feature stride 1, every other
    /// stride and offset a multiple of 8 elements.
    /// </summary>
    public static bool TensorCoreLayout(in QkvoParams t)
    {
        if (t.QStrideD != 1 || t.KStrideD != 1 || t.VStrideD != 1 || t.OStrideD != 1) return false;
        // 16-byte cp.async and 4-byte output stores need every row start aligned to 8 elements.
        ReadOnlySpan<long> aligned =
        [
            t.QOffset, t.KOffset, t.VOffset, t.OOffset, t.QStrideB, t.QStrideH, t.QStrideN, t.KStrideB, t.KStrideH, t.KStrideN,
            t.VStrideB, t.VStrideH, t.VStrideN, t.OStrideB, t.OStrideH, t.OStrideN,
        ];
        foreach (long value in aligned)
            if (value % 8 != 0) return false;
        return true;
    }

    /// <summary>The element offset of a view's origin from the start of its root device buffer (kernels index from there).</summary>
    public static long ElementOffset(in TensorView view)
    {
        var buffer = (DeviceBuffer)view.Storage!;
        return buffer.ByteOffset / view.ElementType.SizeOf() + view.Offset;
    }
}
