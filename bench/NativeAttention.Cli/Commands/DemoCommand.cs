// `demo`: the README's main job. Runs a few flash cases on every available backend, times them, checks them
// against the float64 reference, prints one table, and exits non-zero when any check fails.
using System.CommandLine;
using NativeAttention.Bench;
using NativeAttention.Cli.Reports;
using Spectre.Console;

namespace NativeAttention.Cli.Commands;

internal static class DemoCommand
{
    public static Command Create(CliHost host, GlobalOptions global, HelpExamples examples)
    {
        var repeats = new Option<int>("--repeats", "-r")
        {
            Description = "Timed runs per case after one warm-up; the median is reported.",
            HelpName = "N",
            DefaultValueFactory = _ => 5,
            CustomParser = result => OptionParsers.Integer(result, "--repeats", minimum: 1),
        };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Print the full exception of every failure." };
        var command = new Command("demo",
            "Run a few flash-attention cases (f32, f16, bf16, causal, GQA, [B,N,H,D] layout) on each available " +
            "backend, time them, check them against the float64 reference, and print a table. Exits 1 if any check fails.");
        command.Options.Add(repeats);
        command.Options.Add(verbose);
        command.SetAction(result => Run(host, global.Read(result), result.GetValue(repeats), result.GetValue(verbose)));
        examples.Add(command,
            "demo                    every available backend",
            "demo --backend cpu --threads 1",
            "demo -b auto -r 9 --verbose");
        return command;
    }

    /// <summary>One case on one backend: its median time, its check, and what went wrong.</summary>
    private sealed record Row(Backend Backend, IAttentionCase Case, Timing? Timing, MachinePeaks? Peaks, VerificationResult? Check, List<string> Failures, List<Exception> Exceptions)
    {
        /// <summary>The row as `bench` reports it: throughput, and "% of peak" of the FMA peak or, decode-like, the bandwidth.</summary>
        public BenchRow Bench { get; } = new(Backend, Case, Timing, null, new Peaks(Peaks?.FmaGflops, Peaks?.BandwidthGBs, "measured"));
        public bool Passed => Failures.Count == 0 && Check is { Passed: true };
    }

    private static int Run(CliHost host, GlobalSettings settings, int repeats, bool verbose)
    {
        var console = host.Out;
        Terminal.WarnIfUnoptimised(console);

        var contexts = Terminal.OpenContexts(host, settings);
        try
        {
            if (contexts.Count == 0) return ExitCodes.Unavailable;

            // GPU peaks are not probed yet, so "% of peak" is given for the CPU only.
            var cpuPeaks = contexts.Any(c => c.Backend == Backend.Cpu) ? Terminal.Peaks(console, settings.Threads) : null;
            var rows = new List<Row>();
            void RunAll(Action<string> starting, Action finished)
            {
                foreach (var context in contexts)
                    foreach (var @case in CaseCatalog.Demo)
                    {
                        starting($"{Terminal.Name(context.Backend)} {@case}");
                        rows.Add(RunCase(host, context, @case, repeats, context.Backend == Backend.Cpu ? cpuPeaks : null));
                        finished();
                    }
            }
            // A progress bar only where someone watches; in a log it would print stray percentages.
            if (host.Interactive)
                console.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new SpinnerColumn())
                    .Start(progress =>
                    {
                        var task = progress.AddTask("demo", maxValue: contexts.Count * CaseCatalog.Demo.Count);
                        RunAll(name => task.Description = Markup.Escape(name), () => task.Increment(1));
                    });
            else
                RunAll(_ => { }, () => { });

            Render(console, rows, settings, cpuPeaks, verbose);
            return rows.All(r => r.Passed) ? ExitCodes.Success : ExitCodes.CheckFailed;
        }
        finally
        {
            foreach (var context in contexts) context.Dispose();
        }
    }

    // A failing kernel must not hide the other rows, whatever it throws: every exception becomes a reported failure.
    private static Row RunCase(CliHost host, AttentionContext context, IAttentionCase @case, int repeats, MachinePeaks? peaks)
    {
        var failures = new List<string>();
        var exceptions = new List<Exception>();
        VerificationResult? check = null;
        Timing? timing = null;
        try
        {
            check = CaseChecker.Check(context, @case, host.Fault);
            if (!check.Passed)
                failures.Add(check.Detail.Length > 0 ? check.Detail : $"max error {Units.Error(check.MaxError)} above tolerance {Units.Error(check.Tolerance)}");
        }
        catch (Exception e)
        {
            failures.Add($"check threw {e.GetType().Name}: {e.Message}");
            exceptions.Add(e);
        }
        try
        {
            using var run = CaseRunner.Prepare(context, @case);
            timing = KernelTimer.Measure(run, warmups: 1, repeats, budgetSeconds: 2.0);
        }
        catch (Exception e)
        {
            failures.Add($"kernel threw {e.GetType().Name}: {e.Message}");
            exceptions.Add(e);
        }
        return new Row(context.Backend, @case, timing, peaks, check, failures, exceptions);
    }

    private static void Render(IAnsiConsole console, List<Row> rows, GlobalSettings settings, MachinePeaks? cpuPeaks, bool verbose)
    {
        const string none = "[grey]-[/]";
        var table = new Table().Border(TableBorder.Rounded)
            .Title(Markup.Escape($"Flash attention forward and a KV-cache decode step, {settings.Threads} CPU thread(s); median time, checked against float64"));
        table.AddColumn("Backend");
        table.AddColumn("Case");
        foreach (var numeric in new[] { "Time", "GFLOP/s", "% of peak", "Max error", "Tolerance" })
            table.AddColumn(new TableColumn(numeric).RightAligned());
        table.AddColumn("Result");
        foreach (var row in rows)
        {
            table.AddRow(
                Terminal.Name(row.Backend),
                Markup.Escape($"{row.Case}"),
                row.Timing is { } timing ? Units.Time(timing.Median) : none,
                row.Bench.Gflops is { } g ? Units.Gflops(g) : none,
                row.Bench.PercentOfPeak is { } percent ? Units.Percent(percent) + (row.Bench.MemoryBound ? " BW" : " FMA") : none,
                row.Check is { } c ? Units.Error(c.MaxError) : none,
                row.Check is { } t ? Units.Error(t.Tolerance) : none,
                row.Passed ? "[green]PASS[/]" : "[red]FAIL[/]");
        }
        if (cpuPeaks is not null)
            table.Caption(Markup.Escape(
                $"% of peak: of the {Units.Gflops(cpuPeaks.FmaGflops)} GFLOP/s float32 FMA peak (FMA), or for decode-like rows " +
                $"(Nq <= {BenchRow.DecodeQueryRows}) of the {cpuPeaks.BandwidthGBs:0.#} GB/s read bandwidth (BW), measured on {cpuPeaks.Threads} thread(s)" +
                $"{(cpuPeaks.Contended ? " under load (overstated)" : "")} (CPU only; see `info`)"));
        console.Write(table);

        var failed = rows.Where(r => !r.Passed).ToList();
        if (failed.Count > 0)
        {
            console.MarkupLine("[red]Failures[/]");
            foreach (var row in failed)
            {
                console.MarkupLine(Markup.Escape($"  {Terminal.Name(row.Backend)} {row.Case}"));
                foreach (var failure in row.Failures) console.MarkupLine(Markup.Escape($"    {failure}"));
                if (verbose)
                    foreach (var e in row.Exceptions) console.WriteException(e, ExceptionFormats.ShortenPaths);
            }
            if (!verbose) console.MarkupLine("[grey]  (--verbose prints the full exceptions)[/]");
        }

        var timed = rows.Where(r => r.Bench.Gflops is not null).ToList();
        if (timed.Count > 0)
        {
            var chart = new BarChart().Width(72).Label("GFLOP/s");
            foreach (var row in timed)
                chart.AddItem(Markup.Escape($"{Terminal.Name(row.Backend)} {ShortName(row.Case)}"),
                    Math.Round(row.Bench.Gflops!.Value, 1), row.Passed ? Color.Green : Color.Red);
            console.Write(chart);
        }

        console.MarkupLine(failed.Count == 0
            ? $"[green]All {rows.Count} checks passed.[/]"
            : $"[red]{failed.Count} of {rows.Count} checks failed.[/]");
    }

    /// <summary>The case without its family and seed, which every demo row shares.</summary>
    private static string ShortName(IAttentionCase @case)
    {
        string name = $"{@case}";
        int start = name.IndexOf(' ') + 1, seed = name.LastIndexOf(" seed=", StringComparison.Ordinal);
        return seed > start ? name[start..seed] : name;
    }
}
