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

    /// <summary>
    /// A buffer of <paramref name="bytes"/> allocated and first touched once, by <paramref name="threads"/> threads,
    /// then read by <see cref="Buffer.Measure"/> as often as needed: for probes taken many times in one run (bench
    /// <c>--adjacent-peaks</c>), where allocating and mapping the pages each time would cost more than the reads.
    /// </summary>
    public static Buffer Allocate(int threads, long bytes) => new(threads, bytes);

    /// <summary>A probe buffer kept between measurements; see <see cref="Allocate"/>. Not thread-safe.</summary>
    public sealed unsafe class Buffer : IDisposable
    {
        private readonly int _threads;
        private readonly long _count;
        private readonly long _slice;
        private float* _buffer;

        internal Buffer(int threads, long bytes)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
            ArgumentOutOfRangeException.ThrowIfLessThan(bytes, 1L << 20);
            _threads = threads;
            _count = bytes / sizeof(float);
            _slice = _count / threads;
            // Aligned and first touched by the reading threads, as in Measure above.
            _buffer = (float*)NativeMemory.AlignedAlloc((nuint)(_count * sizeof(float)), 2 << 20);
            ParallelRuns.BestSeconds(threads, 1, t => Slice(t).Fill(1f));
        }

        /// <summary>The bytes one measurement reads.</summary>
        public long Bytes => _count * sizeof(float);

        /// <summary>Read bandwidth in GB/s (10^9 bytes); the best of <paramref name="runs"/> reads of the whole buffer.</summary>
        public double Measure(int runs)
        {
            ObjectDisposedException.ThrowIf(_buffer is null, this);
            if (Width512.IsAccelerated) return Read<Width512, Vector512<float>>(runs);
            if (Width256.IsAccelerated) return Read<Width256, Vector256<float>>(runs);
            if (Width128.IsAccelerated) return Read<Width128, Vector128<float>>(runs);
            return Read<WidthScalar, float>(runs);
        }

        public void Dispose()
        {
            if (_buffer is null) return;
            NativeMemory.AlignedFree(_buffer);
            _buffer = null;
        }

        private Span<float> Slice(int t) =>
            new(_buffer + t * _slice, checked((int)(t == _threads - 1 ? _count - t * _slice : _slice)));

        private double Read<TWidth, TVector>(int runs) where TWidth : ISimdWidth<TVector> where TVector : struct
        {
            s_sink = SumSlice<TWidth, TVector>(new ReadOnlySpan<float>(_buffer, 1024));
            double seconds = ParallelRuns.BestSeconds(_threads, runs,
                t => Volatile.Write(ref s_sink, SumSlice<TWidth, TVector>(Slice(t))));
            return _count * (double)sizeof(float) / seconds / 1e9;
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
