// A progress bar while a command works through its cases, where someone watches; in a log, nothing.
using Spectre.Console;

namespace NativeAttention.Cli;

internal static class Progress
{
    /// <summary>
    /// Runs <paramref name="work"/>, which calls its argument before each of <paramref name="steps"/> steps with the
    /// step's name; on an interactive console a progress bar shows the step and how far along the work is.
    /// </summary>
    public static void Run(CliHost host, string title, int steps, Action<Action<string>> work)
    {
        if (!host.Interactive)
        {
            work(_ => { });
            return;
        }
        host.Out.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .Start(progress =>
            {
                var task = progress.AddTask(title, maxValue: steps);
                bool first = true;
                work(name =>
                {
                    if (!first) task.Increment(1);
                    first = false;
                    task.Description = Markup.Escape(name);
                });
                task.Value = steps;
            });
    }
}
