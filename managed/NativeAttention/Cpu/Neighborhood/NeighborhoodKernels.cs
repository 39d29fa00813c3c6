// The one micro-kernel CPU neighborhood attention adds to the flash ones: a per-axis box mask on a score tile.
using System.Runtime.CompilerServices;

namespace NativeAttention.Cpu;

/// <summary>Masking of transposed score tiles (<c>scores[key][column]</c>) by a per-axis window box per column.</summary>
internal static unsafe class NeighborhoodKernels
{
    /// <summary>
    /// Sets <c>scores[j][c]</c> to -inf unless, on each of the three axes a, <c>start_a[c] &lt;= coordinate_a[j] &lt; end_a[c]</c>.
    /// Coordinates and bounds are small integers stored as floats (exact). <paramref name="coordinates"/> holds three
    /// arrays <paramref name="coordinateStride"/> floats apart; <paramref name="start"/> and <paramref name="end"/> hold
    /// three arrays of the group's width, <paramref name="boundStride"/> floats apart. Axes with
    /// <paramref name="firstAxis"/> &gt; a are skipped (every key shares their coordinate).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MaskBox<TSimd, T>(float* scores, int width, int keyCount, float* coordinates, long coordinateStride, float* start, float* end, long boundStride, int firstAxis)
        where TSimd : struct, ISimd<T> where T : unmanaged
    {
        int w = TSimd.Count;
        float* c0 = coordinates, c1 = c0 + coordinateStride, c2 = c1 + coordinateStride;
        for (int v = 0; v < width; v += w)
        {
            T low0 = TSimd.Load(start + v), high0 = TSimd.Load(end + v);
            T low1 = TSimd.Load(start + boundStride + v), high1 = TSimd.Load(end + boundStride + v);
            T low2 = TSimd.Load(start + 2 * boundStride + v), high2 = TSimd.Load(end + 2 * boundStride + v);
            float* s = scores + v;
            for (int j = 0; j < keyCount; j++, s += width)
            {
                T x = TSimd.KeepInRange(TSimd.Load(s), TSimd.Broadcast(c2[j]), low2, high2);
                if (firstAxis <= 1) x = TSimd.KeepInRange(x, TSimd.Broadcast(c1[j]), low1, high1);
                if (firstAxis == 0) x = TSimd.KeepInRange(x, TSimd.Broadcast(c0[j]), low0, high0);
                TSimd.Store(s, x);
            }
        }
    }
}
