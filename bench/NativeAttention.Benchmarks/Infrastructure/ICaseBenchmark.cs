// What every benchmark of this suite exposes so that shared columns can turn its time into GFLOP/s and % of peak.
namespace NativeAttention.Benchmarks;

/// <summary>
/// A benchmark that times one case (<see cref="IAttentionCase"/>, any family) on one backend. The columns of
/// <see cref="CaseBenchmarkConfig"/> create an instance, set its parameters and read these members, so they must
/// depend on the parameters alone and be cheap: no tensors, no context.
/// </summary>
public interface ICaseBenchmark
{
    /// <summary>The problem one benchmark invocation solves; its FLOPs are counted on visible pairs.</summary>
    IAttentionCase Case { get; }

    /// <summary>The backend the benchmark runs on.</summary>
    Backend Backend { get; }

    /// <summary>The context options it runs with; on the CPU, the peak is the one measured on the same thread count.</summary>
    ContextOptions ContextOptions { get; }
}
