// ILGPU as a compiler only: the flex kernels, specialised for the user's structs, to PTX (sm_80) and OpenCL C text with
// no device and no ILGPU accelerator, cached in memory and on disk (NativeAttention's kernel cache). The text is then
// loaded by NativeAttention's own runtime.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Backends;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.OpenCL;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;
using NativeAttention.Gpu;
using NativeAttention.Gpu.Cuda;

namespace NativeAttention.Ilgpu.Flex.Gpu;

/// <summary>One kernel as text: the module name NativeAttention caches it under, its entry point, the text and the size of its parameter block.</summary>
/// <param name="Name">The module name, unique per kernel method (struct types and tile) and dialect.</param>
/// <param name="EntryPoint">The kernel's symbol in the text.</param>
/// <param name="Text">PTX (prefixed with <see cref="CudaModule.PtxMarker"/>) or OpenCL C.</param>
/// <param name="ParameterBytes">The parameter block the text declares (PTX), or that the arguments struct takes (OpenCL).</param>
/// <param name="FromCache">True when the text came from the disk cache rather than from ILGPU.</param>
/// <param name="CompileTime">ILGPU's compile time (zero when the text came from the disk cache).</param>
internal sealed record FlexKernelText(string Name, string EntryPoint, string Text, int ParameterBytes, bool FromCache, TimeSpan CompileTime);

internal static partial class FlexCompiler
{
    /// <summary>Bump when the text's post-processing changes: part of every disk-cache key.</summary>
    private const string PatchVersion = "flex-text-2";

    // ILGPU's context and backends (under CompileLock). The context keeps the IR of every method it compiled; a compile
    // that fails inside ILGPU is retried once in a fresh context (see CompileRaw).
    private static Context? _ilgpu;
    private static PTXBackend? _ptx;
    private static CLBackend? _openCl;
    private static readonly Lock CompileLock = new();
    private static readonly ConcurrentDictionary<(MethodInfo Kernel, KernelApi Api, bool Checks), Lazy<FlexKernelText>> Texts = new();

    /// <summary>
    /// The text of <paramref name="kernel"/> (a closed generic method of <see cref="FlexKernels"/>) for <paramref name="api"/>:
    /// from memory, from the disk cache, or compiled by ILGPU now.
    /// </summary>
    /// <exception cref="ArgumentException">ILGPU cannot compile one of the modification structs; the message names it and the reason.</exception>
    public static FlexKernelText Get(MethodInfo kernel, KernelApi api, params (Type Type, string Argument)[] modifications) =>
        Get(kernel, api, viewChecks: true, modifications);

    /// <summary>
    /// As <see cref="Get(MethodInfo, KernelApi, ValueTuple{Type, string}[])"/>; <paramref name="viewChecks"/> false compiles the
    /// modifications' view reads unchecked (<see cref="FlexViewChecks"/>), for measuring what the checks cost.
    /// </summary>
    public static FlexKernelText Get(MethodInfo kernel, KernelApi api, bool viewChecks, params (Type Type, string Argument)[] modifications)
    {
        var entry = Texts.GetOrAdd((kernel, api, viewChecks), key => new Lazy<FlexKernelText>(() => Load(key.Kernel, key.Api, key.Checks, modifications)));
        try
        {
            return entry.Value;
        }
        catch
        {
            Texts.TryRemove(new KeyValuePair<(MethodInfo, KernelApi, bool), Lazy<FlexKernelText>>((kernel, api, viewChecks), entry));   // failures are not cached
            throw;
        }
    }

    private static FlexKernelText Load(MethodInfo kernel, KernelApi api, bool viewChecks, (Type Type, string Argument)[] modifications)
    {
        string name = ModuleName(kernel, api) + (viewChecks ? "" : ".unchecked");
        string key = KernelDiskCache.Key(api == KernelApi.Cuda ? ".flex.ptx" : ".flex.cl", name, PatchVersion, IdentityOf(kernel));
        if (KernelDiskCache.TryRead(key) is { } cached)
        {
            string cachedText = Encoding.UTF8.GetString(cached);
            return Describe(name, cachedText, api, fromCache: true, TimeSpan.Zero);
        }
        foreach (var (type, argument) in modifications)
            if (FlexArguments.Unsupported(type) is { } reason)
                throw new ArgumentException($"ILGPU cannot pass the modification struct {type.FullName} to a kernel: {reason}", argument);
        var watch = Stopwatch.StartNew();
        string text;
        try
        {
            text = CompileRaw(kernel, api, viewChecks);
        }
        catch (Exception e) when (e is not ArgumentException)
        {
            // Attribute the failure: compile each modification alone in a probe kernel.
            foreach (var (type, argument) in modifications)
                if (ProbeFailure(type) is { } reason)
                    throw new ArgumentException($"ILGPU cannot compile the modification struct {type.FullName}: {reason}", argument, e);
            throw new InvalidOperationException($"ILGPU could not compile {name}: {Reason(e)}", e);
        }
        text = api == KernelApi.Cuda ? CudaModule.PtxMarker + text : PatchOpenCl(text);
        var result = Describe(name, text, api, fromCache: false, watch.Elapsed);
        KernelDiskCache.TryWrite(key, Encoding.UTF8.GetBytes(text));
        return result;
    }

    /// <summary>
    /// Compiles <paramref name="kernel"/> with ILGPU's backend for <paramref name="api"/>: its text as ILGPU wrote it, with
    /// the modifications' view reads bounds-checked (<see cref="FlexViewChecks"/>) unless <paramref name="viewChecks"/> is false.
    /// </summary>
    internal static string CompileRaw(MethodInfo kernel, KernelApi api, bool viewChecks = true)
    {
        var description = EntryPointDescription.FromExplicitlyGroupedKernel(kernel);
        lock (CompileLock)
        {
            if (viewChecks) FlexViewChecks.Register(ViewElements(kernel));
            try
            {
                return Compile(description, api, viewChecks);
            }
            catch (Exception e) when (e is not ArgumentException && _ilgpu is not null)
            {
                // Seen in full test runs (not alone): ILGPU's address-space inference failing with an index out of range
                // on IR the shared context accumulated from earlier kernels. A fresh context compiles the kernel alone.
                Reset();
                return Compile(description, api, viewChecks);
            }
        }
    }

    private static string Compile(EntryPointDescription description, KernelApi api, bool viewChecks)
    {
        _ilgpu ??= Context.Create(builder => builder.Optimize(OptimizationLevel.O2).EnableAlgorithms());
        FlexViewChecks.Enable(_ilgpu, viewChecks);
        try
        {
            if (api == KernelApi.Cuda)
            {
                _ptx ??= new PTXBackend(_ilgpu, CudaArchitecture.SM_80, CudaInstructionSet.ISA_70, null!);
                return ((PTXCompiledKernel)_ptx.Compile(description, KernelSpecialization.Empty)).PTXAssembly;
            }
            _openCl ??= new CLBackend(_ilgpu, NoExtensions(), CLDeviceVendor.Other, CLCVersion.CL20);
            return ((CLCompiledKernel)_openCl.Compile(description, KernelSpecialization.Empty)).Source;
        }
        finally
        {
            FlexViewChecks.Enable(_ilgpu, false);
        }
    }

    /// <summary>Drops ILGPU's context and backends (under CompileLock): the next compile starts a fresh one.</summary>
    private static void Reset()
    {
        _ptx?.Dispose();
        _openCl?.Dispose();
        _ilgpu?.Dispose();
        (_ptx, _openCl, _ilgpu) = (null, null, null);
    }

    /// <summary>The element types of the views in the kernel's type arguments (the modifications' fields, nested structs included).</summary>
    private static IEnumerable<Type> ViewElements(MethodInfo kernel)
    {
        var found = new HashSet<Type>();
        var seen = new HashSet<Type>();
        foreach (var type in kernel.GetGenericArguments()) Walk(type, 0);
        return found;

        void Walk(Type type, int depth)
        {
            if (!type.IsValueType || type.IsPrimitive || type.IsEnum || depth > 16 || !seen.Add(type)) return;
            if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(ArrayView<>))
            {
                found.Add(type.GetGenericArguments()[0]);
                return;
            }
            foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic)) Walk(field.FieldType, depth + 1);
        }
    }

    /// <summary>
    /// Makes ILGPU's OpenCL C build as OpenCL C 1.2 on every device (PoCL included): its group barrier is OpenCL 2.0's
    /// <c>work_group_barrier(CLK_GLOBAL_MEM_FENCE)</c>, which neither exists in 1.2 nor orders local memory, the memory
    /// the flex kernels share through; it becomes <c>barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE)</c>.
    /// </summary>
    /// <exception cref="InvalidOperationException">The text uses what PoCL cannot build: the generic address space or sub-group functions.</exception>
    /// <remarks>
    /// It also makes the view bounds checks (<see cref="FlexViewChecks"/>) build as OpenCL C 1.2: ILGPU passes dynamic
    /// shared memory as a <c>local</c> kernel argument and declares its views as program-scope variables (OpenCL 2.0);
    /// both become kernel-scope declarations over a static <see cref="FlexViewChecks.SharedBytes"/>-byte local array, so
    /// the kernel's arguments are the ones FlexArguments marshals. Its compare-exchange is C11's
    /// <c>atomic_compare_exchange_strong</c> (OpenCL 2.0), which becomes OpenCL 1.1's <c>atomic_cmpxchg</c>.
    /// </remarks>
    internal static string PatchOpenCl(string source)
    {
        string patched = WorkGroupBarrier().Replace(source, "barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE)");
        if (patched.Contains("work_group_barrier", StringComparison.Ordinal))
            throw new InvalidOperationException("ILGPU's OpenCL C has a work_group_barrier this patch does not recognise.");
        patched = CompareExchange().Replace(patched, "$2 = atomic_cmpxchg($1, $2, $3);");
        if (patched.Contains("atomic_compare_exchange", StringComparison.Ordinal))
            throw new InvalidOperationException("ILGPU's OpenCL C has a compare-exchange this patch does not recognise.");
        if (DynamicSharedParameters().Match(patched) is { Success: true } parameters)
        {
            var declarations = new StringBuilder();
            declarations.Append($"\n\tlocal int flex_dynamic_shared[{FlexViewChecks.SharedBytes / sizeof(int)}];\n");
            declarations.Append("\tlocal char* dynamic_shared_memory = (local char*)flex_dynamic_shared;\n");
            declarations.Append($"\tint dynamic_shared_memory_length = {FlexViewChecks.SharedBytes};\n");
            foreach (Match variable in SharedVariables().Matches(patched)) declarations.Append('\t').Append(variable.Value.Trim()).Append('\n');
            patched = SharedVariables().Replace(patched, "");
            patched = DynamicSharedParameters().Replace(patched, "");
            int body = patched.IndexOf('{', OpenClEntry().Match(patched).Index);
            patched = patched.Insert(body + 1, declarations.ToString());
        }
        if (patched.Contains("dynamic_shared_memory,", StringComparison.Ordinal) || SharedVariables().IsMatch(patched))
            throw new InvalidOperationException("ILGPU's OpenCL C declares dynamic shared memory in a way this patch does not recognise.");
        if (patched.Contains("generic ", StringComparison.Ordinal) || patched.Contains("sub_group_", StringComparison.Ordinal))
            throw new InvalidOperationException("ILGPU's OpenCL C uses the generic address space or sub-group functions, which PoCL cannot build.");
        return patched;
    }

    [GeneratedRegex(@"work_group_barrier\s*\(\s*CLK_(GLOBAL|LOCAL)_MEM_FENCE(\s*\|\s*CLK_(GLOBAL|LOCAL)_MEM_FENCE)?\s*\)")]
    private static partial Regex WorkGroupBarrier();

    [GeneratedRegex(@"atomic_compare_exchange_strong\s*\(\s*\(atomic_int\s*\*\)\s*(\w+)\s*,\s*\(int\s*\*\)\s*&\s*(\w+)\s*,\s*\(int\)\s*(\w+)\s*\)\s*;")]
    private static partial Regex CompareExchange();

    [GeneratedRegex(@"\s*local\s+char\s*\*\s*dynamic_shared_memory\s*,\s*int\s+dynamic_shared_memory_length\s*,?")]
    private static partial Regex DynamicSharedParameters();

    /// <summary>ILGPU's program-scope declarations of the views of dynamic shared memory and their lengths.</summary>
    [GeneratedRegex(@"^(local\s+\w+\s*\*\s*shared_var_\d+|int\s+shared_var_len_\d+)\s*;[ \t]*\r?\n", RegexOptions.Multiline)]
    private static partial Regex SharedVariables();

    [GeneratedRegex(@"\.visible\s+\.entry\s+(\w+)\s*\(\s*\.param\s+\.align\s+\d+\s+\.b8\s+\w+\[(\d+)\]\s*\)")]
    private static partial Regex PtxEntry();

    [GeneratedRegex(@"kernel\s+void\s+(\w+)\s*\(")]
    private static partial Regex OpenClEntry();

    private static FlexKernelText Describe(string name, string text, KernelApi api, bool fromCache, TimeSpan compileTime)
    {
        if (api == KernelApi.Cuda)
        {
            var entries = PtxEntry().Matches(text);
            if (entries.Count != 1)
                throw new InvalidOperationException($"{name}: expected one PTX entry with one parameter block, found {entries.Count}.");
            return new FlexKernelText(name, entries[0].Groups[1].Value, text, int.Parse(entries[0].Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture), fromCache, compileTime);
        }
        var kernels = OpenClEntry().Matches(text);
        if (kernels.Count != 1) throw new InvalidOperationException($"{name}: expected one OpenCL kernel, found {kernels.Count}.");
        return new FlexKernelText(name, kernels[0].Groups[1].Value, text, -1, fromCache, compileTime);
    }

    /// <summary>A module name per kernel method and dialect: the method with its type arguments, hashed.</summary>
    private static string ModuleName(MethodInfo kernel, KernelApi api)
    {
        string signature = string.Join(",", kernel.GetGenericArguments().Select(t => t.AssemblyQualifiedName));
        string hash = KernelDiskCache.Key("", kernel.Name, signature)[..16];
        return $"flex_{kernel.Name.ToLowerInvariant()}.{api.ToString().ToLowerInvariant()}.{hash}";
    }

    /// <summary>What decides the text besides the name: ILGPU's version and the code of every assembly the type arguments come from.</summary>
    private static string IdentityOf(MethodInfo kernel)
    {
        var assemblies = kernel.GetGenericArguments().SelectMany(Assemblies).Append(typeof(FlexKernels).Assembly).Append(typeof(Context).Assembly)
            .Append(typeof(IScoreMod).Assembly).Distinct();
        return string.Join(";", assemblies.Select(a => a.FullName + "@" + a.ManifestModule.ModuleVersionId).Order(StringComparer.Ordinal));

        static IEnumerable<Assembly> Assemblies(Type type) =>
            type.IsGenericType ? type.GetGenericArguments().SelectMany(Assemblies).Append(type.Assembly) : [type.Assembly];
    }

    /// <summary>Compiles <paramref name="type"/>'s modification alone; null when ILGPU can, else the reason it cannot.</summary>
    private static string? ProbeFailure(Type type)
    {
        string probe = typeof(IScoreMod).IsAssignableFrom(type) ? nameof(FlexProbes.Score) : nameof(FlexProbes.Mask);
        var method = typeof(FlexProbes).GetMethod(probe)!.MakeGenericMethod(type);
        try
        {
            CompileRaw(method, KernelApi.OpenCl);
            CompileRaw(method, KernelApi.Cuda);
            return null;
        }
        catch (Exception e)
        {
            return Reason(e);
        }
    }

    /// <summary>The innermost messages of an ILGPU failure, which say what it could not compile.</summary>
    private static string Reason(Exception e)
    {
        var messages = new List<string>();
        for (Exception? inner = e; inner is not null; inner = inner is AggregateException a && a.InnerExceptions.Count > 0 ? a.InnerExceptions[0] : inner.InnerException)
            if (!messages.Contains(inner.Message)) messages.Add(inner.Message);
        return string.Join(" ", messages.Skip(Math.Max(0, messages.Count - 2)));
    }

    private static CLCapabilityContext NoExtensions()
    {
        // The public constructor takes one flag per optional capability (fp16, fp64, int64 atomics, sub-groups, ...): none.
        var constructor = typeof(CLCapabilityContext).GetConstructors().Single(c => c.GetParameters().All(p => p.ParameterType == typeof(bool)));
        return (CLCapabilityContext)constructor.Invoke(constructor.GetParameters().Select(_ => (object)false).ToArray());
    }
}

/// <summary>Kernels that call one modification, to tell which struct ILGPU cannot compile.</summary>
internal static class FlexProbes
{
    public static void Score<TScore>(TScore mod, ArrayView<float> output) where TScore : struct, IScoreMod =>
        output[Grid.IdxX] = mod.Score(output[Grid.IdxX], 0, 0, Grid.IdxX, ILGPU.Group.IdxX);

    public static void Mask<TMask>(TMask mod, ArrayView<float> output) where TMask : struct, IMaskMod =>
        output[Grid.IdxX] = mod.Visible(0, 0, Grid.IdxX, ILGPU.Group.IdxX) ? 1.0f : 0.0f;
}
