// Measures this machine's sustainable memory read bandwidth: threads sum disjoint slices of a buffer far larger
// than the last-level cache, with several vector accumulators each so that loads, not adds, set the pace.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace NativeAttention.Bench;

internal static class BandwidthProbe
{
    /// <summary>512 MiB: an order of magnitude above the last-level cache of current server CPUs.</summary>
    public const long DefaultBytes = 512L << 20;

    private static float s_sink;

    /// <summary>Read bandwidth in GB/s (10^9 bytes) on <paramref name="threads"/> threads; the best of <paramref name="runs"/> runs.</summary>
    public static double Measure(int threads, long bytes = DefaultBytes, int runs = 10)
    {
        if (Width512.IsAccelerated) return Run<Width512, Vector512<float>>(threads, bytes, runs);
        if (Width256.IsAccelerated) return Run<Width256, Vector256<float>>(threads, bytes, runs);
        if (Width128.IsAccelerated) return Run<Width128, Vector128<float>>(threads, bytes, runs);
        return Run<WidthScalar, float>(threads, bytes, runs);
    }

    private static unsafe double Run<TWidth, TVector>(int threads, long bytes, int runs)
        where TWidth : ISimdWidth<TVector> where TVector : struct
    {
        long count = bytes / sizeof(float);
        long slice = count / threads;
        // Native memory aligned to 2 MiB: 64-byte loads never straddle cache lines (a managed float[] is only
        // 8-byte aligned, which cost a third of the bandwidth here), and transparent huge pages can back it.
        float* buffer = (float*)NativeMemory.AlignedAlloc((nuint)bytes, 2 << 20);
        try
        {
            Span<float> Slice(int t) => new(buffer + t * slice, checked((int)(t == threads - 1 ? count - t * slice : slice)));

            // Each thread first touches the pages it will read, so they are really mapped (and local to its node).
            ParallelRuns.BestSeconds(threads, 1, t => Slice(t).Fill(1f));
            s_sink = SumSlice<TWidth, TVector>(new ReadOnlySpan<float>(buffer, 1024));
            double seconds = ParallelRuns.BestSeconds(threads, runs,
                t => Volatile.Write(ref s_sink, SumSlice<TWidth, TVector>(Slice(t))));
            return count * (double)sizeof(float) / seconds / 1e9;
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float SumSlice<TWidth, TVector>(ReadOnlySpan<float> values)
        where TWidth : ISimdWidth<TVector> where TVector : struct
    {
        ref float start = ref MemoryMarshal.GetReference(values);
        nuint length = (nuint)values.Length, lanes = (nuint)TWidth.Lanes, step = 8 * lanes, i = 0;
        TVector s0 = TWidth.Broadcast(0f), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
        for (; i + step <= length; i += step)
        {
            s0 = TWidth.Add(s0, TWidth.Load(ref start, i));
            s1 = TWidth.Add(s1, TWidth.Load(ref start, i + lanes));
            s2 = TWidth.Add(s2, TWidth.Load(ref start, i + 2 * lanes));
            s3 = TWidth.Add(s3, TWidth.Load(ref start, i + 3 * lanes));
            s4 = TWidth.Add(s4, TWidth.Load(ref start, i + 4 * lanes));
            s5 = TWidth.Add(s5, TWidth.Load(ref start, i + 5 * lanes));
            s6 = TWidth.Add(s6, TWidth.Load(ref start, i + 6 * lanes));
            s7 = TWidth.Add(s7, TWidth.Load(ref start, i + 7 * lanes));
        }
        float sum = TWidth.Sum(TWidth.Add(TWidth.Add(TWidth.Add(s0, s1), TWidth.Add(s2, s3)), TWidth.Add(TWidth.Add(s4, s5), TWidth.Add(s6, s7))));
        for (; i < length; i++) sum += Unsafe.Add(ref start, i);
        return sum;
    }
}
