// A user mistake found after parsing; the tool prints its message as one line and exits with ExitCodes.Usage.
namespace NativeAttention.Cli;

internal sealed class UsageException(string message) : Exception(message);
