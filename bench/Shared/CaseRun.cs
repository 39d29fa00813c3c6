// One AttentionCase made ready to run on one context: inputs generated and placed where the backend reads them.
// The benchmarks and the command-line tool time and check kernels through it, so they measure the same call; it is
// the one place that knows how a backend's tensors reach it (Prepare) and come back (Results).
namespace NativeAttention.Bench;

/// <summary>A case's tensors on a context, and the single kernel call that runs the case.</summary>
internal sealed class CaseRun : IDisposable
{
    private readonly AttentionContext _context;
    private readonly CaseTensors _host;
    private readonly CaseTensors _tensors;
    private readonly List<TensorView> _owned;

    private CaseRun(AttentionContext context, AttentionCase @case, CaseTensors host, CaseTensors tensors, List<TensorView> owned)
    {
        _context = context;
        Case = @case;
        _host = host;
        _tensors = tensors;
        _owned = owned;
    }

    /// <summary>The case.</summary>
    public AttentionCase Case { get; }

    /// <summary>Generates the inputs of <paramref name="case"/> and places them where <paramref name="context"/> reads tensors.</summary>
    /// <exception cref="NotSupportedException">The case's family is not handled yet.</exception>
    public static CaseRun Prepare(AttentionContext context, AttentionCase @case)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(@case);
        if (@case.Family != AttentionFamily.Flash)
            throw new NotSupportedException($"{AttentionCase.FamilyName(@case.Family)} cases cannot be run yet: the library has no {@case.Family} kernel.");
        var host = @case.CreateTensors();
        if (context.TensorLocation == MemoryLocation.Host) return new CaseRun(context, @case, host, host, []);
        // Device backends get a mirror of each tensor with its exact layout (same strides and offset), so a
        // [B, N, H, D] case reaches the kernel strided, as it would from another library.
        var owned = new List<TensorView>();
        try
        {
            var device = new CaseTensors(
                CaseRunner.Mirror(context, host.Query, owned), CaseRunner.Mirror(context, host.Key, owned),
                CaseRunner.Mirror(context, host.Value, owned), CaseRunner.Mirror(context, host.Output, owned),
                CaseRunner.Mirror(context, host.LogSumExp, owned));
            return new CaseRun(context, @case, host, device, owned);
        }
        catch
        {
            foreach (var view in owned) (view.Storage as IDisposable)?.Dispose();
            throw;
        }
    }

    /// <summary>Launches the kernel once; on a GPU it may still be running when this returns.</summary>
    public void Launch() =>
        Case.Invoke(_context, _tensors.Query, _tensors.Key, _tensors.Value, _tensors.Output, Case.Flash, _tensors.LogSumExp);

    /// <summary>Runs the kernel once and waits for it to finish.</summary>
    public void Run()
    {
        Launch();
        _context.Synchronize();
    }

    /// <summary>
    /// Runs the case as split-KV attention: the flash kernel on each of <paramref name="parts"/> contiguous key
    /// ranges, writing partial outputs and log-sum-exps, then <see cref="AttentionContext.MergeStates"/> into the
    /// case's output; <see cref="Results"/> then holds the merged result, which must equal the unsplit one.
    /// </summary>
    /// <exception cref="ArgumentException">The case is causal or windowed: a split moves where those masks align.</exception>
    public void RunSplitKeys(int parts)
    {
        if (Case.Flash.Causal || Case.Flash.WindowLeft >= 0 || Case.Flash.WindowRight >= 0)
            throw new ArgumentException("Only non-causal, windowless cases can be split over keys.", nameof(parts));
        var c = Case;
        parts = Math.Clamp(parts, 1, c.KeyLength);
        var partials = Allocate(c.ElementType, parts, c.Batch, c.QueryHeads, c.QueryLength, c.ValueDim);
        var partialLse = Allocate(ElementType.Float32, parts, c.Batch, c.QueryHeads, c.QueryLength);
        try
        {
            for (int s = 0; s < parts; s++)
            {
                int start = (int)((long)c.KeyLength * s / parts), end = (int)((long)c.KeyLength * (s + 1) / parts);
                _context.Flash(_tensors.Query, _tensors.Key.Slice(2, start, end - start), _tensors.Value.Slice(2, start, end - start),
                    partials.Slice(0, s, 1).Reshape(c.Batch, c.QueryHeads, c.QueryLength, c.ValueDim), c.Flash,
                    partialLse.Slice(0, s, 1).Reshape(c.Batch, c.QueryHeads, c.QueryLength));
            }
            _context.MergeStates(partials, partialLse, _tensors.Output, _tensors.LogSumExp);
            _context.Synchronize();
        }
        finally
        {
            (partials.Storage as IDisposable)?.Dispose();
            (partialLse.Storage as IDisposable)?.Dispose();
        }
    }

    /// <summary>A zeroed, contiguous scratch tensor where the context reads tensors.</summary>
    private TensorView Allocate(ElementType type, params int[] shape)
    {
        return _context.Allocate(type, shape);
    }

    /// <summary>
    /// Host tensors holding the inputs and the outputs of the latest <see cref="Run"/> (copied back from the device
    /// where the backend computes there), ready for <see cref="CaseVerifier.Compare"/>.
    /// </summary>
    public CaseTensors Results()
    {
        _context.Synchronize();
        if (!ReferenceEquals(_host, _tensors))
        {
            CaseRunner.CopyBack(_context, _tensors.Output, _host.Output);
            CaseRunner.CopyBack(_context, _tensors.LogSumExp, _host.LogSumExp);
        }
        return _host;
    }

    /// <summary>Frees the device copies, if any.</summary>
    public void Dispose()
    {
        foreach (var view in _owned) (view.Storage as IDisposable)?.Dispose();
        _owned.Clear();
    }
}
