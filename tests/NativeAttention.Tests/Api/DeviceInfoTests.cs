// Backends.Devices describes each supported backend's devices and nothing for unsupported ones.
using Xunit;

namespace NativeAttention.Tests;

public class DeviceInfoTests
{
    [Fact]
    public void Devices_OfTheCpu_DescribeThisMachine()
    {
        var cpu = Assert.Single(Backends.Devices(Backend.Cpu));
        Assert.Equal(Environment.ProcessorCount, cpu.ComputeUnits);
        Assert.True(cpu.MemoryBytes > 0);
        Assert.False(cpu.IsGpu);
    }

    [SkippableTheory]
    [InlineData(Backend.OpenCl)]
    [InlineData(Backend.Cuda)]
    public void Devices_OfAGpuBackend_HaveNameMemoryAndComputeUnits(Backend backend)
    {
        using var context = TestBackend.CreateOrSkip(backend);
        var devices = Backends.Devices(backend);
        Assert.NotEmpty(devices);
        Assert.All(devices, d =>
        {
            Assert.False(string.IsNullOrWhiteSpace(d.Name));
            Assert.True(d.MemoryBytes > 0, $"{d.Name}: memory {d.MemoryBytes}");
            Assert.True(d.ComputeUnits > 0, $"{d.Name}: compute units {d.ComputeUnits}");
        });
    }

    [Fact]
    public void Devices_OfAnUnsupportedBackend_AreEmpty()
    {
        foreach (var info in Backends.All.Where(b => !b.IsSupported))
            Assert.Empty(Backends.Devices(info.Backend));
    }
}
