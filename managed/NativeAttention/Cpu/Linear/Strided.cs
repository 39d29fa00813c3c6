// A strided host tensor as the CPU recurrent kernels (linear attention, the delta rule) address it.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace NativeAttention.Cpu;

/// <summary>A strided tensor as a base pointer, element size and four (or five) strides.</summary>
internal readonly unsafe struct Strided
{
    public readonly byte* Base;
    public readonly long S0, S1, S2, S3, S4;
    public readonly int ElementSize;

    public Strided(in TensorView view, byte* pointer)
    {
        ElementSize = view.ElementType.SizeOf();
        Base = pointer + view.Offset * ElementSize;
        var s = view.Strides;
        S0 = s[0]; S1 = s.Length > 1 ? s[1] : 0; S2 = s.Length > 2 ? s[2] : 0; S3 = s.Length > 3 ? s[3] : 0; S4 = s.Length > 4 ? s[4] : 0;
    }

    /// <summary>The element <c>[i0, i1, i2]</c> (the start of that row of a rank-4 tensor).</summary>
    public byte* Row(long i0, long i1, long i2) => Base + ElementSize * (i0 * S0 + i1 * S1 + i2 * S2);

    /// <summary>The element <c>[i0, i1, i2, i3]</c> (the start of that row of a rank-5 tensor).</summary>
    public byte* Row(long i0, long i1, long i2, long i3) => Base + ElementSize * (i0 * S0 + i1 * S1 + i2 * S2 + i3 * S3);

    /// <summary>
    /// Prefetches into L2 the cache lines of rows <c>[i0, i1, t0 .. t0 + count - 1]</c> of <paramref name="columns"/>
    /// elements each (unit element stride only; nothing otherwise). The recurrent kernels call it for the next chunk
    /// while one computes: token-major rows lie a whole token of heads apart, too far for the hardware prefetchers, and
    /// head-major chunks cross pages, where the hardware streams restart. A hint only: results do not change.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PrefetchRows(long i0, long i1, int t0, int count, int columns)
    {
        if (!Sse.IsSupported || count <= 0 || S3 != 1) return;
        long bytes = (long)columns * ElementSize;
        for (int t = 0; t < count; t++)
        {
            CacheLines.PrefetchL2(Row(i0, i1, t0 + t), bytes);
        }
    }
}
