// Host tensors the library allocates start on a 64-byte cache line (the CPU kernels run measurably faster on such
// rows), hold exactly the tensor's elements, and read as zeros.
using Xunit;

namespace NativeAttention.Tests;

public class HostAllocationTests
{
    [Theory]
    [InlineData(ElementType.Float32, new[] { 3, 5, 7 })]
    [InlineData(ElementType.Float16, new[] { 1, 33 })]
    [InlineData(ElementType.BFloat16, new[] { 2, 2, 17, 3 })]
    [InlineData(ElementType.Float32, new[] { 1 })]
    public unsafe void CpuAllocate_StartsOnACacheLine_AndIsZero(ElementType type, int[] shape)
    {
        using var context = AttentionContext.Create(Backend.Cpu);
        // Several in a row: a managed array's data would start 16 bytes past a line, whatever the GC's placement.
        for (int i = 0; i < 8; i++)
        {
            var tensor = context.Allocate(type, shape);
            long count = shape.Aggregate(1L, (a, b) => a * b);
            Assert.Equal(count, tensor.Storage!.Length);
            Assert.Equal(0, tensor.Offset);
            using var pin = tensor.Storage.Pin();
            Assert.Equal(0, (long)pin.Pointer % 64);
            var bytes = new ReadOnlySpan<byte>(pin.Pointer, checked((int)(count * type.SizeOf())));
            Assert.True(bytes.IndexOfAnyExcept((byte)0) < 0, "an allocated tensor must read as zeros");
        }
    }
}
