// Adds an "Examples:" section to the built-in help of every command that registered examples, and the exit codes
// to the root's help.
using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;

namespace NativeAttention.Cli;

internal sealed class HelpExamples
{
    private readonly Dictionary<Command, string[]> _examples = [];

    /// <summary>Registers example arguments for <paramref name="command"/>'s help; each is shown after the executable name.</summary>
    public void Add(Command command, params string[] examples) => _examples[command] = examples;

    /// <summary>Wraps the root's help action so that help ends with the command's examples.</summary>
    public void InstallOn(RootCommand root)
    {
        foreach (var option in root.Options)
            if (option is HelpOption { Action: HelpAction builtIn } help)
                help.Action = new Action(builtIn, _examples);
    }

    private sealed class Action(HelpAction builtIn, Dictionary<Command, string[]> examples) : SynchronousCommandLineAction
    {
        public override bool ClearsParseErrors => true;

        public override int Invoke(ParseResult parseResult)
        {
            int code = builtIn.Invoke(parseResult);
            if (examples.TryGetValue(parseResult.CommandResult.Command, out var lines))
            {
                var output = parseResult.InvocationConfiguration.Output;
                output.WriteLine("Examples:");
                foreach (var line in lines) output.WriteLine($"  {RootCommand.ExecutableName} {line}");
                output.WriteLine();
            }
            if (parseResult.CommandResult.Command is RootCommand)
            {
                var output = parseResult.InvocationConfiguration.Output;
                output.WriteLine("Exit codes:");
                foreach (var line in ExitCodes.Descriptions) output.WriteLine($"  {line}");
                output.WriteLine();
            }
            return code;
        }
    }
}
