// `info`: what this machine offers: backends and their status, the CPU's SIMD features, and its measured peak FMA
// throughput and memory bandwidth (the denominators of every "% of peak" the tool and the benchmarks report).
using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;
using NativeAttention.Bench;
using NativeAttention.Cpu;
using Spectre.Console;

namespace NativeAttention.Cli.Commands;

internal static class InfoCommand
{
    public static Command Create(CliHost host, GlobalOptions global, HelpExamples examples)
    {
        var remeasure = new Option<bool>("--remeasure")
        {
            Description = "Measure the peak FMA throughput and memory bandwidth again instead of reading the cache.",
        };
        var command = new Command("info",
            "Show the backends available here, the CPU's SIMD features, and its measured peak FMA throughput and " +
            "memory bandwidth on --threads threads (measured once, then cached).");
        command.Options.Add(remeasure);
        command.SetAction(result => Run(host, global.Read(result), result.GetValue(remeasure)));
        examples.Add(command,
            "info",
            "info --threads 1        peaks of a single core",
            "info --remeasure        ignore the cached peaks");
        return command;
    }

    private static int Run(CliHost host, GlobalSettings settings, bool remeasure)
    {
        var console = host.Out;
        string version = typeof(AttentionContext).Assembly.GetName().Version?.ToString(3) ?? "?";
        console.MarkupLine(Markup.Escape(
            $"NativeAttention {version} on {RuntimeInformation.FrameworkDescription}, {RuntimeInformation.OSDescription} {RuntimeInformation.OSArchitecture}"));
        console.WriteLine();

        var backends = new Table().Border(TableBorder.Rounded).Title("Backends");
        backends.AddColumns("Backend", "Status", "Details");
        foreach (var info in Backends.All)
            backends.AddRow(
                Terminal.Name(info.Backend),
                info.IsSupported ? (info.IsGpu ? "[green]available (GPU)[/]" : "[green]available[/]") : "[grey]unavailable[/]",
                Markup.Escape(info.Description));
        console.Write(backends);
        WriteDevices(console);
        console.MarkupLine($"auto picks [bold]{Terminal.Name(Backends.Resolve(Backend.Auto))}[/]");
        if (settings.Backend is { } asked && asked != Backend.Auto && !Backends.Query(asked).IsSupported)
            console.MarkupLine($"[yellow]--backend {Terminal.Name(asked)} is not available here.[/]");
        console.WriteLine();

        var peaks = Terminal.Peaks(console, settings.Threads, remeasure);
        var cpu = new Grid().AddColumn(new GridColumn().NoWrap().PadRight(2)).AddColumn();
        cpu.AddRow("Model", Markup.Escape(peaks.CpuModel));
        cpu.AddRow("Cores", Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture));
        cpu.AddRow("SIMD", Markup.Escape($"{string.Join(", ", SimdFeatures())}; widest accelerated vector {CpuFeatures.VectorBits}-bit"));
        cpu.AddRow("FMA peak", Markup.Escape(
            $"{Units.Gflops(peaks.FmaGflops)} GFLOP/s float32 on {peaks.Threads} thread(s), {Units.Gflops(peaks.FmaGflops / peaks.Threads)} per thread ({peaks.FmaKernel})"));
        cpu.AddRow("Bandwidth", Markup.Escape(
            $"{peaks.BandwidthGBs.ToString("0.0", CultureInfo.InvariantCulture)} GB/s streaming read on {peaks.Threads} thread(s)"));
        cpu.AddRow("Balance", Markup.Escape(
            $"{(peaks.FmaGflops / peaks.BandwidthGBs).ToString("0.0", CultureInfo.InvariantCulture)} FLOP/byte: kernels below this arithmetic intensity are bound by memory"));
        string when = peaks.MeasuredAt.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture);
        cpu.AddRow("Peaks", Markup.Escape(peaks.FromCache
            ? $"cached {when} in {MachinePeaks.CachePath(peaks.Threads)} (--remeasure measures again)"
            : $"measured now, cached in {MachinePeaks.CachePath(peaks.Threads)}"));
        console.Write(new Panel(cpu).Header("CPU").Border(BoxBorder.Rounded));
        if (peaks.Contended)
            console.MarkupLine("[yellow]warning[/]: other processes kept some cores busy while these peaks were measured, so they are too low; run `info --remeasure` on a quiet machine.");
        return ExitCodes.Success;
    }

    /// <summary>
    /// A table of the GPU devices, when there are any: name, memory, compute units, driver and runtime versions.
    /// </summary>
    private static void WriteDevices(IAnsiConsole console)
    {
        var rows = GpuDevices();
        if (rows.Count == 0) return;
        var devices = new Table().Border(TableBorder.Rounded).Title("OpenCL and CUDA devices");
        devices.AddColumns("Backend", "Index", "Name", "Memory", "Compute units", "Driver", "Runtime");
        foreach (var row in rows) devices.AddRow([.. row.Select(Markup.Escape)]);
        console.Write(devices);
    }

    /// <summary>One row per GPU device (OpenCL and CUDA), in the columns of <see cref="WriteDevices"/>.</summary>
    private static IReadOnlyList<string[]> GpuDevices() =>
        [.. new[] { Backend.OpenCl, Backend.Cuda }.SelectMany(Backends.Devices).Select(d => new[]
        {
            d.Backend.ToString(), d.Index.ToString(CultureInfo.InvariantCulture), d.Name,
            $"{d.MemoryBytes / (1024.0 * 1024 * 1024):F1} GiB", d.ComputeUnits.ToString(CultureInfo.InvariantCulture),
            d.DriverVersion, d.RuntimeVersion,
        })];

    /// <summary>The instruction-set extensions the JIT may use here, widest first.</summary>
    private static List<string> SimdFeatures()
    {
        var features = new List<string>();
        if (Avx512F.IsSupported)
        {
            var avx512 = new List<string> { "F" };
            if (Avx512BW.IsSupported) avx512.Add("BW");
            if (Avx512CD.IsSupported) avx512.Add("CD");
            if (Avx512DQ.IsSupported) avx512.Add("DQ");
            if (Avx512Vbmi.IsSupported) avx512.Add("VBMI");
            features.Add("AVX-512 " + string.Join("/", avx512));
        }
        if (Avx2.IsSupported) features.Add("AVX2");
        if (Fma.IsSupported) features.Add("FMA");
        if (AvxVnni.IsSupported) features.Add("AVX-VNNI");
        if (Avx.IsSupported && !Avx2.IsSupported) features.Add("AVX");
        if (AdvSimd.IsSupported) features.Add("NEON");
        if (Dp.IsSupported) features.Add("DotProd");
        if (features.Count == 0) features.Add("no SIMD extensions");
        return features;
    }
}
