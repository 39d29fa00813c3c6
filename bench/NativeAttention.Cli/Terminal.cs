// Console helpers shared by every command: short backend names, the cached peaks, and opening the contexts a
// command runs on.
using Spectre.Console;

namespace NativeAttention.Cli;

internal static class Terminal
{
    /// <summary>The name a backend has on the command line: cpu, opencl, cuda, auto.</summary>
    public static string Name(Backend backend) => backend.ToString().ToLowerInvariant();

    /// <summary>
    /// The cached peaks for <paramref name="threads"/> threads, measuring them first (with a spinner) when needed.
    /// </summary>
    public static Bench.MachinePeaks Peaks(IAnsiConsole console, int threads, bool remeasure = false)
    {
        if (!remeasure && Bench.MachinePeaks.TryLoad(threads) is { } cached) return cached;
        return console.Status().Start("Measuring peaks",
            context => Bench.MachinePeaks.GetOrMeasure(threads, remeasure: true, message => context.Status(Markup.Escape(message))));
    }

    /// <summary>
    /// A GPU context's peaks, measured by the probe kernels (a second or so, with a spinner) once per device name and
    /// process.
    /// </summary>
    public static NativeAttention.Gpu.GpuPeaks GpuPeaks(IAnsiConsole console, NativeAttention.Gpu.GpuContext context) =>
        GpuPeakCache.GetOrAdd(context.DeviceName, _ => console.Status().Start($"Measuring the peaks of {context.DeviceName}",
            _ => NativeAttention.Gpu.GpuPeakProbe.Measure(context)));

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, NativeAttention.Gpu.GpuPeaks> GpuPeakCache = new();

    /// <summary>
    /// Contexts on the backends <paramref name="settings"/> selects, saying on the console which are skipped and why;
    /// empty (after a one-line error) when none is available. The caller disposes them.
    /// </summary>
    public static List<AttentionContext> OpenContexts(CliHost host, GlobalSettings settings)
    {
        var contexts = new List<AttentionContext>();
        foreach (var info in settings.SelectedBackends)
        {
            if (!info.IsSupported)
            {
                host.Out.MarkupLine($"[yellow]skip[/] {Name(info.Backend)}: {Markup.Escape(info.Description)}");
                continue;
            }
            try
            {
                contexts.Add(AttentionContext.Create(info.Backend, settings.ContextOptions));
            }
            catch (NotSupportedException e)
            {
                host.Out.MarkupLine($"[yellow]skip[/] {Name(info.Backend)}: {Markup.Escape(e.Message)}");
            }
        }
        if (contexts.Count == 0)
            host.Fail(settings.Backend is { } asked
                ? $"the {Name(asked)} backend is not available here (see `info`)."
                : "none of the backends is available here (see `info`).");
        return contexts;
    }

    /// <summary>Warns when the library is a Debug build, whose timings mean little.</summary>
    public static void WarnIfUnoptimised(IAnsiConsole console)
    {
        var debuggable = System.Reflection.CustomAttributeExtensions.GetCustomAttribute<System.Diagnostics.DebuggableAttribute>(typeof(AttentionContext).Assembly);
        if (debuggable?.IsJITOptimizerDisabled == true)
            console.MarkupLine("[yellow]warning[/]: NativeAttention.dll is a Debug build, so times are pessimistic; run with -c Release for real figures.");
    }
}
