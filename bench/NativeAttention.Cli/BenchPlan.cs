// What `bench` measures: sweeps (lists of sizes, dtypes, masks whose product gives the cases) from the command line
// or a JSON case file, plus single cases written as specs of any family with kernels; all expanded into cases.
using System.Text.Json;

namespace NativeAttention.Cli;

/// <summary>Whether a sweep runs non-causal cases, causal ones, or both.</summary>
internal enum CausalChoice { No, Yes, Both }

/// <summary>
/// The product of these lists is a set of flash (or, with <see cref="KvCache"/>, KV-cache decode) cases, innermost the sequence length, so that every series of a chart
/// (the same everything but N) lies together. <see cref="QueryLengths"/> empty means Nq = N (prefill); otherwise each
/// Nq pairs with each N as the key length (decode: Nq = 1).
/// </summary>
internal sealed record Sweep
{
    public AttentionFamily[] Families { get; init; } = [AttentionFamily.Flash];
    public int[] Lengths { get; init; } = [512, 1024, 2048];
    public int[] QueryLengths { get; init; } = [];
    public int[] Batches { get; init; } = [1];
    public int[] Heads { get; init; } = [8];
    /// <summary>Empty: as many key/value heads as query heads.</summary>
    public int[] KeyValueHeads { get; init; } = [];
    public int[] HeadDims { get; init; } = [64];
    /// <summary>Empty: the value dim equals the query/key dim.</summary>
    public int[] ValueDims { get; init; } = [];
    public ElementType[] Types { get; init; } = [ElementType.Float32];
    public TensorLayout[] Layouts { get; init; } = [TensorLayout.HeadsFirst];
    public CausalChoice Causal { get; init; } = CausalChoice.No;
    /// <summary>Run the cases through FlashKvCache (K and V as a full cache) instead of Flash.</summary>
    public bool KvCache { get; init; }
    public int Seed { get; init; } = 1;

    /// <summary>Every case of the sweep; a combination that is not a valid problem is a usage error.</summary>
    /// <exception cref="UsageException">A family has no kernel, is not swept by these flags, or query heads are not a multiple of key/value heads.</exception>
    public IEnumerable<IAttentionCase> Expand(string origin)
    {
        foreach (var family in Families)
        {
            string name = AttentionCase.FamilyName(family);
            if (CaseFamilies.Find(name) is { HasKernels: false })
                throw new UsageException($"{origin}: {name} cannot be benchmarked yet: the library has no {family} kernel (its cases run the float64 reference only).");
            if (family != AttentionFamily.Flash)
                throw new UsageException($"{origin}: the sweep flags describe flash cases; give {name} cases as specs in a --cases file.");
        }
        bool[] causals = Causal switch { CausalChoice.No => [false], CausalChoice.Yes => [true], _ => [false, true] };
        foreach (var type in Types)
            foreach (bool causal in causals)
                foreach (var layout in Layouts)
                    foreach (int batch in Batches)
                        foreach (int heads in Heads)
                            foreach (int kvHeads in KeyValueHeads.Length > 0 ? KeyValueHeads : [heads])
                            {
                                if (heads % kvHeads != 0)
                                    throw new UsageException($"{origin}: {heads} query heads are not a multiple of {kvHeads} key/value heads.");
                                foreach (int d in HeadDims)
                                    foreach (int dv in ValueDims.Length > 0 ? ValueDims : [d])
                                        foreach (int nq in QueryLengths.Length > 0 ? QueryLengths : [0])
                                            foreach (int n in Lengths)
                                            {
                                                var flash = new AttentionCase
                                                {
                                                    Family = AttentionFamily.Flash, ElementType = type, Layout = layout, Batch = batch,
                                                    QueryHeads = heads, KeyValueHeads = kvHeads, QueryLength = nq > 0 ? nq : n, KeyLength = n,
                                                    HeadDim = d, ValueDim = dv, Seed = Seed, Flash = new FlashOptions { Causal = causal },
                                                };
                                                yield return KvCache ? flash.ToKvCacheCase() : flash;
                                            }
                            }
    }

    public static ElementType? ParseType(string word) => word switch
    {
        "f32" or "float32" or "fp32" => ElementType.Float32,
        "f16" or "float16" or "fp16" or "half" => ElementType.Float16,
        "bf16" or "bfloat16" => ElementType.BFloat16,
        _ => null,
    };

    public static TensorLayout? ParseLayout(string word) => word switch
    {
        "bhnd" => TensorLayout.HeadsFirst,
        "bnhd" => TensorLayout.SequenceFirst,
        _ => null,
    };

    public static AttentionFamily? ParseFamily(string word) => word switch
    {
        "flash" => AttentionFamily.Flash,
        "neighborhood" => AttentionFamily.Neighborhood,
        "blocksparse" or "block-sparse" => AttentionFamily.BlockSparse,
        "linear" => AttentionFamily.Linear,
        _ => null,
    };

    public static CausalChoice? ParseCausal(string word) => word switch
    {
        "no" or "false" or "off" => CausalChoice.No,
        "yes" or "true" or "on" => CausalChoice.Yes,
        "both" => CausalChoice.Both,
        _ => null,
    };
}

/// <summary>Reads a JSON case file: see <see cref="Format"/>.</summary>
internal static class CaseFile
{
    /// <summary>The format, for --help.</summary>
    public const string Format =
        "JSON (YAML is not supported): either an array of case specs (any family with kernels), or an object with \"cases\" (an array of case " +
        "specs) and/or \"sweeps\" (an array of objects with the keys of the flags: family, n, nq, batch, heads, " +
        "kvHeads, d, dv, dtype, layout: arrays; causal: \"no\"|\"yes\"|\"both\"; seed: a number).";

    /// <summary>The cases <paramref name="path"/> lists, in order.</summary>
    /// <exception cref="UsageException">The file is missing, unreadable, not JSON, or not of the expected shape; the message says where.</exception>
    public static List<IAttentionCase> Read(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new UsageException($"cannot read case file '{path}': {e.Message}");
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(text, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new UsageException($"case file '{path}' is not valid JSON ({e.Message.Split(Environment.NewLine)[0]}); only JSON case files are supported.");
        }
        using (document)
        {
            var root = document.RootElement;
            var cases = new List<IAttentionCase>();
            if (root.ValueKind == JsonValueKind.Array)
            {
                cases.AddRange(Specs(root, path, "$"));
                return cases;
            }
            if (root.ValueKind != JsonValueKind.Object)
                throw new UsageException($"case file '{path}': expected an array of case specs or an object with \"cases\" and/or \"sweeps\".");
            foreach (var property in root.EnumerateObject())
            {
                switch (property.Name)
                {
                    case "cases":
                        cases.AddRange(Specs(property.Value, path, "$.cases"));
                        break;
                    case "sweeps":
                        if (property.Value.ValueKind != JsonValueKind.Array)
                            throw new UsageException($"case file '{path}': $.sweeps must be an array of objects.");
                        int i = 0;
                        foreach (var sweep in property.Value.EnumerateArray())
                        {
                            string where = $"$.sweeps[{i++}]";
                            cases.AddRange(ReadSweep(sweep, path, where).Expand($"case file '{path}' {where}"));
                        }
                        break;
                    default:
                        throw new UsageException($"case file '{path}': unknown key \"{property.Name}\" at the top level (expected \"cases\" or \"sweeps\").");
                }
            }
            if (cases.Count == 0) throw new UsageException($"case file '{path}' lists no cases.");
            return cases;
        }
    }

    private static IEnumerable<IAttentionCase> Specs(JsonElement array, string path, string where)
    {
        if (array.ValueKind != JsonValueKind.Array)
            throw new UsageException($"case file '{path}': {where} must be an array of case spec strings.");
        var cases = new List<IAttentionCase>();
        int i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String)
                throw new UsageException($"case file '{path}': {where}[{i}] must be a case spec string, e.g. \"flash f16 B1 H8/2 N1024 D64 causal\".");
            if (!AttentionCaseSpec.TryParse(item.GetString(), out var parsed, out string? error))
                throw new UsageException($"case file '{path}' {where}[{i}]: {error}");
            if (CaseFamilies.Find(parsed.FamilyName) is { HasKernels: false, KernelBackends: null or { Count: 0 } })
                throw new UsageException($"case file '{path}' {where}[{i}]: {parsed.FamilyName} cannot be benchmarked yet: the library has no {parsed.FamilyName} kernel.");
            cases.Add(parsed);
            i++;
        }
        return cases;
    }

    private static Sweep ReadSweep(JsonElement element, string path, string where)
    {
        if (element.ValueKind != JsonValueKind.Object)
            throw new UsageException($"case file '{path}': {where} must be an object.");
        var sweep = new Sweep();
        foreach (var p in element.EnumerateObject())
        {
            string at = $"case file '{path}' {where}.{p.Name}";
            sweep = p.Name switch
            {
                "family" => sweep with { Families = Words(p.Value, at, "flash, neighborhood, blocksparse or linear", Sweep.ParseFamily) },
                "n" => sweep with { Lengths = Integers(p.Value, at) },
                "nq" => sweep with { QueryLengths = Integers(p.Value, at) },
                "batch" => sweep with { Batches = Integers(p.Value, at) },
                "heads" => sweep with { Heads = Integers(p.Value, at) },
                "kvHeads" => sweep with { KeyValueHeads = Integers(p.Value, at) },
                "d" => sweep with { HeadDims = Integers(p.Value, at) },
                "dv" => sweep with { ValueDims = Integers(p.Value, at) },
                "dtype" => sweep with { Types = Words(p.Value, at, "f32, f16 or bf16", Sweep.ParseType) },
                "layout" => sweep with { Layouts = Words(p.Value, at, "bhnd or bnhd", Sweep.ParseLayout) },
                "causal" => sweep with
                {
                    Causal = p.Value.ValueKind switch
                    {
                        JsonValueKind.True => CausalChoice.Yes,
                        JsonValueKind.False => CausalChoice.No,
                        JsonValueKind.String when Sweep.ParseCausal(p.Value.GetString()!.ToLowerInvariant()) is { } c => c,
                        _ => throw new UsageException($"{at} must be \"no\", \"yes\" or \"both\"."),
                    },
                },
                "kvcache" => sweep with
                {
                    KvCache = p.Value.ValueKind switch
                    {
                        JsonValueKind.True => true,
                        JsonValueKind.False => false,
                        _ => throw new UsageException($"{at} must be true or false."),
                    },
                },
                "seed" => sweep with
                {
                    Seed = p.Value.ValueKind == JsonValueKind.Number && p.Value.TryGetInt32(out int seed)
                        ? seed : throw new UsageException($"{at} must be an integer."),
                },
                _ => throw new UsageException($"case file '{path}': unknown key \"{p.Name}\" in {where} (expected family, n, nq, batch, heads, kvHeads, d, dv, dtype, layout, causal, kvcache or seed)."),
            };
        }
        return sweep;
    }

    private static IEnumerable<JsonElement> Items(JsonElement value) =>
        value.ValueKind == JsonValueKind.Array ? value.EnumerateArray() : [value];

    private static int[] Integers(JsonElement value, string at)
    {
        var result = new List<int>();
        foreach (var item in Items(value))
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out int n) || n < 1)
                throw new UsageException($"{at} must be a positive integer or an array of them, not {item.GetRawText()}.");
            result.Add(n);
        }
        return result.Count > 0 ? [.. result] : throw new UsageException($"{at} is empty.");
    }

    private static T[] Words<T>(JsonElement value, string at, string allowed, Func<string, T?> map) where T : struct
    {
        var result = new List<T>();
        foreach (var item in Items(value))
        {
            if (item.ValueKind != JsonValueKind.String || map(item.GetString()!.ToLowerInvariant()) is not { } word)
                throw new UsageException($"{at} must be {allowed} (or an array of them), not {item.GetRawText()}.");
            result.Add(word);
        }
        return result.Count > 0 ? [.. result] : throw new UsageException($"{at} is empty.");
    }

}
