// What every compiled kernel specialisation tells a backend: its module name, entry point, #define block, full
// source per dialect and dynamic shared memory.
namespace NativeAttention.Gpu;

/// <summary>
/// One specialisation of one kernel file under <c>kernels/</c>. Every family's variants (and the layout probes)
/// implement it, so one registry (<see cref="KernelVariants"/>) can enumerate, compile and build all of them.
/// </summary>
internal interface IKernelVariant
{
    /// <summary>
    /// The module name, unique among the variants of one dialect (contexts cache compiled modules under it), e.g.
    /// <c>flash_fwd.hd64.f16.masked</c>.
    /// </summary>
    string Name { get; }

    /// <summary>The kernel function the module exports.</summary>
    string EntryPoint { get; }

    /// <summary>The specialisation defines, in the order they are emitted; each has an #ifndef default in the kernel.</summary>
    IEnumerable<KeyValuePair<string, string>> Defines();

    /// <summary>The complete, self-contained kernel source for <paramref name="api"/>.</summary>
    string Source(KernelApi api);

    /// <summary>Dynamic shared memory the launch requests, in bytes (0 for kernels with static shared memory only).</summary>
    int DynamicSharedBytes { get; }
}
