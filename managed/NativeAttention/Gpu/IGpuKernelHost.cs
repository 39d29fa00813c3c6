// What the family host code (Gpu<Family>) needs from a GPU context.
namespace NativeAttention.Gpu;

/// <summary>What <see cref="GpuDecode"/> needs from a GPU context: scratch memory, owner checks and launches.</summary>
internal interface IGpuKernelHost
{
    /// <summary>The dialect this context compiles.</summary>
    KernelApi Api { get; }

    /// <summary>Compute units (OpenCL) or multiprocessors (CUDA) of the device; the automatic split count depends on it.</summary>
    int ComputeUnits { get; }

    /// <summary>The context's reusable scratch memory.</summary>
    GpuScratch Scratch { get; }

    /// <summary>Throws <see cref="ArgumentException"/> naming <paramref name="name"/> unless the view lives in this context's buffers.</summary>
    void CheckOwner(in TensorView view, string name);

    /// <summary>
    /// Enqueues <paramref name="entryPoint"/> of the module <paramref name="name"/> (built from <paramref name="source"/> once
    /// per context) on a <paramref name="groupsX"/> x <paramref name="groupsY"/> grid of <paramref name="threads"/>-wide
    /// work-groups; arguments are the buffers' root allocations (null for absent ones), then <paramref name="parameters"/> by value.
    /// </summary>
    void Launch(string name, Func<string> source, string entryPoint, ReadOnlySpan<DeviceBuffer?> buffers, ReadOnlySpan<byte> parameters,
        int groupsX, int groupsY, int threads);
}
