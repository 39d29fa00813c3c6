// The exception a Flex call raises when a user-written modification throws.
namespace NativeAttention;

/// <summary>
/// A score or mask modification threw while Flex attention evaluated it. <see cref="ModificationType"/> names the
/// struct, <see cref="Exception.InnerException"/> is what it threw, and the message says where (the indices, or the
/// tile being computed) and why.
/// </summary>
public sealed class FlexModificationException : Exception
{
    /// <summary>Creates the exception; <paramref name="where"/> says which indices or tile were being evaluated.</summary>
    public FlexModificationException(Type modificationType, string role, string where, Exception inner)
        : base($"The {role} modification {modificationType.FullName} threw {inner.GetType().Name} {where}: {inner.Message}", inner)
    {
        ModificationType = modificationType;
        Role = role;
    }

    /// <summary>The struct type of the modification that threw.</summary>
    public Type ModificationType { get; }

    /// <summary>"score" or "mask".</summary>
    public string Role { get; }
}
