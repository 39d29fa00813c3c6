// The registry of case families: the one place the spec parser, `verify`'s default list, `bench --family` and the
// help texts learn which families exist. Adding a family is one case type file plus one line here.
namespace NativeAttention;

/// <summary>Every family a case spec can name.</summary>
public static class CaseFamilies
{
    /// <summary>The registered families, in the order help texts and <c>verify</c> list them.</summary>
    public static IReadOnlyList<CaseFamily> All { get; } =
    [
        AttentionCase.Registration,     // flash; also KV-cache decode (KvCacheCase) and split-KV + merge (SplitKeysCase)
        MergeCase.Registration,
        NeighborhoodCase.Registration,
        BlockSparseCase.Registration,
        LinearCase.Registration,
        DeltaRuleCase.Registration,
    ];

    /// <summary>The family named <paramref name="name"/> (case-insensitive), or null.</summary>
    public static CaseFamily? Find(string name) =>
        All.FirstOrDefault(f => string.Equals(f.Name, name, StringComparison.OrdinalIgnoreCase));

    /// <summary>The family names, e.g. <c>flash|merge|neighborhood|blocksparse|linear</c>.</summary>
    public static string Names(string separator = "|") => string.Join(separator, All.Select(f => f.Name));
}
