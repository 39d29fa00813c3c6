// nvJitLink 12.4 (libnvjitlink12 from Debian 13's non-free component, unpacked by .ci/run without installing): assembles
// ILGPU's PTX to a CUBIN for a real architecture with ptxas's verbose report, with no device. Its entry points carry the
// version in their names (nvJitLinkCreate is __nvJitLinkCreate_12_4 in the 12.4 library).
using System.Runtime.InteropServices;
using System.Text;
using NativeAttention.Gpu.Cuda;

namespace NativeAttention.Ilgpu.Tests.FlexOnGpu;

internal static unsafe class NvJitLink
{
    /// <summary>The library's file or directory; default: where .ci/run unpacks it.</summary>
    public const string PathVariable = "NATIVEATTENTION_NVJITLINK_PATH";

    private const int InputPtx = 2;   // NVJITLINK_INPUT_PTX

    private static readonly Lazy<(IntPtr Library, string? Error)> Library = new(Load);

    /// <summary>True when nvJitLink 12.4 loaded; otherwise <paramref name="reason"/> says what was tried.</summary>
    public static bool IsAvailable(out string reason)
    {
        reason = Library.Value.Error ?? "nvJitLink 12.4";
        return Library.Value.Error is null;
    }

    /// <summary>Assembles <paramref name="ptx"/> for <paramref name="target"/> (e.g. sm_80) with ptxas's verbose report.</summary>
    /// <exception cref="InvalidOperationException">nvJitLink failed; the message carries its error log.</exception>
    public static Cubin Assemble(string ptx, string target)
    {
        var lib = Library.Value.Library;
        var create = (delegate* unmanaged<IntPtr*, uint, byte**, int>)Symbol(lib, "Create");
        var addData = (delegate* unmanaged<IntPtr, int, byte*, nuint, byte*, int>)Symbol(lib, "AddData");
        var complete = (delegate* unmanaged<IntPtr, int>)Symbol(lib, "Complete");
        var cubinSize = (delegate* unmanaged<IntPtr, nuint*, int>)Symbol(lib, "GetLinkedCubinSize");
        var cubin = (delegate* unmanaged<IntPtr, byte*, int>)Symbol(lib, "GetLinkedCubin");
        var destroy = (delegate* unmanaged<IntPtr*, int>)Symbol(lib, "Destroy");

        byte[][] options = [Encoding.ASCII.GetBytes($"-arch={target}\0"), Encoding.ASCII.GetBytes("-verbose\0")];
        IntPtr handle;
        fixed (byte* o0 = options[0])
        fixed (byte* o1 = options[1])
        {
            byte** pointers = stackalloc byte*[2] { o0, o1 };
            Check(create(&handle, 2, pointers), "nvJitLinkCreate", IntPtr.Zero, lib);
        }
        try
        {
            var text = Encoding.ASCII.GetBytes(ptx + "\0");
            var name = Encoding.ASCII.GetBytes("flex.ptx\0");
            fixed (byte* t = text)
            fixed (byte* n = name)
                Check(addData(handle, InputPtx, t, (nuint)text.Length, n), "nvJitLinkAddData", handle, lib);
            Check(complete(handle), "nvJitLinkComplete", handle, lib);
            nuint size;
            Check(cubinSize(handle, &size), "nvJitLinkGetLinkedCubinSize", handle, lib);
            var image = new byte[size];
            fixed (byte* p = image) Check(cubin(handle, p), "nvJitLinkGetLinkedCubin", handle, lib);
            return new Cubin(target, image, Log(lib, handle, "Info"), ptx);
        }
        finally
        {
            destroy(&handle);
        }
    }

    private static void Check(int result, string call, IntPtr handle, IntPtr lib)
    {
        if (result != 0)
            throw new InvalidOperationException($"{call} failed ({result}): {(handle == IntPtr.Zero ? "" : Log(lib, handle, "Error"))}");
    }

    private static string Log(IntPtr lib, IntPtr handle, string kind)
    {
        var size = (delegate* unmanaged<IntPtr, nuint*, int>)Symbol(lib, $"Get{kind}LogSize");
        var read = (delegate* unmanaged<IntPtr, byte*, int>)Symbol(lib, $"Get{kind}Log");
        nuint length;
        if (size(handle, &length) != 0 || length == 0) return "";
        var bytes = new byte[length];
        fixed (byte* b = bytes) read(handle, b);
        return Encoding.UTF8.GetString(bytes).TrimEnd('\0');
    }

    private static IntPtr Symbol(IntPtr lib, string name) => NativeLibrary.GetExport(lib, $"__nvJitLink{name}_12_4");

    private static (IntPtr, string?) Load()
    {
        string? configured = Environment.GetEnvironmentVariable(PathVariable);
        string cacheHome = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        string path = configured is { Length: > 0 } ? configured
            : Path.Combine(cacheHome, "NativeAttention", "nvrtc-12.4", "root", "usr", "lib", "x86_64-linux-gnu");
        if (Directory.Exists(path)) path = Path.Combine(path, "libnvJitLink.so.12");
        try
        {
            var lib = NativeLibrary.Load(path);
            NativeLibrary.GetExport(lib, "__nvJitLinkCreate_12_4");
            return (lib, null);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            return (IntPtr.Zero, $"nvJitLink 12.4 was not found at {path} (set {PathVariable}; .ci/run unpacks libnvjitlink12 there): {e.Message}");
        }
    }
}
