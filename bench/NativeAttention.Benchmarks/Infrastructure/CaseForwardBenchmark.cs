// The body every case benchmark shares: a context, the case's tensors placed on it by CaseRunner (the runner the
// tests and the command-line tool use), one timed call.
using BenchmarkDotNet.Attributes;

namespace NativeAttention.Benchmarks;

/// <summary>
/// Times one synchronised run of <see cref="Case"/> (every output it has, e.g. output and log-sum-exp, as a training
/// forward writes them) on the tensors <see cref="IAttentionCase.CreateTensors"/> generates, placed by
/// <see cref="CaseRunner.Prepare"/>. Subclasses give the case, the backend and its options.
/// </summary>
[Config(typeof(CaseBenchmarkConfig))]
[MemoryDiagnoser]
public abstract class CaseForwardBenchmark : ICaseBenchmark
{
    private AttentionContext? _context;
    private PreparedCase? _run;

    public abstract IAttentionCase Case { get; }

    public abstract Backend Backend { get; }

    public virtual ContextOptions ContextOptions => new();

    /// <summary>
    /// On the CPU, run on 64-byte aligned native copies of the tensors (as an inference engine allocates its buffers;
    /// the CLI's bench does the same unless given --managed-arrays) instead of the managed arrays they were generated in.
    /// </summary>
    protected virtual bool AlignHostMemory => true;

    [GlobalSetup]
    public void Setup()
    {
        _context = AttentionContext.Create(Backend, ContextOptions);
        _run = CaseRunner.Prepare(_context, Case, AlignHostMemory);
    }

    [Benchmark]
    public void Forward() => _run!.Run();

    [GlobalCleanup]
    public void Cleanup()
    {
        _run?.Dispose();
        _context?.Dispose();
    }
}
