// Host side of the flash kernels shared by OpenCL and CUDA: option tensors, kernel arguments, variant choice, launch;
// on sm_90 CUDA devices the Hopper wgmma kernel (WgmmaSelection) with its tensor maps and self-check.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using NativeAttention.Gpu.Cuda;

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
        // sm_90 with a suitable call: the Hopper kernel (after this context's self-check), else mma.sync or portable.
        if (host is CudaContext cuda && cuda.ChooseWgmma(problem, p.Qkvo, buffers[..4]).Use && RunWgmma(cuda, problem, p, buffers))
            return;
        Launch(host, problem, Choose(problem, p, host.TensorCoresFit(buffers[..4])), p, buffers);
    }

    /// <summary>Launches <paramref name="variant"/> (a mma.sync or portable variant) over the call's grid.</summary>
    private static void Launch(IGpuKernelHost host, FlashProblem problem, in FlashVariant variant, in FlashParams p, ReadOnlySpan<DeviceBuffer?> buffers)
    {
        int groups = Groups(problem, variant.Tiles.BlockM);
        var launch = KernelLaunch<FlashVariant>.For(variant, host.Api);
        host.Launch(launch.Name, launch.Source, FlashVariant.EntryPoint, buffers, MemoryMarshal.AsBytes(new ReadOnlySpan<FlashParams>(in p)),
            groups, 1, variant.Threads, variant.DynamicSharedBytes);
    }

    /// <summary>B x Hq x query blocks of <paramref name="blockM"/> rows.</summary>
    /// <exception cref="NotSupportedException">More than <c>2^31 - 1</c> work-groups.</exception>
    private static int Groups(FlashProblem problem, int blockM)
    {
        long groups = (long)((problem.QueryLength + blockM - 1) / blockM) * problem.Batch * problem.QueryHeads;
        if (groups > int.MaxValue)
            throw new NotSupportedException($"Flash needs {groups} work-groups (B x Hq x query blocks of {blockM}); a launch holds at most {int.MaxValue}.");
        return (int)groups;
    }

    /// <summary>
    /// Bytes of the wgmma kernel's by-value parameter <c>na_flash_wgmma_params</c>: three 128-byte tensor maps, then
    /// <see cref="FlashParams"/>, the whole rounded up to the maps' 64-byte alignment.
    /// </summary>
    public static int WgmmaParamBytes => (3 * 128 + Unsafe.SizeOf<FlashParams>() + 63) / 64 * 64;

    /// <summary>The Hopper variant of a validated call.</summary>
    public static FlashVariant WgmmaVariant(FlashProblem problem) =>
        FlashVariant.ForWgmma(problem.ElementType, problem.HeadDim, Masked(problem.Options), ScoreOptions.Of(problem.Options));

    /// <summary>
    /// Runs a call the selection gave to the wgmma kernel: encodes the Q/K/V tensor maps and launches it for sm_90a.
    /// False, with nothing launched, when the driver rejects a tensor map (the selection checks TMA's documented
    /// limits, so this should not happen): the caller falls back to the mma.sync kernel.
    /// </summary>
    internal static bool RunWgmma(CudaContext cuda, FlashProblem problem, in FlashParams p, ReadOnlySpan<DeviceBuffer?> buffers)
    {
        var variant = WgmmaVariant(problem);
        var (q, k, v) = WgmmaTensorMaps.For(variant, p.Qkvo);
        Span<byte> args = stackalloc byte[WgmmaParamBytes];
        args.Clear();
        try
        {
            cuda.EncodeTensorMap(((CudaBuffer)buffers[0]!).RootPointer, q, args[..128]);
            cuda.EncodeTensorMap(((CudaBuffer)buffers[1]!).RootPointer, k, args[128..256]);
            cuda.EncodeTensorMap(((CudaBuffer)buffers[2]!).RootPointer, v, args[256..384]);
        }
        catch (CudaException e)
        {
            System.Diagnostics.Trace.TraceWarning($"NativeAttention: cuTensorMapEncodeTiled rejected a flash view ({e.Message}); this call uses the mma.sync kernel.");
            return false;
        }
        MemoryMarshal.Write(args[384..], in p);
        var launch = KernelLaunch<FlashVariant>.For(variant, KernelApi.Cuda);
        cuda.LaunchSm90a(launch.Name, launch.Source, FlashVariant.EntryPoint, buffers, args, Groups(problem, variant.Tiles.BlockM),
            variant.Threads, variant.DynamicSharedBytes);
        return true;
    }

    /// <summary>
    /// One self-check of the wgmma kernel on <paramref name="cuda"/> (<see cref="WgmmaSelfCheck"/>): a causal GQA problem with
    /// ragged tails and LSE, random inputs from a fixed seed, through the wgmma kernel and the kernel the call would use
    /// without it; null when they agree, else the mismatch.
    /// </summary>
    internal static string? SelfCheck(CudaContext cuda, ElementType type, int headDim)
    {
        const int b = WgmmaSelfCheck.Batch, hq = WgmmaSelfCheck.QueryHeads, hkv = WgmmaSelfCheck.KeyValueHeads;
        const int nq = WgmmaSelfCheck.QueryLength, nk = WgmmaSelfCheck.KeyLength;
        var random = new Random(20261205);
        using var q = Filled(cuda, type, (long)b * hq * nq * headDim, random);
        using var k = Filled(cuda, type, (long)b * hkv * nk * headDim, random);
        using var v = Filled(cuda, type, (long)b * hkv * nk * headDim, random);
        using var oReference = cuda.AllocateBuffer(type, (long)b * hq * nq * headDim);
        using var oWgmma = cuda.AllocateBuffer(type, (long)b * hq * nq * headDim);
        using var lseReference = cuda.AllocateBuffer(ElementType.Float32, (long)b * hq * nq);
        using var lseWgmma = cuda.AllocateBuffer(ElementType.Float32, (long)b * hq * nq);
        var (qv, kv, vv) = (q.View(b, hq, nq, headDim), k.View(b, hkv, nk, headDim), v.View(b, hkv, nk, headDim));
        var options = new FlashOptions { Causal = true };
        foreach (bool wgmma in new[] { false, true })
        {
            TensorView o = (wgmma ? oWgmma : oReference).View(b, hq, nq, headDim), lse = (wgmma ? lseWgmma : lseReference).View(b, hq, nq);
            var problem = FlashProblem.Create(qv, kv, vv, o, options, lse);
            var p = Params(problem, qv, kv, vv, o, lse);
            ReadOnlySpan<DeviceBuffer?> buffers = [q, k, v, wgmma ? oWgmma : oReference, wgmma ? lseWgmma : lseReference, null, null, null, null, null];
            if (wgmma)
            {
                if (!RunWgmma(cuda, problem, p, buffers)) return "cuTensorMapEncodeTiled rejected the check's contiguous views";
            }
            else Launch(cuda, problem, Choose(problem, p, ((IGpuKernelHost)cuda).TensorCoresFit(buffers[..4])), p, buffers);
        }
        cuda.Synchronize();
        return WgmmaSelfCheck.Compare(Read(oReference), Read(oWgmma), Read(lseReference), Read(lseWgmma), type);
    }

    private static CudaBuffer Filled(CudaContext cuda, ElementType type, long length, Random random)
    {
        var bits = new ushort[length];
        for (long i = 0; i < length; i++)
        {
            float x = (float)(random.NextDouble() * 2 - 1);
            bits[i] = type == ElementType.Float16 ? (ushort)BitConverter.HalfToInt16Bits((Half)x) : (ushort)(BitConverter.SingleToUInt32Bits(x) >> 16);
        }
        var buffer = cuda.AllocateBuffer(type, length);
        buffer.Write<ushort>(bits);
        return buffer;
    }

    private static float[] Read(CudaBuffer buffer)
    {
        var values = new float[buffer.Length];
        if (buffer.ElementType == ElementType.Float32)
        {
            buffer.Read<float>(values);
            return values;
        }
        var bits = new ushort[buffer.Length];
        buffer.Read<ushort>(bits);
        for (int i = 0; i < bits.Length; i++)
            values[i] = buffer.ElementType == ElementType.Float16 ? (float)BitConverter.Int16BitsToHalf((short)bits[i]) : BitConverter.UInt32BitsToSingle((uint)bits[i] << 16);
        return values;
    }

    private static bool Masked(FlashOptions o) => o.Causal || o.WindowLeft >= 0 || o.WindowRight >= 0;

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
            p.AlibiOffset = ElementOffset(slopes) + problem.AlibiRowOffset(slopes);   // a varlen sequence's own row of [B, Hq] slopes
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
        bool masked = Masked(problem.Options);
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
