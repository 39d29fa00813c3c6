// The references share no code with the validation layer or the kernels: every Reference/*.cs source is scanned for
// identifiers that belong to them (DESIGN.md, "Testing": a shared bug moves the expected value with the actual one).
using System.Text;
using System.Text.RegularExpressions;
using Xunit;

namespace NativeAttention.Tests.References;

public sealed partial class ReferenceIndependenceTests
{
    /// <summary>Identifiers that name validation or kernel code by their form, whatever is declared today.</summary>
    [GeneratedRegex(@"^(\w*Problems?|TensorChecks|AttentionShapes|Cpu\w*|Gpu\w*|Cuda\w*|OpenCl\w*|Nvrtc\w*|CaseVerifier|OptionVerifier|CaseSampler|KernelSource|AttentionContext|\w*Params)$")]
    private static partial Regex ForbiddenForm();

    /// <summary>
    /// Helpers declared beside the options or in Core that the validation layer or the kernels use to resolve
    /// options, place windows or touch elements; the references do all of that themselves.
    /// </summary>
    private static readonly Dictionary<string, string> SharedHelpers = new()
    {
        ["AxisWindow"] = "the neighborhood window type of NeighborhoodProblem",
        ["BlockRow"] = "the block-row type of BlockSparseProblem",
        ["VisibleKeys"] = "the kernels' visible-key ranges",
        ["WindowOnAxis"] = "the kernels' neighborhood windows",
        ["PredicateAllows"] = "the kernels' block-sparse predicate",
        ["FeatureSize"] = "LinearOptions' feature size, used by validation",
        ["DilationOf"] = "NeighborhoodOptions' default resolution, used by validation",
        ["StrideOf"] = "NeighborhoodOptions' default resolution, used by validation",
        ["IsCausal"] = "NeighborhoodOptions' default resolution, used by validation",
        ["RoundTo"] = "ElementTypes' rounding through the conversion operators the kernels store with",
        ["ToDoubleArray"] = "TensorView's element reader, used by CPU kernels",
        ["GetDouble"] = "TensorView's element reader",
        ["ReadElement"] = "TensorView's element decoder, used by CPU merge",
        ["WriteElement"] = "TensorView's element encoder, used by the kernels",
        ["OffsetOf"] = "TensorView's stride arithmetic",
    };

    [Fact]
    public void ReferenceSources_NameNothingFromValidationOrKernels()
    {
        var declared = DeclaredInValidationAndKernels();
        var files = Directory.GetFiles(Path.Combine(ManagedRoot(), "Reference"), "*.cs", SearchOption.AllDirectories);
        Assert.True(files.Length >= 9, $"expected the reference sources under {ManagedRoot()}/Reference, found {files.Length}");
        var violations = files.SelectMany(f => Violations(File.ReadAllText(f), declared).Select(v => $"{Path.GetFileName(f)}:{v}")).ToList();
        Assert.True(violations.Count == 0,
            "The references must compute masks, scales, positions and checks themselves; these lines call validation or kernel code:\n"
            + string.Join("\n", violations));
    }

    [Fact]
    public void Scanner_FlagsCodeButNotCommentsOrStrings()
    {
        var declared = DeclaredInValidationAndKernels();
        string source = """
            // FlashProblem in a comment is fine, and so is <see cref="FlashProblem.VisibleKeys"/> in a doc comment.
            /* TensorChecks in a block comment too */
            var text = "FlashProblem in a string";
            var p = FlashProblem.CreateForInputs(query, key, value, options);
            TensorChecks.Rank(query, 4, "query", "[B, H, N, D]");
            var message = $"at most {FlashProblem.MaxHeadDim}, {string.Join(", ", shape)}";
            using NativeAttention.Cpu;
            double r = type.RoundTo(x);
            var w = new AxisWindow(0, 1, 1);
            CpuFlash.Run(x);
            """;
        var found = Violations(source, declared);
        Assert.Equal(7, found.Count);
        Assert.StartsWith("4:", found[0]);
        Assert.Contains("FlashProblem", found[0]);
        Assert.StartsWith("5:", found[1]);
        Assert.StartsWith("6:", found[2]);           // inside an interpolation hole
        Assert.StartsWith("7:", found[3]);
        Assert.Contains("Cpu", found[3]);
        Assert.Contains("RoundTo", found[4]);
        Assert.Contains("AxisWindow", found[5]);
        Assert.Contains("CpuFlash", found[6]);
    }

    [Fact]
    public void DeclaredNames_IncludeTheProblemsChecksAndKernelsOfToday()
    {
        // Guards the scan itself: if it found no declarations the main test would pass without checking anything.
        var declared = DeclaredInValidationAndKernels();
        foreach (string name in new[] { "FlashProblem", "VarlenProblem", "KvCacheProblem", "NeighborhoodProblem", "BlockSparseProblem",
                     "LinearProblem", "MergeProblem", "TensorChecks", "AttentionShapes", "AxisWindow", "BlockRow", "CpuFlash",
                     "GpuFlash", "KernelSource", "CaseVerifier", "AttentionContext" })
            Assert.Contains(name, declared.Keys);
        Assert.DoesNotContain("FlashOptions", declared.Keys);
        Assert.DoesNotContain("TensorView", declared.Keys);
    }

    /// <summary>"line: identifier (why)" for every forbidden identifier in the code of <paramref name="source"/>.</summary>
    private static List<string> Violations(string source, IReadOnlyDictionary<string, string> declared)
    {
        var code = CodeOnly(source);
        var lines = code.Split('\n');
        var found = new List<string>();
        for (int n = 0; n < lines.Length; n++)
            foreach (Match m in Identifier().Matches(lines[n]))
            {
                string name = m.Value;
                string? why = declared.TryGetValue(name, out var where) ? $"declared in {where}"
                    : SharedHelpers.TryGetValue(name, out var helper) ? helper
                    : ForbiddenForm().IsMatch(name) ? "a validation or kernel name"
                    : null;
                if (why is not null) found.Add($"{n + 1}: {name} ({why}): {source.Split('\n')[n].Trim()}");
            }
        return found;
    }

    [GeneratedRegex(@"(?<![\w@])[A-Za-z_][A-Za-z0-9_]*")]
    private static partial Regex Identifier();

    /// <summary>
    /// The source with comments, string and character literals blanked out (newlines kept, so line numbers hold);
    /// the code inside interpolation holes of interpolated strings is kept.
    /// </summary>
    internal static string CodeOnly(string source)
    {
        var result = new StringBuilder(source.Length);
        int i = 0;
        ScanCode(source, ref i, result, insideHole: false);
        return result.ToString();
    }

    private static void ScanCode(string s, ref int i, StringBuilder result, bool insideHole)
    {
        int depth = 0;
        while (i < s.Length)
        {
            char c = s[i];
            if (c == '/' && At(s, i, "//"))
            {
                while (i < s.Length && s[i] != '\n') Blank(s, ref i, result);
            }
            else if (c == '/' && At(s, i, "/*"))
            {
                while (i < s.Length && !At(s, i, "*/")) Blank(s, ref i, result);
                if (i < s.Length) { Blank(s, ref i, result); Blank(s, ref i, result); }
            }
            else if (c == '"' || ((c == '$' || c == '@') && StringStartsAfterPrefix(s, i)))
            {
                ScanString(s, ref i, result);
            }
            else if (c == '\'')
            {
                Blank(s, ref i, result);
                while (i < s.Length && s[i] != '\'')
                {
                    if (s[i] == '\\') Blank(s, ref i, result);
                    if (i < s.Length) Blank(s, ref i, result);
                }
                if (i < s.Length) Blank(s, ref i, result);
            }
            else
            {
                if (insideHole && c == '{') depth++;
                if (insideHole && c == '}' && depth-- == 0) return;
                result.Append(c);
                i++;
            }
        }
    }

    /// <summary>A string literal at <paramref name="i"/> (any of $, @ prefixes, raw or not); holes of interpolated ones are scanned as code.</summary>
    private static void ScanString(string s, ref int i, StringBuilder result)
    {
        bool interpolated = false, verbatim = false;
        while (s[i] is '$' or '@')
        {
            interpolated |= s[i] == '$';
            verbatim |= s[i] == '@';
            Blank(s, ref i, result);
        }
        int quotes = 0;
        while (i + quotes < s.Length && s[i + quotes] == '"') quotes++;
        bool raw = quotes >= 3;
        int open = raw ? quotes : 1;
        for (int q = 0; q < open; q++) Blank(s, ref i, result);
        string close = new('"', open);
        while (i < s.Length)
        {
            if (!raw && !verbatim && s[i] == '\\') { Blank(s, ref i, result); if (i < s.Length) Blank(s, ref i, result); continue; }
            if (!raw && verbatim && At(s, i, "\"\"")) { Blank(s, ref i, result); Blank(s, ref i, result); continue; }
            if (At(s, i, close)) { for (int q = 0; q < open; q++) Blank(s, ref i, result); return; }
            if (interpolated && At(s, i, "{{")) { Blank(s, ref i, result); Blank(s, ref i, result); continue; }
            if (interpolated && s[i] == '{')
            {
                Blank(s, ref i, result);
                ScanCode(s, ref i, result, insideHole: true);
                if (i < s.Length) Blank(s, ref i, result); // the closing brace
                continue;
            }
            Blank(s, ref i, result);
        }
    }

    private static bool StringStartsAfterPrefix(string s, int i)
    {
        while (i < s.Length && s[i] is '$' or '@') i++;
        return i < s.Length && s[i] == '"';
    }

    private static bool At(string s, int i, string text) => string.CompareOrdinal(s, i, text, 0, text.Length) == 0;

    private static void Blank(string s, ref int i, StringBuilder result)
    {
        result.Append(s[i] == '\n' ? '\n' : ' ');
        i++;
    }

    /// <summary>
    /// The types and extension methods the validation layer and the kernels declare, with where: every file under
    /// Validation/, Cpu/, Gpu/, Backends/ and Cases/, every <c>Families/*/*Problem.cs</c>, and every file in a
    /// <c>NativeAttention.Cpu</c> or <c>NativeAttention.Gpu</c> namespace.
    /// </summary>
    private static Dictionary<string, string> DeclaredInValidationAndKernels()
    {
        string root = ManagedRoot();
        string[] folders = ["Validation", "Cpu", "Gpu", "Backends", "Cases"];
        var files = Directory.GetFiles(root, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"))
            .Where(f =>
            {
                string relative = Path.GetRelativePath(root, f);
                string top = relative.Split(Path.DirectorySeparatorChar)[0];
                return folders.Contains(top)
                    || (top == "Families" && f.EndsWith("Problem.cs", StringComparison.Ordinal))
                    || NamespaceOfKernels().IsMatch(File.ReadAllText(f));
            });
        var declared = new Dictionary<string, string>();
        foreach (string file in files)
        {
            string code = CodeOnly(File.ReadAllText(file));
            string where = Path.GetRelativePath(root, file);
            foreach (Match m in TypeDeclaration().Matches(code)) declared.TryAdd(m.Groups[1].Value, where);
            foreach (Match m in ExtensionMethod().Matches(code)) declared.TryAdd(m.Groups[1].Value, where);
        }
        return declared;
    }

    [GeneratedRegex(@"^\s*namespace\s+NativeAttention\.(Cpu|Gpu)\b", RegexOptions.Multiline)]
    private static partial Regex NamespaceOfKernels();

    [GeneratedRegex(@"\b(?:class|struct|interface|enum|record(?:\s+(?:class|struct))?)\s+([A-Za-z_]\w*)")]
    private static partial Regex TypeDeclaration();

    [GeneratedRegex(@"\bstatic\s[^;{}()=]*?\b([A-Za-z_]\w*)\s*(?:<[^>]*>)?\s*\(\s*this\s")]
    private static partial Regex ExtensionMethod();

    /// <summary><c>managed/NativeAttention</c> of the checkout these tests were built from.</summary>
    private static string ManagedRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "NativeAttention.sln")))
                return Path.Combine(dir.FullName, "managed", "NativeAttention");
        throw new InvalidOperationException($"No NativeAttention.sln above {AppContext.BaseDirectory}.");
    }
}
