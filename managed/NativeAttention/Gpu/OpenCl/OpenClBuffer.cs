// OpenCL device memory as tensor storage: an owned cl_mem, a wrapped one, or a slice of either.
using NativeAttention.Interop.OpenCl;
using static NativeAttention.Interop.OpenCl.OpenClNative;

namespace NativeAttention.Gpu.OpenCl;

/// <summary>A buffer in an OpenCL context. Slices address the root <c>cl_mem</c> at an offset (no sub-buffers).</summary>
public sealed unsafe class OpenClBuffer : DeviceBuffer
{
    private readonly OpenClContext _context;

    internal OpenClBuffer(OpenClContext context, OpenClMemHandle memory, ElementType type, long length, DeviceBuffer? root = null, long byteOffset = 0)
        : base(root, type, length, byteOffset)
    {
        _context = context;
        Memory = memory;
    }

    /// <summary>The context that allocated or wrapped this buffer.</summary>
    internal OpenClContext Context => _context;

    /// <summary>The root <c>cl_mem</c>.</summary>
    internal OpenClMemHandle Memory { get; }

    /// <summary>The root <c>cl_mem</c> handle, for passing to other OpenCL code (valid while the buffer is).</summary>
    public IntPtr NativeHandle => Memory.DangerousGetHandle();

    private protected override DeviceBuffer SliceCore(long byteOffset, long length) =>
        new OpenClBuffer(_context, Memory, ElementType, length, Root, byteOffset);

    private protected override void WriteBytes(long byteOffset, ReadOnlySpan<byte> source)
    {
        if (source.IsEmpty) return;
        fixed (byte* p = source)
            OpenClException.Check(clEnqueueWriteBuffer(_context.Queue, Memory, 1, (nuint)byteOffset, (nuint)source.Length, p, 0, null, null), "clEnqueueWriteBuffer");
    }

    private protected override void ReadBytes(long byteOffset, Span<byte> destination)
    {
        if (destination.IsEmpty) return;
        fixed (byte* p = destination)
            OpenClException.Check(clEnqueueReadBuffer(_context.Queue, Memory, 1, (nuint)byteOffset, (nuint)destination.Length, p, 0, null, null), "clEnqueueReadBuffer");
    }

    private protected override void FillBytes(long byteOffset, long byteCount, ReadOnlySpan<byte> pattern)
    {
        if (byteCount == 0) return;
        fixed (byte* p = pattern)
            OpenClException.Check(clEnqueueFillBuffer(_context.Queue, Memory, p, (nuint)pattern.Length, (nuint)byteOffset, (nuint)byteCount, 0, null, null), "clEnqueueFillBuffer");
        OpenClException.Check(clFinish(_context.Queue), "clFinish");
    }

    private protected override void ReleaseCore()
    {
        _context.Untrack(this);
        Memory.Dispose();
    }
}
