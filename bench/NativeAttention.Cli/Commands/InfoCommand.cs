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
        WriteGpuPeaks(console);
        return ExitCodes.Success;
    }

    /// <summary>
    /// The peaks of each backend whose default device is a GPU, measured now by the probe kernels (a second or so
    /// each): fp32 FMA, tensor cores (CUDA sm_80+) and streaming read bandwidth. CPU OpenCL devices (PoCL) are left
    /// out: the CPU panel above already gives that machine's peaks.
    /// </summary>
    private static void WriteGpuPeaks(IAnsiConsole console)
    {
        foreach (var info in Backends.All.Where(b => b is { IsSupported: true, IsGpu: true }))
        {
            using var context = AttentionContext.Create(info.Backend);
            if (context is not NativeAttention.Gpu.GpuContext gpu) continue;
            var peaks = Terminal.GpuPeaks(console, gpu);
            var grid = new Grid().AddColumn(new GridColumn().NoWrap().PadRight(2)).AddColumn();
            grid.AddRow("Device", Markup.Escape(peaks.Device));
            grid.AddRow("FMA peak", Markup.Escape($"{Units.Gflops(peaks.Fp32Gflops)} GFLOP/s float32"));
            if (peaks.TensorGflops is { } tensor)
                grid.AddRow("Tensor cores", Markup.Escape($"{Units.Gflops(tensor)} GFLOP/s fp16 mma.sync m16n8k16, float accumulators"));
            grid.AddRow("Bandwidth", Markup.Escape($"{peaks.ReadGBs.ToString("0.0", CultureInfo.InvariantCulture)} GB/s streaming read over {peaks.ReadBytes >> 20} MiB"));
            grid.AddRow("Peaks", "measured now by the probe kernels (kernels/probe/peak_probe.h)");
            console.Write(new Panel(grid).Header(Terminal.Name(info.Backend) + " GPU").Border(BoxBorder.Rounded));
        }
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
