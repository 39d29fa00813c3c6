// [RuntimeFact]/[RuntimeTheory] for tests that need a native runtime. The skip/require rule itself is TestBackend's
// (Infrastructure/TestBackend.cs): missing skips with the reason unless NATIVEATTENTION_REQUIRE names it.
using Xunit;

namespace NativeAttention.Tests.Gpu;

/// <summary>A native runtime a test needs.</summary>
public enum TestRuntime
{
    /// <summary>An OpenCL platform with a device.</summary>
    OpenCl,
    /// <summary>A CUDA driver, device and NVRTC.</summary>
    Cuda,
    /// <summary>NVRTC alone (compiling CUDA kernels to PTX needs no device).</summary>
    Nvrtc,
    /// <summary>NVRTC 12 or later, which also compiles for sm_90a (Hopper's wgmma); no device needed.</summary>
    Nvrtc12,
}

/// <summary>Whether runtimes are present here and whether the environment requires them: <see cref="TestBackend"/>'s rule.</summary>
public static class RuntimeAvailability
{
    /// <summary>The environment variable naming required runtimes.</summary>
    public const string RequireVariable = TestBackend.RequireVariable;

    /// <summary>True when <paramref name="runtime"/> works here; otherwise <paramref name="reason"/> says why not.</summary>
    public static bool IsAvailable(TestRuntime runtime, out string reason) => TestBackend.IsAvailable(Name(runtime), out reason);

    /// <summary>True when <see cref="RequireVariable"/> names <paramref name="runtime"/>.</summary>
    public static bool IsRequired(TestRuntime runtime) => TestBackend.IsRequired(Name(runtime));

    /// <summary>The skip reason for a test needing <paramref name="runtime"/>, or null when it must run.</summary>
    public static string? SkipReason(TestRuntime runtime) => TestBackend.SkipReason(Name(runtime));

    /// <summary>Fails (throws) when <paramref name="runtime"/> is missing; call first in a test that was not skipped.</summary>
    public static void Require(TestRuntime runtime) => TestBackend.Require(Name(runtime));

    private static string Name(TestRuntime runtime) => runtime.ToString().ToLowerInvariant();
}

/// <summary>A fact that needs <see cref="TestRuntime"/>s; skipped with the reason when one is missing and not required.</summary>
public sealed class RuntimeFactAttribute : FactAttribute
{
    /// <summary>Skips unless every runtime in <paramref name="runtimes"/> is available or required.</summary>
    public RuntimeFactAttribute(params TestRuntime[] runtimes) =>
        Skip = runtimes.Select(RuntimeAvailability.SkipReason).FirstOrDefault(r => r is not null);
}

/// <summary>A theory that needs <see cref="TestRuntime"/>s; skipped with the reason when one is missing and not required.</summary>
public sealed class RuntimeTheoryAttribute : TheoryAttribute
{
    /// <summary>Skips unless every runtime in <paramref name="runtimes"/> is available or required.</summary>
    public RuntimeTheoryAttribute(params TestRuntime[] runtimes) =>
        Skip = runtimes.Select(RuntimeAvailability.SkipReason).FirstOrDefault(r => r is not null);
}
