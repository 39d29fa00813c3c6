// The one runner of cases: the tests' case-based properties, `verify`, `fuzz`, `bench`, `demo` and the
// BenchmarkDotNet suites all place a case's tensors (option tensors included) and make its call through here, so
// they run the same call on the same tensors.
using System.Runtime.InteropServices;

namespace NativeAttention;

/// <summary>Runs a case's kernel on a context, placing its tensors where the backend reads them and bringing the outputs back.</summary>
public static class CaseRunner
{
    /// <summary>
    /// Runs <paramref name="case"/> once on <paramref name="context"/> with <paramref name="tensors"/> (host tensors,
    /// usually from <see cref="IAttentionCase.CreateTensors"/>), leaving the results in them. On a device backend every
    /// tensor, option tensors included, is mirrored with its exact layout (the whole underlying storage, same strides
    /// and offset), so strided layouts reach the kernel as they are and writes outside a view show up.
    /// </summary>
    public static void Run(AttentionContext context, IAttentionCase @case, CaseTensors tensors)
    {
        using var run = Place(context, @case, tensors);
        run.Run();
        run.Results();
    }

    /// <summary>
    /// Generates the tensors of <paramref name="case"/> and places them where <paramref name="context"/> reads tensors,
    /// ready for repeated <see cref="PreparedCase.Run"/> calls (benchmarks) and one <see cref="PreparedCase.Results"/>.
    /// </summary>
    /// <param name="context">Where the case runs.</param>
    /// <param name="case">The case.</param>
    /// <param name="alignHostMemory">
    /// On a host backend, copy every tensor into 64-byte aligned native memory (as an inference engine allocates its
    /// buffers) instead of running on the managed arrays; ignored on device backends.
    /// </param>
    public static PreparedCase Prepare(AttentionContext context, IAttentionCase @case, bool alignHostMemory = false)
    {
        ArgumentNullException.ThrowIfNull(@case);
        return Place(context, @case, @case.CreateTensors(), alignHostMemory);
    }

    /// <summary>Places the given host tensors of <paramref name="case"/> on <paramref name="context"/> (see <see cref="Prepare"/>).</summary>
    public static PreparedCase Place(AttentionContext context, IAttentionCase @case, CaseTensors tensors, bool alignHostMemory = false)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(@case);
        ArgumentNullException.ThrowIfNull(tensors);
        return new PreparedCase(context, @case, tensors, alignHostMemory);
    }

    /// <summary>A device copy of a host view's whole storage, viewed with the same shape, strides and offset.</summary>
    public static TensorView Mirror(AttentionContext context, TensorView host, List<TensorView>? owned = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        var storage = host.Storage ?? throw new ArgumentException("The view is default(TensorView).", nameof(host));
        int length = checked((int)storage.Length);
        var device = context.Allocate(host.ElementType, length);
        owned?.Add(device);
        context.Copy(new TensorView(storage, [length], [1]), device);
        return new TensorView(device.Storage!, host.Shape, host.Strides, host.Offset);
    }

    /// <summary>Copies a mirrored view's whole storage back over the host view's storage.</summary>
    public static void CopyBack(AttentionContext context, TensorView device, TensorView host)
    {
        ArgumentNullException.ThrowIfNull(context);
        int length = checked((int)host.Storage!.Length);
        context.Copy(new TensorView(device.Storage!, [length], [1]), new TensorView(host.Storage, [length], [1]));
    }
}

/// <summary>
/// A case's tensors placed on one context, and the call that runs the case: made by <see cref="CaseRunner.Prepare"/>.
/// Views sharing a storage share its placed copy, so aliasing and strided windows survive placement.
/// </summary>
public sealed class PreparedCase : IDisposable
{
    private readonly AttentionContext _context;
    private readonly List<TensorView> _owned = [];
    private readonly List<nint> _native = [];
    // Host storage -> its placed copy, for every storage that holds an output.
    private readonly List<(TensorStorage Host, TensorStorage Placed)> _outputs = [];

    internal PreparedCase(AttentionContext context, IAttentionCase @case, CaseTensors host, bool alignHostMemory)
    {
        _context = context;
        Case = @case;
        Host = host;
        bool device = context.TensorLocation != MemoryLocation.Host;
        if (!device && !alignHostMemory)
        {
            Placed = host;
            return;
        }
        try
        {
            var placed = new Dictionary<TensorStorage, TensorStorage>(ReferenceEqualityComparer.Instance);
            Placed = host.Map(t =>
            {
                var storage = t.View.Storage!;
                if (!placed.TryGetValue(storage, out var copy))
                {
                    copy = device ? CaseRunner.Mirror(context, new TensorView(storage, [checked((int)storage.Length)], [1]), _owned).Storage! : Aligned(storage);
                    placed.Add(storage, copy);
                }
                if (t.Role == CaseTensorRole.Output && !_outputs.Any(o => ReferenceEquals(o.Host, storage))) _outputs.Add((storage, copy));
                return new TensorView(copy, t.View.Shape, t.View.Strides, t.View.Offset);
            });
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The case.</summary>
    public IAttentionCase Case { get; }

    /// <summary>The host tensors (inputs as generated; outputs after <see cref="Results"/>).</summary>
    public CaseTensors Host { get; }

    /// <summary>The tensors the kernel reads and writes: <see cref="Host"/> itself on a host backend, else their placed copies.</summary>
    public CaseTensors Placed { get; }

    /// <summary>Launches the case's call(s) once; on a GPU they may still be running when this returns.</summary>
    public void Launch() => Case.Invoke(_context, Placed);

    /// <summary>Runs the case once and waits for it to finish.</summary>
    public void Run()
    {
        Launch();
        _context.Synchronize();
    }

    /// <summary>
    /// Host tensors holding the inputs and the outputs of the latest <see cref="Run"/> (copied back where they were
    /// placed elsewhere), ready for <see cref="IAttentionCase.Check"/>.
    /// </summary>
    public CaseTensors Results()
    {
        _context.Synchronize();
        foreach (var (host, placed) in _outputs)
        {
            int length = checked((int)host.Length);
            _context.Copy(new TensorView(placed, [length], [1]), new TensorView(host, [length], [1]));
        }
        return Host;
    }

    /// <summary>Frees the placed copies, if any.</summary>
    public void Dispose()
    {
        foreach (var view in _owned) (view.Storage as IDisposable)?.Dispose();
        _owned.Clear();
        unsafe
        {
            foreach (nint memory in _native) NativeMemory.AlignedFree((void*)memory);
        }
        _native.Clear();
    }

    /// <summary>A copy of a host storage in 64-byte aligned native memory.</summary>
    private unsafe TensorStorage Aligned(TensorStorage storage)
    {
        long length = storage.Length;
        int size = storage.ElementType.SizeOf();
        void* memory = NativeMemory.AlignedAlloc((nuint)(Math.Max(1, length) * size), 64);
        _native.Add((nint)memory);
        var copy = TensorView.FromPointer((nint)memory, length, storage.ElementType, [checked((int)length)], [1]);
        int n = checked((int)length);
        _context.Copy(new TensorView(storage, [n], [1]), copy);
        return copy.Storage!;
    }
}
