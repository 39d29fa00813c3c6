// The on-disk kernel cache: keys separate everything that changes a build, writes are atomic and concurrent-safe.
using NativeAttention.Gpu;
using Xunit;

namespace NativeAttention.Tests.Gpu;

public sealed class KernelDiskCacheTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "na-cache-test-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory)) Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public void Key_ChangesWithEveryPart()
    {
        string key = KernelDiskCache.Key(".ptx", "source", "options", "device", "driver");
        Assert.Equal(key, KernelDiskCache.Key(".ptx", "source", "options", "device", "driver"));
        Assert.NotEqual(key, KernelDiskCache.Key(".ptx", "source2", "options", "device", "driver"));
        Assert.NotEqual(key, KernelDiskCache.Key(".ptx", "source", "options", "device", "driver 2"));
        Assert.NotEqual(key, KernelDiskCache.Key(".ptx", "sourceoptions", "", "device", "driver"));
        Assert.EndsWith(".ptx", key);
    }

    [Fact]
    public void WriteThenRead_RoundTrips_AndLeavesNoTemporaryFiles()
    {
        KernelDiskCache.TryWrite(_directory, "k.bin", [1, 2, 3]);
        Assert.Equal([1, 2, 3], KernelDiskCache.TryRead(_directory, "k.bin"));
        Assert.Null(KernelDiskCache.TryRead(_directory, "missing.bin"));
        Assert.Equal(["k.bin"], Directory.GetFiles(_directory).Select(Path.GetFileName));
    }

    [Fact]
    public void ConcurrentWriters_LeaveOneCompleteFile()
    {
        var content = Enumerable.Range(0, 1 << 20).Select(i => (byte)i).ToArray();
        Parallel.For(0, 8, _ => KernelDiskCache.TryWrite(_directory, "shared.bin", content));
        Assert.Equal(content, KernelDiskCache.TryRead(_directory, "shared.bin"));
        Assert.Single(Directory.GetFiles(_directory));
    }

    [Fact]
    public void EnvironmentVariables_ChooseTheDirectoryOrSwitchTheCacheOff()
    {
        // Other tests running meanwhile only lose caching for a moment; nothing else reads these variables.
        string? directory = Environment.GetEnvironmentVariable(KernelDiskCache.DirectoryVariable);
        string? enabled = Environment.GetEnvironmentVariable(KernelDiskCache.SwitchVariable);
        try
        {
            Environment.SetEnvironmentVariable(KernelDiskCache.DirectoryVariable, _directory);
            Environment.SetEnvironmentVariable(KernelDiskCache.SwitchVariable, null);
            Assert.Equal(_directory, KernelDiskCache.Directory);
            Environment.SetEnvironmentVariable(KernelDiskCache.SwitchVariable, "0");
            Assert.Null(KernelDiskCache.Directory);
        }
        finally
        {
            Environment.SetEnvironmentVariable(KernelDiskCache.DirectoryVariable, directory);
            Environment.SetEnvironmentVariable(KernelDiskCache.SwitchVariable, enabled);
        }
    }

    [Fact]
    public void NoDirectory_MeansCacheOff()
    {
        KernelDiskCache.TryWrite(null, "k.bin", [1]);
        Assert.Null(KernelDiskCache.TryRead(null, "k.bin"));
    }
}
