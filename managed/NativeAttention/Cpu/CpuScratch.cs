// Per-thread, reused native scratch memory for the CPU kernels.
using System.Runtime.InteropServices;

namespace NativeAttention.Cpu;

/// <summary>
/// Per-thread scratch for the CPU kernels: 64-byte aligned native memory that grows to the largest request and
/// is reused, so steady-state calls allocate nothing. Freed when the owning thread's buffer is collected.
/// </summary>
internal sealed unsafe class CpuScratch
{
    /// <summary>
    /// Carves <paramref name="floats"/> floats off a scratch layout starting at <paramref name="next"/>, keeping every
    /// block 64-byte aligned; laying a layout out from address 0 measures its size.
    /// </summary>
    public static float* Take(ref float* next, long floats)
    {
        float* block = next;
        next += (floats + 15) & ~15L;
        return block;
    }

    [ThreadStatic] private static CpuScratch? t_current;

    private float* _pointer;
    private long _floats;

    /// <summary>This thread's scratch, holding at least <paramref name="floats"/> floats.</summary>
    public static float* Get(long floats)
    {
        var scratch = t_current ??= new CpuScratch();
        if (scratch._floats < floats)
        {
            NativeMemory.AlignedFree(scratch._pointer);
            scratch._pointer = null;
            scratch._floats = 0;
            scratch._pointer = (float*)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
            scratch._floats = floats;
        }
        return scratch._pointer;
    }

    ~CpuScratch() => NativeMemory.AlignedFree(_pointer);
}
