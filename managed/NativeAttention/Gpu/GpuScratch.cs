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
    /// <summary>Number of slots. Families use 0-3; the block-sparse content builder uses 0-6 for its temporaries.</summary>
    public const int SlotCount = 8;

    private readonly DeviceBuffer?[] _slots = new DeviceBuffer?[SlotCount];
    private readonly int[]?[] _uploaded = new int[]?[SlotCount];
    private readonly int[] _uploadedLength = new int[SlotCount];

    /// <summary>Held by one call from its first upload to its last launch.</summary>
    public Lock Gate { get; } = new();

    /// <summary>
    /// Slot <paramref name="slot"/> with room for at least <paramref name="length"/> floats, for kernels to write (call
    /// under <see cref="Gate"/>). The slot stops vouching for what <see cref="Upload(int, ReadOnlySpan{int}, ReadOnlySpan{int})"/>
    /// last sent there: another family may share the slot number, and an upload after this must really transfer.
    /// </summary>
    public DeviceBuffer Take(int slot, long length)
    {
        var buffer = Reserve(slot, length);
        _uploaded[slot] = null;
        return buffer;
    }

    /// <summary>Slot <paramref name="slot"/> with room for <paramref name="length"/> floats; forgets the upload record only when it reallocates.</summary>
    private DeviceBuffer Reserve(int slot, long length)
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

    /// <summary>Slot <paramref name="slot"/> holding <paramref name="values"/>; see the two-span overload.</summary>
    public DeviceBuffer Upload(int slot, ReadOnlySpan<int> values) => Upload(slot, values, ReadOnlySpan<int>.Empty);

    /// <summary>
    /// Slot <paramref name="slot"/> holding <paramref name="first"/> then <paramref name="second"/> (int32 by bit
    /// pattern), uploaded only when that differs from what this slot last received: a block table that did not change
    /// costs no transfer and no synchronisation. The slot keeps its own copy of what it sent (callers may reuse their
    /// arrays), grown as needed, so a steady call allocates nothing. Call under <see cref="Gate"/>.
    /// </summary>
    public DeviceBuffer Upload(int slot, ReadOnlySpan<int> first, ReadOnlySpan<int> second)
    {
        int length = first.Length + second.Length;
        var buffer = Reserve(slot, length);
        var last = _uploaded[slot];
        if (last is not null && _uploadedLength[slot] == length &&
            last.AsSpan(0, first.Length).SequenceEqual(first) && last.AsSpan(first.Length, second.Length).SequenceEqual(second))
            return buffer;
        _uploaded[slot] = null;   // a failed write must not leave a stale record
        if (last is null || last.Length < length) last = new int[Math.Max(length, 2 * (last?.Length ?? 0))];
        first.CopyTo(last);
        second.CopyTo(last.AsSpan(first.Length));
        buffer.Write<float>(MemoryMarshal.Cast<int, float>(last.AsSpan(0, length)));
        (_uploaded[slot], _uploadedLength[slot]) = (last, length);
        return buffer;
    }

    public void Dispose()
    {
        foreach (var buffer in _slots) buffer?.Dispose();
    }
}
