// The one-line commands that replay a case on a backend, printed by `verify` and `fuzz` next to every failure.
namespace NativeAttention.Cli;

internal static class Replay
{
    /// <summary>The command that checks <paramref name="outcome"/>'s case again the same way: `fuzz --replay`, or `verify --split-keys` for a split-KV merge.</summary>
    public static string Command(CaseOutcome outcome) => outcome.Case is SplitKeysCase split
        ? $"dotnet run -c Release --project bench/NativeAttention.Cli -- verify --backend {Terminal.Name(outcome.Backend)} --split-keys {split.Parts} --case \"{split.Flash.ToSpec()}\""
        : Command(outcome.Backend, outcome.Case);

    /// <summary>E.g. <c>dotnet run -c Release --project bench/NativeAttention.Cli -- fuzz --backend cpu --replay "flash f32 ..."</c>.</summary>
    public static string Command(Backend backend, IAttentionCase @case) =>
        $"dotnet run -c Release --project bench/NativeAttention.Cli -- fuzz --backend {Terminal.Name(backend)} --replay \"{@case.ToSpec()}\"";
}
