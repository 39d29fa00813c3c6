// The body every AttentionCase benchmark shares: a context, the case's tensors placed on it, one timed call.
using BenchmarkDotNet.Attributes;
using NativeAttention.Bench;

namespace NativeAttention.Benchmarks;

/// <summary>
/// Times one synchronised call of <see cref="Case"/> (output and log-sum-exp, as a training forward writes them) on
/// the inputs <see cref="AttentionCase.CreateTensors"/> generates. Subclasses give the case, the backend and its options.
/// </summary>
[Config(typeof(CaseBenchmarkConfig))]
[MemoryDiagnoser]
public abstract class CaseForwardBenchmark : ICaseBenchmark
{
    private AttentionContext? _context;
    private CaseRun? _run;

    public abstract AttentionCase Case { get; }

    public abstract Backend Backend { get; }

    public virtual ContextOptions ContextOptions => new();

    [GlobalSetup]
    public void Setup()
    {
        _context = AttentionContext.Create(Backend, ContextOptions);
        _run = CaseRun.Prepare(_context, Case);
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
