// The one-line command that replays a case on a backend, printed by `verify` and `fuzz` next to every failure.
namespace NativeAttention.Cli;

internal static class Replay
{
    /// <summary>E.g. <c>dotnet run -c Release --project bench/NativeAttention.Cli -- fuzz --backend cpu --replay "flash f32 ..."</c>.</summary>
    public static string Command(Backend backend, AttentionCase @case) =>
        $"dotnet run -c Release --project bench/NativeAttention.Cli -- fuzz --backend {Terminal.Name(backend)} --replay \"{@case.ToSpec()}\"";
}
