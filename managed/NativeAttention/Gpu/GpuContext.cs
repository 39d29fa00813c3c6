// The part of a GPU context that CUDA and OpenCL share: every family's dispatch, owner checks, buffer tracking,
// scratch and the params layout probe. The two backends supply allocation, modules, launches and synchronisation.
using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

/// <summary>
/// A context on a GPU (<see cref="Cuda.CudaContext"/> or <see cref="OpenCl.OpenClContext"/>). Tensors must live in
/// device buffers this context can address; kernels run asynchronously on the context's stream or queue and
/// <see cref="AttentionContext.Synchronize"/> waits for them.
/// </summary>
public abstract class GpuContext : AttentionContext, IGpuKernelHost
{
    private readonly ConcurrentDictionary<DeviceBuffer, byte> _buffers = new();

    private protected GpuContext() => Scratch = new GpuScratch(AllocateDevice, Synchronize);

    /// <inheritdoc/>
    public sealed override MemoryLocation TensorLocation => MemoryLocation.Device;

    /// <inheritdoc cref="IGpuKernelHost.Scratch"/>
    internal GpuScratch Scratch { get; }

    /// <summary>Delta-rule prefills of this many tokens or more run the chunked kernel (tests set it to compare both kernels).</summary>
    internal int DeltaRuleChunkedMinTokens { get; set; } = GpuDeltaRule.ChunkedMinTokens;

    /// <summary>When positive, caps the chunks per sequence of one window of the chunked delta rule (tests set it to run many windows).</summary>
    internal int DeltaRuleWindowChunks { get; set; }

    /// <summary>Caps the local memory kernels may assume (tests set it to emulate a device with OpenCL's minimum 32 KB).</summary>
    internal long? LocalMemoryLimit { get; set; }

    /// <inheritdoc cref="IGpuKernelHost.Api"/>
    private protected abstract KernelApi Api { get; }

    /// <inheritdoc cref="IGpuKernelHost.ComputeUnits"/>
    private protected abstract int ComputeUnits { get; }

    /// <inheritdoc cref="IGpuKernelHost.LocalMemoryBytes"/>
    private protected abstract long LocalMemoryBytes { get; }

    /// <summary>Allocates <paramref name="length"/> zero-filled elements on the device (the backend's AllocateBuffer).</summary>
    private protected abstract DeviceBuffer AllocateDevice(ElementType type, long length);

    /// <inheritdoc cref="IGpuKernelHost.CheckOwner"/>
    private protected abstract void CheckOwner(in TensorView view, string name);

    /// <inheritdoc cref="IGpuKernelHost.TensorCoresFit"/>
    private protected virtual bool TensorCoresFit(ReadOnlySpan<DeviceBuffer?> buffers) => false;

    /// <inheritdoc cref="IGpuKernelHost.Launch"/>
    private protected abstract void Launch(string name, Func<string> source, string entryPoint, ReadOnlySpan<DeviceBuffer?> buffers,
        ReadOnlySpan<byte> parameters, int groupsX, int groupsY, int threads, int dynamicSharedBytes);

    KernelApi IGpuKernelHost.Api => Api;
    int IGpuKernelHost.ComputeUnits => ComputeUnits;
    long IGpuKernelHost.LocalMemoryBytes => LocalMemoryLimit is { } limit ? Math.Min(limit, LocalMemoryBytes) : LocalMemoryBytes;
    GpuScratch IGpuKernelHost.Scratch => Scratch;
    void IGpuKernelHost.CheckOwner(in TensorView view, string name) => CheckOwner(view, name);
    bool IGpuKernelHost.TensorCoresFit(ReadOnlySpan<DeviceBuffer?> buffers) => TensorCoresFit(buffers);

    void IGpuKernelHost.Launch(string name, Func<string> source, string entryPoint, ReadOnlySpan<DeviceBuffer?> buffers, ReadOnlySpan<byte> parameters,
        int groupsX, int groupsY, int threads, int dynamicSharedBytes) =>
        Launch(name, source, entryPoint, buffers, parameters, groupsX, groupsY, threads, dynamicSharedBytes);

    /// <summary>Disposes the modules of a per-context module cache that were built (a module never asked for never was).</summary>
    private protected static void DisposeBuilt<TModule>(ConcurrentDictionary<string, Lazy<TModule>> modules) where TModule : IDisposable
    {
        foreach (var module in modules.Values)
            if (module.IsValueCreated) module.Value.Dispose();
    }

    /// <summary>
    /// Accepts a <typeparamref name="TBuffer"/> whose native context is <paramref name="nativeContext"/>; otherwise throws
    /// an <see cref="ArgumentException"/> for <paramref name="name"/>, whose message is the name followed by
    /// <paramref name="otherContext"/> (a <typeparamref name="TBuffer"/> of another native context) or
    /// <paramref name="notABuffer"/> (any other storage).
    /// </summary>
    private protected static void CheckBufferOwner<TBuffer>(in TensorView view, string name, IntPtr nativeContext, Func<TBuffer, IntPtr> contextOf,
        string otherContext, string notABuffer) where TBuffer : DeviceBuffer
    {
        if (view.Storage is TBuffer buffer && contextOf(buffer) == nativeContext) return;
        TensorChecks.Throw(name + (view.Storage is TBuffer ? otherContext : notABuffer), name);
    }

    /// <summary>Checks location (the base) and that the device buffer is one this context can address.</summary>
    private protected sealed override void CheckTensor(in TensorView view, string name)
    {
        base.CheckTensor(view, name);
        CheckOwner(view, name);
    }

    private protected sealed override TensorView AllocateCore(ElementType type, ReadOnlySpan<int> shape)
    {
        long count = 1;
        foreach (int s in shape) count = checked(count * s);
        return AllocateDevice(type, count).View(shape);
    }

    private protected sealed override void FlashCore(FlashProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp)
    {
        // Decode-shaped calls (few rows per kv head) read K and V once on the split-KV decode kernel.
        if (GpuDecode.Serves(problem)) GpuDecode.Run(this, KvCacheProblem.ForFlash(problem), query, key, value, output, logSumExp);
        else GpuFlash.Run(this, problem, query, key, value, output, logSumExp);
    }

    /// <summary>
    /// Rows that see no key (a varlen sequence without keys, a KV-cache element with an empty cache): zeros into the
    /// output and -inf into the float32 LSE, filled on the device over the views' contiguous runs (one fill when a view's
    /// elements tile their span, as a packed sequence's output rows do); no host tensor is allocated or copied.
    /// </summary>
    private protected sealed override void WriteEmptyRowsCore(in TensorView output, in TensorView? logSumExp)
    {
        Span<byte> pattern = stackalloc byte[4];
        pattern.Clear();   // zero bits are 0 in float32, binary16 and bfloat16
        FillDevice(output, pattern[..output.ElementType.SizeOf()]);
        if (logSumExp is { } lse)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(pattern, float.NegativeInfinity);
            FillDevice(lse, pattern);
        }
    }

    /// <summary>Every element of a device view (any rank and strides, non-overlapping) set to <paramref name="pattern"/>, one element's bytes.</summary>
    private static void FillDevice(in TensorView view, ReadOnlySpan<byte> pattern)
    {
        long count = view.ElementCount;
        if (count == 0) return;
        var buffer = (DeviceBuffer)view.Storage!;
        int rank = view.Rank, size = pattern.Length;
        ReadOnlySpan<int> shape = view.Shape;
        ReadOnlySpan<long> strides = view.Strides;
        long span = 1;
        for (int a = 0; a < rank; a++) span += (shape[a] - 1) * strides[a];
        if (span == count && view.HasNonOverlappingElements)
        {
            // The elements are exactly the span's: one fill.
            buffer.FillBytesAt(buffer.ByteOffset + view.Offset * size, count * size, pattern);
            return;
        }
        // Runs along the longest unit-stride axis (single elements when there is none), over every index of the others.
        int run = -1;
        for (int a = 0; a < rank; a++)
            if (strides[a] == 1 && shape[a] > 1 && (run < 0 || shape[a] > shape[run])) run = a;
        long runLength = run < 0 ? 1 : shape[run];
        Span<int> index = stackalloc int[rank];
        index.Clear();
        for (long n = 0; n < count; n += runLength)
        {
            long offset = view.Offset;
            for (int a = 0; a < rank; a++) offset += index[a] * strides[a];
            buffer.FillBytesAt(buffer.ByteOffset + offset * size, runLength * size, pattern);
            for (int a = rank - 1; a >= 0; a--)
            {
                if (a == run) continue;
                if (++index[a] < shape[a]) break;
                index[a] = 0;
            }
        }
    }

    private protected sealed override void FlashKvCacheCore(KvCacheProblem problem, in TensorView query, in TensorView keyCache, in TensorView valueCache, in TensorView output, in TensorView? logSumExp)
    {
        if (GpuDecode.PrefersFlash(problem)) base.FlashKvCacheCore(problem, query, keyCache, valueCache, output, logSumExp);
        else GpuDecode.Run(this, problem, query, keyCache, valueCache, output, logSumExp);
    }

    private protected sealed override void MergeStatesCore(MergeProblem problem, in TensorView partialOutputs, in TensorView partialLogSumExp, in TensorView output, in TensorView? logSumExp) =>
        GpuMerge.Run(this, problem, partialOutputs, partialLogSumExp, output, logSumExp);

    private protected sealed override void NeighborhoodCore(NeighborhoodProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp) =>
        GpuNeighborhood.Run(this, problem, query, key, value, output, logSumExp);
    private protected sealed override void BlockSparseCore(BlockSparseProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp) =>
        GpuBlockSparse.Run(this, problem, query, key, value, output, logSumExp);
    private protected sealed override void LinearChunkedCore(LinearProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? initialState, in TensorView? finalState) =>
        GpuLinear.Run(this, problem, query, key, value, output, initialState, finalState);

    private protected sealed override void LinearDecodeStepCore(LinearProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView state, in TensorView? intermediateStates) =>
        GpuLinear.RunDecode(this, problem, query, key, value, output, state, intermediateStates);

    private protected sealed override void DeltaRuleChunkedCore(DeltaRuleProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView beta, in TensorView output,
        in TensorView? initialState, in TensorView? finalState) =>
        GpuDeltaRule.Run(this, problem, query, key, value, beta, output, initialState, finalState, DeltaRuleChunkedMinTokens, DeltaRuleWindowChunks);

    private protected sealed override void DeltaRuleDecodeStepCore(DeltaRuleProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView beta, in TensorView output,
        in TensorView state, in TensorView? intermediateStates) =>
        GpuDeltaRule.RunDecode(this, problem, query, key, value, beta, output, state, intermediateStates);

    /// <summary>Registers a buffer this context allocated, so that disposing the context releases it.</summary>
    private protected void Track(DeviceBuffer buffer) => _buffers.TryAdd(buffer, 0);

    /// <summary>Forgets a buffer that was disposed on its own.</summary>
    internal void Untrack(DeviceBuffer buffer) => _buffers.TryRemove(buffer, out _);

    /// <summary>Runs the layout probe <paramref name="entryPoint"/> (<see cref="LayoutProbe"/>): the struct's size, then each field's offset.</summary>
    internal int[] ParamsLayout(string entryPoint)
    {
        ThrowIfDisposed();
        var api = Api;
        using var output = AllocateDevice(ElementType.Float32, 128);
        ((IGpuKernelHost)this).Launch("layout_probe." + entryPoint, () => LayoutProbe.For(entryPoint).Source(api), entryPoint,
            [output], [], 1, 1, 1);
        var values = new float[128];
        output.Read<float>(values);
        return MemoryMarshal.Cast<float, int>(values).ToArray();
    }

    /// <summary>Releases the scratch and every buffer this context allocated; backends release their modules, queue and context after.</summary>
    protected override void ReleaseResources()
    {
        Scratch.Dispose();
        foreach (var buffer in _buffers.Keys) buffer.Dispose();
    }
}
