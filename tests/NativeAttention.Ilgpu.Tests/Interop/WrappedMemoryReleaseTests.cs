// The core pieces the ILGPU GPU paths rely on, checked without an ILGPU GPU accelerator: wrapped device memory that
// reads as disposed once its owner frees it (on PoCL), and CudaContext.FromContext's argument check.
using NativeAttention.Gpu.Cuda;
using NativeAttention.Gpu.OpenCl;
using Xunit;

namespace NativeAttention.Ilgpu.Tests.Interop;

public sealed class WrappedMemoryReleaseTests
{
    [SkippableFact]
    public void WrappedMemoryReadsAsDisposedOnceItsOwnerReleasedIt()
    {
        bool required = (Environment.GetEnvironmentVariable("NATIVEATTENTION_REQUIRE") ?? "").Split(',').Contains("opencl", StringComparer.OrdinalIgnoreCase);
        var info = Backends.Query(Backend.OpenCl);
        if (required) Assert.True(info.IsSupported, "NATIVEATTENTION_REQUIRE names opencl: " + info.Description);
        Skip.IfNot(info.IsSupported, "OpenCL is not available: " + info.Description);

        using var context = (OpenClContext)AttentionContext.Create(Backend.OpenCl);
        using var owned = context.AllocateBuffer(ElementType.Float32, 64);
        owned.Write<float>([.. Enumerable.Range(0, 64).Select(i => (float)i)]);
        bool released = false;
        var wrapped = context.WrapBuffer(owned.NativeHandle, ElementType.Float32, 64);
        wrapped.ObserveOwnerRelease(() => released);
        var slice = wrapped.Slice(32, 32);
        var read = new float[32];
        slice.Read<float>(read);
        Assert.Equal(32f, read[0]);
        var q = slice.View(1, 1, 4, 8);
        var o = context.Allocate(ElementType.Float32, 1, 1, 4, 8);

        released = true;
        Assert.True(wrapped.IsDisposed);
        Assert.True(slice.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => slice.Read<float>(read));
        Assert.Throws<ObjectDisposedException>(() => context.Flash(q, q, q, o));
        Assert.False(owned.IsDisposed);
    }

    [Fact]
    public void FromContextRefusesANullContextBeforeAnyDriverCall() =>
        Assert.Throws<ArgumentNullException>("context", () => CudaContext.FromContext(IntPtr.Zero, IntPtr.Zero));
}
