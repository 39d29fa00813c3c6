// Device memory of a GPU backend, usable as tensor storage: allocate, upload, download, fill, slice.
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

/// <summary>
/// A run of elements in the memory of an OpenCL or CUDA device. A buffer is either a root (an allocation, owned
/// or wrapped) or a slice of a root; slices share the root's memory and lifetime. Disposing the root releases
/// owned memory and makes every slice and view unusable (<see cref="ObjectDisposedException"/>); disposing a
/// slice does nothing. Transfers are synchronous with respect to the host.
/// </summary>
public abstract class DeviceBuffer : TensorStorage, IDisposable
{
    private readonly DeviceBuffer? _root;
    private int _disposed;
    private Func<bool>? _ownerReleased;

    private protected DeviceBuffer(DeviceBuffer? root, ElementType type, long length, long byteOffset)
    {
        _root = root;
        ElementType = type;
        Length = length;
        ByteOffset = byteOffset;
    }

    /// <inheritdoc/>
    public override ElementType ElementType { get; }

    /// <inheritdoc/>
    public override long Length { get; }

    /// <inheritdoc/>
    public override MemoryLocation Location => MemoryLocation.Device;

    /// <summary>Byte offset of element 0 inside the root allocation.</summary>
    public long ByteOffset { get; }

    /// <summary>Size in bytes.</summary>
    public long ByteLength => Length * ElementType.SizeOf();

    /// <summary>True once the root buffer was disposed (or, for wrapped memory observed for release, once its owner freed it).</summary>
    public bool IsDisposed => Volatile.Read(ref Root._disposed) != 0 || Root._ownerReleased?.Invoke() == true;

    /// <summary>
    /// For a root that wraps memory another library owns: <paramref name="released"/> says when that library freed it,
    /// after which this buffer, its slices and views read as disposed (ILGPU interop).
    /// </summary>
    internal void ObserveOwnerRelease(Func<bool> released) => _ownerReleased = released;

    /// <summary>The allocation this buffer belongs to (itself for a root).</summary>
    private protected DeviceBuffer Root => _root ?? this;

    internal override (object Allocation, long ByteOffset) Identity => (Root, ByteOffset);

    internal override void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(IsDisposed, this);

    /// <summary>A contiguous row-major view of the first elements of this buffer.</summary>
    /// <exception cref="ArgumentException">The shape holds more elements than the buffer.</exception>
    public TensorView View(params ReadOnlySpan<int> shape) => new(this, shape, TensorView.ContiguousStrides(shape));

    /// <summary>Elements [<paramref name="start"/>, <paramref name="start"/> + <paramref name="length"/>) as a buffer sharing this memory.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The range is outside the buffer.</exception>
    /// <exception cref="ObjectDisposedException">The buffer was disposed.</exception>
    public DeviceBuffer Slice(long start, long length)
    {
        ThrowIfDisposed();
        CheckRange(start, length);
        return SliceCore(ByteOffset + start * ElementType.SizeOf(), length);
    }

    /// <summary>Copies <paramref name="source"/> to elements starting at <paramref name="start"/>.</summary>
    /// <exception cref="ArgumentException"><typeparamref name="T"/> does not match <see cref="ElementType"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The range is outside the buffer.</exception>
    /// <exception cref="ObjectDisposedException">The buffer was disposed.</exception>
    public void Write<T>(ReadOnlySpan<T> source, long start = 0) where T : unmanaged
    {
        CheckAccess<T>(start, source.Length);
        WriteBytes(ByteOffset + start * ElementType.SizeOf(), MemoryMarshal.AsBytes(source));
    }

    /// <summary>Copies elements starting at <paramref name="start"/> into <paramref name="destination"/>.</summary>
    /// <exception cref="ArgumentException"><typeparamref name="T"/> does not match <see cref="ElementType"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The range is outside the buffer.</exception>
    /// <exception cref="ObjectDisposedException">The buffer was disposed.</exception>
    public void Read<T>(Span<T> destination, long start = 0) where T : unmanaged
    {
        CheckAccess<T>(start, destination.Length);
        ReadBytes(ByteOffset + start * ElementType.SizeOf(), MemoryMarshal.AsBytes(destination));
    }

    /// <summary>Sets every element to <paramref name="value"/> rounded to the element type.</summary>
    /// <exception cref="ObjectDisposedException">The buffer was disposed.</exception>
    public void Fill(double value)
    {
        ThrowIfDisposed();
        Span<byte> pattern = stackalloc byte[4];
        unsafe
        {
            fixed (byte* p = pattern) TensorView.WriteElement(p, ElementType, 0, value);
        }
        FillBytes(ByteOffset, ByteLength, pattern[..ElementType.SizeOf()]);
    }

    /// <summary>Releases the memory if this root buffer owns it; a slice's Dispose does nothing.</summary>
    public void Dispose()
    {
        if (_root is not null || Interlocked.Exchange(ref _disposed, 1) != 0) return;
        ReleaseCore();
        GC.SuppressFinalize(this);
    }

    internal void ReadBytesAt(long byteOffset, Span<byte> destination)
    {
        ThrowIfDisposed();
        ReadBytes(byteOffset, destination);
    }

    internal void WriteBytesAt(long byteOffset, ReadOnlySpan<byte> source)
    {
        ThrowIfDisposed();
        WriteBytes(byteOffset, source);
    }

    /// <summary>Repeats <paramref name="pattern"/> over <paramref name="byteCount"/> bytes from <paramref name="byteOffset"/> (relative to the root allocation).</summary>
    internal void FillBytesAt(long byteOffset, long byteCount, ReadOnlySpan<byte> pattern)
    {
        ThrowIfDisposed();
        FillBytes(byteOffset, byteCount, pattern);
    }

    /// <summary>A slice at <paramref name="byteOffset"/> of the root allocation.</summary>
    private protected abstract DeviceBuffer SliceCore(long byteOffset, long length);
    /// <summary>Host to device; <paramref name="byteOffset"/> is relative to the root allocation.</summary>
    private protected abstract void WriteBytes(long byteOffset, ReadOnlySpan<byte> source);
    /// <summary>Device to host; <paramref name="byteOffset"/> is relative to the root allocation.</summary>
    private protected abstract void ReadBytes(long byteOffset, Span<byte> destination);
    /// <summary>Repeats <paramref name="pattern"/> over <paramref name="byteCount"/> bytes.</summary>
    private protected abstract void FillBytes(long byteOffset, long byteCount, ReadOnlySpan<byte> pattern);
    /// <summary>Frees owned memory; called once, for roots only.</summary>
    private protected abstract void ReleaseCore();

    private void CheckAccess<T>(long start, int count) where T : unmanaged
    {
        ThrowIfDisposed();
        if (ElementTypes.Of<T>() != ElementType)
            throw new ArgumentException($"The buffer stores {ElementType}; {typeof(T).Name} elements cannot be copied to or from it.", nameof(T));
        CheckRange(start, count);
    }

    private void CheckRange(long start, long length)
    {
        if (start < 0 || length < 0 || start + length > Length)
            throw new ArgumentOutOfRangeException(nameof(start), $"Elements [{start}, {start + length}) are outside a buffer of {Length} elements.");
    }
}
