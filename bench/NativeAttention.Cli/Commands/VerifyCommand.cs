// `verify`: every kernel the chosen backends have, checked against the float64 reference on every registered
// family's fixed spread of cases (or the cases given); one table, a replay command per failure, exit 1 when anything
// is wrong. `verify --reference` runs the references alone, for families whose kernels are still to come.
using System.CommandLine;
using System.Diagnostics;
using Spectre.Console;

namespace NativeAttention.Cli.Commands;

internal static class VerifyCommand
{
    public static Command Create(CliHost host, GlobalOptions global, HelpExamples examples)
    {
        var cases = new Option<string[]>("--case")
        {
            Description = $"Check this case instead of the built-in list (repeatable). A case spec is {AttentionCaseSpec.Grammar}.",
            HelpName = "spec",
            AllowMultipleArgumentsPerToken = false,
        };
        var splitKeys = new Option<int>("--split-keys")
        {
            Description = "With --case: run each flash case as flash over this many key ranges, then MergeStates (non-causal, windowless cases); the same as the spec token split=N.",
            HelpName = "N",
            CustomParser = result => OptionParsers.Integer(result, "--split-keys", minimum: 2),
        };
        var reference = new Option<bool>("--reference")
        {
            Description = "Run no kernel: build each case's tensors and run its float64 and same-precision naive references on the host, " +
                "reporting FLOPs and the naive error (every family, including those without kernels yet).",
        };
        var command = new Command("verify",
            "Check every kernel available on the chosen backends against the float64 reference on a fixed list of " +
            "cases per family (flash: N = 1, tails, Nq != Nk, GQA/MQA, causal, windows, every dtype, strided layout, huge logits, " +
            "softcap, sigmoid, option tensors, a long sequence, KV-cache decoding, split-KV + MergeStates, small binary16 keys and values; MergeStates alone; " +
            "and the families whose kernels are still to come, listed as skipped). Exits 1 if any check fails.");
        command.Options.Add(cases);
        command.Options.Add(splitKeys);
        command.Options.Add(reference);
        command.SetAction(result => Run(host, global.Read(result), result.GetValue(cases) ?? [], result.GetValue(splitKeys), result.GetValue(reference)));
        examples.Add(command,
            "verify                          every available backend",
            "verify --backend cpu --threads 2",
            "verify -b cpu --case \"flash f16 B1 H8/2 N33x129 D64 causal alibi sinks seed=4\"",
            "verify -b cpu --split-keys 3 --case \"flash f32 B1 H4/1 N1x257 D128 seed=5\"",
            "verify -b cpu --case \"flash f16 B2 H8/2 N1x300 D128 kvcache page=16 new=1 ragged seed=1\"",
            "verify --reference --case \"neighborhood f32 B1 H2 grid=16x16 k=5 D32 seed=1\"");
        return command;
    }

    private static int Run(CliHost host, GlobalSettings settings, string[] specs, int splitKeys, bool reference)
    {
        var list = new List<IAttentionCase>();
        foreach (string spec in specs)
        {
            if (!AttentionCaseSpec.TryParse(spec, out var parsed, out string? error)) throw new UsageException($"--case: {error}");
            if (splitKeys > 1)
            {
                if (parsed is not AttentionCase { KvCache: false } flash)
                    throw new UsageException($"--split-keys applies to plain flash cases, not \"{spec}\".");
                var split = new SplitKeysCase { Flash = flash, Parts = splitKeys };
                if (split.Problem() is { } problem) throw new UsageException($"--split-keys: \"{spec}\": {problem}.");
                parsed = split;
            }
            list.Add(parsed);
        }
        if (splitKeys > 1 && list.Count == 0) throw new UsageException("--split-keys applies to the cases given with --case.");
        IReadOnlyList<IAttentionCase> cases = list.Count > 0 ? list : CaseCatalog.Verify;
        if (reference) return References(host, cases);

        var contexts = Terminal.OpenContexts(host, settings);
        try
        {
            if (contexts.Count == 0) return ExitCodes.Unavailable;
            var outcomes = new List<CaseOutcome>();
            Progress.Run(host, "verify", contexts.Count * cases.Count, step =>
            {
                foreach (var context in contexts)
                    foreach (var @case in cases)
                    {
                        step($"{Terminal.Name(context.Backend)} {@case}");
                        outcomes.Add(CaseChecker.Outcome(context, @case, host.Fault));
                    }
            });
            return Render(host, contexts, outcomes);
        }
        finally
        {
            foreach (var context in contexts) context.Dispose();
        }
    }

    private static int Render(CliHost host, List<AttentionContext> contexts, List<CaseOutcome> outcomes)
    {
        var console = host.Out;
        var table = new Table().Border(TableBorder.Rounded).Title("Kernels against the float64 reference");
        table.AddColumn("Backend");
        table.AddColumn("Kernel");
        table.AddColumn("Case");
        foreach (var numeric in new[] { "Max error", "Tolerance", "LSE error" })
            table.AddColumn(new TableColumn(numeric).RightAligned());
        table.AddColumn("Result");
        foreach (var o in outcomes)
        {
            var r = o.Result;
            table.AddRow(
                Terminal.Name(o.Backend),
                Markup.Escape(o.Kernel),
                Markup.Escape(o.Case.ToSpec()),
                r is null ? "-" : Units.Error(r.MaxError),
                r is null ? "-" : Units.Error(r.Tolerance),
                r is null ? "-" : Units.Error(r.MaxLseError),
                o.Passed ? "[green]PASS[/]" : o.Failed ? "[red]FAIL[/]" : "[yellow]SKIP[/]");
        }
        table.Caption("PASS: max error <= 2 x a same-precision naive implementation's + slack; no NaN; rows that see no key give 0 and LSE = -inf");
        console.Write(table);

        foreach (var skipped in outcomes.Where(o => o.Unsupported is not null).GroupBy(o => (o.Backend, o.Unsupported)))
            console.MarkupLine(Markup.Escape($"skipped on {Terminal.Name(skipped.Key.Backend)}: {skipped.Count()} case(s): {skipped.Key.Unsupported}"));
        var referenceOnly = CaseFamilies.All.Where(f => !f.HasKernels)
            .Select(f => f.KernelBackends is { Count: > 0 } some ? $"{f.Name} (kernels on {string.Join(", ", some.Select(Terminal.Name))} only)" : f.Name).ToList();
        if (referenceOnly.Count > 0)
            console.MarkupLine(Markup.Escape(
                $"not on every backend yet: {string.Join(", ", referenceOnly)} (Reference computes them in float64; `verify --reference` runs their cases)"));

        var failed = outcomes.Where(o => o.Failed).ToList();
        if (failed.Count > 0)
        {
            console.MarkupLine("[red]Failures[/]");
            foreach (var o in failed)
            {
                console.MarkupLine(Markup.Escape($"  {Terminal.Name(o.Backend)} {o.Kernel}: {o.Case.ToSpec()}"));
                console.MarkupLine(Markup.Escape($"    {o.Detail}"));
                host.WriteUnwrapped($"    replay: {Replay.Command(o)}");
            }
        }
        // A backend that ran nothing verified nothing: that must not read as a pass.
        var silent = contexts.Where(c => !outcomes.Any(o => o.Backend == c.Backend && o.Result is not null)).ToList();
        foreach (var context in silent)
            console.MarkupLine($"[red]nothing could be checked on {Terminal.Name(context.Backend)}[/]: every case was skipped");

        int passed = outcomes.Count(o => o.Passed), skippedCount = outcomes.Count(o => o.Unsupported is not null);
        console.MarkupLine(failed.Count == 0 && silent.Count == 0
            ? $"[green]{passed} passed[/], {skippedCount} skipped, 0 failed."
            : $"[red]{failed.Count} failed[/], {passed} passed, {skippedCount} skipped.");
        return failed.Count == 0 && silent.Count == 0 ? ExitCodes.Success : ExitCodes.CheckFailed;
    }

    /// <summary>
    /// `verify --reference`: each case's tensors, float64 reference and naive reference on the host, with the
    /// naive result's distance from the float64 one; fails only when a reference throws or returns NaN.
    /// </summary>
    private static int References(CliHost host, IReadOnlyList<IAttentionCase> cases)
    {
        var console = host.Out;
        var table = new Table().Border(TableBorder.Rounded).Title("References on the host (no kernel runs)");
        table.AddColumn("Family");
        table.AddColumn("Case");
        foreach (var numeric in new[] { "GFLOP", "MB", "Naive error", "Time" })
            table.AddColumn(new TableColumn(numeric).RightAligned());
        table.AddColumn("Result");
        var failures = new List<(IAttentionCase Case, string Detail)>();
        Progress.Run(host, "verify --reference", cases.Count, step =>
        {
            foreach (var @case in cases)
            {
                step(@case.ToSpec());
                var clock = Stopwatch.StartNew();
                string error = "-", result = "[green]OK[/]";
                try
                {
                    var tensors = @case.CreateTensors();
                    var exact = @case.ExactReference(tensors);
                    var naive = @case.NaiveReference(tensors);
                    double worst = exact.Output.Zip(naive.Output, (e, n) => double.IsNegativeInfinity(e) && double.IsNegativeInfinity(n) ? 0 : Math.Abs(e - n)).DefaultIfEmpty(0).Max();
                    error = Units.Error(worst);
                    if (exact.Output.Any(double.IsNaN) || double.IsNaN(worst))
                    {
                        result = "[red]NaN[/]";
                        failures.Add((@case, "the reference returned NaN"));
                    }
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    result = "[red]FAIL[/]";
                    failures.Add((@case, $"threw {e.GetType().Name}: {e.Message}"));
                }
                table.AddRow(Markup.Escape(@case.FamilyName), Markup.Escape(@case.ToSpec()), (@case.Flops() / 1e9).ToString("0.000", System.Globalization.CultureInfo.InvariantCulture),
                    (@case.MinimumBytes() / 1e6).ToString("0.00", System.Globalization.CultureInfo.InvariantCulture), error, Units.Time(clock.Elapsed.TotalSeconds), result);
            }
        });
        table.Caption("Naive error: largest |naive - float64| output difference (families without a naive reference yet use the float64 result rounded to the output type)");
        console.Write(table);
        foreach (var (c, detail) in failures) console.MarkupLine(Markup.Escape($"  {c.ToSpec()}: {detail}"));
        console.MarkupLine(failures.Count == 0
            ? $"[green]{cases.Count} reference(s) ran[/], 0 failed."
            : $"[red]{failures.Count} failed[/], {cases.Count - failures.Count} ran.");
        return failures.Count == 0 ? ExitCodes.Success : ExitCodes.CheckFailed;
    }
}
