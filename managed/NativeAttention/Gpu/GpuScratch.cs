// Reusable device scratch memory of one GPU context.
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

/// <summary>
/// Growable device scratch of one context, in numbered slots of float32 elements (int32 data is stored by bit
/// pattern). A call holds <see cref="Gate"/> from its uploads to its last launch; uploads are ordered after every kernel
/// enqueued before them on the context's in-order queue, so a later call never overwrites what an earlier kernel still
/// reads.
/// </summary>
internal sealed class GpuScratch(Func<ElementType, long, DeviceBuffer> allocate, Action synchronize) : IDisposable
{
    private readonly DeviceBuffer?[] _slots = new DeviceBuffer?[4];
    private readonly int[]?[] _uploaded = new int[]?[4];

    /// <summary>Held by one call from its first upload to its last launch.</summary>
    public Lock Gate { get; } = new();

    /// <summary>Slot <paramref name="slot"/> with room for at least <paramref name="length"/> floats (call under <see cref="Gate"/>).</summary>
    public DeviceBuffer Take(int slot, long length)
    {
        var buffer = _slots[slot];
        if (buffer is not null && buffer.Length >= length) return buffer;
        long size = Math.Max(length, Math.Max(256, 2 * (buffer?.Length ?? 0)));  // geometric growth: rare reallocation
        if (buffer is not null)
        {
            synchronize();   // kernels enqueued earlier may still read the old buffer
            buffer.Dispose();
            _slots[slot] = null;
        }
        _uploaded[slot] = null;
        return _slots[slot] = allocate(ElementType.Float32, size);
    }

    /// <summary>
    /// Slot <paramref name="slot"/> holding <paramref name="data"/> (int32 by bit pattern), uploaded only when it differs
    /// from what this slot last received: a block table that did not change costs no transfer and no synchronisation.
    /// Call under <see cref="Gate"/>.
    /// </summary>
    public DeviceBuffer Upload(int slot, int[] data)
    {
        var buffer = Take(slot, data.Length);
        if (_uploaded[slot] is { } last && last.AsSpan().SequenceEqual(data)) return buffer;
        _uploaded[slot] = null;   // a failed write must not leave a stale record
        buffer.Write<float>(MemoryMarshal.Cast<int, float>(data));
        _uploaded[slot] = data;
        return buffer;
    }

    public void Dispose()
    {
        foreach (var buffer in _slots) buffer?.Dispose();
    }
}
