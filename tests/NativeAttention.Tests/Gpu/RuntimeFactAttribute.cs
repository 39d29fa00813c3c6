// Backend-availability rule for tests: a test whose runtime is missing is skipped with the reason, unless
// NATIVEATTENTION_REQUIRE (comma list: opencl, cuda, nvrtc) names it; then it runs and fails with the reason.
using NativeAttention.Gpu.Cuda;
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
}

/// <summary>Whether runtimes are present here and whether the environment requires them.</summary>
public static class RuntimeAvailability
{
    /// <summary>The environment variable naming required runtimes.</summary>
    public const string RequireVariable = "NATIVEATTENTION_REQUIRE";

    /// <summary>True when <paramref name="runtime"/> works here; otherwise <paramref name="reason"/> says why not.</summary>
    public static bool IsAvailable(TestRuntime runtime, out string reason)
    {
        switch (runtime)
        {
            case TestRuntime.Nvrtc:
                return CudaCompiler.IsAvailable(out reason);
            default:
                var info = Backends.Query(runtime == TestRuntime.OpenCl ? Backend.OpenCl : Backend.Cuda);
                reason = info.Description;
                return info.IsSupported;
        }
    }

    /// <summary>True when <see cref="RequireVariable"/> names <paramref name="runtime"/>.</summary>
    public static bool IsRequired(TestRuntime runtime) =>
        (Environment.GetEnvironmentVariable(RequireVariable) ?? "")
            .Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Contains(runtime.ToString(), StringComparer.OrdinalIgnoreCase);

    /// <summary>The skip reason for a test needing <paramref name="runtime"/>, or null when it must run.</summary>
    public static string? SkipReason(TestRuntime runtime) =>
        IsAvailable(runtime, out string reason) || IsRequired(runtime) ? null : $"{runtime} is not available: {reason}";

    /// <summary>Fails (throws) when <paramref name="runtime"/> is missing; call first in a test that was not skipped.</summary>
    public static void Require(TestRuntime runtime)
    {
        if (!IsAvailable(runtime, out string reason))
            throw new InvalidOperationException($"{RequireVariable} requires {runtime}, but it is not available: {reason}");
    }
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
