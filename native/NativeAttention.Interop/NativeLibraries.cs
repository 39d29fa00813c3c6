// Finds the OpenCL, CUDA driver and NVRTC libraries once, so a missing one is reported, not thrown at load.
using System.Reflection;
using System.Runtime.InteropServices;

namespace NativeAttention.Interop;

/// <summary>The native libraries the GPU backends bind to.</summary>
public enum NativeLibraryKind
{
    /// <summary>The OpenCL ICD loader.</summary>
    OpenCl,
    /// <summary>The CUDA driver API.</summary>
    Cuda,
    /// <summary>The CUDA runtime compiler.</summary>
    Nvrtc,
}

/// <summary>
/// Resolves the library names used by the <c>[LibraryImport]</c> declarations of this assembly. Each library is
/// searched for once; <see cref="TryGet"/> says whether it was found and, if not, which candidates were tried.
/// </summary>
public static class NativeLibraries
{
    internal const string OpenClName = "NativeAttention.OpenCL";
    internal const string CudaName = "NativeAttention.Cuda";
    internal const string NvrtcName = "NativeAttention.Nvrtc";

    /// <summary>Overrides the NVRTC library: a file, or a directory holding it.</summary>
    public const string NvrtcPathVariable = "NATIVEATTENTION_NVRTC_PATH";

    private static readonly Lazy<(IntPtr Handle, string Description)>[] Loaded =
    [
        new(() => Load(OpenClCandidates())),
        new(() => Load(CudaCandidates())),
        new(() => Load(NvrtcCandidates())),
    ];

    static NativeLibraries() =>
        NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);

    /// <summary>Makes sure the resolver is registered; the static constructor does the work.</summary>
    internal static void EnsureRegistered() { }

    /// <summary>Loads <paramref name="kind"/> if it was not tried yet.</summary>
    /// <param name="kind">The library.</param>
    /// <param name="description">The path loaded, or the candidates tried and why they failed.</param>
    /// <returns>True when the library is loaded.</returns>
    public static bool TryGet(NativeLibraryKind kind, out string description)
    {
        var (handle, text) = Loaded[(int)kind].Value;
        description = text;
        return handle != IntPtr.Zero;
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        int index = name switch { OpenClName => 0, CudaName => 1, NvrtcName => 2, _ => -1 };
        if (index < 0) return IntPtr.Zero;
        var (handle, description) = Loaded[index].Value;
        if (handle == IntPtr.Zero) throw new DllNotFoundException(description);
        return handle;
    }

    private static (IntPtr, string) Load(IEnumerable<string> candidates)
    {
        var tried = new List<string>();
        foreach (string candidate in candidates.Distinct())
        {
            if (NativeLibrary.TryLoad(candidate, out IntPtr handle))
                return (handle, candidate);
            tried.Add(candidate);
        }
        return (IntPtr.Zero, "not found; tried " + string.Join(", ", tried));
    }

    private static IEnumerable<string> OpenClCandidates()
    {
        if (OperatingSystem.IsWindows()) return ["OpenCL.dll"];
        if (OperatingSystem.IsMacOS()) return ["/System/Library/Frameworks/OpenCL.framework/OpenCL"];
        return ["libOpenCL.so.1", "libOpenCL.so"];
    }

    private static IEnumerable<string> CudaCandidates() =>
        OperatingSystem.IsWindows() ? ["nvcuda.dll"] : ["libcuda.so.1", "libcuda.so"];

    private static IEnumerable<string> NvrtcCandidates()
    {
        string[] names = OperatingSystem.IsWindows()
            ? ["nvrtc64_130_0.dll", "nvrtc64_120_0.dll", "nvrtc64_112_0.dll"]
            : ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"];
        if (Environment.GetEnvironmentVariable(NvrtcPathVariable) is { Length: > 0 } overridePath)
        {
            if (Directory.Exists(overridePath))
                foreach (string name in names) yield return Path.Combine(overridePath, name);
            else
                yield return overridePath;
        }
        foreach (string name in names) yield return name;
        foreach (string directory in NvrtcDirectories())
            foreach (string name in names)
            {
                string path = Path.Combine(directory, name);
                if (File.Exists(path)) yield return path;
            }
    }

    private static IEnumerable<string> NvrtcDirectories()
    {
        if (OperatingSystem.IsWindows())
        {
            if (Environment.GetEnvironmentVariable("CUDA_PATH") is { Length: > 0 } cudaPath)
            {
                yield return Path.Combine(cudaPath, "bin", "x64");
                yield return Path.Combine(cudaPath, "bin");
            }
            yield break;
        }
        if (Environment.GetEnvironmentVariable("CUDA_HOME") is { Length: > 0 } cudaHome)
            yield return Path.Combine(cudaHome, "lib64");
        yield return "/usr/local/cuda/lib64";
        yield return "/usr/local/cuda/targets/x86_64-linux/lib";
        foreach (string dir in SafeGlob("/usr/local", "cuda*").OrderDescending())
            yield return Path.Combine(dir, "lib64");
        foreach (string sitePackages in PythonSitePackages())
        {
            yield return Path.Combine(sitePackages, "nvidia", "cu13", "lib");
            yield return Path.Combine(sitePackages, "nvidia", "cuda_nvrtc", "lib");
        }
    }

    private static IEnumerable<string> PythonSitePackages()
    {
        var roots = new List<string> { "/usr/lib", "/usr/local/lib", "/opt/conda/lib" };
        foreach (string variable in new[] { "VIRTUAL_ENV", "CONDA_PREFIX" })
            if (Environment.GetEnvironmentVariable(variable) is { Length: > 0 } prefix)
                roots.Insert(0, Path.Combine(prefix, "lib"));
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (home.Length > 0) roots.Add(Path.Combine(home, ".local", "lib"));
        foreach (string root in roots)
            foreach (string python in SafeGlob(root, "python3*"))
            {
                yield return Path.Combine(python, "site-packages");
                yield return Path.Combine(python, "dist-packages");
            }
    }

    private static string[] SafeGlob(string directory, string pattern)
    {
        try { return Directory.Exists(directory) ? Directory.GetDirectories(directory, pattern) : []; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return []; }
    }
}
