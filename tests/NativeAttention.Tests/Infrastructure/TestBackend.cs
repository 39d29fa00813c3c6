// Binds family tests to a backend: a missing runtime skips with its reason unless NATIVEATTENTION_REQUIRE names it.
using Xunit;

namespace NativeAttention.Tests;

/// <summary>Backend availability for tests, honouring <c>NATIVEATTENTION_REQUIRE</c> (comma list: cpu, opencl, cuda, nvrtc).</summary>
public static class TestBackend
{
    /// <summary>The names listed in NATIVEATTENTION_REQUIRE, lower-case.</summary>
    public static IReadOnlySet<string> Required { get; } =
        (Environment.GetEnvironmentVariable("NATIVEATTENTION_REQUIRE") ?? "")
        .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        .Select(s => s.ToLowerInvariant()).ToHashSet();

    /// <summary>True when <paramref name="name"/> is required to be present.</summary>
    public static bool IsRequired(string name) => Required.Contains(name.ToLowerInvariant());

    /// <summary>
    /// Creates a context on <paramref name="backend"/>, or skips the test with the backend's reason; a required
    /// backend that is missing fails the test instead.
    /// </summary>
    public static AttentionContext CreateOrSkip(Backend backend, int? threads = null)
    {
        var info = Backends.Query(backend);
        if (!info.IsSupported)
        {
            if (IsRequired(backend.ToString()))
                Assert.Fail($"NATIVEATTENTION_REQUIRE names {backend}, but it is not available: {info.Description}");
            Skip.If(true, $"{backend} is not available here: {info.Description}");
        }
        return AttentionContext.Create(backend, new ContextOptions { Threads = threads });
    }
}
