// Puts host tensors where a context reads them (the same view on the host, or a device mirror with the same layout)
// and brings results back, so family tests written against host arrays run unchanged on every backend.
namespace NativeAttention.Tests;

/// <summary>Host-to-context tensor placement for tests; frees its device mirrors when disposed.</summary>
public sealed class OnContext(AttentionContext context) : IDisposable
{
    private readonly List<TensorView> _owned = [];

    /// <summary>The view itself on a host backend, else a device mirror with the same shape, strides and offset.</summary>
    public TensorView Put(TensorView host) =>
        context.TensorLocation == MemoryLocation.Host ? host : CaseRunner.Mirror(context, host, _owned);

    /// <summary>Copies a mirror's storage back over the host view's storage (nothing to do on a host backend).</summary>
    public void Back(TensorView placed, TensorView host)
    {
        if (context.TensorLocation != MemoryLocation.Host) CaseRunner.CopyBack(context, placed, host);
    }

    /// <summary>Frees the device mirrors.</summary>
    public void Dispose()
    {
        foreach (var view in _owned) (view.Storage as IDisposable)?.Dispose();
        _owned.Clear();
    }
}
