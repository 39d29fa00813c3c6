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

    /// <summary>
    /// Adds the relative-position bias to a transposed score tile: for key j (union-box coordinates
    /// <c>u_a = coordinates[a][j]</c>) and column c (of <paramref name="columns"/>), the per-axis entry is
    /// <c>u_a + term[a][c]</c>, clamped to <c>[0, extent_a)</c> (only invisible pairs, which the mask sets to -inf, are
    /// ever clamped), and the value is <c>bias[head[c] + (i0 E1 + i1) E2 + i2]</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void AddRelativePositionBias(float* scores, int width, int keyCount, float* coordinates, long coordinateStride, int* term, long termStride,
        int* head, int columns, float* bias, int[] extent)
    {
        int e0 = extent[0], e1 = extent[1], e2 = extent[2];
        int* t0 = term, t1 = term + termStride, t2 = term + 2 * termStride;
        float* c0 = coordinates, c1 = c0 + coordinateStride, c2 = c1 + coordinateStride;
        for (int j = 0; j < keyCount; j++)
        {
            int u0 = (int)c0[j], u1 = (int)c1[j], u2 = (int)c2[j];
            float* row = scores + (long)j * width;
            for (int c = 0; c < columns; c++)
            {
                int i0 = Math.Clamp(u0 + t0[c], 0, e0 - 1), i1 = Math.Clamp(u1 + t1[c], 0, e1 - 1), i2 = Math.Clamp(u2 + t2[c], 0, e2 - 1);
                row[c] += bias[head[c] + (i0 * e1 + i1) * e2 + i2];
            }
        }
    }
}
