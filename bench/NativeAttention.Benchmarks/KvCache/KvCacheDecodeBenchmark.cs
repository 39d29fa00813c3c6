// KV-cache decoding (FlashKvCache, Nq = 1 against a full cache), the bandwidth-bound call of inference: reported as
// GB/s of K and V read once, and on the CPU as a percentage of the measured streaming bandwidth.
using System.Globalization;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using NativeAttention.Bench;

namespace NativeAttention.Benchmarks;

/// <summary>
/// One synchronised <see cref="AttentionContext.FlashKvCache"/> (or, with <see cref="ThroughFlash"/>,
/// <see cref="AttentionContext.Flash"/>) call (output and LSE): B = 1, Hq = 32, D = 128, one
/// query row per head against <see cref="CacheLength"/> cached tokens of a contiguous cache, automatic split count, no
/// append; MHA (Hkv = 32), GQA (Hkv = 8) and MQA (Hkv = 1). The case is a <see cref="KvCacheCase"/> run through
/// <see cref="CaseRunner"/>, as the tests and the command-line tool run it; on the CPU its tensors live in 64-byte
/// aligned native memory, as an inference engine allocates its caches.
/// </summary>
[Config(typeof(KvCacheDecodeConfig))]
public abstract class KvCacheDecodeBenchmark : ICaseBenchmark
{
    private const int QueryHeads = 32, HeadDim = 128;
    private AttentionContext? _context;
    private PreparedCase? _run;

    /// <summary>Cached tokens Nk.</summary>
    [Params(4096, 16384, 65536)]
    public int CacheLength { get; set; }

    /// <summary>
    /// The entry point: <see cref="AttentionContext.FlashKvCache"/> (false) or <see cref="AttentionContext.Flash"/> on the
    /// same K and V (true), which routes the decode-shaped call to the same kernels.
    /// </summary>
    [Params(false, true)]
    public bool ThroughFlash { get; set; }

    /// <summary>Key/value heads: 32 (multi-head), 8 (GQA, 4 query heads each) or 1 (MQA).</summary>
    [Params(32, 8, 1)]
    public int KeyValueHeads { get; set; }

    /// <summary>Storage type of Q, the caches and O.</summary>
    [Params(ElementType.Float32, ElementType.Float16, ElementType.BFloat16)]
    public ElementType Type { get; set; }

    public abstract Backend Backend { get; }

    public virtual ContextOptions ContextOptions => new();

    /// <summary>
    /// The decoding step: <c>flash {Type} B1 H32/{KeyValueHeads} N1x{CacheLength} D128/128 kvcache seed=7</c>, or the
    /// same without <c>kvcache</c> through <see cref="AttentionContext.Flash"/>.
    /// </summary>
    public IAttentionCase Case
    {
        get
        {
            var attention = new AttentionCase
            {
                ElementType = Type, Batch = 1, QueryHeads = QueryHeads, KeyValueHeads = KeyValueHeads, QueryLength = 1, KeyLength = CacheLength,
                HeadDim = HeadDim, ValueDim = HeadDim, Seed = 7,
            };
            return ThroughFlash ? attention : new KvCacheCase { Attention = attention };
        }
    }

    /// <summary>Bytes of K and V the call must read: each cached element once.</summary>
    public double CacheBytes => 2.0 * KeyValueHeads * CacheLength * HeadDim * Type.SizeOf();

    [GlobalSetup]
    public void Setup()
    {
        _context = AttentionContext.Create(Backend, ContextOptions);
        _run = CaseRunner.Prepare(_context, Case, alignHostMemory: true);
    }

    [Benchmark]
    public void Decode() => _run!.Run();

    [GlobalCleanup]
    public void Cleanup()
    {
        _run?.Dispose();
        _context?.Dispose();
    }
}

/// <summary>The CPU decode kernel on <see cref="Threads"/> workers (NATIVEATTENTION_BENCH_THREADS, as for the flash suite; default 2).</summary>
public class CpuKvCacheDecode : KvCacheDecodeBenchmark
{
    /// <summary>CPU worker threads.</summary>
    [ParamsSource(nameof(ThreadCounts))]
    public int Threads { get; set; } = 2;

    public static IEnumerable<int> ThreadCounts => CpuFlashForward.ThreadCounts;

    public override Backend Backend => Backend.Cpu;

    public override ContextOptions ContextOptions => new() { Threads = Threads };
}

/// <summary>The OpenCL decode kernels on device 0.</summary>
[RequiresBackend(Backend.OpenCl)]
public class OpenClKvCacheDecode : KvCacheDecodeBenchmark
{
    public override Backend Backend => Backend.OpenCl;
}

/// <summary>The CUDA decode kernels on device 0.</summary>
[RequiresBackend(Backend.Cuda)]
public class CudaKvCacheDecode : KvCacheDecodeBenchmark
{
    public override Backend Backend => Backend.Cuda;
}

/// <summary>GB/s of K and V and, on the CPU, that as a share of the measured bandwidth; plus allocated bytes.</summary>
public sealed class KvCacheDecodeConfig : ManualConfig
{
    public KvCacheDecodeConfig()
    {
        AddColumn(new BandwidthColumn(percent: false), new BandwidthColumn(percent: true));
        AddDiagnoser(BenchmarkDotNet.Diagnosers.MemoryDiagnoser.Default);
    }

    private sealed class BandwidthColumn(bool percent) : IColumn
    {
        public string Id => percent ? "NativeAttention.PercentOfBandwidth" : "NativeAttention.GBs";
        public string ColumnName => percent ? "% of bandwidth" : "GB/s";
        public string Legend => percent
            ? "GB/s as a percentage of this machine's measured streaming read bandwidth on the same threads (CPU only)"
            : "Bytes of K and V (each cached element read once) divided by the mean time, in 10^9 per second";
        public bool AlwaysShow => true;
        public ColumnCategory Category => ColumnCategory.Custom;
        public int PriorityInCategory => percent ? 1 : 0;
        public bool IsNumeric => true;
        public UnitType UnitType => UnitType.Dimensionless;
        public bool IsAvailable(Summary summary) => true;
        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
        public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, summary.Style);

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
        {
            if (summary[benchmarkCase]?.ResultStatistics is not { } statistics) return "NA";
            var benchmark = (KvCacheDecodeBenchmark)Activator.CreateInstance(benchmarkCase.Descriptor.Type)!;
            foreach (var parameter in benchmarkCase.Parameters.Items)
                benchmarkCase.Descriptor.Type.GetProperty(parameter.Name)?.SetValue(benchmark, parameter.Value);
            double gbs = benchmark.CacheBytes / (statistics.Mean / 1e9) / 1e9;
            if (!percent) return gbs.ToString("0.0", CultureInfo.InvariantCulture);
            if (benchmark.Backend != Backend.Cpu) return "n/a";
            var peaks = MachinePeaks.GetOrMeasure(benchmark.ContextOptions.Threads ?? Environment.ProcessorCount);
            return (100 * gbs / peaks.BandwidthGBs).ToString("0.0", CultureInfo.InvariantCulture) + "%";
        }

        public override string ToString() => ColumnName;
    }
}
