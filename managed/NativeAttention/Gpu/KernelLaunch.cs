// A variant's module name and source factory per kernel API, made once: launches then allocate nothing.
using System.Collections.Concurrent;

namespace NativeAttention.Gpu;

/// <summary>
/// The module name and source factory of each <typeparamref name="TVariant"/> per <see cref="KernelApi"/>, built on first
/// use and reused: formatting the name and closing over the variant on every launch would allocate on every call.
/// </summary>
internal static class KernelLaunch<TVariant> where TVariant : struct, IKernelVariant, IEquatable<TVariant>
{
    private static readonly ConcurrentDictionary<(TVariant Variant, KernelApi Api), (string Name, Func<string> Source)> s_entries = new();

    /// <summary>The name and source factory to pass to <see cref="IGpuKernelHost.Launch"/> for <paramref name="variant"/>.</summary>
    public static (string Name, Func<string> Source) For(in TVariant variant, KernelApi api) =>
        s_entries.TryGetValue((variant, api), out var entry) ? entry : Add(variant, api);

    private static (string Name, Func<string> Source) Add(TVariant variant, KernelApi api) =>
        s_entries.GetOrAdd((variant, api), static key => (key.Variant.Name, () => key.Variant.Source(key.Api)));
}
