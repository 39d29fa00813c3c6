// The GPU half of Flex attention: the ILGPU-compiled flex kernels (FlexKernels), loaded and launched by NativeAttention's
// runtime on its own CUDA or OpenCL context, stream or queue.
using System.Reflection;
using System.Runtime.InteropServices;
using ILGPU;
using NativeAttention.Gpu;

namespace NativeAttention.Ilgpu.Flex.Gpu;

/// <summary>Which forward kernel a call runs (tests and the self-check force one; calls take <see cref="Auto"/>).</summary>
internal enum FlexPath
{
    /// <summary>The tensor-core kernel where <see cref="FlexMmaPath.Pick"/> allows it, else the scalar one.</summary>
    Auto,
    /// <summary>The scalar kernel.</summary>
    Scalar,
    /// <summary>The tensor-core kernel where the device and types allow it, without the self-check or the switch.</summary>
    Mma,
}

/// <summary>Runs Flex attention on a CUDA or OpenCL context of NativeAttention.</summary>
internal static class FlexGpu
{
    /// <summary>The scratch slot the block table is uploaded to (under the scratch gate, like every family's uploads).</summary>
    private const int TableSlot = 0;

    /// <summary>The scratch slot of the view bounds checks' error buffer in a forward call (<see cref="FlexViewChecks"/>).</summary>
    private const int ErrorSlot = 2;

    /// <summary>
    /// Runs the flex kernel on arguments the public API has already validated: Q <c>[B, Hq, Nq, Dqk]</c>, K
    /// <c>[B, Hkv, Nk, Dqk]</c>, V <c>[B, Hkv, Nk, Dv]</c>, O <c>[B, Hq, Nq, Dv]</c>, LSE <c>[B, Hq, Nq]</c> when given,
    /// device tensors of <paramref name="context"/>. A block mask, when given, lists the partial and full blocks: the
    /// kernel skips empty blocks and does not evaluate the mask modification on full ones.
    /// </summary>
    /// <exception cref="ArgumentException">ILGPU cannot compile a modification (the message names the struct and why), or a
    /// view field of one is not a view of this context's device memory.</exception>
    /// <exception cref="NotSupportedException">Head dims above 256.</exception>
    public static void Run<TScore, TMask>(GpuContext context, TensorView query, TensorView key, TensorView value, TensorView output,
        TensorView? logSumExp, float scale, FlexBlockMask? blockMask, TScore scoreMod, TMask maskMod, bool viewChecks = true,
        FlexPath path = FlexPath.Auto)
        where TScore : struct, IScoreMod where TMask : struct, IMaskMod
    {
        var type = query.ElementType;
        if (key.ElementType != type || value.ElementType != type || output.ElementType != type || logSumExp is { ElementType: not ElementType.Float32 })
            throw new NotSupportedException($"Flex attention on {context.Backend} takes Q, K, V and O of one element type and a Float32 log-sum-exp.");
        switch (type)
        {
            case ElementType.Float32:
                Run<TScore, TMask, float, Fp32Element>(context, query, key, value, output, logSumExp, scale, blockMask, scoreMod, maskMod, viewChecks, path);
                break;
            case ElementType.Float16:
                Run<TScore, TMask, ushort, Fp16Element>(context, query, key, value, output, logSumExp, scale, blockMask, scoreMod, maskMod, viewChecks, path);
                break;
            default:
                Run<TScore, TMask, ushort, Bf16Element>(context, query, key, value, output, logSumExp, scale, blockMask, scoreMod, maskMod, viewChecks, path);
                break;
        }
    }

    private static void Run<TScore, TMask, TElement, TCodec>(GpuContext context, TensorView query, TensorView key, TensorView value, TensorView output,
        TensorView? logSumExp, float scale, FlexBlockMask? blockMask, TScore scoreMod, TMask maskMod, bool viewChecks, FlexPath path)
        where TScore : struct, IScoreMod where TMask : struct, IMaskMod where TElement : unmanaged where TCodec : struct, IFlexElement<TElement>
    {
        IGpuKernelHost host = context;
        int batch = query.Shape[0], headsQ = query.Shape[1], nq = query.Shape[2], dqk = query.Shape[3];
        int headsKv = key.Shape[1], nk = key.Shape[2], dv = value.Shape[3];
        int dims = Math.Max(dqk, dv);
        Type tile = dims <= 64 ? typeof(FlexTile64) : dims <= 128 ? typeof(FlexTile128) : dims <= 256 ? typeof(FlexTile256)
            : throw new NotSupportedException($"Flex attention on {context.Backend} takes head dims up to 256; Dqk is {dqk} and Dv {dv}.");
        var (rows, keys) = tile == typeof(FlexTile256) ? (8, 8) : (16, 16);
        // The tensor-core kernel has the 16 x 16 tiling of FlexTile64 and FlexTile128, so the arguments below serve both.
        var mma = path == FlexPath.Scalar || typeof(TCodec) == typeof(Fp32Element) || dims > 128 ? null : FlexMmaPath.Pick(context, typeof(TCodec), dims, path == FlexPath.Mma);
        var kernel = mma is { } m
            ? MmaForwardMethod.MakeGenericMethod(typeof(TScore), typeof(TMask), typeof(TCodec), m.Type, m.Accumulator)
            : ForwardMethod.MakeGenericMethod(typeof(TScore), typeof(TMask), tile, typeof(TElement), typeof(TCodec));
        int threads = mma is null ? FlexKernels.Lanes * rows : FlexMma.Threads;
        var text = FlexCompiler.Get(kernel, host.Api, viewChecks, (typeof(TScore), "scoreMod"), (typeof(TMask), "maskMod"));
        bool checks = viewChecks && (FlexViewFields.HasViews(typeof(TScore)) || FlexViewFields.HasViews(typeof(TMask)));

        var a = new FlexForwardArgs<TScore, TMask, TElement>
        {
            Q = FlexDeviceMemory.Whole<TElement>((DeviceBuffer)query.Storage!), K = FlexDeviceMemory.Whole<TElement>((DeviceBuffer)key.Storage!),
            V = FlexDeviceMemory.Whole<TElement>((DeviceBuffer)value.Storage!), O = FlexDeviceMemory.Whole<TElement>((DeviceBuffer)output.Storage!),
            QOffset = query.Offset, KOffset = key.Offset, VOffset = value.Offset, OOffset = output.Offset,
            QStrideB = query.Strides[0], QStrideH = query.Strides[1], QStrideN = query.Strides[2], QStrideD = query.Strides[3],
            KStrideB = key.Strides[0], KStrideH = key.Strides[1], KStrideN = key.Strides[2], KStrideD = key.Strides[3],
            VStrideB = value.Strides[0], VStrideH = value.Strides[1], VStrideN = value.Strides[2], VStrideD = value.Strides[3],
            OStrideB = output.Strides[0], OStrideH = output.Strides[1], OStrideN = output.Strides[2], OStrideD = output.Strides[3],
            Batch = batch, HeadsQ = headsQ, Group = headsQ / headsKv, Nq = nq, Nk = nk, Dqk = dqk, Dv = dv, Scale = scale,
            ScoreMod = scoreMod, MaskMod = maskMod,
        };
        if (logSumExp is { } lse)
        {
            a.Lse = FlexDeviceMemory.Whole<float>((DeviceBuffer)lse.Storage!);
            a.HasLse = 1;
            a.LseOffset = lse.Offset;
            (a.LseStrideB, a.LseStrideH, a.LseStrideN) = (lse.Strides[0], lse.Strides[1], lse.Strides[2]);
        }
        int[]? table = null;
        if (blockMask is { } mask)
        {
            a.HasBlockMask = 1;
            a.QueryBlockSize = mask.QueryBlockSize;
            a.KeyBlockSize = mask.KeyBlockSize;
            a.QueryBlocks = (nq + mask.QueryBlockSize - 1) / mask.QueryBlockSize;
            a.TilesPerBlock = (mask.QueryBlockSize + rows - 1) / rows;
            a.MaskStrideB = mask.MaskBatch == 1 ? 0 : mask.MaskHeads * a.QueryBlocks;
            a.MaskStrideH = mask.MaskHeads == 1 ? 0 : a.QueryBlocks;
            a.MaskHeadDiv = headsQ / mask.MaskHeads;
            table = Table(mask, a.QueryBlocks);
        }
        else
        {
            a.QueryBlockSize = rows;
            a.KeyBlockSize = keys;
            a.QueryBlocks = (nq + rows - 1) / rows;
            a.TilesPerBlock = 1;
            a.KeyBlocks = (nk + keys - 1) / keys;
            a.MaskHeadDiv = 1;
        }
        long groups = (long)batch * headsQ * a.QueryBlocks * a.TilesPerBlock;
        if (groups > int.MaxValue)
            throw new NotSupportedException($"Flex attention needs {groups} work-groups (B x Hq x query tiles); a launch holds at most {int.MaxValue}.");
        if (groups == 0) return;

        var scratch = host.Scratch;
        lock (scratch.Gate)
        {
            if (table is not null) a.Meta = FlexDeviceMemory.Whole<int>(scratch.Upload(TableSlot, table));
            var errors = checks ? Errors(scratch.Take(ErrorSlot, FlexViewChecks.BufferInts)) : null;
            if (errors is not null) a.Errors = RecordOf(errors);
            var buffers = new List<DeviceBuffer?>();
            byte[] block = FlexArguments.Write(a, host.Api, buffers, (buffer, path) => CheckOwner(host, buffer, path), Foreign(context), errors);
            Launch(host, text, buffers, block, (int)groups, threads);
            if (errors is not null) ThrowIfFailed(context, errors, scoreMod, maskMod, "the flex kernel");
        }
    }

    /// <summary><paramref name="buffer"/> (at least <see cref="FlexViewChecks.BufferInts"/> ints) zeroed: the pad and a clear record.</summary>
    private static DeviceBuffer Errors(DeviceBuffer buffer)
    {
        Span<int> zeros = stackalloc int[FlexViewChecks.BufferInts];
        zeros.Clear();
        buffer.Write<float>(MemoryMarshal.Cast<int, float>(zeros));
        return buffer;
    }

    /// <summary>The record part of an error buffer, as the kernels' Errors argument.</summary>
    private static ArrayView<int> RecordOf(DeviceBuffer errors) =>
        FlexDeviceMemory.Whole<int>(errors).SubView(FlexViewChecks.PadBytes / sizeof(int), FlexViewChecks.RecordInts);

    /// <summary>Reads the error buffer after the launch (waiting for it) and throws the failure it records, if any.</summary>
    private static void ThrowIfFailed<TScore, TMask>(GpuContext context, DeviceBuffer errors, TScore scoreMod, TMask maskMod, string kernel)
        where TScore : struct where TMask : struct
    {
        Span<int> record = stackalloc int[FlexViewChecks.BufferInts];
        errors.Read<float>(MemoryMarshal.Cast<int, float>(record));
        FlexViewChecks.ThrowIfFailed(record, context.Backend.ToString(), typeof(TScore), scoreMod, typeof(TMask), maskMod, kernel);
    }

    /// <summary>
    /// Evaluates <paramref name="maskMod"/> on the device for every element and classifies each
    /// <c>queryBlock x keyBlock</c> block as empty, partial or full. Waits for the device and returns a mask in host memory.
    /// </summary>
    /// <exception cref="ArgumentException">ILGPU cannot compile <paramref name="maskMod"/> (the message names the struct and
    /// why), or a size is out of range (block sizes from <see cref="BlockMask.MinBlockSize"/> to <see cref="BlockMask.MaxBlockSize"/>).</exception>
    public static FlexBlockMask CreateBlockMask<TMask>(GpuContext context, TMask maskMod, int batch, int heads, int queryLength, int keyLength,
        int queryBlockSize, int keyBlockSize) where TMask : struct, IMaskMod
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(heads, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(queryLength);
        ArgumentOutOfRangeException.ThrowIfNegative(keyLength);
        if (queryBlockSize is < BlockMask.MinBlockSize or > BlockMask.MaxBlockSize)
            throw new ArgumentOutOfRangeException(nameof(queryBlockSize), queryBlockSize, $"Expected a block size from {BlockMask.MinBlockSize} to {BlockMask.MaxBlockSize}.");
        if (keyBlockSize is < BlockMask.MinBlockSize or > BlockMask.MaxBlockSize)
            throw new ArgumentOutOfRangeException(nameof(keyBlockSize), keyBlockSize, $"Expected a block size from {BlockMask.MinBlockSize} to {BlockMask.MaxBlockSize}.");
        IGpuKernelHost host = context;
        int queryBlocks = (queryLength + queryBlockSize - 1) / queryBlockSize, keyBlocks = (keyLength + keyBlockSize - 1) / keyBlockSize;
        long rows = (long)batch * heads * queryBlocks, cells = rows * keyBlocks;
        if (cells > int.MaxValue || 2 * rows + 2 * cells > int.MaxValue)
            throw new NotSupportedException($"A block mask of {rows} rows x {keyBlocks} key blocks exceeds {int.MaxValue} entries.");
        int r = (int)rows, n = (int)cells;
        var classify = FlexCompiler.Get(ClassifyMethod.MakeGenericMethod(typeof(TMask)), host.Api, (typeof(TMask), "maskMod"));
        var compact = FlexCompiler.Get(CompactMethod, host.Api);
        var output = new int[2 * r + 2 * n];
        if (n > 0)
        {
            var scratch = host.Scratch;
            lock (scratch.Gate)
            {
                // Slot 1: the view checks' error buffer, then the classes.
                var errors = Errors(scratch.Take(1, FlexViewChecks.BufferInts + (long)n));
                var classes = FlexDeviceMemory.Whole<int>(errors).SubView(FlexViewChecks.BufferInts, n);
                var lists = scratch.Take(2, output.Length);
                var ca = new FlexClassifyArgs<TMask>
                {
                    Classes = classes, Errors = RecordOf(errors), Heads = heads, Nq = queryLength, Nk = keyLength,
                    QueryBlockSize = queryBlockSize, KeyBlockSize = keyBlockSize, QueryBlocks = queryBlocks, KeyBlocks = keyBlocks, MaskMod = maskMod,
                };
                var buffers = new List<DeviceBuffer?>();
                byte[] block = FlexArguments.Write(ca, host.Api, buffers, (buffer, path) => CheckOwner(host, buffer, path), Foreign(context), errors);
                Launch(host, classify, buffers, block, n, FlexKernels.MaskThreads);
                ThrowIfFailed(context, errors, new NoScoreMod(), maskMod, "CreateBlockMask");
                var pa = new FlexCompactArgs { Classes = classes, Output = FlexDeviceMemory.Whole<int>(lists), Rows = r, KeyBlocks = keyBlocks };
                buffers.Clear();
                block = FlexArguments.Write(pa, host.Api, buffers, (buffer, path) => CheckOwner(host, buffer, path));
                Launch(host, compact, buffers, block, r, FlexKernels.MaskThreads);
                lists.Read<float>(MemoryMarshal.Cast<int, float>(output.AsSpan()));
                context.Synchronize();
            }
        }
        return new FlexBlockMask
        {
            QueryBlockSize = queryBlockSize, KeyBlockSize = keyBlockSize, MaskBatch = batch, MaskHeads = heads, MaxBlocksPerRow = keyBlocks,
            FullCounts = output.AsMemory(0, r), PartialCounts = output.AsMemory(r, r),
            FullIndices = output.AsMemory(2 * r, n), PartialIndices = output.AsMemory(2 * r + n, n),
        };
    }

    private static readonly MethodInfo ForwardMethod = typeof(FlexKernels).GetMethod(nameof(FlexKernels.Forward))!;
    private static readonly MethodInfo MmaForwardMethod = typeof(FlexMmaKernels).GetMethod(nameof(FlexMmaKernels.Forward))!;
    private static readonly MethodInfo ClassifyMethod = typeof(FlexKernels).GetMethod(nameof(FlexKernels.Classify))!;
    private static readonly MethodInfo CompactMethod = typeof(FlexKernels).GetMethod(nameof(FlexKernels.Compact))!;

    /// <summary>
    /// The block table the kernel reads: <c>[2 R + 1]</c> offsets (row r's full blocks are <c>[t[2r], t[2r+1])</c>, its
    /// partial ones <c>[t[2r+1], t[2r+2])</c>), then the key-block indices. Rows are the mask's (MaskBatch x MaskHeads x
    /// query blocks).
    /// </summary>
    internal static int[] Table(FlexBlockMask mask, int queryBlocks)
    {
        int rows = mask.MaskBatch * mask.MaskHeads * queryBlocks, capacity = mask.MaxBlocksPerRow;
        var fullCounts = mask.FullCounts.Span;
        var partialCounts = mask.PartialCounts.Span;
        long entries = 0;
        for (int r = 0; r < rows; r++) entries += (fullCounts.IsEmpty ? 0 : fullCounts[r]) + partialCounts[r];
        if (2L * rows + 1 + entries > int.MaxValue)
            throw new NotSupportedException($"The block table needs {2L * rows + 1 + entries} entries; a device table holds at most {int.MaxValue}.");
        var table = new int[2 * rows + 1 + entries];
        int next = 2 * rows + 1;
        for (int r = 0; r < rows; r++)
        {
            table[2 * r] = next;
            if (!fullCounts.IsEmpty)
            {
                mask.FullIndices.Span.Slice(r * capacity, fullCounts[r]).CopyTo(table.AsSpan(next));
                next += fullCounts[r];
            }
            table[2 * r + 1] = next;
            mask.PartialIndices.Span.Slice(r * capacity, partialCounts[r]).CopyTo(table.AsSpan(next));
            next += partialCounts[r];
        }
        table[2 * rows] = next;
        return table;
    }

    private static void Launch(IGpuKernelHost host, FlexKernelText text, List<DeviceBuffer?> buffers, byte[] block, int groups, int threads)
    {
        if (text.ParameterBytes >= 0 && text.ParameterBytes != block.Length)
            throw new InvalidOperationException($"{text.Name}: the PTX declares a {text.ParameterBytes}-byte parameter block; the arguments take {block.Length}.");
        host.Launch(text.Name, () => text.Text, text.EntryPoint, CollectionsMarshal.AsSpan(buffers), block, groups, 1, threads, FlexViewChecks.SharedBytes);
    }

    /// <summary>
    /// For a context <see cref="IlgpuAttention"/> created from an ILGPU accelerator: the wrapper of a buffer of that
    /// accelerator (null for other buffers, which FlexArguments rejects).
    /// </summary>
    private static Func<ILGPU.Runtime.MemoryBuffer, string, DeviceBuffer?>? Foreign(GpuContext context) =>
        IlgpuAttention.Of(context) is { } owner
            ? (buffer, path) => ReferenceEquals(buffer.Accelerator, owner.Accelerator) && buffer is not ILGPU.Runtime.CPU.CPUMemoryBuffer ? owner.DeviceBufferOf(buffer, path) : null
            : null;

    private static void CheckOwner(IGpuKernelHost host, DeviceBuffer buffer, string path) =>
        host.CheckOwner(buffer.View(checked((int)Math.Min(buffer.Length, int.MaxValue))), path);
}
