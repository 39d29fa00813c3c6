// What the host side of a GPU family (GpuFlash, GpuDecode, GpuMerge, ...) needs from a context: control runs
// context -> family -> host launch, never back up into the context.
namespace NativeAttention.Gpu;

/// <summary>
/// The kernel host a GPU family runs on: scratch memory, owner checks, the device's traits and launches of modules
/// compiled once per context. <see cref="GpuContext"/> implements it for CUDA and OpenCL.
/// </summary>
internal interface IGpuKernelHost
{
    /// <summary>The dialect this context compiles.</summary>
    KernelApi Api { get; }

    /// <summary>Compute units (OpenCL) or multiprocessors (CUDA) of the device; the automatic split count depends on it.</summary>
    int ComputeUnits { get; }

    /// <summary>
    /// Static local (OpenCL) or shared (CUDA) memory one work-group may declare, in bytes: the device's
    /// CL_DEVICE_LOCAL_MEM_SIZE (at least 32 KB by the standard) or CUDA's 48 KB static limit. A kernel variant that
    /// declares more must not be chosen.
    /// </summary>
    long LocalMemoryBytes { get; }

    /// <summary>The context's reusable scratch memory.</summary>
    GpuScratch Scratch { get; }

    /// <summary>
    /// Throws <see cref="ArgumentException"/> naming <paramref name="name"/> unless the view lives in device memory
    /// this context's kernels may address (its own buffers, or buffers of the same native context).
    /// </summary>
    void CheckOwner(in TensorView view, string name);

    /// <summary>
    /// True when the device runs the tensor-core flash kernels and every buffer's root address suits them (16-byte
    /// aligned for cp.async); always false on OpenCL.
    /// </summary>
    bool TensorCoresFit(ReadOnlySpan<DeviceBuffer?> buffers);

    /// <summary>
    /// Enqueues <paramref name="entryPoint"/> of the module <paramref name="name"/> (built from <paramref name="source"/> once
    /// per context, allowed <paramref name="dynamicSharedBytes"/> of dynamic shared memory per work-group) on a
    /// <paramref name="groupsX"/> x <paramref name="groupsY"/> grid of <paramref name="threads"/>-wide work-groups;
    /// arguments are the buffers' root allocations (null for absent ones), then <paramref name="parameters"/> by value.
    /// A module's name identifies its source and shared size: every launch of a name passes the same ones.
    /// </summary>
    /// <exception cref="NotSupportedException">On CUDA, <paramref name="groupsY"/> exceeds 65535 (the limit of grid y); fold
    /// such counts into x, whose limit is <c>2^31 - 1</c>.</exception>
    void Launch(string name, Func<string> source, string entryPoint, ReadOnlySpan<DeviceBuffer?> buffers, ReadOnlySpan<byte> parameters,
        int groupsX, int groupsY, int threads, int dynamicSharedBytes = 0);
}
