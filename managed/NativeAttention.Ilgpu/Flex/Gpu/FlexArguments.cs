// ILGPU's kernel parameter ABI, as its generated text shows it (one kernel parameter of the arguments struct, views
// lowered), and the marshalling of a flex kernel's arguments to it:
// - PTX: one .param struct with C layout (natural alignment; an empty struct is one byte); an ArrayView<T> is 16 bytes,
//   8-aligned: the element pointer, then the length (long).
// - OpenCL C: every view of the struct, in field order (depth first), is a separate `global T*` kernel argument, then
//   the struct by value with the same offsets, where each view holds its element index (int) and length (long).
// NativeAttention's Launch passes buffers then one parameter block: on CUDA no buffers (pointers sit in the block), on
// OpenCL the views' buffers in field order, then the block.
using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using NativeAttention.Gpu;
using NativeAttention.Gpu.Cuda;
using NativeAttention.Gpu.OpenCl;

namespace NativeAttention.Ilgpu.Flex.Gpu;

/// <summary>The layout of a struct as an ILGPU kernel parameter, and the writer of its bytes.</summary>
internal static class FlexArguments
{
    private enum Kind { Scalar, View, Struct }

    private sealed record Field(FieldInfo Info, int Offset, Layout Layout);

    private sealed record Layout(Kind Kind, int Size, int Alignment, Type Type, Field[] Fields, int ElementSize)
    {
        public PropertyInfo? Buffer, Index, Length;
    }

    private static readonly ConcurrentDictionary<Type, Layout> Layouts = new();

    /// <summary>The parameter block's size in bytes for <paramref name="type"/>.</summary>
    public static int SizeOf(Type type) => LayoutOf(type, type.Name).Size;

    /// <summary>
    /// Checks that ILGPU can pass <paramref name="type"/> to a kernel by value: fields of unmanaged scalar types (no bool,
    /// no char), ArrayView&lt;T&gt; of unmanaged T, and structs of those; no reference fields. Returns null when it can,
    /// else the reason naming the offending field.
    /// </summary>
    public static string? Unsupported(Type type)
    {
        try
        {
            LayoutOf(type, type.Name);
            return null;
        }
        catch (NotSupportedException e)
        {
            return e.Message;
        }
    }

    /// <summary>
    /// Writes <paramref name="value"/> as ILGPU's kernel parameter for <paramref name="api"/>; the views' buffers go to
    /// <paramref name="buffers"/> on OpenCL (in kernel-argument order). Every view must be a view of
    /// <see cref="FlexDeviceMemory"/> whose buffer <paramref name="checkOwner"/> accepts, a view of an ILGPU buffer that
    /// <paramref name="foreign"/> wraps in a device buffer of the context (a buffer of the accelerator the context was
    /// created from), or a default, empty view. An empty view points at the start of <paramref name="pad"/> when it is
    /// given (zeroed memory: the view bounds checks read there when an empty view is read out of range).
    /// </summary>
    public static byte[] Write<T>(in T value, KernelApi api, List<DeviceBuffer?> buffers, Action<DeviceBuffer, string> checkOwner,
        Func<MemoryBuffer, string, DeviceBuffer?>? foreign = null, DeviceBuffer? pad = null) where T : struct
    {
        var layout = LayoutOf(typeof(T), typeof(T).Name);
        var block = new byte[Math.Max(layout.Size, 1)];
        Write(value, layout, block, 0, api, buffers, checkOwner, foreign, pad, typeof(T).Name);
        return block;
    }

    private static void Write(object boxed, Layout layout, byte[] block, int offset, KernelApi api, List<DeviceBuffer?> buffers,
        Action<DeviceBuffer, string> checkOwner, Func<MemoryBuffer, string, DeviceBuffer?>? foreign, DeviceBuffer? pad, string path)
    {
        switch (layout.Kind)
        {
            case Kind.Scalar:
            {
                // Marshal the primitive's bytes: StructureToPtr of a boxed primitive writes its value.
                var handle = GCHandle.Alloc(block, GCHandleType.Pinned);
                try { Marshal.StructureToPtr(boxed, handle.AddrOfPinnedObject() + offset, false); }
                finally { handle.Free(); }
                break;
            }
            case Kind.View:
            {
                var memory = layout.Buffer!.GetValue(boxed);
                long index = (long)layout.Index!.GetValue(boxed)!, length = (long)layout.Length!.GetValue(boxed)!;
                DeviceBuffer? device = null;
                if (memory is FlexDeviceMemory flex)
                {
                    device = flex.Device;
                    device.ThrowIfDisposed();
                    checkOwner(device, path);
                }
                else if (memory is MemoryBuffer ilgpu and not FlexHostMemory && foreign?.Invoke(ilgpu, path) is { } wrapped)
                {
                    // A buffer of the ILGPU accelerator the context was created from: its CUDA pointer or cl_mem, wrapped.
                    device = wrapped;
                    device.ThrowIfDisposed();
                    checkOwner(device, path);
                }
                else if (memory is not null)
                    throw new ArgumentException($"{path} is a view of {memory.GetType().Name}; the flex kernels of a NativeAttention context read views of its own device tensors (FlexViews.Of) or of buffers of the ILGPU accelerator it was created from.");
                else if (pad is not null && pad.ByteOffset % layout.ElementSize == 0)
                {
                    device = pad;
                    index = 0;
                    length = 0;
                }
                long element = device is null ? 0 : device.ByteOffset / layout.ElementSize + index;
                if (api == KernelApi.Cuda)
                {
                    ulong pointer = device is CudaBuffer cuda ? cuda.RootPointer + (ulong)(element * layout.ElementSize) : 0;
                    BitConverter.TryWriteBytes(block.AsSpan(offset), pointer);
                }
                else
                {
                    if (element > int.MaxValue)
                        throw new NotSupportedException($"{path} starts at element {element} of its OpenCL buffer; ILGPU's OpenCL views hold a 32-bit index.");
                    BitConverter.TryWriteBytes(block.AsSpan(offset), (int)element);
                    buffers.Add(device);
                }
                BitConverter.TryWriteBytes(block.AsSpan(offset + 8), length);
                break;
            }
            default:
                foreach (var field in layout.Fields)
                    Write(field.Info.GetValue(boxed)!, field.Layout, block, offset + field.Offset, api, buffers, checkOwner, foreign, pad, path + "." + field.Info.Name);
                break;
        }
    }

    private static Layout LayoutOf(Type type, string path)
    {
        if (Layouts.TryGetValue(type, out var known)) return known;
        var layout = Build(type, path);
        Layouts.TryAdd(type, layout);
        return layout;
    }

    private static Layout Build(Type type, string path)
    {
        if (type.IsEnum) type = Enum.GetUnderlyingType(type);
        if (type == typeof(bool) || type == typeof(char))
            throw new NotSupportedException($"{path} is a {type.Name}: OpenCL kernel arguments cannot hold it; use an int.");
        if (type.IsPrimitive)
        {
            if (type == typeof(IntPtr) || type == typeof(UIntPtr))
                throw new NotSupportedException($"{path} is a {type.Name}: a host pointer means nothing on the device.");
            int size = Marshal.SizeOf(type);
            return new Layout(Kind.Scalar, size, size, type, [], 0);
        }
        if (type == typeof(System.Half) || type == typeof(ILGPU.Half)) return new Layout(Kind.Scalar, 2, 2, type, [], 0);
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(ArrayView<>))
        {
            var element = type.GetGenericArguments()[0];
            if (element == typeof(bool) || element == typeof(char))
                throw new NotSupportedException($"{path} is a view of {element.Name}; use int elements.");
            int elementSize = Marshal.SizeOf(element.IsEnum ? Enum.GetUnderlyingType(element) : element);
            return new Layout(Kind.View, 16, 8, type, [], elementSize)
            {
                Buffer = Property(type, "Buffer"), Index = Property(type, "Index"), Length = Property(type, "Length"),
            };
        }
        if (!type.IsValueType)
            throw new NotSupportedException($"{path} is of the class type {type.Name}: a kernel argument holds value types only (scalars, ILGPU ArrayViews and structs of them).");
        if (type.StructLayoutAttribute is { Value: not LayoutKind.Sequential })
            throw new NotSupportedException($"{path} has {type.StructLayoutAttribute.Value} layout; ILGPU passes sequential structs only.");
        var infos = type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic);
        Array.Sort(infos, (x, y) => x.MetadataToken.CompareTo(y.MetadataToken));   // ILGPU's field order
        var fields = new List<Field>();
        int offset = 0, alignment = 1;
        foreach (var info in infos)
        {
            var inner = LayoutOf(info.FieldType, path + "." + info.Name);
            offset = Align(offset, inner.Alignment);
            fields.Add(new Field(info, offset, inner));
            offset += inner.Size;
            alignment = Math.Max(alignment, inner.Alignment);
        }
        // An empty struct occupies one byte, as in .NET and in ILGPU's generated structs.
        int total = fields.Count == 0 ? 1 : Align(offset, alignment);
        return new Layout(Kind.Struct, total, alignment, type, [.. fields], 0);
    }

    private static PropertyInfo Property(Type view, string name) =>
        view.GetProperty(name, BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic)
        ?? throw new InvalidOperationException($"ILGPU's {view.Name} has no {name} property; this ILGPU version is not the one FlexArguments reads.");

    private static int Align(int offset, int alignment) => (offset + alignment - 1) / alignment * alignment;
}
