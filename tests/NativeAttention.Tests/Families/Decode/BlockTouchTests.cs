// The decode kernel reads bfloat16 GQA blocks in one burst before the arithmetic (BlockTouch): check that the burst
// reads a byte of every line of each row and nothing outside the rows, at every alignment and length.
using NativeAttention.Cpu;
using Xunit;

namespace NativeAttention.Tests;

[Trait("Backend", "Cpu")]
public unsafe class BlockTouchTests
{
    [Fact]
    public void Lines_ReadsEveryLineOfEachRowAndNothingOutside()
    {
        const int size = 4096;
        byte* buffer = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc(size, 64);
        byte** rows = stackalloc byte*[2];
        try
        {
            foreach (int offset in new[] { 0, 1, 31, 63, 64, 65, 127 })
                foreach (int bytes in new[] { 1, 2, 63, 64, 65, 127, 128, 129, 256, 500, 1024 })
                {
                    new Span<byte>(buffer, size).Clear();
                    byte* row = buffer + 256 + offset;
                    rows[0] = row;
                    rows[1] = row; // the same row twice: count is honoured without reading past it
                    // Bytes just outside the row are never read.
                    row[-1] = 0xFF;
                    row[bytes] = 0xFF;
                    Assert.Equal(0, BlockTouch.Lines(rows, 2, bytes));
                    // Each line of the row is read: a flag at the first byte the burst reads in every line.
                    var lines = new List<nint>();
                    for (byte* line = row; line < row + bytes; line = (byte*)(((nint)line & ~63) + 64)) lines.Add((nint)line);
                    Assert.Equal((int)(((nint)(row + bytes - 1) >> 6) - ((nint)row >> 6)) + 1, lines.Count);
                    foreach (nint line in lines)
                    {
                        *(byte*)line = 0x10;
                        Assert.Equal(0x10, BlockTouch.Lines(rows, 1, bytes));
                        *(byte*)line = 0;
                    }
                }
        }
        finally
        {
            System.Runtime.InteropServices.NativeMemory.AlignedFree(buffer);
        }
    }
}
