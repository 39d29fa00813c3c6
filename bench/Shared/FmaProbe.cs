// Measures this machine's peak float32 multiply-add throughput: independent FMA chains per thread, enough of them
// to cover the FMA latency times the number of FMA ports, at the widest vector width the JIT accelerates.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NativeAttention.Bench;

/// <summary>The result of <see cref="FmaProbe.Measure"/>.</summary>
/// <param name="Gflops">Float32 GFLOP/s over all threads (an FMA counts as two FLOPs).</param>
/// <param name="Kernel">What ran, e.g. <c>Vector512 x 12 chains</c>.</param>
internal readonly record struct FmaPeak(double Gflops, string Kernel);

internal static class FmaProbe
{
    // Latency 4 x 2 FMA ports needs 8 chains on current x64 cores; 12 leaves room for 5-cycle FMAs and 3 ports.
    private const int Chains = 12;

    // Per thread and run: about 6.4 GFLOP, tens of milliseconds on a current core.
    private const double FlopsPerRun = 6.4e9;

    private static float s_sink;

    /// <summary>
    /// Float32 GFLOP/s on <paramref name="threads"/> threads; the best of <paramref name="runs"/> runs of
    /// <paramref name="flopsPerThread"/> FLOPs per thread (smaller runs: a cheaper, noisier probe).
    /// </summary>
    public static FmaPeak Measure(int threads, int runs = 7, double flopsPerThread = FlopsPerRun)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(flopsPerThread, 1e6);
        if (Width512.IsAccelerated) return Run<Width512, Vector512<float>>(threads, runs, flopsPerThread);
        if (Width256.IsAccelerated) return Run<Width256, Vector256<float>>(threads, runs, flopsPerThread);
        if (Width128.IsAccelerated) return Run<Width128, Vector128<float>>(threads, runs, flopsPerThread);
        return Run<WidthScalar, float>(threads, runs, flopsPerThread);
    }

    private static FmaPeak Run<TWidth, TVector>(int threads, int runs, double flopsPerThread)
        where TWidth : ISimdWidth<TVector> where TVector : struct
    {
        long iterations = (long)(flopsPerThread / (Chains * 2.0 * TWidth.Lanes));
        // Compiles the loop before anything is timed.
        s_sink = MultiplyAddChains<TWidth, TVector>(1);
        double seconds = ParallelRuns.BestSeconds(threads, runs,
            _ => Volatile.Write(ref s_sink, MultiplyAddChains<TWidth, TVector>(iterations)));
        double flops = (double)iterations * Chains * 2 * TWidth.Lanes * threads;
        return new FmaPeak(flops / seconds / 1e9, $"{TWidth.Name} x {Chains} chains");
    }

    // The multiplier and addend keep every chain near 1/(1-m) = 10: no overflow, no denormals.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float MultiplyAddChains<TWidth, TVector>(long iterations)
        where TWidth : ISimdWidth<TVector> where TVector : struct
    {
        var m = TWidth.Broadcast(0.9f);
        var a = TWidth.Broadcast(1.0f);
        TVector c0 = TWidth.Broadcast(0f), c1 = TWidth.Broadcast(1f), c2 = TWidth.Broadcast(2f), c3 = TWidth.Broadcast(3f);
        TVector c4 = TWidth.Broadcast(4f), c5 = TWidth.Broadcast(5f), c6 = TWidth.Broadcast(6f), c7 = TWidth.Broadcast(7f);
        TVector c8 = TWidth.Broadcast(8f), c9 = TWidth.Broadcast(9f), c10 = TWidth.Broadcast(10f), c11 = TWidth.Broadcast(11f);
        for (long i = 0; i < iterations; i++)
        {
            c0 = TWidth.MultiplyAdd(c0, m, a);
            c1 = TWidth.MultiplyAdd(c1, m, a);
            c2 = TWidth.MultiplyAdd(c2, m, a);
            c3 = TWidth.MultiplyAdd(c3, m, a);
            c4 = TWidth.MultiplyAdd(c4, m, a);
            c5 = TWidth.MultiplyAdd(c5, m, a);
            c6 = TWidth.MultiplyAdd(c6, m, a);
            c7 = TWidth.MultiplyAdd(c7, m, a);
            c8 = TWidth.MultiplyAdd(c8, m, a);
            c9 = TWidth.MultiplyAdd(c9, m, a);
            c10 = TWidth.MultiplyAdd(c10, m, a);
            c11 = TWidth.MultiplyAdd(c11, m, a);
        }
        var sum = TWidth.Add(TWidth.Add(TWidth.Add(c0, c1), TWidth.Add(c2, c3)), TWidth.Add(TWidth.Add(c4, c5), TWidth.Add(c6, c7)));
        return TWidth.Sum(TWidth.Add(sum, TWidth.Add(TWidth.Add(c8, c9), TWidth.Add(c10, c11))));
    }
}
