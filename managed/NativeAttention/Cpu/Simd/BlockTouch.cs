// Demand loads of a block's cache lines in one burst, ahead of the arithmetic that reads them.
using System.Runtime.CompilerServices;

namespace NativeAttention.Cpu;

/// <summary>
/// Reads one byte of every 64-byte line of a block of rows, in a loop that does nothing else, so the core has as many
/// of the block's misses in flight as it can hold before the arithmetic reads the rows from L1. Per-key software
/// prefetches spread over the block kept fewer lines in flight and stalled the core on the prefetch instructions
/// themselves (bench/results/cpu.md, branch wip-decode4).
/// </summary>
internal static unsafe class BlockTouch
{
    /// <summary>
    /// Loads a byte of every line of <paramref name="count"/> rows of <paramref name="bytes"/> bytes each, and returns
    /// their OR (so the loads are not dropped; callers may ignore it). Not inlined, so the loads stay whatever the caller.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    public static int Lines(byte** rows, int count, int bytes)
    {
        int fold = 0;
        for (int r = 0; r < count; r++)
        {
            byte* row = rows[r], end = row + bytes;
            // From the row's first line to its last: one load per line, the first at the row's start.
            for (byte* line = row; line < end; line = (byte*)(((nint)line & ~63) + 64)) fold |= *line;
        }
        return fold;
    }
}
