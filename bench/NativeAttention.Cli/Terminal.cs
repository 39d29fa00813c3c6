// Console set-up shared by every command: wide tables when output goes to a file or pipe, short backend names.
using Spectre.Console;

namespace NativeAttention.Cli;

internal static class Terminal
{
    /// <summary>
    /// Output to a file or pipe gets no escape codes, and 160 columns rather than Spectre's 80, which wraps every table.
    /// </summary>
    public static void Configure()
    {
        if (!Console.IsOutputRedirected) return;
        AnsiConsole.Profile.Capabilities.Ansi = false;
        if (AnsiConsole.Profile.Width < 160) AnsiConsole.Profile.Width = 160;
    }

    /// <summary>The name a backend has on the command line: cpu, opencl, cuda, auto.</summary>
    public static string Name(Backend backend) => backend.ToString().ToLowerInvariant();

    /// <summary>
    /// The cached peaks for <paramref name="threads"/> threads, measuring them first (with a spinner) when needed.
    /// </summary>
    public static Bench.MachinePeaks Peaks(int threads, bool remeasure = false)
    {
        if (!remeasure && Bench.MachinePeaks.TryLoad(threads) is { } cached) return cached;
        return AnsiConsole.Status().Start("Measuring peaks",
            context => Bench.MachinePeaks.GetOrMeasure(threads, remeasure: true, message => context.Status(Markup.Escape(message))));
    }
}
