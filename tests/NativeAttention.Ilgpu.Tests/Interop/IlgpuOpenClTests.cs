// ILGPU's OpenCL accelerator on this machine's OpenCL devices (PoCL in CI): which ones it accepts, and the interop on those.
using ILGPU;
using Xunit;
using ILGPU.Runtime.OpenCL;
using NativeAttention.Gpu.OpenCl;
using System.Runtime.InteropServices;
using System.Runtime.Loader;
using Xunit.Abstractions;

namespace NativeAttention.Ilgpu.Tests.Interop;

public sealed class IlgpuOpenClTests(ITestOutputHelper output)
{
    /// <summary>
    /// ILGPU 1.5.3 builds a <see cref="CLAccelerator"/> only on devices with the generic address space (OpenCL 2.0, or
    /// 3.0 with the feature); PoCL's CPU device lacks it, so ILGPU refuses it. Checked on every OpenCL device here, and
    /// on those ILGPU accepts, the interop runs a flash call against the same call on the CPU.
    /// </summary>
    [SkippableFact]
    public void IlgpuAcceptsOnlyDevicesWithTheGenericAddressSpaceAndTheInteropRunsOnThose()
    {
        LoadOpenClForIlgpu();
        using var context = Context.Create(builder => builder.OpenCL(_ => true));
        var devices = context.GetCLDevices();
        bool required = (Environment.GetEnvironmentVariable("NATIVEATTENTION_REQUIRE") ?? "").Split(',').Contains("opencl", StringComparer.OrdinalIgnoreCase);
        if (required) Assert.True(devices.Count > 0, "NATIVEATTENTION_REQUIRE names opencl, but ILGPU finds no OpenCL device.");
        Skip.If(devices.Count == 0, "ILGPU finds no OpenCL device here.");
        for (int i = 0; i < devices.Count; i++)
        {
            var device = devices[i];
            output.WriteLine($"{device.Name} ({device.PlatformName}, {device.DeviceVersion}, OpenCL C {device.CVersion}): generic address space {device.Capabilities.GenericAddressSpace}");
            if (!device.Capabilities.GenericAddressSpace)
            {
                var e = Assert.ThrowsAny<Exception>(() => device.CreateCLAccelerator(context));
                output.WriteLine($"  ILGPU refuses it: {e.GetType().Name}: {e.Message}");
                continue;
            }
            using var accelerator = device.CreateCLAccelerator(context);
            IlgpuGpuChecks.Run<OpenClContext>(accelerator, output);
        }
    }

    /// <summary>
    /// ILGPU imports "OpenCL", which .NET probes as <c>libOpenCL.so</c>: Debian installs that name only with the -dev
    /// package, the loader itself as <c>libOpenCL.so.1</c>. Point ILGPU's failed lookups at the loader (test-only).
    /// </summary>
    private static void LoadOpenClForIlgpu()
    {
        if (Interlocked.Exchange(ref _resolverAdded, 1) != 0) return;
        var ilgpu = typeof(Context).Assembly;
        AssemblyLoadContext.Default.ResolvingUnmanagedDll += (assembly, name) =>
            assembly == ilgpu && name == "OpenCL" && OperatingSystem.IsLinux() && NativeLibrary.TryLoad("libOpenCL.so.1", out var handle) ? handle : IntPtr.Zero;
    }

    private static int _resolverAdded;
}
