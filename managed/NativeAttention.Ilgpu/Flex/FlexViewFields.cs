// The ILGPU view fields of a score or mask modification, and their check against the context a call runs on.
using System.Collections.Concurrent;
using System.Reflection;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using NativeAttention.Gpu;
using NativeAttention.Ilgpu.Flex.Gpu;

namespace NativeAttention.Ilgpu.Flex;

/// <summary>
/// Finds the <see cref="ArrayView{T}"/> fields of a modification struct (nested value-type fields included; arrays and
/// classes are not searched) and checks, before anything runs, that each can be read where the call runs.
/// </summary>
internal static class FlexViewFields
{
    private static readonly ConcurrentDictionary<Type, FieldInfo[][]> Paths = new();

    /// <summary>True when <paramref name="type"/> holds an ILGPU view, directly or in a nested struct.</summary>
    public static bool HasViews(Type type) => PathsOf(type).Length > 0;

    /// <summary>
    /// Checks every view field of <paramref name="value"/> against <paramref name="context"/>: on the CPU a view must be of
    /// host memory (<see cref="FlexViews.Of{T}"/> of a host tensor, or a buffer of the CPU accelerator the context was
    /// created from); on CUDA and OpenCL of the context's own device memory (<see cref="FlexViews.Of{T}"/> of one of its
    /// device tensors, or a buffer of the accelerator it was created from). A struct with no view costs nothing.
    /// </summary>
    /// <exception cref="ArgumentException">A view is of memory the context cannot read; <paramref name="argument"/> is the parameter name, the message names the field.</exception>
    /// <exception cref="ObjectDisposedException">A view's tensor or buffer was disposed.</exception>
    public static void Check<T>(AttentionContext context, in T value, string argument) where T : struct
    {
        var paths = PathsOf(typeof(T));
        if (paths.Length == 0) return;
        object boxed = value;
        foreach (var chain in paths)
        {
            object current = boxed;
            string path = argument;
            foreach (var field in chain)
            {
                current = field.GetValue(current)!;
                path += "." + field.Name;
            }
            Check(context, ((IArrayView)current).Buffer, path, argument);
        }
    }

    private static void Check(AttentionContext context, MemoryBuffer? buffer, string path, string argument)
    {
        if (buffer is null) return;   // a default (empty) view
        bool onHost = context is not GpuContext;
        switch (buffer)
        {
            case FlexHostMemory host:
                host.Storage.ThrowIfDisposed();
                if (!onHost)
                    throw new ArgumentException(
                        $"{path} is a view of a host tensor; the {context.Backend} context's flex kernels read views of its own device tensors (FlexViews.Of of a tensor it allocated or uploaded).", argument);
                return;
            case FlexDeviceMemory device:
                device.Device.ThrowIfDisposed();
                if (onHost)
                    throw new ArgumentException(
                        $"{path} is a view of a device tensor; the {context.Backend} context reads views of host tensors (FlexViews.Of of a host TensorView).", argument);
                try
                {
                    ((IGpuKernelHost)context).CheckOwner(device.Device.View(checked((int)Math.Min(device.Device.Length, int.MaxValue))), path);
                }
                catch (ArgumentException e)
                {
                    throw new ArgumentException($"{path} is a view of another context's device tensor: {e.Message}", argument, e);
                }
                return;
            default:
                ObjectDisposedException.ThrowIf(buffer.IsDisposed, buffer);
                var owner = IlgpuAttention.Of(context);
                if (owner is null || !ReferenceEquals(buffer.Accelerator, owner.Accelerator))
                    throw new ArgumentException(
                        $"{path} is a view of a buffer of ILGPU accelerator '{buffer.Accelerator?.Name}'; the {context.Backend} context reads views of the accelerator it was created from by IlgpuAttention.Create" +
                        (owner is null ? " (it was not)" : $" ('{owner.Accelerator.Name}')") + ", or views made by FlexViews.Of.", argument);
                if (onHost != buffer is CPUMemoryBuffer)
                    throw new ArgumentException(
                        $"{path} is a view of {(buffer is CPUMemoryBuffer ? "host" : "device")} memory of accelerator '{owner.Accelerator.Name}'; the {context.Backend} context reads {(onHost ? "host" : "device")} memory.", argument);
                return;
        }
    }

    private static FieldInfo[][] PathsOf(Type type) => Paths.GetOrAdd(type, static t =>
    {
        var found = new List<FieldInfo[]>();
        Collect(t, [], found, 0);
        return [.. found];
    });

    private static void Collect(Type type, List<FieldInfo> chain, List<FieldInfo[]> found, int depth)
    {
        if (!type.IsValueType || type.IsPrimitive || type.IsEnum || type.IsPointer || depth > 16) return;
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(ArrayView<>))
        {
            found.Add([.. chain]);
            return;
        }
        foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
        {
            chain.Add(field);
            Collect(field.FieldType, chain, found, depth + 1);
            chain.RemoveAt(chain.Count - 1);
        }
    }
}
