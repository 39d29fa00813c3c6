// The one rule for tests that need a runtime: a missing runtime skips the test with its reason, unless
// NATIVEATTENTION_REQUIRE (comma list: cpu, opencl, cuda, nvrtc, nvrtc12) names it; then the test runs and fails with the
// reason. Family tests call CreateOrSkip; [RuntimeFact]/[RuntimeTheory] (Gpu/RuntimeFactAttribute.cs) ask SkipReason.
using NativeAttention.Gpu.Cuda;
using Xunit;

namespace NativeAttention.Tests;

/// <summary>Backend and runtime availability for tests, honouring <c>NATIVEATTENTION_REQUIRE</c>.</summary>
public static class TestBackend
{
    /// <summary>The environment variable naming required runtimes.</summary>
    public const string RequireVariable = "NATIVEATTENTION_REQUIRE";

    /// <summary>The names listed in NATIVEATTENTION_REQUIRE, lower-case.</summary>
    public static IReadOnlySet<string> Required { get; } =
        (Environment.GetEnvironmentVariable(RequireVariable) ?? "")
        .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        .Select(s => s.ToLowerInvariant()).ToHashSet();

    /// <summary>True when <paramref name="name"/> (cpu, opencl, cuda, nvrtc; any case) is required to be present.</summary>
    public static bool IsRequired(string name) => Required.Contains(name.ToLowerInvariant());

    /// <summary>
    /// True when the runtime <paramref name="name"/> works here: <c>cpu</c>, <c>opencl</c> and <c>cuda</c> as
    /// <see cref="Backends.Query"/> reports them, <c>nvrtc</c> when CUDA kernels compile (no device needed), <c>nvrtc12</c> when that NVRTC also targets sm_90a;
    /// otherwise <paramref name="reason"/> says why not.
    /// </summary>
    public static bool IsAvailable(string name, out string reason)
    {
        switch (name.ToLowerInvariant())
        {
            case "nvrtc":
                return CudaCompiler.IsAvailable(out reason);
            case "nvrtc12":
                // NVRTC 12.0 is the first to target sm_90a (wgmma, setmaxnreg); CI fetches 12.4 for this run.
                if (!CudaCompiler.IsAvailable(out reason)) return false;
                if (CudaCompiler.Version.Major >= 12) return true;
                reason = $"NVRTC {CudaCompiler.Version.Major}.{CudaCompiler.Version.Minor} cannot target sm_90a; point NATIVEATTENTION_NVRTC_PATH at NVRTC 12 or later";
                return false;
            case "cpu" or "opencl" or "cuda":
                var info = Backends.Query(Enum.Parse<Backend>(name, ignoreCase: true));
                reason = info.Description;
                return info.IsSupported;
            default:
                throw new ArgumentException($"Unknown runtime \"{name}\"; expected cpu, opencl, cuda, nvrtc or nvrtc12.", nameof(name));
        }
    }

    /// <summary>The reason to skip a test needing <paramref name="name"/>, or null when it must run (available, or required).</summary>
    public static string? SkipReason(string name) =>
        IsAvailable(name, out string reason) || IsRequired(name) ? null : $"{name} is not available here: {reason}";

    /// <summary>Fails (throws) when <paramref name="name"/> is missing; call first in a test that was not skipped.</summary>
    public static void Require(string name)
    {
        if (!IsAvailable(name, out string reason))
            throw new InvalidOperationException($"{RequireVariable} names {name}, but it is not available: {reason}");
    }

    /// <summary>
    /// Creates a context on <paramref name="backend"/>, or skips the test with the backend's reason; a required
    /// backend that is missing fails the test instead.
    /// </summary>
    public static AttentionContext CreateOrSkip(Backend backend, int? threads = null)
    {
        string name = backend.ToString();
        if (SkipReason(name) is { } skip) Skip.If(true, skip);
        Require(name);
        return AttentionContext.Create(backend, new ContextOptions { Threads = threads });
    }
}
