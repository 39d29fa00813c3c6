// `fuzz`: random valid problems from CaseSampler (the tests' distribution) on the chosen backends, for a time budget
// or a count; the first failure is shrunk to a small case and printed with the seed and a replay command.
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Spectre.Console;

namespace NativeAttention.Cli.Commands;

internal static class FuzzCommand
{
    private const double DefaultSeconds = 30;

    public static Command Create(CliHost host, GlobalOptions global, HelpExamples examples)
    {
        var seconds = new Option<double?>("--seconds", "-s")
        {
            Description = $"Time budget; the default is {DefaultSeconds} s unless --count is given.",
            HelpName = "S",
            CustomParser = result => OptionParsers.Positive(result, "--seconds"),
        };
        var count = new Option<int?>("--count", "-n")
        {
            Description = "Number of random cases (with --seconds, whichever ends first).",
            HelpName = "N",
            CustomParser = result => OptionParsers.Integer(result, "--count", minimum: 1),
        };
        var seed = new Option<int?>("--seed")
        {
            Description = "Seed of the case sampler; the default is drawn at random and printed, so any run can be repeated.",
            HelpName = "N",
            CustomParser = result => OptionParsers.Integer(result, "--seed", minimum: 0),
        };
        var noWindows = new Option<bool>("--no-windows") { Description = "Sample no sliding windows." };
        var noKvCache = new Option<bool>("--no-kvcache") { Description = "Run every flash case through Flash (by default a quarter go through FlashKvCache, with random cache layouts)." };
        var noOptionTensors = new Option<bool>("--no-option-tensors") { Description = "Sample no option tensors (by default a quarter of the flash cases get ALiBi, biases or sinks)." };
        var noSmallInputs = new Option<bool>("--no-small-inputs")
        {
            Description = "Sample every case at magnitude 1 (by default a quarter draw keys and values of magnitude 0.1, 0.01 or 0.001 and queries of the inverse magnitude: amp= and qamp=).",
        };
        string[] sampled = [.. CaseFamilies.All.Where(f => (f.HasKernels || f.KernelBackends is { Count: > 0 }) && f.Sample is not null).Select(f => f.Name)];
        var family = new Option<CaseFamily[]>("--family")
        {
            Description = $"Families to sample (comma-separated; each case picks one at random). Default: flash.",
            HelpName = string.Join('|', sampled),
            CustomParser = r => OptionParsers.Words(r, "--family", string.Join(", ", sampled),
                word => sampled.Contains(word) ? CaseFamilies.Find(word) : null),
        };
        var replay = new Option<string?>("--replay")
        {
            Description = $"Check this one case (as printed by a failure) instead of sampling. A case spec is {AttentionCaseSpec.Grammar}.",
            HelpName = "spec",
        };
        var command = new Command("fuzz",
            "Check random valid problems (every dtype and layout, GQA, tails, Nq != Nk, causal, windows: the property " +
            "tests' distribution; a quarter with option tensors, a quarter through FlashKvCache with random cache layouts, a quarter " +
            "at small magnitudes (binary16 subnormals); " +
            "other families with --family) against the float64 reference. The first failure is shrunk to a small failing case " +
            "and printed with the seed and a one-line replay command. Exits 1 on a failure.");
        command.Options.Add(seconds);
        command.Options.Add(count);
        command.Options.Add(seed);
        command.Options.Add(noWindows);
        command.Options.Add(noKvCache);
        command.Options.Add(noOptionTensors);
        command.Options.Add(noSmallInputs);
        command.Options.Add(family);
        command.Options.Add(replay);
        command.SetAction(result => Run(host, global.Read(result), result.GetValue(seconds), result.GetValue(count), result.GetValue(seed),
            new Sampling(!result.GetValue(noWindows), !result.GetValue(noKvCache), !result.GetValue(noOptionTensors), !result.GetValue(noSmallInputs),
                result.GetValue(family) is { Length: > 0 } families ? families : [AttentionCase.Registration]),
            result.GetValue(replay)));
        examples.Add(command,
            "fuzz --backend cpu --seconds 60",
            "fuzz -b cpu --count 200 --seed 42       the same 200 cases every time",
            "fuzz -b cpu --family flash,merge --seconds 60",
            "fuzz -b cpu --replay \"flash f16 B1 H2/1 N17x33 D64/64 causal seed=7\"");
        return command;
    }

    /// <summary>What `fuzz` samples.</summary>
    private sealed record Sampling(bool Windows, bool KvCache, bool OptionTensors, bool SmallInputs, CaseFamily[] Families);

    private static int Run(CliHost host, GlobalSettings settings, double? seconds, int? count, int? seed, Sampling sampling, string? replay)
    {
        IAttentionCase? replayCase = null;
        if (replay is not null)
        {
            if (!AttentionCaseSpec.TryParse(replay, out replayCase, out string? error)) throw new UsageException($"--replay: {error}");
            if (seconds is not null || count is not null || seed is not null)
                throw new UsageException("--replay checks one case; it does not combine with --seconds, --count or --seed.");
        }

        var contexts = Terminal.OpenContexts(host, settings);
        try
        {
            if (contexts.Count == 0) return ExitCodes.Unavailable;
            return replayCase is not null
                ? Replay(host, contexts, replayCase)
                : Sample(host, contexts, seconds ?? (count is null ? DefaultSeconds : null), count, seed ?? Random.Shared.Next(), sampling);
        }
        finally
        {
            foreach (var context in contexts) context.Dispose();
        }
    }

    private static int Replay(CliHost host, List<AttentionContext> contexts, IAttentionCase @case)
    {
        int code = ExitCodes.Success;
        foreach (var context in contexts)
        {
            var outcome = CaseChecker.Outcome(context, @case, host.Fault);
            string verdict = outcome.Passed ? "[green]PASS[/]" : outcome.Failed ? "[red]FAIL[/]" : "[yellow]SKIP[/]";
            host.Out.MarkupLine($"{verdict} {Markup.Escape($"{Terminal.Name(context.Backend)} {@case}")}");
            if (outcome.Result is { } r)
                host.Out.MarkupLine(Markup.Escape($"  max error {Units.Error(r.MaxError)} (tolerance {Units.Error(r.Tolerance)}), LSE error {Units.Error(r.MaxLseError)}"));
            if (!outcome.Passed) host.Out.MarkupLine(Markup.Escape($"  {outcome.Detail}"));
            if (outcome.Failed) code = ExitCodes.CheckFailed;
        }
        return code;
    }

    private static int Sample(CliHost host, List<AttentionContext> contexts, double? seconds, int? count, int seed, Sampling sampling)
    {
        var console = host.Out;
        string limit = (seconds, count) switch
        {
            ({ } s, { } n) => $"{n} cases or {s.ToString("0.#", CultureInfo.InvariantCulture)} s",
            ({ } s, null) => $"{s.ToString("0.#", CultureInfo.InvariantCulture)} s",
            _ => $"{count} cases",
        };
        console.MarkupLine(Markup.Escape($"fuzz seed {seed}, {limit}, on {string.Join(", ", contexts.Select(c => Terminal.Name(c.Backend)))}"));

        var sampler = new CaseSampler(seed, sampling.Windows, sampling.KvCache)
        {
            AllowOptionTensors = sampling.OptionTensors, AllowCacheLayouts = sampling.KvCache, AllowSmallInputs = sampling.SmallInputs,
        };
        var picker = new Random(seed);
        var clock = Stopwatch.StartNew();
        int checkedCases = 0, skipped = 0;
        CaseOutcome? failure = null;
        bool More() => failure is null && (count is not { } n || checkedCases < n) && (seconds is not { } s || clock.Elapsed.TotalSeconds < s);

        void Loop(Action<string> status)
        {
            while (More())
            {
                var family = sampling.Families.Length == 1 ? sampling.Families[0] : sampling.Families[picker.Next(sampling.Families.Length)];
                var @case = sampler.NextCase(family);
                checkedCases++;
                status($"case {checkedCases}: {@case}");
                foreach (var context in contexts)
                {
                    var outcome = CaseChecker.Outcome(context, @case, host.Fault);
                    if (outcome.Unsupported is not null) skipped++;
                    if (outcome.Failed)
                    {
                        failure = outcome;
                        break;
                    }
                }
            }
        }
        if (host.Interactive)
            console.Status().Start("fuzzing", context => Loop(text => context.Status(Markup.Escape(text))));
        else
            Loop(_ => { });

        string elapsed = Units.Time(clock.Elapsed.TotalSeconds);
        if (failure is null)
        {
            console.MarkupLine($"[green]{checkedCases} random case(s) passed[/] in {elapsed} ({skipped} skipped as unsupported), seed {seed}.");
            return ExitCodes.Success;
        }

        var context = contexts.First(c => c.Backend == failure.Backend);
        console.MarkupLine($"[red]FAIL[/] {Markup.Escape($"case {checkedCases} of seed {seed} on {Terminal.Name(failure.Backend)} after {elapsed}:")}");
        console.MarkupLine(Markup.Escape($"  {failure.Case.ToSpec()}"));
        console.MarkupLine(Markup.Escape($"  {failure.Detail}"));
        var (smallest, attempts) = Shrink(host, context, failure.Case);
        var small = CaseChecker.Outcome(context, smallest, host.Fault);
        console.MarkupLine(Markup.Escape($"smallest failing case ({attempts} shrink attempt(s)):"));
        console.MarkupLine(Markup.Escape($"  {smallest.ToSpec()}"));
        console.MarkupLine(Markup.Escape($"  {small.Detail}"));
        console.MarkupLine("reproduce with:");
        host.WriteUnwrapped($"  {Cli.Replay.Command(failure.Backend, smallest)}");
        console.MarkupLine(Markup.Escape($"rerun this fuzz session with: fuzz --backend {Terminal.Name(failure.Backend)} --seed {seed} --count {checkedCases}"));
        return ExitCodes.CheckFailed;
    }

    private static (IAttentionCase Smallest, int Attempts) Shrink(CliHost host, AttentionContext context, IAttentionCase failing)
    {
        bool Fails(IAttentionCase candidate) => CaseChecker.Outcome(context, candidate, host.Fault).Failed;
        if (!host.Interactive) return CaseSampler.MinimizeCase(failing, Fails);
        return host.Out.Status().Start("shrinking", _ => CaseSampler.MinimizeCase(failing, Fails));
    }
}
