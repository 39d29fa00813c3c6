// One AttentionCase made ready to run on one context: inputs generated and placed where the backend reads them.
// The benchmarks and the command-line tool both time kernels through it, so they measure the same call.
namespace NativeAttention.Bench;

/// <summary>A case's tensors on a context, and the single kernel call that runs the case.</summary>
internal sealed class CaseRun
{
    private readonly AttentionContext _context;
    private readonly CaseTensors _tensors;

    private CaseRun(AttentionContext context, AttentionCase @case, CaseTensors tensors)
    {
        _context = context;
        Case = @case;
        _tensors = tensors;
    }

    /// <summary>The case.</summary>
    public AttentionCase Case { get; }

    /// <summary>Generates the inputs of <paramref name="case"/> and places them where <paramref name="context"/> reads tensors.</summary>
    /// <exception cref="NotSupportedException">The case's family or the context's memory is not handled yet.</exception>
    public static CaseRun Prepare(AttentionContext context, AttentionCase @case)
    {
        if (@case.Family != AttentionFamily.Flash)
            throw new NotSupportedException($"The benchmarks cannot run {@case.Family} cases yet.");
        if (context.TensorLocation != MemoryLocation.Host)
            throw new NotSupportedException($"The {context.Backend} backend reads device tensors, and the library has no helper to upload a case's inputs yet.");
        return new CaseRun(context, @case, @case.CreateTensors());
    }

    /// <summary>Launches the kernel once; on a GPU it may still be running when this returns.</summary>
    public void Launch() =>
        _context.Flash(_tensors.Query, _tensors.Key, _tensors.Value, _tensors.Output, Case.Flash, _tensors.LogSumExp);

    /// <summary>Runs the kernel once and waits for it to finish.</summary>
    public void Run()
    {
        Launch();
        _context.Synchronize();
    }
}
