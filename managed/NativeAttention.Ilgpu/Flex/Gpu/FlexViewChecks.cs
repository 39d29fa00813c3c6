// Bounds checks of the view fields a score or mask modification reads on CUDA and OpenCL. ILGPU compiles ArrayView's
// indexer to a bare address computation on the device (its Trace.Assert is CPU-only), so a modification that reads a
// table out of range would read whatever lies there. While FlexCompiler compiles a flex kernel, every ArrayView<T>
// indexer call made by code outside the flex kernels themselves (the user's structs) is remapped to a checked read
// (ILGPU's RemappedIntrinsics): in range it is the same read; out of range it reads the nearest element (or a zeroed pad
// for an empty view) and records the first failure of its work-group in a few words of dynamic shared memory. Each
// kernel that calls modifications clears that record at its start and, at its end, copies a group's record into a small
// device error buffer passed with its arguments (first group wins). The host reads the buffer after the launch and
// throws a FlexModificationException naming the struct, the view and the index.
using System.Collections.Concurrent;
using System.Reflection;
using ILGPU;
using ILGPU.Frontend;
using ILGPU.Frontend.Intrinsic;

namespace NativeAttention.Ilgpu.Flex.Gpu;

/// <summary>The device side of the view bounds checks (called from compiled kernels) and the host side that reports a failure.</summary>
internal static class FlexViewChecks
{
    /// <summary>Words of the failure record: flag, site, index (low, high), length (low, high), two spare.</summary>
    public const int RecordInts = 8;

    /// <summary>Dynamic shared memory of every kernel that calls modifications: one record per work-group.</summary>
    public const int SharedBytes = RecordInts * sizeof(int);

    /// <summary>Bytes of zeros at the start of the error buffer: what an empty view (no memory) points at, so a read of it is harmless.</summary>
    public const int PadBytes = 64;

    /// <summary>Ints of the device error buffer: the pad, then the record.</summary>
    public const int BufferInts = PadBytes / sizeof(int) + RecordInts;

    // ---- Device side ----

    /// <summary>Clears this work-group's record; every work-item of the group calls it before any modification runs.</summary>
    public static void Begin()
    {
        var record = SharedMemory.GetDynamic<int>();
        if (Group.IdxX < RecordInts) record[Group.IdxX] = 0;
        Group.Barrier();
    }

    /// <summary>Copies this work-group's record to <paramref name="errors"/> when it holds a failure and no group did so first; every work-item calls it.</summary>
    public static void End(ArrayView<int> errors)
    {
        var record = SharedMemory.GetDynamic<int>();   // by every work-item: ILGPU's CPU runtime hands it out group-wide
        Group.Barrier();
        if (Group.IdxX == 0)
        {
            if (record[0] != 0 && errors.Length >= RecordInts && Atomic.CompareExchange(ref errors[0], 0, 1) == 0)
            {
                for (int i = 1; i < RecordInts; i++) errors[i] = record[i];
            }
        }
    }

    /// <summary>The checked form of <c>ArrayView&lt;T&gt;[int]</c>.</summary>
    public static ref T ReadInt<T>(in ArrayView<T> view, int index, int site) where T : unmanaged => ref ReadLong(view, index, site);

    /// <summary>The checked form of <c>ArrayView&lt;T&gt;[Index1D]</c>.</summary>
    public static ref T ReadIndex<T>(in ArrayView<T> view, Index1D index, int site) where T : unmanaged => ref ReadLong(view, index.X, site);

    /// <summary>The checked form of <c>ArrayView&lt;T&gt;[LongIndex1D]</c>.</summary>
    public static ref T ReadLongIndex<T>(in ArrayView<T> view, LongIndex1D index, int site) where T : unmanaged => ref ReadLong(view, index.X, site);

    /// <summary>The checked form of <c>ArrayView&lt;T&gt;[long]</c>: out of range, records the failure and reads a safe element.</summary>
    public static ref T ReadLong<T>(in ArrayView<T> view, long index, int site) where T : unmanaged
    {
        long length = view.Length;
        if ((ulong)index < (ulong)length) return ref view[index];
        Fail(site, index, length);
        // The nearest element (one address space: no generic pointer for PoCL); an empty view points at the zeroed pad.
        return ref view[index < 0 || length == 0 ? 0 : length - 1];
    }

    private static void Fail(int site, long index, long length)
    {
        var record = SharedMemory.GetDynamic<int>();
        if (Atomic.CompareExchange(ref record[0], 0, 1) == 0)
        {
            record[1] = site;
            record[2] = (int)index;
            record[3] = (int)(index >> 32);
            record[4] = (int)length;
            record[5] = (int)(length >> 32);
        }
    }

    // ---- Compile time: the remapping ----

    private static readonly Lock RegisterLock = new();
    private static readonly HashSet<Type> Registered = [];
    private static readonly ConcurrentDictionary<int, (MethodBase Caller, Type Element)> Sites = new();
    private static Context? _target;
    private static volatile bool _enabled;

    /// <summary>
    /// While true (FlexCompiler sets it under its compile lock), ILGPU compilations in <paramref name="context"/> check the view reads
    /// of every element type registered by <see cref="Register"/>.
    /// </summary>
    public static void Enable(Context context, bool enabled)
    {
        _target = context;
        _enabled = enabled;
    }

    /// <summary>The element types every compile checks, besides those of the modifications' own view fields.</summary>
    private static readonly Type[] Common =
        [typeof(float), typeof(int), typeof(uint), typeof(long), typeof(ulong), typeof(double), typeof(short), typeof(ushort),
         typeof(byte), typeof(sbyte), typeof(ILGPU.Half)];

    /// <summary>
    /// Remaps the indexers of <c>ArrayView&lt;T&gt;</c> for the common element types and <paramref name="elements"/> (once
    /// each, per process). The remapping applies only to compiles in FlexCompiler's own ILGPU context while it enables
    /// it, so the application's own ILGPU kernels are unchanged. ILGPU's remapping table is process-wide and read
    /// without a lock: it is written here once per element type (the common ones on the first flex compile), under
    /// FlexCompiler's compile lock.
    /// </summary>
    public static void Register(IEnumerable<Type> elements)
    {
        lock (RegisterLock)
        {
            foreach (var element in Common.Concat(elements))
            {
                if (!Registered.Add(element)) continue;
                var view = typeof(ArrayView<>).MakeGenericType(element);
                Remap(view, typeof(int), nameof(ReadInt), element);
                Remap(view, typeof(long), nameof(ReadLong), element);
                Remap(view, typeof(Index1D), nameof(ReadIndex), element);
                Remap(view, typeof(LongIndex1D), nameof(ReadLongIndex), element);
            }
        }
    }

    private static void Remap(Type view, Type indexType, string checkedName, Type element)
    {
        var indexer = view.GetProperty("Item", [indexType])?.GetMethod
            ?? throw new InvalidOperationException($"ILGPU's {view.Name} has no indexer taking {indexType.Name}; this ILGPU version is not the one FlexViewChecks remaps.");
        var target = typeof(FlexViewChecks).GetMethod(checkedName, BindingFlags.Public | BindingFlags.Static)!.MakeGenericMethod(element);
        RemappedIntrinsics.AddRemapping(indexer, (ref InvocationContext invocation) =>
        {
            if (!_enabled || !ReferenceEquals(invocation.Context.Context, _target)) return;
            var caller = invocation.CallerMethod;
            if (caller.DeclaringType is { } type && type.Assembly == typeof(FlexViewChecks).Assembly && type.Namespace == typeof(FlexViewChecks).Namespace)
                return;   // the flex kernels' own arguments are sized by the host
            int site = Site(caller, element);
            Sites.TryAdd(site, (caller, element));
            invocation.Method = target;
            invocation.Arguments.Add(invocation.Builder.CreatePrimitiveValue(invocation.Location, site));
        });
    }

    /// <summary>A stable id of a view read: its method and element type, hashed (the text is cached on disk across processes).</summary>
    internal static int Site(MethodBase caller, Type element)
    {
        string text = $"{caller.DeclaringType?.FullName}::{caller}|{element.FullName}";
        uint hash = 2166136261;
        foreach (char c in text) hash = (hash ^ c) * 16777619;
        return (int)(hash & 0x7FFFFFFF) | 1;
    }

    // ---- Host side: the report ----

    /// <summary>
    /// Throws a <see cref="FlexModificationException"/> when <paramref name="errors"/> (the device buffer's contents after
    /// the launch) holds a failure of a view read made by <paramref name="score"/> or <paramref name="mask"/>.
    /// </summary>
    public static void ThrowIfFailed(ReadOnlySpan<int> errors, string backend, Type score, object? scoreValue, Type mask, object? maskValue, string kernel)
    {
        var record = errors.Slice(PadBytes / sizeof(int), RecordInts);
        if (record[0] == 0) return;
        int site = record[1];
        long index = (uint)record[2] | ((long)record[3] << 32), length = (uint)record[4] | ((long)record[5] << 32);
        var (caller, element) = Find(site, score, mask);
        bool isScore = caller?.DeclaringType is { } declaring
            ? Reaches(score, declaring) || !Reaches(mask, declaring)
            : FlexViewFields.HasViews(score) || !FlexViewFields.HasViews(mask);
        var (type, role, value) = isScore ? (score, "score", scoreValue) : (mask, "mask", maskValue);
        string field = element is null || caller?.DeclaringType is null ? "a view" : FieldOf(value, role == "score" ? "scoreMod" : "maskMod", caller.DeclaringType, element, length);
        string reader = caller is null ? "" : $" read by {caller.DeclaringType?.Name}.{caller.Name}";
        var inner = new IndexOutOfRangeException($"Index {index} is outside {field} (length {length}{(element is null ? "" : $", {element.Name} elements")}){reader}; the read gave the view's nearest element instead.");
        throw new FlexModificationException(type, role, $"on the {backend} device while {kernel} ran", inner);
    }

    /// <summary>The method and element type of a site: from this process's compiles, else by hashing the methods the modifications' types declare.</summary>
    private static (MethodBase? Caller, Type? Element) Find(int site, Type score, Type mask)
    {
        if (Sites.TryGetValue(site, out var known)) return known;
        var types = new HashSet<Type>();
        Collect(score, types, 0);
        Collect(mask, types, 0);
        var elements = types.SelectMany(t => t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
            .Select(f => f.FieldType).Where(IsView).Select(v => v.GetGenericArguments()[0]).Concat(Common).Distinct().ToArray();
        foreach (var type in types)
        foreach (var method in type.GetMethods(BindingFlags.Instance | BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
        foreach (var element in elements)
            if (Site(method, element) == site) return (method, element);
        return (null, null);
    }

    private static bool Reaches(Type root, Type target)
    {
        var types = new HashSet<Type>();
        Collect(root, types, 0);
        return types.Contains(target);
    }

    private static void Collect(Type type, HashSet<Type> types, int depth)
    {
        if (!type.IsValueType || type.IsPrimitive || type.IsEnum || depth > 16 || IsView(type) || !types.Add(type)) return;
        foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
            Collect(field.FieldType, types, depth + 1);
    }

    private static bool IsView(Type type) => type.IsGenericType && type.GetGenericTypeDefinition() == typeof(ArrayView<>);

    /// <summary>The view field of <paramref name="declaring"/> inside <paramref name="value"/> with this element type and length, by path, when exactly one fits.</summary>
    private static string FieldOf(object? value, string root, Type declaring, Type element, long length)
    {
        var matches = new List<string>();
        var all = new List<string>();
        Walk(value, root, 0);
        return matches.Count == 1 ? $"the view {matches[0]}" : all.Count == 1 ? $"the view {all[0]}" : all.Count > 1 ? $"a view ({string.Join(" or ", all)})" : "a view";

        void Walk(object? current, string path, int depth)
        {
            if (current is null || depth > 16) return;
            var type = current.GetType();
            if (!type.IsValueType || type.IsPrimitive || type.IsEnum || IsView(type)) return;
            foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
            {
                string name = path + "." + field.Name;
                if (IsView(field.FieldType))
                {
                    if (type != declaring || field.FieldType.GetGenericArguments()[0] != element) continue;
                    all.Add(name);
                    if (((IArrayView)field.GetValue(current)!).Length == length) matches.Add(name);
                }
                else Walk(field.GetValue(current), name, depth + 1);
            }
        }
    }
}
