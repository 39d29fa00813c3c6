// Tells whether other processes (or the hypervisor, as steal time) took CPU time during a measurement, from the
// kernel's own accounting: machine-wide busy time minus this process's CPU time over the same wall-clock window.
using System.Diagnostics;
using System.Globalization;

namespace NativeAttention.Bench;

internal readonly struct ContentionMeter
{
    // USER_HZ, the unit of /proc/stat; 100 on every mainstream Linux build.
    private const double TicksPerSecond = 100;

    private readonly long _startTimestamp;
    private readonly double? _machineBusySeconds;
    private readonly TimeSpan _ownCpuTime;

    private ContentionMeter(long startTimestamp, double? machineBusySeconds, TimeSpan ownCpuTime)
    {
        _startTimestamp = startTimestamp;
        _machineBusySeconds = machineBusySeconds;
        _ownCpuTime = ownCpuTime;
    }

    /// <summary>Starts a window.</summary>
    public static ContentionMeter Start() =>
        new(Stopwatch.GetTimestamp(), MachineBusySeconds(), Process.GetCurrentProcess().TotalProcessorTime);

    /// <summary>
    /// The average number of cores that other processes, or the hypervisor, kept busy since <see cref="Start"/>;
    /// null where the operating system does not say (anything but Linux).
    /// </summary>
    public double? OtherBusyCores()
    {
        if (_machineBusySeconds is not { } before || MachineBusySeconds() is not { } after) return null;
        double wall = Stopwatch.GetElapsedTime(_startTimestamp).TotalSeconds;
        double own = (Process.GetCurrentProcess().TotalProcessorTime - _ownCpuTime).TotalSeconds;
        return Math.Max(0, after - before - own) / wall;
    }

    /// <summary>CPU seconds all processes spent busy since boot, summed over cores, steal time included.</summary>
    private static double? MachineBusySeconds()
    {
        if (!OperatingSystem.IsLinux()) return null;
        try
        {
            // "cpu  user nice system idle iowait irq softirq steal guest guest_nice"; guest time is inside user.
            string? line = File.ReadLines("/proc/stat").FirstOrDefault();
            if (line is null || !line.StartsWith("cpu ", StringComparison.Ordinal)) return null;
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 9) return null;
            long busy = 0;
            foreach (int i in (ReadOnlySpan<int>)[1, 2, 3, 6, 7, 8])
                busy += long.Parse(fields[i], CultureInfo.InvariantCulture);
            return busy / TicksPerSecond;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }
}
