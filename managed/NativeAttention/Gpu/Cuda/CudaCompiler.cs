// NVRTC front end: compiles kernel sources to PTX for a compute architecture, with or without a device, through the
// on-disk kernel cache (PTX depends only on the source, the options and the NVRTC version); and to CUBIN for a real
// architecture (sm_80, sm_90a) with ptxas's resource report, which CI reads for register and spill counts.
using System.Text;
using NativeAttention.Interop;
using NativeAttention.Interop.Nvrtc;
using static NativeAttention.Interop.Nvrtc.NvrtcNative;

namespace NativeAttention.Gpu.Cuda;

internal static unsafe class CudaCompiler
{
    private static readonly Lazy<(int Major, int Minor, int[] Architectures, string? Error)> Info = new(Query);

    /// <summary>True when NVRTC was found; otherwise <paramref name="reason"/> says what was tried.</summary>
    public static bool IsAvailable(out string reason)
    {
        var info = Info.Value;
        reason = info.Error ?? $"NVRTC {info.Major}.{info.Minor}";
        return info.Error is null;
    }

    /// <summary>The NVRTC version, e.g. (11, 8).</summary>
    public static (int Major, int Minor) Version => (Info.Value.Major, Info.Value.Minor);

    /// <summary>The architectures NVRTC can target, e.g. 52 ... 90.</summary>
    public static IReadOnlyList<int> Architectures => Info.Value.Architectures;

    /// <summary>The newest architecture NVRTC supports that does not exceed <paramref name="deviceArch"/>.</summary>
    public static int TargetFor(int deviceArch)
    {
        var supported = Architectures.Where(a => a <= deviceArch).ToArray();
        return supported.Length > 0 ? supported.Max() : deviceArch;
    }

    /// <summary>Compiles <paramref name="variant"/> to PTX for <c>compute_</c><paramref name="arch"/> (cached on disk).</summary>
    /// <exception cref="NvrtcException">Compilation failed; the exception carries the log.</exception>
    public static string CompileToPtx(IKernelVariant variant, int arch) =>
        CompileToPtx(variant.Source(KernelApi.Cuda), variant.Name, arch);

    /// <summary>
    /// Compiles CUDA C <paramref name="source"/> to PTX for <c>compute_</c><paramref name="arch"/>, or reads the PTX an
    /// earlier compilation of the same source and options by the same NVRTC version left in <see cref="KernelDiskCache"/>.
    /// Thread-safe: each call compiles its own NVRTC program.
    /// </summary>
    /// <exception cref="NvrtcException">Compilation failed; the exception carries the log. Failures are not cached.</exception>
    public static string CompileToPtx(string source, string name, int arch) =>
        CompileToPtx(source, name, arch.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>
    /// As <see cref="CompileToPtx(string, string, int)"/> for an architecture named as NVRTC spells it after
    /// <c>compute_</c>, e.g. <c>90a</c> for Hopper's arch-specific features (wgmma, setmaxnreg).
    /// </summary>
    public static string CompileToPtx(string source, string name, string arch)
    {
        if (!IsAvailable(out string reason)) throw new DllNotFoundException("NVRTC is not available: " + reason);
        string[] options = Options(arch);
        var (major, minor) = Version;
        string key = KernelDiskCache.Key(".ptx", source, string.Join(" ", options), $"nvrtc {major}.{minor}");
        if (KernelDiskCache.TryRead(key) is { } cached) return Encoding.ASCII.GetString(cached);
        string log = "", unused = "";
        string ptx = Encoding.ASCII.GetString(Compile(source, name, options, $"compute_{arch}", cubin: false, log: ref log, ptx: ref unused)).TrimEnd('\0');
        KernelDiskCache.TryWrite(key, Encoding.ASCII.GetBytes(ptx));
        return ptx;
    }

    private static string[] Options(string arch) => [$"--gpu-architecture=compute_{arch}", "--std=c++14"];

    /// <summary>
    /// Compiles <paramref name="variant"/> to CUBIN for the real architecture <paramref name="target"/> (<c>sm_80</c>,
    /// <c>sm_90</c>, <c>sm_90a</c>, ...), with ptxas's verbose resource report, cached on disk like PTX. Needs no device.
    /// </summary>
    /// <exception cref="NvrtcException">Compilation failed, or this NVRTC cannot target <paramref name="target"/>.</exception>
    public static Cubin CompileToCubin(IKernelVariant variant, string target)
    {
        if (!IsAvailable(out string reason)) throw new DllNotFoundException("NVRTC is not available: " + reason);
        if (!target.StartsWith("sm_", StringComparison.Ordinal))
            throw new ArgumentException($"target is '{target}'; expected a real architecture such as sm_80 or sm_90a.", nameof(target));
        string source = variant.Source(KernelApi.Cuda);
        string[] options = [$"--gpu-architecture={target}", "--std=c++14", "--ptxas-options=-v"];
        var (major, minor) = Version;
        string key = KernelDiskCache.Key(".cubin", source, string.Join(" ", options), $"nvrtc {major}.{minor}");
        if (KernelDiskCache.TryRead(key) is { } cached && Cubin.TryUnpack(cached, target) is { } hit) return hit;
        string log = "", ptx = "";
        byte[] image = Compile(source, variant.Name, options, target, cubin: true, log: ref log, ptx: ref ptx);
        var result = new Cubin(target, image, log, ptx);
        KernelDiskCache.TryWrite(key, result.Pack());
        // The PTX of a real-architecture compilation is the PTX compute_<arch> gives (byte for byte for all 290 sm_80
        // variants with NVRTC 11.8): it is kept under CompileToPtx's key too, so a cold cache compiles a variant once
        // for both (CI's PTX and sm_80 checks, a device run that loads PTX after a CUBIN check).
        string ptxKey = KernelDiskCache.Key(".ptx", source, string.Join(" ", Options(target[3..])), $"nvrtc {major}.{minor}");
        if (KernelDiskCache.TryRead(ptxKey) is null) KernelDiskCache.TryWrite(ptxKey, Encoding.ASCII.GetBytes(ptx));
        return result;
    }

    private static byte[] Compile(string source, string name, string[] options, string target, bool cubin, ref string log, ref string ptx)
    {
        IntPtr raw;
        var sourceBytes = Encoding.UTF8.GetBytes(source + "\0");
        var nameBytes = Encoding.UTF8.GetBytes(name + ".cu\0");
        fixed (byte* s = sourceBytes)
        fixed (byte* n = nameBytes)
            NvrtcException.Check(nvrtcCreateProgram(&raw, s, n, 0, null, null), "nvrtcCreateProgram");
        using var program = new NvrtcProgramHandle(raw);
        var optionBytes = options.Select(o => Encoding.ASCII.GetBytes(o + "\0")).ToArray();
        var handles = optionBytes.Select(b => System.Runtime.InteropServices.GCHandle.Alloc(b, System.Runtime.InteropServices.GCHandleType.Pinned)).ToArray();
        int result;
        try
        {
            var pointers = stackalloc byte*[handles.Length];
            for (int i = 0; i < handles.Length; i++) pointers[i] = (byte*)handles[i].AddrOfPinnedObject();
            result = nvrtcCompileProgram(program, handles.Length, pointers);
        }
        finally
        {
            foreach (var h in handles) h.Free();
        }
        if (result != Success) throw new NvrtcException(result, $"nvrtcCompileProgram({name}, {target})", Log(program));
        log = Log(program);
        nuint size;
        if (cubin)
        {
            NvrtcException.Check(nvrtcGetCUBINSize(program, &size), "nvrtcGetCUBINSize");
            if (size == 0) throw new NvrtcException(CompilationError, $"nvrtcGetCUBINSize({name}, {target}) returned 0 bytes", log);
            var image = new byte[size];
            fixed (byte* p = image) NvrtcException.Check(nvrtcGetCUBIN(program, p), "nvrtcGetCUBIN");
            // The PTX of the same compilation (NVRTC keeps it for real architectures too): tells tensor-core kernels apart.
            NvrtcException.Check(nvrtcGetPTXSize(program, &size), "nvrtcGetPTXSize");
            var text = new byte[size];
            fixed (byte* p = text) NvrtcException.Check(nvrtcGetPTX(program, p), "nvrtcGetPTX");
            ptx = Encoding.ASCII.GetString(text).TrimEnd('\0');
            return image;
        }
        NvrtcException.Check(nvrtcGetPTXSize(program, &size), "nvrtcGetPTXSize");
        var ptxBytes = new byte[size];
        fixed (byte* p = ptxBytes) NvrtcException.Check(nvrtcGetPTX(program, p), "nvrtcGetPTX");
        return ptxBytes;
    }

    private static string Log(NvrtcProgramHandle program)
    {
        nuint size;
        if (nvrtcGetProgramLogSize(program, &size) != Success) return "(no log)";
        var log = new byte[size];
        fixed (byte* p = log) nvrtcGetProgramLog(program, p);
        return Encoding.UTF8.GetString(log).TrimEnd('\0');
    }

    private static (int, int, int[], string?) Query()
    {
        if (!NativeLibraries.TryGet(NativeLibraryKind.Nvrtc, out string description))
            return (0, 0, [], "NVRTC was " + description + $" (set {NativeLibraries.NvrtcPathVariable} to its file or directory)");
        try
        {
            int major, minor, count;
            NvrtcException.Check(nvrtcVersion(&major, &minor), "nvrtcVersion");
            NvrtcException.Check(nvrtcGetNumSupportedArchs(&count), "nvrtcGetNumSupportedArchs");
            var archs = new int[count];
            fixed (int* a = archs) NvrtcException.Check(nvrtcGetSupportedArchs(a), "nvrtcGetSupportedArchs");
            return (major, minor, archs, null);
        }
        catch (Exception e) when (e is NvrtcException or EntryPointNotFoundException or NullReferenceException or AccessViolationException)
        {
            return (0, 0, [], "NVRTC at " + description + " could not be queried (a stub library?): " + e.Message);
        }
    }
}
