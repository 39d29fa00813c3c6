// The CUDA context's side of the Hopper flash kernel: its mode, its self-check record, the kernel choice per call,
// TMA tensor-map encoding and sm_90a launches.
using NativeAttention.Interop.Cuda;
using static NativeAttention.Interop.Cuda.CudaNative;

namespace NativeAttention.Gpu.Cuda;

public sealed unsafe partial class CudaContext
{
    /// <summary>How this context treats the wgmma kernel; from <see cref="WgmmaSelection.Variable"/> at creation, settable by tests.</summary>
    internal WgmmaMode WgmmaMode { get; set; } = WgmmaSelection.ModeFromEnvironment();

    private WgmmaChoice? _notHopper;

    /// <summary>This context's self-check record.</summary>
    internal WgmmaSelfCheckState WgmmaCheck { get; } = new();

    /// <summary>
    /// Whether a validated flash call runs on the wgmma kernel (<see cref="WgmmaSelection.Choose"/>); in
    /// <see cref="WgmmaMode.Auto"/> the first call that would use it for a (type, head dim) runs the self-check first.
    /// </summary>
    internal WgmmaChoice ChooseWgmma(FlashProblem problem, in QkvoParams t, ReadOnlySpan<DeviceBuffer?> qkvo)
    {
        // Off, or not an sm_90 device: the same answer for every call, made once.
        if (WgmmaMode == WgmmaMode.Off) return WgmmaSelection.Disabled;
        if (_device.ComputeCapability != 90) return _notHopper ??= WgmmaSelection.NotHopper(_device.ComputeCapability);
        bool aligned = true;
        foreach (var buffer in qkvo)
            if (buffer is CudaBuffer b && (b.RootPointer & 15) != 0) aligned = false;
        var choice = WgmmaSelection.Choose(WgmmaMode, _device.ComputeCapability, CudaCompiler.Version, problem.ElementType, problem.HeadDim,
            problem.ValueDim, ScoreOptions.Of(problem.Options), t, aligned, WgmmaCheck.Failure);
        if (!choice.Use || WgmmaMode != WgmmaMode.Auto || !WgmmaCheck.Needs(problem.ElementType, problem.HeadDim)) return choice;
        string? failure = WgmmaCheck.Run(problem.ElementType, problem.HeadDim, (type, d) => GpuFlash.SelfCheck(this, type, d));
        return failure is null ? choice : new WgmmaChoice(false, "this context's wgmma self-check failed: " + failure);
    }

    /// <summary>Encodes <paramref name="spec"/> over the allocation at <paramref name="root"/> into the 128 bytes of <paramref name="into"/>.</summary>
    /// <exception cref="CudaException">The driver rejected the map.</exception>
    internal void EncodeTensorMap(ulong root, in TensorMapSpec spec, Span<byte> into)
    {
        if (into.Length < 128) throw new ArgumentException("A CUtensorMap takes 128 bytes.", nameof(into));
        var dims = stackalloc ulong[TensorMapSpec.Rank];
        var strides = stackalloc ulong[TensorMapSpec.Rank - 1];
        var box = stackalloc uint[TensorMapSpec.Rank];
        var elementStrides = stackalloc uint[TensorMapSpec.Rank];
        ulong[] d = spec.Dims(), s = spec.Strides();
        uint[] b = spec.Box();
        for (int i = 0; i < TensorMapSpec.Rank; i++)
        {
            dims[i] = d[i];
            box[i] = b[i];
            elementStrides[i] = 1;
            if (i < TensorMapSpec.Rank - 1) strides[i] = s[i];
        }
        // CUtensorMap is 64-byte aligned: encode into an aligned scratch, then copy out.
        var scratch = stackalloc byte[128 + 64];
        byte* map = (byte*)(((nuint)scratch + 63) & ~(nuint)63);
        MakeCurrent();
        CudaException.Check(cuTensorMapEncodeTiled(map, spec.DataType, TensorMapSpec.Rank, (void*)(root + (ulong)spec.ByteOffset), dims, strides, box,
            elementStrides, TensorMapSpec.InterleaveNone, TensorMapSpec.Swizzle128B, TensorMapSpec.L2Promotion256B, TensorMapSpec.OobFillZeros),
            "cuTensorMapEncodeTiled");
        new ReadOnlySpan<byte>(map, 128).CopyTo(into);
    }

    /// <summary><see cref="IGpuKernelHost.Launch"/> of a module compiled for <c>compute_90a</c> (wgmma, setmaxnreg, TMA).</summary>
    internal void LaunchSm90a(string name, Func<string> source, string entryPoint, ReadOnlySpan<DeviceBuffer?> buffers, ReadOnlySpan<byte> parameters,
        int groups, int threads, int dynamicSharedBytes) =>
        LaunchFor("90a", name, source, entryPoint, buffers, parameters, groups, 1, threads, dynamicSharedBytes);
}
