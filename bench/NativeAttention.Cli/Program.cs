// Entry point of the command-line tool.
return NativeAttention.Cli.CliApp.Run(args);
