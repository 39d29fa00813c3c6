// Builds a self-contained kernel source from the embedded kernels/ files: specialisation defines, the API prelude,
// then the entry header with every #include "..." inlined once and #line markers pointing at the real files.
using System.Collections.Concurrent;
using System.Text;
using System.Text.RegularExpressions;

namespace NativeAttention.Gpu;

internal static partial class KernelSource
{
    private static readonly ConcurrentDictionary<string, string> Files = new();

    [GeneratedRegex("""^\s*#\s*include\s+"([^"]+)"\s*$""")]
    private static partial Regex IncludePattern();

    /// <summary>Every embedded file under kernels/, as paths relative to it (e.g. <c>common/dtype.h</c>), sorted.</summary>
    public static IReadOnlyList<string> EmbeddedFiles { get; } = typeof(KernelSource).Assembly.GetManifestResourceNames()
        .Where(n => n.StartsWith("kernels/", StringComparison.Ordinal)).Select(n => n["kernels/".Length..])
        .Order(StringComparer.Ordinal).ToArray();

    /// <summary>The text of an embedded file under kernels/, e.g. <c>flash/flash_fwd.h</c>.</summary>
    /// <exception cref="FileNotFoundException">No such embedded kernel file.</exception>
    public static string Read(string path) => Files.GetOrAdd(path, static p =>
    {
        using var stream = typeof(KernelSource).Assembly.GetManifestResourceStream("kernels/" + p)
            ?? throw new FileNotFoundException($"No embedded kernel file kernels/{p}.", p);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd().Replace("\r\n", "\n");
    });

    /// <summary>
    /// The full source of <paramref name="entry"/> for <paramref name="api"/>: <paramref name="defines"/> in the
    /// given order, the prelude, then the entry file with includes resolved.
    /// </summary>
    public static string Build(KernelApi api, string entry, IEnumerable<KeyValuePair<string, string>> defines) =>
        Build(api, entry, Read(entry), defines);

    /// <summary>As <see cref="Build(KernelApi, string, IEnumerable{KeyValuePair{string, string}})"/> for source text that is not embedded.</summary>
    public static string Build(KernelApi api, string name, string text, IEnumerable<KeyValuePair<string, string>> defines)
    {
        var sb = new StringBuilder();
        sb.Append("#line 1 \"specialisation\"\n");
        foreach (var (key, value) in defines) sb.Append("#define ").Append(key).Append(' ').Append(value).Append('\n');
        var included = new HashSet<string>(StringComparer.Ordinal);
        Append(sb, api == KernelApi.Cuda ? "common/prelude_cuda.h" : "common/prelude_opencl.h", Read, included);
        AppendText(sb, name, text, included);
        return sb.ToString();
    }

    private static void Append(StringBuilder sb, string path, Func<string, string> read, HashSet<string> included)
    {
        if (!included.Add(path)) return;
        AppendText(sb, path, read(path), included);
    }

    private static void AppendText(StringBuilder sb, string path, string text, HashSet<string> included)
    {
        included.Add(path);
        sb.Append("#line 1 \"").Append(path).Append("\"\n");
        string[] lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            var match = IncludePattern().Match(lines[i]);
            if (!match.Success)
            {
                sb.Append(lines[i]).Append('\n');
                continue;
            }
            Append(sb, match.Groups[1].Value, Read, included);
            sb.Append("#line ").Append(i + 2).Append(" \"").Append(path).Append("\"\n");
        }
    }
}
