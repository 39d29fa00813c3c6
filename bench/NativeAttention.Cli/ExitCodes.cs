// The process exit codes of the tool, one meaning each, so scripts and CI can tell failures apart.
namespace NativeAttention.Cli;

internal static class ExitCodes
{
    /// <summary>Everything ran and every check passed.</summary>
    public const int Success = 0;

    /// <summary>A kernel failed a check or threw.</summary>
    public const int CheckFailed = 1;

    /// <summary>The command line was wrong (unknown flag, bad value); one line on stderr says what.</summary>
    public const int Usage = 2;

    /// <summary>None of the requested backends is available on this machine.</summary>
    public const int Unavailable = 3;

    /// <summary>A bug in the tool or library: an unexpected exception, printed in full.</summary>
    public const int InternalError = 70;

    /// <summary>One line per code, for the root command's help.</summary>
    public static IReadOnlyList<string> Descriptions { get; } =
    [
        $"{Success}   everything ran and every check passed",
        $"{CheckFailed}   a kernel failed a check or threw",
        $"{Usage}   the command line was wrong (one line on stderr says what)",
        $"{Unavailable}   none of the requested backends is available here",
        $"{InternalError}  a bug: an unexpected exception, printed in full",
    ];
}
