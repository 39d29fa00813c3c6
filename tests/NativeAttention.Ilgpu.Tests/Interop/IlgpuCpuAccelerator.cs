// One ILGPU context with a CPU accelerator for the interop tests, and the placing of a case's tensors in its buffers.
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using NativeAttention.Ilgpu;

namespace NativeAttention.Ilgpu.Tests.Interop;

/// <summary>An ILGPU context and CPU accelerator shared by a test class.</summary>
public sealed class IlgpuCpuAccelerator : IDisposable
{
    public IlgpuCpuAccelerator()
    {
        Context = ILGPU.Context.Create(builder => builder.CPU());
        Accelerator = Context.CreateCPUAccelerator(0);
    }

    public Context Context { get; }

    public CPUAccelerator Accelerator { get; }

    public void Dispose()
    {
        Accelerator.Dispose();
        Context.Dispose();
    }
}

/// <summary>
/// A case's host tensors copied into ILGPU buffers of the CPU accelerator, one buffer per host storage (so views that
/// share a storage share a buffer), each storage placed <see cref="Pad"/> elements into its buffer so that the views'
/// offsets inside ILGPU's buffers are not zero. Float16 storages use <see cref="ILGPU.Half"/> buffers, BFloat16 ones
/// <see cref="BFloat16"/> buffers.
/// </summary>
internal sealed unsafe class IlgpuPlacement : IDisposable
{
    public const int Pad = 3;

    private readonly Dictionary<TensorStorage, (MemoryBuffer Buffer, Func<TensorView, TensorView> View)> _buffers = new(ReferenceEqualityComparer.Instance);

    public IlgpuPlacement(IlgpuAttention ilgpu, CaseTensors host)
    {
        Placed = host.Map(t =>
        {
            var storage = t.View.Storage!;
            if (!_buffers.TryGetValue(storage, out var entry))
            {
                entry = storage.ElementType switch
                {
                    ElementType.Float32 => Allocate<float>(ilgpu, storage),
                    ElementType.Float16 => Allocate<ILGPU.Half>(ilgpu, storage),
                    _ => Allocate<BFloat16>(ilgpu, storage),
                };
                _buffers.Add(storage, entry);
            }
            return entry.View(t.View);
        });
    }

    /// <summary>The tensors over ILGPU memory.</summary>
    public CaseTensors Placed { get; }

    /// <summary>The bytes of the placed copy of <paramref name="storage"/>.</summary>
    public byte[] Bytes(TensorStorage storage)
    {
        var buffer = _buffers[storage].Buffer;
        int size = storage.ElementType.SizeOf();
        return new ReadOnlySpan<byte>((byte*)buffer.NativePtr + Pad * size, checked((int)storage.Length * size)).ToArray();
    }

    private static (MemoryBuffer, Func<TensorView, TensorView>) Allocate<T>(IlgpuAttention ilgpu, TensorStorage storage) where T : unmanaged
    {
        var buffer = ilgpu.Accelerator.Allocate1D<T>(storage.Length + 2 * Pad);
        var view = buffer.View.SubView(Pad, storage.Length);
        int bytes = checked((int)storage.Length * sizeof(T));
        using (var pin = storage.Pin())
            new ReadOnlySpan<byte>(pin.Pointer, bytes).CopyTo(new Span<byte>((byte*)buffer.NativePtr + Pad * sizeof(T), bytes));
        return (buffer, v => ilgpu.View<T>(view, v.Shape, v.Strides, v.Offset));
    }

    public void Dispose()
    {
        foreach (var (buffer, _) in _buffers.Values) buffer.Dispose();
    }
}

/// <summary>Bytes of host tensors.</summary>
internal static unsafe class HostBytes
{
    public static byte[] Of(TensorStorage storage)
    {
        using var pin = storage.Pin();
        return new ReadOnlySpan<byte>(pin.Pointer, checked((int)storage.Length * storage.ElementType.SizeOf())).ToArray();
    }
}
