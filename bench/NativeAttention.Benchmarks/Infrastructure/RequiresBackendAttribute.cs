// Marks a benchmark class that can only run where a backend is supported; Program leaves it out elsewhere.
namespace NativeAttention.Benchmarks;

/// <summary>The benchmarks of this class run only where <see cref="Backends.Query"/> reports <see cref="Backend"/> supported.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = true)]
public sealed class RequiresBackendAttribute(Backend backend) : Attribute
{
    /// <summary>The backend the class needs.</summary>
    public Backend Backend { get; } = backend;
}
