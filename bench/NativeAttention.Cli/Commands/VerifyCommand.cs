// `verify`: every kernel the chosen backends have, checked against the float64 reference on a fixed spread of
// cases (or the cases given); one table, a replay command per failure, exit 1 when anything is wrong.
using System.CommandLine;
using Spectre.Console;

namespace NativeAttention.Cli.Commands;

internal static class VerifyCommand
{
    /// <summary>The families that have kernels; the others are listed as not yet implemented rather than faked.</summary>
    private static readonly AttentionFamily[] Unimplemented = [AttentionFamily.Neighborhood, AttentionFamily.BlockSparse, AttentionFamily.Linear];

    public static Command Create(CliHost host, GlobalOptions global, HelpExamples examples)
    {
        var cases = new Option<string[]>("--case")
        {
            Description = $"Check this case instead of the built-in list (repeatable). A case spec is: {AttentionCase.SpecGrammar}.",
            HelpName = "spec",
            AllowMultipleArgumentsPerToken = false,
        };
        var splitKeys = new Option<int>("--split-keys")
        {
            Description = "With --case: run each case as flash over this many key ranges, then MergeStates (non-causal, windowless cases).",
            HelpName = "N",
            CustomParser = result => OptionParsers.Integer(result, "--split-keys", minimum: 2),
        };
        var command = new Command("verify",
            "Check every kernel available on the chosen backends against the float64 reference on a fixed list of " +
            "cases (N = 1, tails, Nq != Nk, GQA/MQA, causal, windows, every dtype, strided layout, huge logits, " +
            "softcap, sigmoid, a long sequence), and split-KV flash + MergeStates against the unsplit reference. Options a backend does not implement yet are listed as skipped. " +
            "Exits 1 if any check fails.");
        command.Options.Add(cases);
        command.Options.Add(splitKeys);
        command.SetAction(result => Run(host, global.Read(result), result.GetValue(cases) ?? [], result.GetValue(splitKeys)));
        examples.Add(command,
            "verify                          every available backend",
            "verify --backend cpu --threads 2",
            "verify -b cpu --case \"flash f16 B1 H8/2 N33x129 D64 causal seed=4\"",
            "verify -b cpu --split-keys 3 --case \"flash f32 B1 H4/1 N1x257 D128 seed=5\"");
        return command;
    }

    private static int Run(CliHost host, GlobalSettings settings, string[] specs, int splitKeys)
    {
        var list = new List<(AttentionCase Case, int Parts)>();
        foreach (string spec in specs)
        {
            if (!AttentionCase.TryParse(spec, out var parsed, out string? error)) throw new UsageException($"--case: {error}");
            if (splitKeys > 1 && (parsed.Flash.Causal || parsed.Flash.WindowLeft >= 0 || parsed.Flash.WindowRight >= 0))
                throw new UsageException($"--split-keys needs non-causal, windowless cases, not \"{spec}\".");
            list.Add((parsed, splitKeys));
        }
        if (splitKeys > 1 && list.Count == 0) throw new UsageException("--split-keys applies to the cases given with --case.");
        IReadOnlyList<(AttentionCase Case, int Parts)> cases = list.Count > 0
            ? list
            : [.. CaseCatalog.Verify.Select(c => (c, 0)), .. CaseCatalog.VerifySplitKeys];

        var contexts = Terminal.OpenContexts(host, settings);
        try
        {
            if (contexts.Count == 0) return ExitCodes.Unavailable;
            var outcomes = new List<CaseOutcome>();
            Progress.Run(host, "verify", contexts.Count * cases.Count, step =>
            {
                foreach (var context in contexts)
                    foreach (var (@case, parts) in cases)
                    {
                        step($"{Terminal.Name(context.Backend)} {@case}");
                        outcomes.Add(CaseChecker.Outcome(context, @case, host.Fault, parts));
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
        foreach (var context in contexts)
            console.MarkupLine(Markup.Escape(
                $"not checked on {Terminal.Name(context.Backend)}: {string.Join(", ", Unimplemented.Select(AttentionCase.FamilyName))} (no kernels yet; Reference computes them in float64)"));

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
}
