// Builds the command tree, parses, and turns every outcome into an exit code: command-line mistakes print one line
// and exit 2; only bugs print a stack trace.
using System.CommandLine;
using NativeAttention.Cli.Commands;

namespace NativeAttention.Cli;

internal static class CliApp
{
    /// <summary>Runs the tool on the process's console.</summary>
    public static int Run(string[] args)
    {
        CliHost host;
        try
        {
            host = CliHost.FromProcess();
        }
        catch (FormatException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return ExitCodes.Usage;
        }
        return Run(args, host);
    }

    /// <summary>Runs the tool with <paramref name="args"/>, writing to <paramref name="host"/>; returns the exit code.</summary>
    public static int Run(string[] args, CliHost host)
    {
        var global = new GlobalOptions();
        var examples = new HelpExamples();
        var root = new RootCommand(
            "NativeAttention: fused attention kernels (flash, neighborhood, block-sparse, chunked-linear) for CUDA, " +
            "OpenCL and the CPU, checked against float64 references.");
        global.AddTo(root);
        root.Subcommands.Add(InfoCommand.Create(host, global, examples));
        root.Subcommands.Add(BenchCommand.Create(host, global, examples));
        root.Subcommands.Add(VerifyCommand.Create(host, global, examples));
        root.Subcommands.Add(FuzzCommand.Create(host, global, examples));
        root.Subcommands.Add(DemoCommand.Create(host, global, examples));
        examples.Add(root,
            "info                    backends, devices, SIMD features, measured peak FMA and bandwidth",
            "verify --backend cpu    check every kernel against the float64 reference on fixed cases",
            "fuzz --seconds 60       random valid problems for a minute; a failure prints a replay command",
            "bench --n 512,1024,4096 --dtype f32,f16 --causal both --svg flash.svg",
            "demo                    run and check a few flash cases on every available backend");
        examples.InstallOn(root);

        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0 && parsed.Action is not { ClearsParseErrors: true })
        {
            // An unknown flag also makes "Required command was not provided" appear first; the flag is the real problem.
            string problem = parsed.UnmatchedTokens.Count > 0
                ? $"Unrecognized command or argument '{parsed.UnmatchedTokens[0]}'."
                : parsed.Errors[0].Message;
            host.Fail($"{problem} (see --help)");
            return ExitCodes.Usage;
        }
        try
        {
            var output = new ConsoleWriter(host);
            return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false, Output = output, Error = host.Error });
        }
        catch (UsageException e)
        {
            host.Fail(e.Message);
            return ExitCodes.Usage;
        }
        catch (Exception e)
        {
            host.Error.WriteLine($"internal error (please report): {e}");
            return ExitCodes.InternalError;
        }
    }

    /// <summary>Help text goes through the host's console, so tests see it and redirected output stays plain.</summary>
    private sealed class ConsoleWriter(CliHost host) : TextWriter
    {
        public override System.Text.Encoding Encoding => System.Text.Encoding.UTF8;

        public override void Write(char value) => host.Out.Profile.Out.Writer.Write(value);

        public override void Write(string? value) => host.Out.Profile.Out.Writer.Write(value);

        public override void Flush() => host.Out.Profile.Out.Writer.Flush();
    }
}

/// <summary>
/// A mistake of the user's that only shows once a command runs (a missing or malformed case file, an output path
/// that cannot be written): the message is printed as one line and the tool exits 2.
/// </summary>
internal sealed class UsageException(string message) : Exception(message);
