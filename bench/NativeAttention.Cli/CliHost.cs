// Where a run of the tool writes, and the one test hook it honours: the process's console in normal use, string
// writers when the tests invoke the command tree in-process.
using Spectre.Console;

namespace NativeAttention.Cli;

/// <summary>The consoles one invocation writes to, and the kernel fault to plant (tests only).</summary>
/// <param name="Out">Tables, charts and progress.</param>
/// <param name="Error">One-line errors.</param>
/// <param name="Fault">A deliberate error added to kernel outputs before they are checked; null in normal use.</param>
internal sealed record CliHost(IAnsiConsole Out, TextWriter Error, KernelFault? Fault)
{
    /// <summary>
    /// The process's console (no escape codes and 160 columns when redirected, where Spectre's 80 would wrap every
    /// table), with the fault named by <see cref="KernelFault.Variable"/>, if any.
    /// </summary>
    public static CliHost FromProcess()
    {
        var console = AnsiConsole.Console;
        if (Console.IsOutputRedirected)
        {
            console.Profile.Capabilities.Ansi = false;
            if (console.Profile.Width < 160) console.Profile.Width = 160;
        }
        return new CliHost(console, Console.Error, KernelFault.FromEnvironment());
    }

    /// <summary>A host writing plain text (no colours, not interactive, 160 columns) to <paramref name="output"/> and <paramref name="error"/>.</summary>
    public static CliHost ToWriters(TextWriter output, TextWriter error, KernelFault? fault = null)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(output),
        });
        console.Profile.Width = 160;
        return new CliHost(console, error, fault);
    }

    /// <summary>
    /// Makes the probes `bench --adjacent-peaks` runs beside each case, for a number of threads: the real probes;
    /// the tests give a fake so that nothing is timed.
    /// </summary>
    public Func<int, IAdjacentProbe> AdjacentProbeFactory { get; init; } = threads => new MachineAdjacentProbe(threads);

    /// <summary>True when someone watches: progress bars and spinners only then, since in a log they print stray frames.</summary>
    public bool Interactive => Out.Profile.Capabilities.Interactive;

    /// <summary>Writes <paramref name="line"/> as it is, never wrapped: for commands people copy.</summary>
    public void WriteUnwrapped(string line) => Out.Profile.Out.Writer.WriteLine(line);

    /// <summary>Writes <c>error: message</c> on one line of <see cref="Error"/>.</summary>
    public void Fail(string message) => Error.WriteLine($"error: {message}");
}
