// The OpenCL runtime layer: external queues and buffers, disposal, build logs, the params struct's layout.
using System.Runtime.InteropServices;
using NativeAttention.Gpu;
using NativeAttention.Gpu.OpenCl;
using NativeAttention.Interop.OpenCl;
using Xunit;
using static NativeAttention.Interop.OpenCl.OpenClNative;

namespace NativeAttention.Tests.Gpu;

public sealed unsafe class OpenClInteropTests
{
    [RuntimeFact(TestRuntime.OpenCl)]
    public void ExternalQueueAndBuffer_AreUsedWithoutBeingReleased()
    {
        RuntimeAvailability.Require(TestRuntime.OpenCl);
        IntPtr platform;
        Assert.Equal(Success, clGetPlatformIDs(1, &platform, null));
        IntPtr device;
        Assert.Equal(Success, clGetDeviceIDs(platform, DeviceTypeAll, 1, &device, null));
        int status;
        using var rawContext = clCreateContext(null, 1, &device, IntPtr.Zero, IntPtr.Zero, &status);
        Assert.Equal(Success, status);
        using var rawQueue = clCreateCommandQueue(rawContext, device, 0, &status);
        Assert.Equal(Success, status);
        using var rawMemory = clCreateBuffer(rawContext, MemReadWrite, 4 * 64, null, &status);
        Assert.Equal(Success, status);

        using (var context = OpenClContext.FromQueue(rawQueue.DangerousGetHandle()))
        {
            var buffer = context.WrapBuffer(rawMemory.DangerousGetHandle(), ElementType.Float32);
            Assert.Equal(64, buffer.Length);
            buffer.Write<float>(Enumerable.Range(0, 64).Select(i => (float)i).ToArray());
            buffer.Dispose();
        }

        // The wrappers are gone; the queue and the memory object still work.
        var read = new float[64];
        fixed (float* p = read)
            Assert.Equal(Success, clEnqueueReadBuffer(rawQueue, rawMemory, 1, 0, 4 * 64, p, 0, null, null));
        Assert.Equal(63f, read[63]);
        Assert.Equal(Success, clFinish(rawQueue));
    }

    [RuntimeFact(TestRuntime.OpenCl)]
    public void KernelNeedingMoreLocalMemoryThanTheDevice_IsRefusedByName()
    {
        // A pretend device with 16 KB of local memory (below OpenCL's minimum 32 KB, which every decode variant fits):
        // the D = 128 decode kernel (about 18 KB with V staged through K's buffer) is refused with a
        // NotSupportedException naming it, not launched into CL_OUT_OF_RESOURCES; flash at D = 64 (16 KB) still runs.
        RuntimeAvailability.Require(TestRuntime.OpenCl);
        using var context = (OpenClContext)AttentionContext.Create(Backend.OpenCl);
        context.LocalMemoryLimit = 16 * 1024;
        var q = context.Allocate(ElementType.Float32, 1, 1, 1, 128);
        var k = context.Allocate(ElementType.Float32, 1, 1, 64, 128);
        var o = context.Allocate(ElementType.Float32, 1, 1, 1, 128);
        var e = Assert.Throws<NotSupportedException>(() => context.Flash(q, k, k, o));
        Assert.Contains("decode_fwd.hd128.f32.r1.kv1", e.Message);
        Assert.Contains("local memory", e.Message);
        var q4 = context.Allocate(ElementType.Float32, 1, 1, 64, 64);
        var o4 = context.Allocate(ElementType.Float32, 1, 1, 64, 64);
        context.Flash(q4, q4, q4, o4);
        context.Synchronize();
    }

    [RuntimeFact(TestRuntime.OpenCl)]
    public void DisposedBuffer_ThrowsObjectDisposedException()
    {
        RuntimeAvailability.Require(TestRuntime.OpenCl);
        using var context = (OpenClContext)AttentionContext.Create(Backend.OpenCl);
        var buffer = context.AllocateBuffer(ElementType.Float32, 4 * 8 * 3);
        var q = buffer.Slice(0, 32).View(1, 1, 4, 8);
        var k = buffer.Slice(32, 32).View(1, 1, 4, 8);
        var o = context.Allocate(ElementType.Float32, 1, 1, 4, 8);
        buffer.Dispose();
        Assert.True(buffer.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => context.Flash(q, k, k, o));
        Assert.Throws<ObjectDisposedException>(() => buffer.Read<float>(new float[4]));
        Assert.Throws<ObjectDisposedException>(() => context.Download(q));
    }

    [RuntimeFact(TestRuntime.OpenCl)]
    public void SlicesOfOneBuffer_AreCheckedForAliasing()
    {
        RuntimeAvailability.Require(TestRuntime.OpenCl);
        using var context = (OpenClContext)AttentionContext.Create(Backend.OpenCl);
        using var buffer = context.AllocateBuffer(ElementType.Float32, 96);
        var q = buffer.Slice(0, 32).View(1, 1, 4, 8);
        var overlapping = buffer.Slice(16, 32).View(1, 1, 4, 8);
        var separate = buffer.Slice(64, 32).View(1, 1, 4, 8);
        Assert.Throws<ArgumentException>(() => context.Flash(q, q, q, overlapping));
        buffer.Fill(0.5);
        context.Flash(q, q, q, separate);
        var result = context.Download(separate).ToDoubleArray();
        Assert.All(result, x => Assert.Equal(0.5, x, 6));
    }

    [RuntimeFact(TestRuntime.OpenCl)]
    public void BadKernelSource_SurfacesTheBuildLog()
    {
        RuntimeAvailability.Require(TestRuntime.OpenCl);
        using var context = (OpenClContext)AttentionContext.Create(Backend.OpenCl);
        string source = KernelSource.Build(KernelApi.OpenCl, "broken.cl", "NA_KERNEL void broken(NA_GLOBAL float* x) { x[0] = undefined_name; }\n", []);
        var error = Assert.Throws<OpenClException>(() => context.BuildSource(source, "broken"));
        Assert.Equal("CL_BUILD_PROGRAM_FAILURE", error.ErrorName);
        Assert.Equal("clBuildProgram", error.Call);
        Assert.Contains("undefined_name", error.BuildLog);
        Assert.Contains("broken.cl", error.BuildLog);
    }

    [RuntimeFact(TestRuntime.OpenCl)]
    public void KernelParams_LayoutsMatchTheKernelStructs()
    {
        RuntimeAvailability.Require(TestRuntime.OpenCl);
        using var context = (OpenClContext)AttentionContext.Create(Backend.OpenCl);
        foreach (var probe in LayoutProbe.All) AssertLayout(probe.Mirror, context.ParamsLayout(probe.EntryPoint));
    }

    /// <summary>
    /// The probe's size and field offsets equal those of the C# mirror <paramref name="mirror"/>: fields in declaration
    /// order, a nested struct as its own offset followed by its fields' (fixed buffers are one field).
    /// </summary>
    internal static void AssertLayout(Type mirror, int[] layout)
    {
        Assert.True(Marshal.SizeOf(mirror) == layout[0], $"{mirror.Name} has {Marshal.SizeOf(mirror)} bytes in C# but {layout[0]} in C.");
        var expected = new List<(string Field, int Offset)>();
        Flatten(mirror, mirror.Name, 0, expected);
        for (int i = 0; i < expected.Count; i++)
            Assert.True(expected[i].Offset == layout[i + 1], $"{expected[i].Field} is at {expected[i].Offset} in C# but {layout[i + 1]} in C.");
        Assert.True(layout.Skip(expected.Count + 1).All(v => v == 0),
            $"The {mirror.Name} probe wrote more offsets than the C# mirror has fields ({expected.Count}).");
    }

    private static void Flatten(Type type, string path, int baseOffset, List<(string, int)> into)
    {
        foreach (var field in type.GetFields(System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.Public))
        {
            int offset = baseOffset + (int)Marshal.OffsetOf(type, field.Name);
            into.Add(($"{path}.{field.Name}", offset));
            bool nested = field.FieldType is { IsValueType: true, IsPrimitive: false, IsEnum: false } &&
                field.GetCustomAttributes(typeof(System.Runtime.CompilerServices.FixedBufferAttribute), false).Length == 0;
            if (nested) Flatten(field.FieldType, $"{path}.{field.Name}", offset, into);
        }
    }
}
