// Software prefetches of a byte range, one per cache line it touches.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace NativeAttention.Cpu;

/// <summary>
/// Prefetches every 64-byte line that <c>[start, start + bytes)</c> touches, each line once (a row that does not start
/// on a line takes one more line). A software prefetch that misses holds a fill buffer (Intel) or miss buffer (AMD)
/// until its line arrives, so no line is asked for twice. Callers check <see cref="Sse.IsSupported"/>. A hint only.
/// </summary>
internal static unsafe class CacheLines
{
    /// <summary>Into L1 (<c>prefetcht0</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void PrefetchL1(void* start, long bytes)
    {
        for (byte* line = (byte*)((nuint)start & ~(nuint)63), end = (byte*)start + bytes; line < end; line += 64) Sse.Prefetch0(line);
    }

    /// <summary>Into L2 only (<c>prefetcht1</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void PrefetchL2(void* start, long bytes)
    {
        for (byte* line = (byte*)((nuint)start & ~(nuint)63), end = (byte*)start + bytes; line < end; line += 64) Sse.Prefetch1(line);
    }

    /// <summary>
    /// Into L2 (<c>prefetcht1</c>), one prefetch per 64 bytes from <paramref name="start"/>, not aligned to lines: for a
    /// caller that walks a row in chunks and prefetches each chunk some distance on as it reads it, so chunks read one
    /// after another cover every line between them. Sizes the JIT knows (a few vectors) fold to straight-line prefetches.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void PrefetchL2Chunk(void* start, long bytes)
    {
        byte* at = (byte*)start;
        if (bytes <= 64) Sse.Prefetch1(at);
        else if (bytes == 128)
        {
            Sse.Prefetch1(at);
            Sse.Prefetch1(at + 64);
        }
        else if (bytes == 256)
        {
            Sse.Prefetch1(at);
            Sse.Prefetch1(at + 64);
            Sse.Prefetch1(at + 128);
            Sse.Prefetch1(at + 192);
        }
        else
            for (long b = 0; b < bytes; b += 64) Sse.Prefetch1(at + b);
    }
}
