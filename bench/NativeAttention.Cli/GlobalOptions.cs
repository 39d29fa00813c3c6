// The options every command takes: which backend, which device, how many CPU threads.
using System.CommandLine;
using System.CommandLine.Parsing;

namespace NativeAttention.Cli;

/// <summary>What the global options resolved to for one invocation.</summary>
/// <param name="Backend">The backend asked for; null means every backend (each command says what it does then).</param>
/// <param name="Device">The device index within the backend.</param>
/// <param name="Threads">CPU worker threads.</param>
internal sealed record GlobalSettings(Backend? Backend, int Device, int Threads)
{
    /// <summary>Options for <see cref="AttentionContext.Create"/>.</summary>
    public ContextOptions ContextOptions => new() { Threads = Threads, Device = Device };

    /// <summary>The backends a command should run on: the one asked for (Auto resolved), or all of them.</summary>
    public IReadOnlyList<BackendInfo> SelectedBackends =>
        Backend is { } backend ? [Backends.Query(backend)] : Backends.All;
}

/// <summary>The global options, added once to the root command and inherited by every subcommand.</summary>
internal sealed class GlobalOptions
{
    public Option<Backend?> Backend { get; } = new("--backend", "-b")
    {
        Description = "Backend to run on: cpu, opencl, cuda, or auto (the best available here). Default: every available backend.",
        HelpName = "cpu|opencl|cuda|auto",
        Recursive = true,
        CustomParser = ParseBackend,
    };

    // No short alias: "-d" next to bench's "--d" (head dim) turned "bench -d 128" into device 128 running D = 64.
    public Option<int> Device { get; } = new("--device")
    {
        Description = "Device index within the backend.",
        HelpName = "N",
        Recursive = true,
        DefaultValueFactory = _ => 0,
        CustomParser = result => OptionParsers.Integer(result, "--device", minimum: 0),
    };

    public Option<int> Threads { get; } = new("--threads", "-t")
    {
        Description = "CPU worker threads (kernels and peak probes).",
        HelpName = "N",
        Recursive = true,
        DefaultValueFactory = _ => Environment.ProcessorCount,
        CustomParser = result => OptionParsers.Integer(result, "--threads", minimum: 1),
    };

    public void AddTo(Command root)
    {
        root.Options.Add(Backend);
        root.Options.Add(Device);
        root.Options.Add(Threads);
    }

    public GlobalSettings Read(ParseResult result) =>
        new(result.GetValue(Backend), result.GetValue(Device), result.GetValue(Threads));

    private static Backend? ParseBackend(ArgumentResult result)
    {
        string token = result.Tokens[^1].Value;
        switch (token.ToLowerInvariant())
        {
            case "auto": return NativeAttention.Backend.Auto;
            case "cpu": return NativeAttention.Backend.Cpu;
            case "opencl": return NativeAttention.Backend.OpenCl;
            case "cuda": return NativeAttention.Backend.Cuda;
            default:
                result.AddError($"--backend must be cpu, opencl, cuda or auto, not '{token}'.");
                return null;
        }
    }
}
