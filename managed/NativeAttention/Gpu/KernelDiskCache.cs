// The on-disk level of the kernel cache: compiled PTX or OpenCL program binaries, keyed by a hash of everything
// that affects the result. Writes go to a temporary file that is renamed into place, so concurrent processes
// never read half a file. The cache is best effort: any I/O failure means "not cached".
using System.Security.Cryptography;
using System.Text;

namespace NativeAttention.Gpu;

internal static class KernelDiskCache
{
    /// <summary>Directory of the cache; default under the user's cache directory.</summary>
    public const string DirectoryVariable = "NATIVEATTENTION_CACHE_DIR";

    /// <summary>Set to 0 to disable the on-disk cache.</summary>
    public const string SwitchVariable = "NATIVEATTENTION_CACHE";

    /// <summary>The cache directory, or null when the cache is switched off.</summary>
    public static string? Directory
    {
        get
        {
            if (Environment.GetEnvironmentVariable(SwitchVariable) is "0" or "false" or "off") return null;
            if (Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } configured) return configured;
            string root = OperatingSystem.IsWindows()
                ? Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData)
                : Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
                    ? xdg
                    : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return root.Length == 0 ? null : Path.Combine(root, "NativeAttention", "kernels");
        }
    }

    /// <summary>A file name for the compiled form of <paramref name="parts"/> (source, options, device, driver).</summary>
    public static string Key(string extension, params string[] parts)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(string.Join("\n\u0001", parts)));
        return Convert.ToHexStringLower(hash.AsSpan(0, 20)) + extension;
    }

    /// <summary>The cached bytes for <paramref name="key"/>, or null (missing, unreadable or cache off).</summary>
    public static byte[]? TryRead(string key) => TryRead(Directory, key);

    /// <summary>Stores <paramref name="content"/> under <paramref name="key"/> unless the cache is off; failures are ignored.</summary>
    public static void TryWrite(string key, ReadOnlySpan<byte> content) => TryWrite(Directory, key, content);

    internal static byte[]? TryRead(string? dir, string key)
    {
        if (dir is null) return null;
        try
        {
            string path = Path.Combine(dir, key);
            return File.Exists(path) ? File.ReadAllBytes(path) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    internal static void TryWrite(string? dir, string key, ReadOnlySpan<byte> content)
    {
        if (dir is null) return;
        string temp = Path.Combine(dir, $".{key}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            System.IO.Directory.CreateDirectory(dir);
            using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
                file.Write(content);
            File.Move(temp, Path.Combine(dir, key), overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(temp); } catch (IOException) { }
        }
    }
}
