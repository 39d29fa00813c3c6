// Runs the command-line tool in-process, as its entry point does, capturing what it prints and its exit code.
using NativeAttention.Cli;

namespace NativeAttention.Tests.CommandLine;

/// <summary>The outcome of one invocation: exit code, standard output and standard error.</summary>
public sealed record CliResult(int ExitCode, string Output, string Error)
{
    /// <summary>The non-empty lines of standard error.</summary>
    public string[] ErrorLines => Error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Output}\n--- stderr\n{Error}";
}

internal static class CliRun
{
    /// <summary>Runs the tool with <paramref name="args"/>; <paramref name="fault"/> plants a wrong kernel output (the test hook).</summary>
    public static CliResult Invoke(KernelFault? fault, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = CliApp.Run(args, CliHost.ToWriters(output, error, fault));
        return new CliResult(code, output.ToString(), error.ToString());
    }

    public static CliResult Invoke(params string[] args) => Invoke(null, args);

    /// <summary>Runs the tool with <paramref name="args"/> on a host changed by <paramref name="configure"/> (e.g. a fake probe).</summary>
    public static CliResult InvokeOn(Func<CliHost, CliHost> configure, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = CliApp.Run(args, configure(CliHost.ToWriters(output, error)));
        return new CliResult(code, output.ToString(), error.ToString());
    }

    /// <summary>A fresh directory under the system temp folder for a test's output files.</summary>
    public static string TemporaryDirectory()
    {
        string path = Path.Combine(Path.GetTempPath(), "nativeattention-cli-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(path);
        return path;
    }
}
