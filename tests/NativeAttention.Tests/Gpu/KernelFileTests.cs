// The embedded kernels/ tree keeps its shape: common/ is family-neutral (no include runs from common/ into a family
// folder), and every include names an embedded file.
using System.Text.RegularExpressions;
using NativeAttention.Gpu;
using Xunit;

namespace NativeAttention.Tests.Gpu;

public sealed partial class KernelFileTests
{
    [GeneratedRegex("""^\s*#\s*include\s+"([^"]+)"\s*$""", RegexOptions.Multiline)]
    private static partial Regex Include();

    private static IEnumerable<(string File, string Included)> Includes() =>
        KernelSource.EmbeddedFiles.SelectMany(file =>
            Include().Matches(KernelSource.Read(file)).Select(m => (file, m.Groups[1].Value)));

    [Fact]
    public void CommonFiles_IncludeOnlyCommonHeaders()
    {
        var violations = Includes()
            .Where(i => i.File.StartsWith("common/", StringComparison.Ordinal) && !i.Included.StartsWith("common/", StringComparison.Ordinal))
            .Select(i => $"{i.File} includes {i.Included}")
            .ToArray();
        Assert.True(violations.Length == 0, "common/ must stay family-neutral: " + string.Join("; ", violations));
    }

    [Fact]
    public void EveryInclude_NamesAnEmbeddedFile()
    {
        var missing = Includes().Where(i => !KernelSource.EmbeddedFiles.Contains(i.Included)).Select(i => $"{i.File} includes {i.Included}").ToArray();
        Assert.True(missing.Length == 0, "Includes of files that are not embedded: " + string.Join("; ", missing));
    }

    [Fact]
    public void TheScan_SeesTheKernelTree()
    {
        // Guards the two tests above against passing on an empty or misnamed resource list.
        Assert.Contains("common/dtype.h", KernelSource.EmbeddedFiles);
        Assert.Contains("flash/flash_fwd.h", KernelSource.EmbeddedFiles);
        Assert.Contains(Includes(), i => i.File == "flash/flash_fwd.h" && i.Included == "common/dtype.h");
    }
}
