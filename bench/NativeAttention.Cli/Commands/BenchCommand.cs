// `bench`: times a sweep of cases (from flags or a JSON case file) on the chosen backends: warm-up, repeats, median
// and spread, GFLOP/s or GB/s and % of peak; a table and a bar chart on the console, and CSV, JSON, Markdown and SVG
// files on request.
using System.CommandLine;
using System.Globalization;
using NativeAttention.Cli.Reports;
using Spectre.Console;

namespace NativeAttention.Cli.Commands;

internal static class BenchCommand
{
    public static Command Create(CliHost host, GlobalOptions global, HelpExamples examples)
    {
        var family = new Option<AttentionFamily[]>("--family")
        {
            Description = "Kernel families (comma-separated). The sweep flags shape flash cases; neighborhood, block-sparse, linear and merge cases run from a --cases file (bench/cases/*.json) or as case specs.",
            HelpName = "flash|neighborhood|blocksparse|linear",
            CustomParser = r => OptionParsers.WordList(r, "--family", "flash, neighborhood, blocksparse or linear", Sweep.ParseFamily),
        };
        var n = Ints("--n", "Sequence lengths N (keys; also queries unless --nq is given).", "512,1024,2048");
        var nq = Ints("--nq", "Query lengths, each paired with every N (e.g. 1 for decode). Default: Nq = N.", null);
        var batch = Ints("--batch", "Batch sizes.", "1");
        var heads = Ints("--heads", "Query heads.", "8");
        var kvHeads = Ints("--kv-heads", "Key/value heads (GQA/MQA; must divide --heads). Default: as many as --heads.", null);
        var d = Ints("--d", "Query/key head dims.", "64");
        var dv = Ints("--dv", "Value head dims. Default: equal to --d.", null);
        var dtype = new Option<ElementType[]>("--dtype")
        {
            Description = "Storage types (comma-separated). Default: f32.",
            HelpName = "f32|f16|bf16",
            CustomParser = r => OptionParsers.WordList(r, "--dtype", "f32, f16 or bf16", Sweep.ParseType),
        };
        var layout = new Option<TensorLayout[]>("--layout")
        {
            Description = "Memory layouts: bhnd ([B,H,N,D]) or bnhd ([B,N,H,D], strided). Default: bhnd.",
            HelpName = "bhnd|bnhd",
            CustomParser = r => OptionParsers.WordList(r, "--layout", "bhnd or bnhd", Sweep.ParseLayout),
        };
        var causal = new Option<CausalChoice?>("--causal")
        {
            Description = "Causal masking: no, yes or both. Default: no.",
            HelpName = "no|yes|both",
            CustomParser = r => OptionParsers.WordList(r, "--causal", "no, yes or both", Sweep.ParseCausal) is [var c] ? c : Fail<CausalChoice?>(r, "--causal takes one of no, yes, both."),
        };
        var seed = new Option<int>("--seed")
        {
            Description = "Seed of the generated inputs.",
            HelpName = "N",
            DefaultValueFactory = _ => 1,
            CustomParser = r => OptionParsers.Integer(r, "--seed", minimum: 0),
        };
        var cases = new Option<string?>("--cases")
        {
            Description = $"Read the cases from a file instead of the sweep flags. {CaseFile.Format}",
            HelpName = "file.json",
        };
        var warmup = new Option<int>("--warmup", "-w")
        {
            Description = "Untimed runs per case before timing (JIT, kernel builds, page faults).",
            HelpName = "N",
            DefaultValueFactory = _ => 2,
            CustomParser = r => OptionParsers.Integer(r, "--warmup", minimum: 0),
        };
        var repeats = new Option<int>("--repeats", "-r")
        {
            Description = "Timed runs per case at most; the median and the spread are reported.",
            HelpName = "N",
            DefaultValueFactory = _ => 10,
            CustomParser = r => OptionParsers.Integer(r, "--repeats", minimum: 1),
        };
        var budget = new Option<double>("--budget")
        {
            Description = "Seconds of timed runs per case; timing stops early once spent (at least one run is timed).",
            HelpName = "S",
            DefaultValueFactory = _ => 3.0,
            CustomParser = r => OptionParsers.Positive(r, "--budget"),
        };
        var peakGflops = new Option<double?>("--peak-gflops")
        {
            Description = "Peak GFLOP/s to report % of (e.g. a data-sheet figure). Default: the measured peak: the CPU's FMA peak; on GPUs the probe kernels' tensor-core peak (CUDA sm_80+) or fp32 FMA peak.",
            HelpName = "X",
            CustomParser = r => OptionParsers.Positive(r, "--peak-gflops"),
        };
        var peakBandwidth = new Option<double?>("--peak-bandwidth")
        {
            Description = "Peak memory bandwidth in GB/s for decode-like cases. Default: the measured streaming-read bandwidth (CPU, or the GPU probe kernel).",
            HelpName = "X",
            CustomParser = r => OptionParsers.Positive(r, "--peak-bandwidth"),
        };
        var adjacentPeaks = new Option<bool>("--adjacent-peaks")
        {
            Description = "Run the streaming-read and FMA probes right before and right after each case's timed runs " +
                $"(a {MachineAdjacentProbe.ReadBytes >> 20} MiB read and {MachineAdjacentProbe.FmaFlopsPerThread / 1e9:0.#} GFLOP per thread, best of " +
                $"{MachineAdjacentProbe.ReadRuns} each: tens of milliseconds) and report each case's % of peak against the mean of its two " +
                "probes, with both values in the reports and the probes' min .. max over the run in the summary. Instead of " +
                "the cached peaks; on the CPU and OpenCL CPU devices (GPUs keep their probe kernels' peaks). Does not combine " +
                "with --peak-gflops or --peak-bandwidth.",
        };
        var csv = OutputFile("--csv", "Write every result (one row per case and backend) as CSV.");
        var json = OutputFile("--json", "Write every result, with each timed run and the machine, as JSON.");
        var markdown = OutputFile("--markdown", "Write the results table as Markdown.");
        var svg = OutputFile("--svg", "Write an SVG chart of throughput against sequence length, one line per backend (and dtype, mask, ...).");
        var noChart = new Option<bool>("--no-chart") { Description = "Leave out the bar chart on the console." };
        var managedArrays = new Option<bool>("--managed-arrays")
        {
            Description = "On the CPU, run each case on the managed arrays it was generated in (rows start wherever the GC puts " +
                "an array's data, 16-24 bytes past a 64-byte line here) instead of on 64-byte aligned native copies, the default " +
                "(as an inference engine or PyTorch's CPU allocator gives its buffers).",
        };
        var kvCache = new Option<bool>("--kvcache")
        {
            Description = "Run the sweep through FlashKvCache (K and V as a full contiguous cache, the decode kernels) instead of Flash.",
        };

        var command = new Command("bench",
            "Time attention kernels over a sweep of shapes (the product of the list flags) or the cases of a JSON file, " +
            "on the chosen backends. Reports the median time and its spread, GFLOP/s on visible pairs and % of the " +
            $"measured FMA peak; decode-like cases (Nq <= {BenchRow.DecodeQueryRows}) report GB/s and % of the measured " +
            "memory bandwidth instead. Exits 1 if a kernel threw.");
        Option[] options = [family, n, nq, batch, heads, kvHeads, d, dv, dtype, layout, causal, kvCache, seed, cases, warmup, repeats, budget, peakGflops, peakBandwidth, adjacentPeaks, managedArrays, csv, json, markdown, svg, noChart];
        foreach (var option in options) command.Options.Add(option);
        Option[] sweepOptions = [family, n, nq, batch, heads, kvHeads, d, dv, dtype, layout, causal, kvCache];
        command.SetAction(result =>
        {
            string? caseFile = result.GetValue(cases);
            if (caseFile is not null && sweepOptions.FirstOrDefault(o => result.GetResult(o) is { Implicit: false }) is { } both)
                throw new UsageException($"--cases reads the cases from a file; it does not combine with {both.Name}.");
            var sweep = new Sweep();
            T[] Or<T>(Option<T[]> option, T[] fallback) => result.GetValue(option) is { Length: > 0 } v ? v : fallback;
            sweep = sweep with
            {
                Families = Or(family, sweep.Families), Lengths = Or(n, sweep.Lengths), QueryLengths = Or(nq, sweep.QueryLengths),
                Batches = Or(batch, sweep.Batches), Heads = Or(heads, sweep.Heads), KeyValueHeads = Or(kvHeads, sweep.KeyValueHeads),
                HeadDims = Or(d, sweep.HeadDims), ValueDims = Or(dv, sweep.ValueDims), Types = Or(dtype, sweep.Types),
                Layouts = Or(layout, sweep.Layouts), Causal = result.GetValue(causal) ?? sweep.Causal, Seed = result.GetValue(seed),
                KvCache = result.GetValue(kvCache),
            };
            bool adjacent = result.GetValue(adjacentPeaks);
            if (adjacent && new Option[] { peakGflops, peakBandwidth }.FirstOrDefault(o => result.GetResult(o) is { Implicit: false }) is { } given)
                throw new UsageException($"--adjacent-peaks measures the peaks beside each case; it does not combine with {given.Name}.");
            var list = caseFile is not null ? CaseFile.Read(caseFile) : [.. sweep.Expand("the sweep flags")];
            foreach (var @case in list) CheckUpFront(@case);
            var outputs = new Outputs(Check(result.GetValue(csv), "--csv"), Check(result.GetValue(json), "--json"),
                Check(result.GetValue(markdown), "--markdown"), Check(result.GetValue(svg), "--svg"));
            var settings = new Settings(result.GetValue(warmup), result.GetValue(repeats), result.GetValue(budget),
                result.GetValue(peakGflops), result.GetValue(peakBandwidth), !result.GetValue(noChart), adjacent, !result.GetValue(managedArrays));
            return Run(host, global.Read(result), list, settings, outputs);
        });
        examples.Add(command,
            "bench --n 512,1024,4096 --heads 8 --kv-heads 2 --d 64 --dtype f32,f16 --causal both --batch 1",
            "bench -b cpu --nq 1 --n 1024,4096,16384 --heads 32 --kv-heads 8 --d 128 --kvcache   decode: GB/s, % of bandwidth",
            "bench -b cpu --nq 1 --n 4096,16384 --heads 32 --kv-heads 8 --d 128 --adjacent-peaks   % of the probes run beside each case",
            "bench --cases shapes.json --csv out.csv --json out.json --markdown out.md --svg out.svg",
            "bench -b cuda --peak-gflops 989000 --peak-bandwidth 3350 --dtype f16 --n 4096,8192,16384");
        return command;
    }

    private sealed record Settings(int Warmups, int Repeats, double BudgetSeconds, double? PeakGflops, double? PeakBandwidth, bool Chart, bool AdjacentPeaks = false,
        bool AlignHostMemory = true);

    private sealed record Outputs(string? Csv, string? Json, string? Markdown, string? Svg);

    private static Option<int[]> Ints(string name, string description, string? defaults) => new(name)
    {
        Description = defaults is null ? description : $"{description} Default: {defaults}.",
        HelpName = "N,N,...",
        CustomParser = r => OptionParsers.IntegerList(r, name, minimum: 1),
    };

    private static Option<string?> OutputFile(string name, string description) => new(name) { Description = description, HelpName = "file" };

    /// <summary>
    /// Refuses, before any peak probe or context, a case no kernel can run (today: a head dim above
    /// <see cref="FlashProblem.MaxHeadDim"/> for the flash-based families), so a bad sweep is a one-line usage error
    /// instead of seconds of probing followed by every case failing.
    /// </summary>
    private static void CheckUpFront(IAttentionCase @case)
    {
        if (@case is not (AttentionCase or KvCacheCase or SplitKeysCase)) return;
        var sizes = @case.Sizes;
        int largest = Math.Max(sizes.HeadDim, sizes.ValueDim);
        if (largest > FlashProblem.MaxHeadDim)
            throw new UsageException($"{@case.ToSpec()}: head dim {largest} exceeds {FlashProblem.MaxHeadDim}, the largest the kernels support.");
    }

    private static T Fail<T>(System.CommandLine.Parsing.ArgumentResult result, string message)
    {
        result.AddError(message);
        return default!;
    }

    /// <summary>
    /// Fails before anything runs when an output file cannot be written, rather than after a long benchmark.
    /// </summary>
    private static string? Check(string? path, string option)
    {
        if (path is null) return null;
        string full;
        try
        {
            full = Path.GetFullPath(path);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw new UsageException($"{option} '{path}' is not a valid path: {e.Message}");
        }
        if (Directory.Exists(full)) throw new UsageException($"{option} '{path}' is a directory; give a file name.");
        if (Path.GetDirectoryName(full) is { } directory && !Directory.Exists(directory))
            throw new UsageException($"{option} '{path}': the directory '{directory}' does not exist.");
        return full;
    }

    private static int Run(CliHost host, GlobalSettings global, List<IAttentionCase> cases, Settings settings, Outputs outputs)
    {
        var console = host.Out;
        Terminal.WarnIfUnoptimised(console);
        var contexts = Terminal.OpenContexts(host, global);
        try
        {
            if (contexts.Count == 0) return ExitCodes.Unavailable;
            // --adjacent-peaks: one probe per thread count, its buffer allocated and mapped once for the whole run.
            var probeThreads = settings.AdjacentPeaks
                ? contexts.Where(c => ProbeThreads(c, global.Threads) is not null).ToDictionary(c => c.Backend, c => ProbeThreads(c, global.Threads)!.Value)
                : [];
            var peaks = contexts.ToDictionary(c => c.Backend, c => probeThreads.ContainsKey(c.Backend)
                ? new Peaks(null, null, "adjacent probes")
                : PeaksOf(host, c, global.Threads, settings));
            var rows = new List<BenchRow>();
            var probes = new Dictionary<int, IAdjacentProbe>();
            try
            {
                foreach (int threads in probeThreads.Values.Distinct())
                    probes[threads] = host.AdjacentProbeFactory(threads);
                Progress.Run(host, "bench", contexts.Count * cases.Count, step =>
                {
                    foreach (var context in contexts)
                        foreach (var @case in cases)
                        {
                            step($"{Terminal.Name(context.Backend)} {@case}");
                            var probe = probeThreads.TryGetValue(context.Backend, out int threads) ? probes[threads] : null;
                            rows.Add(Measure(context, @case, settings, peaks[context.Backend], probe));
                            // With the probes a line outgrows the console's width: unwrapped, one line per case in a log.
                            if (!host.Interactive && rows[^1].Adjacent is not null) host.WriteUnwrapped(Line(rows[^1]));
                            else if (!host.Interactive) console.MarkupLine(Markup.Escape(Line(rows[^1])));
                        }
                });
            }
            finally
            {
                foreach (var probe in probes.Values) probe.Dispose();
            }
            var report = new BenchReport(rows, global.Threads, settings.Warmups, settings.Repeats, settings.BudgetSeconds, DateTimeOffset.UtcNow)
            {
                AdjacentPeaks = settings.AdjacentPeaks,
                AlignedHostMemory = settings.AlignHostMemory,
                AdjacentProbeDescriptions = probeThreads.ToDictionary(p => p.Key, p => probes[p.Value].Description),
            };
            Render(console, report, settings.Chart);
            Write(host, outputs.Csv, () => ReportWriters.Csv(report));
            Write(host, outputs.Json, () => ReportWriters.Json(report));
            Write(host, outputs.Markdown, () => ReportWriters.Markdown(report));
            Write(host, outputs.Svg, () => SvgChart.Render(report));
            return rows.Any(r => r.Error is not null) ? ExitCodes.CheckFailed : ExitCodes.Success;
        }
        finally
        {
            foreach (var context in contexts) context.Dispose();
        }
    }

    /// <summary>
    /// The threads the adjacent probes run on for <paramref name="context"/>: the kernels' on the CPU, every core on
    /// an OpenCL CPU device (PoCL); null on a GPU, whose peaks the CPU probes do not measure.
    /// </summary>
    private static int? ProbeThreads(AttentionContext context, int threads) => context switch
    {
        NativeAttention.Gpu.GpuContext when Backends.Query(context.Backend).IsGpu => null,
        NativeAttention.Gpu.GpuContext => Environment.ProcessorCount,
        _ => threads,
    };

    private static Peaks PeaksOf(CliHost host, AttentionContext context, int threads, Settings settings)
    {
        if (settings.PeakGflops is not null && settings.PeakBandwidth is not null)
            return new Peaks(settings.PeakGflops, settings.PeakBandwidth, "given on the command line");
        // GPUs: the probe kernels measure fp32 FMA, tensor-core (CUDA sm_80+) and read bandwidth peaks now; cases are
        // reported against the tensor-core peak where there is one (the 16-bit kernels use it), else fp32 FMA.
        if (context is NativeAttention.Gpu.GpuContext && !Backends.Query(context.Backend).IsGpu)
        {
            // An OpenCL device that is this CPU (PoCL): its peaks are the CPU's, on every core PoCL uses.
            var cpuPeaks = Terminal.Peaks(host.Out, Environment.ProcessorCount);
            string cpuSource = $"an OpenCL CPU device: this CPU's peaks on {cpuPeaks.Threads} thread(s), {cpuPeaks.MeasuredAt.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)}{(cpuPeaks.Contended ? ", under load: % overstated" : "")}";
            return new Peaks(settings.PeakGflops ?? cpuPeaks.FmaGflops, settings.PeakBandwidth ?? cpuPeaks.BandwidthGBs,
                settings.PeakGflops is null && settings.PeakBandwidth is null ? cpuSource : $"partly given on the command line; {cpuSource}");
        }
        if (context is NativeAttention.Gpu.GpuContext gpu)
        {
            var probed = Terminal.GpuPeaks(host.Out, gpu);
            string what = probed.TensorGflops is null
                ? $"fp32 FMA {Units.Rate(probed.Fp32Gflops)} GFLOP/s"
                : $"tensor cores (fp16 mma) {Units.Rate(probed.TensorGflops.Value)} GFLOP/s; fp32 FMA {Units.Rate(probed.Fp32Gflops)}";
            string probe = $"measured now by the probe kernels: {what}, read {Units.Rate(probed.ReadGBs)} GB/s";
            return new Peaks(settings.PeakGflops ?? probed.TensorGflops ?? probed.Fp32Gflops, settings.PeakBandwidth ?? probed.ReadGBs,
                settings.PeakGflops is null && settings.PeakBandwidth is null ? probe : $"partly given on the command line; {probe}");
        }
        var measured = Terminal.Peaks(host.Out, threads);
        string source = $"measured on {measured.Threads} thread(s), {measured.MeasuredAt.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)}{(measured.Contended ? ", under load: % overstated" : "")}";
        return new Peaks(settings.PeakGflops ?? measured.FmaGflops, settings.PeakBandwidth ?? measured.BandwidthGBs,
            settings.PeakGflops is null && settings.PeakBandwidth is null ? source : $"partly given on the command line; {source}");
    }

    private static BenchRow Measure(AttentionContext context, IAttentionCase @case, Settings settings, Peaks peaks, IAdjacentProbe? probe)
    {
        try
        {
            using var run = CaseRunner.Prepare(context, @case, settings.AlignHostMemory);
            if (probe is null)
            {
                var timing = KernelTimer.Measure(run, settings.Warmups, settings.Repeats, settings.BudgetSeconds);
                return new BenchRow(context.Backend, @case, timing, null, peaks);
            }
            KernelTimer.Warm(run, settings.Warmups);
            var before = probe.Measure(@case.IsMemoryBound, before: true);
            // The probe's reads evicted the case's data from the caches; one untimed run brings them back, so that the
            // timed runs start as warm as without the option (it matters for cases that fit in the last-level cache).
            if (settings.Warmups > 0) run.Run();
            var timed = KernelTimer.Time(run, settings.Repeats, settings.BudgetSeconds);
            var after = probe.Measure(@case.IsMemoryBound, before: false);
            var adjacent = new AdjacentReadings(before, after);
            return new BenchRow(context.Backend, @case, timed, null,
                new Peaks(adjacent.MeanFmaGflops, adjacent.MeanReadGBs, "mean of the probes right before and after the case"))
            { Adjacent = adjacent };
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return new BenchRow(context.Backend, @case, null, $"{e.GetType().Name}: {e.Message}", peaks);
        }
    }

    /// <summary>One line per case, for logs (non-interactive output).</summary>
    private static string Line(BenchRow row) => row.Timing is { } t
        ? $"{Terminal.Name(row.Backend)} {row.Case}: {Units.Time(t.Median)} median of {t.Samples.Count}, {Units.Rate(row.Throughput!.Value)} {row.ThroughputUnit}" +
          (row.Adjacent is { } a
              ? $"; probes before / after: read {Units.Rate(a.Before.ReadGBs)} / {Units.Rate(a.After.ReadGBs)} GB/s, FMA {Units.Rate(a.Before.FmaGflops)} / {Units.Rate(a.After.FmaGflops)} GFLOP/s; " +
                $"{(row.PercentOfPeak is { } p ? Units.Percent(p) : "-")} of their mean {(row.MemoryBound ? "read" : "FMA")}"
              : "")
        : $"{Terminal.Name(row.Backend)} {row.Case}: {row.Error}";

    private static void Render(IAnsiConsole console, BenchReport report, bool chart)
    {
        const string none = "[grey]-[/]";
        var table = new Table().Border(TableBorder.Rounded).Title(Markup.Escape(
            $"Attention kernels, {report.Threads} CPU thread(s): median of up to {report.Repeats} runs after {report.Warmups} warm-up(s)"));
        table.AddColumn("Backend");
        table.AddColumn("Case");
        string[] numerics = report.AdjacentPeaks
            ? ["Median", "Min .. Max", "IQR", "GFLOP/s", "GB/s", "Probe before / after", "% of peak"]
            : ["Median", "Min .. Max", "IQR", "GFLOP/s", "GB/s", "% of peak"];
        foreach (var numeric in numerics)
            table.AddColumn(new TableColumn(numeric).RightAligned());
        foreach (var row in report.Rows)
        {
            var t = row.Timing;
            var cells = new List<string>
            {
                Terminal.Name(row.Backend),
                Markup.Escape($"{row.Case}"),
                t is null ? "[red]error[/]" : Units.Time(t.Median),
                t is null ? none : Markup.Escape($"{Units.Time(t.Min)} .. {Units.Time(t.Max)}"),
                t is null ? none : Units.Time(t.Q3 - t.Q1),
                row.Gflops is { } g ? (row.MemoryBound ? $"[grey]{Units.Rate(g)}[/]" : Units.Rate(g)) : none,
                row.BandwidthGBs is { } b ? (row.MemoryBound ? Units.Rate(b) : $"[grey]{Units.Rate(b)}[/]") : none,
            };
            if (report.AdjacentPeaks) cells.Add(row.Adjacent is { } a ? Markup.Escape(ReportWriters.RelevantProbes(row, a)) : none);
            cells.Add(row.PercentOfPeak is { } p ? $"{Units.Percent(p)} {(row.MemoryBound ? "BW" : "FMA")}" : none);
            table.AddRow([.. cells]);
        }
        var peakLines = report.Rows.GroupBy(r => r.Backend).Select(g => $"{Terminal.Name(g.Key)}: {ReportWriters.PeakLine(report, g.Key, g.First().Peaks)}");
        table.Caption(Markup.Escape(
            $"% of peak: of the FMA peak (FMA), or for decode-like cases (Nq <= {BenchRow.DecodeQueryRows}) of the memory bandwidth (BW). " +
            string.Join("; ", peakLines)));
        console.Write(table);

        foreach (var row in report.Rows.Where(r => r.Error is not null))
            console.MarkupLine(Markup.Escape($"error on {Terminal.Name(row.Backend)} {row.Case}: {row.Error}"));

        var timed = report.Rows.Where(r => r.Throughput is not null).ToList();
        if (!chart || timed.Count == 0) return;
        foreach (var unit in timed.GroupBy(r => r.ThroughputUnit))
        {
            var bars = new BarChart().Width(Math.Min(100, console.Profile.Width)).Label(unit.Key);
            var palette = new[] { Color.Blue, Color.Orange1, Color.Green, Color.Red, Color.Purple, Color.Aqua };
            var series = unit.Select(report.SeriesLabel).Distinct().ToList();
            foreach (var row in unit)
                bars.AddItem(Markup.Escape($"{report.SeriesLabel(row)} N={row.Case.Sizes.KeyLength}"), Math.Round(row.Throughput!.Value, row.Throughput.Value >= 100 ? 0 : row.Throughput.Value >= 10 ? 1 : row.Throughput.Value >= 1 ? 2 : 3),
                    palette[series.IndexOf(report.SeriesLabel(row)) % palette.Length]);
            console.Write(bars);
        }
    }

    private static void Write(CliHost host, string? path, Func<string> content)
    {
        if (path is null) return;
        try
        {
            File.WriteAllText(path, content());
            host.Out.MarkupLine(Markup.Escape($"wrote {path}"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"cannot write '{path}': {e.Message}");
        }
    }
}
