// Builds the command tree, parses, and turns every outcome into an exit code: command-line mistakes print one line
// and exit 2; only bugs print a stack trace.
using System.CommandLine;
using NativeAttention.Cli.Commands;

namespace NativeAttention.Cli;

internal static class CliApp
{
    public static int Run(string[] args)
    {
        var global = new GlobalOptions();
        var examples = new HelpExamples();
        var root = new RootCommand(
            "NativeAttention: fused attention kernels (flash, neighborhood, block-sparse, chunked-linear) for CUDA, " +
            "OpenCL and the CPU, checked against float64 references.");
        Terminal.Configure();
        global.AddTo(root);
        root.Subcommands.Add(InfoCommand.Create(global, examples));
        root.Subcommands.Add(DemoCommand.Create(global, examples));
        examples.Add(root,
            "info                    backends, SIMD features, measured peak FMA and bandwidth",
            "demo                    run and check a few flash cases on every available backend",
            "demo --backend cpu -t 1",
            "info --remeasure --threads 1");
        examples.InstallOn(root);

        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0 && parsed.Action is not { ClearsParseErrors: true })
        {
            // An unknown flag also makes "Required command was not provided" appear first; the flag is the real problem.
            string problem = parsed.UnmatchedTokens.Count > 0
                ? $"Unrecognized command or argument '{parsed.UnmatchedTokens[0]}'."
                : parsed.Errors[0].Message;
            Console.Error.WriteLine($"error: {problem} (see --help)");
            return ExitCodes.Usage;
        }
        try
        {
            return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"internal error (please report): {e}");
            return ExitCodes.InternalError;
        }
    }
}
