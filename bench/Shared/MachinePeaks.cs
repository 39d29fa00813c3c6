// This machine's measured peak FMA throughput and memory bandwidth, cached on disk per CPU model, vector width
// and thread count, so that reports can give "% of peak" without re-measuring on every run.
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using NativeAttention.Cpu;

namespace NativeAttention.Bench;

/// <summary>Peaks measured by <see cref="FmaProbe"/> and <see cref="BandwidthProbe"/> on a number of threads.</summary>
/// <param name="CpuModel">The CPU model name the operating system reports.</param>
/// <param name="Threads">Threads the probes ran on.</param>
/// <param name="FmaGflops">Peak float32 GFLOP/s (an FMA counts as two FLOPs).</param>
/// <param name="FmaKernel">The probe loop that reached it, e.g. <c>Vector512 x 12 chains</c>.</param>
/// <param name="BandwidthGBs">Streaming read bandwidth in GB/s (10^9 bytes).</param>
/// <param name="MeasuredAt">When the probes ran.</param>
/// <param name="Contended">
/// True when other processes evidently held some cores during the measurement, so the values are too low. Such
/// peaks are cached (so a busy machine does not re-measure on every run) but never replace clean ones, and every
/// report that uses them says so.
/// </param>
internal sealed record MachinePeaks(string CpuModel, int Threads, double FmaGflops, string FmaKernel, double BandwidthGBs, DateTimeOffset MeasuredAt, bool Contended = false)
{
    // Other processes may use the cores the probe threads leave free; beyond that, a quarter of a core taken from
    // the probes (well above the tick rounding of /proc/stat over a ~0.5 s window) marks a measurement contended.
    private const double ToleratedStolenCores = 0.25;
    private const int Attempts = 3;

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<int, MachinePeaks> Measured = new();

    /// <summary>The environment variable that overrides where peaks are cached.</summary>
    public const string CacheDirectoryVariable = "NATIVEATTENTION_CACHE_DIR";

    /// <summary>True when these values were read from the cache rather than measured by this process.</summary>
    [JsonIgnore]
    public bool FromCache { get; init; }

    /// <summary>
    /// The cached peaks for <paramref name="threads"/> threads, measuring (and caching) them first when there are
    /// none or <paramref name="remeasure"/> is set. <paramref name="progress"/> hears what is being measured.
    /// </summary>
    public static MachinePeaks GetOrMeasure(int threads, bool remeasure = false, Action<string>? progress = null)
    {
        if (!remeasure && Measured.TryGetValue(threads, out var known)) return known;
        if (!remeasure && TryLoad(threads) is { } cached) return Measured[threads] = cached;
        var measured = Measure(threads, progress);
        if (measured.Contended && TryLoad(threads) is { Contended: false } clean)
        {
            progress?.Invoke("Other processes disturbed the measurement; keeping the cached peaks measured on a quiet machine");
            return Measured[threads] = clean;
        }
        Save(measured);
        return Measured[threads] = measured;
    }

    /// <summary>The cached peaks for <paramref name="threads"/> threads, or null when none are cached (or the file is unreadable).</summary>
    public static MachinePeaks? TryLoad(int threads)
    {
        string path = CachePath(threads);
        try
        {
            if (!File.Exists(path)) return null;
            var peaks = JsonSerializer.Deserialize(File.ReadAllText(path), PeaksJsonContext.Default.MachinePeaks);
            return peaks is { FmaGflops: > 0, BandwidthGBs: > 0 } ? peaks with { FromCache = true } : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// Runs both probes now, a second or two; when other processes visibly hold cores it waits and tries again, up
    /// to three times, keeping the best values and marking them <see cref="Contended"/> if the machine never got quiet.
    /// </summary>
    public static MachinePeaks Measure(int threads, Action<string>? progress = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        FmaPeak fma = default;
        double bandwidth = 0;
        bool contended = false;
        for (int attempt = 1; attempt <= Attempts; attempt++)
        {
            var meter = ContentionMeter.Start();
            progress?.Invoke($"Measuring peak FMA throughput on {threads} thread(s)");
            var f = FmaProbe.Measure(threads);
            if (f.Gflops > fma.Gflops) fma = f;
            progress?.Invoke($"Measuring memory bandwidth on {threads} thread(s) ({BandwidthProbe.DefaultBytes >> 20} MiB read)");
            bandwidth = Math.Max(bandwidth, BandwidthProbe.Measure(threads));
            double others = meter.OtherBusyCores() ?? 0;
            contended = others > Math.Max(0, Environment.ProcessorCount - threads) + ToleratedStolenCores;
            if (!contended) break;
            if (attempt < Attempts)
            {
                progress?.Invoke($"Other processes kept {others:0.0} core(s) busy meanwhile; measuring again in a second");
                Thread.Sleep(1000);
            }
        }
        return new MachinePeaks(CpuModelName(), threads, fma.Gflops, fma.Kernel, bandwidth, DateTimeOffset.UtcNow, contended);
    }

    /// <summary>Where the peaks for <paramref name="threads"/> threads are cached.</summary>
    public static string CachePath(int threads)
    {
        var key = new StringBuilder();
        foreach (char c in CpuModelName().ToLowerInvariant())
            key.Append(char.IsAsciiLetterOrDigit(c) ? c : '-');
        key.Append(CultureInfo.InvariantCulture, $"-{CpuFeatures.VectorBits}bit-{threads}t.json");
        return Path.Combine(CacheDirectory(), key.ToString());
    }

    /// <summary>The CPU model name, e.g. <c>AMD EPYC 9B45</c>; the architecture when the OS does not say.</summary>
    public static string CpuModelName()
    {
        if (OperatingSystem.IsLinux())
        {
            try
            {
                foreach (var line in File.ReadLines("/proc/cpuinfo"))
                    if (line.StartsWith("model name", StringComparison.Ordinal) && line.IndexOf(':') is int colon and >= 0)
                        return line[(colon + 1)..].Trim();
            }
            catch (IOException)
            {
                // Fall through to the architecture.
            }
        }
        if (OperatingSystem.IsWindows() && Environment.GetEnvironmentVariable("PROCESSOR_IDENTIFIER") is { Length: > 0 } id)
            return id;
        return $"unknown {System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture} CPU";
    }

    private static void Save(MachinePeaks peaks)
    {
        string path = CachePath(peaks.Threads);
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            // Write then rename, so a concurrent reader never sees half a file.
            string temporary = $"{path}.{Environment.ProcessId}.tmp";
            File.WriteAllText(temporary, JsonSerializer.Serialize(peaks, PeaksJsonContext.Default.MachinePeaks));
            File.Move(temporary, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A read-only home only costs a re-measurement next time.
        }
    }

    private static string CacheDirectory()
    {
        if (Environment.GetEnvironmentVariable(CacheDirectoryVariable) is { Length: > 0 } overridden) return overridden;
        string root;
        if (OperatingSystem.IsWindows())
            root = Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData);
        else if (OperatingSystem.IsMacOS())
            root = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), "Library", "Caches");
        else
            root = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
                ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "nativeattention", "peaks");
    }
}

[JsonSourceGenerationOptions(WriteIndented = true)]
[JsonSerializable(typeof(MachinePeaks))]
internal sealed partial class PeaksJsonContext : JsonSerializerContext;
