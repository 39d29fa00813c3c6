// CUDA device memory as tensor storage: an owned allocation, a wrapped device pointer, or a slice of either.
using NativeAttention.Interop.Cuda;
using static NativeAttention.Interop.Cuda.CudaNative;

namespace NativeAttention.Gpu.Cuda;

/// <summary>A buffer in a CUDA context. Transfers run on the context's stream and wait for it.</summary>
public sealed unsafe class CudaBuffer : DeviceBuffer
{
    private readonly CudaContext _context;
    private readonly CudaDeviceMemoryHandle _memory;

    internal CudaBuffer(CudaContext context, CudaDeviceMemoryHandle memory, ElementType type, long length, DeviceBuffer? root = null, long byteOffset = 0)
        : base(root, type, length, byteOffset)
    {
        _context = context;
        _memory = memory;
    }

    /// <summary>The context that allocated or wrapped this buffer.</summary>
    internal CudaContext Context => _context;

    /// <summary>The device address of element 0 of this buffer.</summary>
    public IntPtr DevicePointer => (IntPtr)((long)_memory.DangerousGetHandle() + ByteOffset);

    /// <summary>The device address of the root allocation.</summary>
    internal ulong RootPointer => (ulong)_memory.DangerousGetHandle();

    private protected override DeviceBuffer SliceCore(long byteOffset, long length) =>
        new CudaBuffer(_context, _memory, ElementType, length, Root, byteOffset);

    private protected override void WriteBytes(long byteOffset, ReadOnlySpan<byte> source)
    {
        if (source.IsEmpty) return;
        _context.MakeCurrent();
        fixed (byte* p = source)
            CudaException.Check(cuMemcpyHtoDAsync(RootPointer + (ulong)byteOffset, p, (nuint)source.Length, _context.Stream), "cuMemcpyHtoDAsync");
        _context.Synchronize();
    }

    private protected override void ReadBytes(long byteOffset, Span<byte> destination)
    {
        if (destination.IsEmpty) return;
        _context.MakeCurrent();
        fixed (byte* p = destination)
            CudaException.Check(cuMemcpyDtoHAsync(p, RootPointer + (ulong)byteOffset, (nuint)destination.Length, _context.Stream), "cuMemcpyDtoHAsync");
        _context.Synchronize();
    }

    private protected override void FillBytes(long byteOffset, long byteCount, ReadOnlySpan<byte> pattern)
    {
        if (byteCount == 0) return;
        _context.MakeCurrent();
        ulong address = RootPointer + (ulong)byteOffset;
        int result = pattern.Length switch
        {
            4 => cuMemsetD32Async(address, BitConverter.ToUInt32(pattern), (nuint)(byteCount / 4), _context.Stream),
            2 => cuMemsetD16Async(address, BitConverter.ToUInt16(pattern), (nuint)(byteCount / 2), _context.Stream),
            _ => cuMemsetD8Async(address, pattern[0], (nuint)byteCount, _context.Stream),
        };
        CudaException.Check(result, "cuMemsetAsync");
        _context.Synchronize();
    }

    private protected override void ReleaseCore()
    {
        _context.Untrack(this);
        _memory.Dispose();
    }
}
