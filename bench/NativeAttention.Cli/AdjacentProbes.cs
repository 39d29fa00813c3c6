// `bench --adjacent-peaks`: the streaming-read and FMA probes run right before and right after each case's timed
// runs, so that "% of peak" is taken against the machine as it was during the case, not against a peak cached minutes
// or days earlier (on a shared machine the read probe alone moves by a fifth between runs minutes apart).
namespace NativeAttention.Cli;

/// <summary>What one probe call measured: streaming-read GB/s and FMA GFLOP/s on the probe's threads.</summary>
internal readonly record struct ProbeReading(double ReadGBs, double FmaGflops);

/// <summary>
/// The probes `bench --adjacent-peaks` runs beside every case. The tests substitute a fake (through
/// <see cref="CliHost.AdjacentProbeFactory"/>) so that nothing is timed.
/// </summary>
internal interface IAdjacentProbe : IDisposable
{
    /// <summary>What one reading is, e.g. <c>read 256 MiB best of 3, FMA 1.0 GFLOP/thread best of 3, on 2 threads</c>.</summary>
    string Description { get; }

    /// <summary>
    /// Runs both probes; the one that judges the case (the read probe when <paramref name="memoryBound"/>, else FMA)
    /// runs closest to it: last when <paramref name="before"/> the case, first after it.
    /// </summary>
    ProbeReading Measure(bool memoryBound, bool before);
}

/// <summary>The probes taken right before and right after one case's timed runs.</summary>
internal sealed record AdjacentReadings(ProbeReading Before, ProbeReading After)
{
    public double MeanReadGBs => (Before.ReadGBs + After.ReadGBs) / 2;

    public double MeanFmaGflops => (Before.FmaGflops + After.FmaGflops) / 2;
}

/// <summary>The real probes of <c>bench/Shared</c>, sized to cost tens of milliseconds per reading.</summary>
internal sealed class MachineAdjacentProbe : IAdjacentProbe
{
    /// <summary>256 MiB: well above the last-level cache, read in about 10 ms at 30 GB/s.</summary>
    public const long ReadBytes = 256L << 20;

    /// <summary>Reads of the buffer per reading; the best counts.</summary>
    public const int ReadRuns = 3;

    /// <summary>FLOPs per thread and FMA run: a few milliseconds on a current AVX-512 core.</summary>
    public const double FmaFlopsPerThread = 1e9;

    /// <summary>FMA runs per reading; the best counts.</summary>
    public const int FmaRuns = 3;

    private readonly int _threads;
    private readonly Bench.BandwidthProbe.Buffer _buffer;

    public MachineAdjacentProbe(int threads)
    {
        _threads = threads;
        _buffer = Bench.BandwidthProbe.Allocate(threads, ReadBytes);
        // Compiles both probe loops before the first reading.
        _buffer.Measure(1);
        Bench.FmaProbe.Measure(threads, 1, FmaFlopsPerThread / 10);
    }

    public string Description =>
        $"streaming read of {ReadBytes >> 20} MiB best of {ReadRuns}, FMA {FmaFlopsPerThread / 1e9:0.#} GFLOP per thread best of {FmaRuns}, on {_threads} thread(s)";

    public ProbeReading Measure(bool memoryBound, bool before)
    {
        // The probe that judges the case runs next to it.
        bool readFirst = memoryBound != before;
        double read = 0, fma = 0;
        if (readFirst) read = _buffer.Measure(ReadRuns);
        fma = Bench.FmaProbe.Measure(_threads, FmaRuns, FmaFlopsPerThread).Gflops;
        if (!readFirst) read = _buffer.Measure(ReadRuns);
        return new ProbeReading(read, fma);
    }

    public void Dispose() => _buffer.Dispose();
}
