// Flash attention forward, B=1, H=8, D=64, N from 512 to 4096, causal and not; one subclass per backend, each with the
// storage types that backend is used with.
using BenchmarkDotNet.Attributes;

namespace NativeAttention.Benchmarks;

/// <summary>Square flash forward calls; subclasses pick the backend, its options and storage types.</summary>
public abstract class FlashForwardBenchmark : CaseForwardBenchmark
{
    /// <summary>Query and key length.</summary>
    [Params(512, 1024, 2048, 4096)]
    public int N { get; set; }

    /// <summary>Causal (bottom-right) masking.</summary>
    [Params(false, true)]
    public bool Causal { get; set; }

    /// <summary>Storage type of Q, K, V and O.</summary>
    [ParamsSource(nameof(Types))]
    public ElementType Type { get; set; }

    /// <summary>The values of <see cref="Type"/>: one non-virtual source, since BenchmarkDotNet wants exactly one member by that name.</summary>
    public IEnumerable<ElementType> Types() => StorageTypes;

    /// <summary>The storage types this backend is benchmarked with.</summary>
    protected virtual IEnumerable<ElementType> StorageTypes => [ElementType.Float32];

    public override AttentionCase Case => AttentionCase.ForFlash(batch: 1, heads: 8, length: N, headDim: 64, causal: Causal, type: Type);
}

/// <summary>The managed SIMD kernel on <see cref="Threads"/> worker threads.</summary>
public class CpuFlashForward : FlashForwardBenchmark
{
    /// <summary>The environment variable that lists thread counts to run, e.g. <c>1,2</c>; the default is 2.</summary>
    public const string ThreadsVariable = "NATIVEATTENTION_BENCH_THREADS";

    /// <summary>CPU worker threads.</summary>
    [ParamsSource(nameof(ThreadCounts))]
    public int Threads { get; set; }

    public static IEnumerable<int> ThreadCounts =>
        Environment.GetEnvironmentVariable(ThreadsVariable) is { Length: > 0 } list
            ? list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(int.Parse)
            : [2];

    public override Backend Backend => Backend.Cpu;

    public override ContextOptions ContextOptions => new() { Threads = Threads };
}

/// <summary>The OpenCL kernel on device 0; left out where no OpenCL runtime is found.</summary>
[RequiresBackend(Backend.OpenCl)]
public class OpenClFlashForward : FlashForwardBenchmark
{
    public override Backend Backend => Backend.OpenCl;

    protected override IEnumerable<ElementType> StorageTypes => [ElementType.Float32, ElementType.Float16];
}

/// <summary>The CUDA kernels (tensor cores for 16-bit types) on device 0; left out where no CUDA driver and GPU are found.</summary>
[RequiresBackend(Backend.Cuda)]
public class CudaFlashForward : FlashForwardBenchmark
{
    public override Backend Backend => Backend.Cuda;

    protected override IEnumerable<ElementType> StorageTypes => [ElementType.Float16, ElementType.BFloat16, ElementType.Float32];
}
