// Options of Flex attention (user-written score and mask modifications).
namespace NativeAttention;

/// <summary>Options of <see cref="FlexAttention.Flex{TScore, TMask}"/>.</summary>
public sealed record FlexOptions
{
    /// <summary>The default options: scale <c>1 / sqrt(Dqk)</c>, no block mask.</summary>
    public static FlexOptions Default { get; } = new();

    /// <summary>Score scale applied to <c>q . k</c> before the score modification; null means <c>1 / sqrt(Dqk)</c>.</summary>
    public float? Scale { get; init; }

    /// <summary>
    /// The block mask, usually from <see cref="FlexAttention.CreateBlockMask{TMask}"/>: empty blocks are skipped, full
    /// blocks computed without calling the mask modification, partial blocks call it per element. A pair in a block the
    /// mask does not list is hidden, whatever the mask modification says. Null: the mask modification is called for
    /// every pair (correct for any mask, and as slow as dense attention plus one call per pair).
    /// </summary>
    public FlexBlockMask? BlockMask { get; init; }
}
