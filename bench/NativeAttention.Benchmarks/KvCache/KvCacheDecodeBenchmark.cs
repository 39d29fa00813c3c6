// KV-cache decoding (FlashKvCache, Nq = 1 against a full cache), the bandwidth-bound call of inference: reported as
// GB/s of K and V read once, and on the CPU as a percentage of the measured streaming bandwidth.
using System.Globalization;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using NativeAttention.Bench;

namespace NativeAttention.Benchmarks;

/// <summary>
/// One synchronised <see cref="AttentionContext.FlashKvCache"/> call (output and LSE): B = 1, Hq = 32, D = 128, one
/// query row per head against <see cref="CacheLength"/> cached tokens of a contiguous cache, automatic split count, no
/// append; MHA (Hkv = 32), GQA (Hkv = 8) and MQA (Hkv = 1). Host tensors live in 64-byte aligned native memory.
/// </summary>
[Config(typeof(KvCacheDecodeConfig))]
public abstract unsafe class KvCacheDecodeBenchmark
{
    private const int QueryHeads = 32, HeadDim = 128;
    private AttentionContext? _context;
    private TensorView _query, _keyCache, _valueCache, _output, _lse;
    private readonly List<IDisposable> _owned = [];
    private readonly List<nint> _native = [];
    private KvCacheOptions _cache = new();

    /// <summary>Cached tokens Nk.</summary>
    [Params(4096, 16384)]
    public int CacheLength { get; set; }

    /// <summary>Key/value heads: 32 (multi-head), 8 (GQA, 4 query heads each) or 1 (MQA).</summary>
    [Params(32, 8, 1)]
    public int KeyValueHeads { get; set; }

    /// <summary>Storage type of Q, the caches and O.</summary>
    [Params(ElementType.Float32, ElementType.Float16, ElementType.BFloat16)]
    public ElementType Type { get; set; }

    public abstract Backend Backend { get; }

    public virtual ContextOptions ContextOptions => new();

    /// <summary>Bytes of K and V the call must read: each cached element once.</summary>
    public double CacheBytes => 2.0 * KeyValueHeads * CacheLength * HeadDim * Type.SizeOf();

    [GlobalSetup]
    public void Setup()
    {
        _context = AttentionContext.Create(Backend, ContextOptions);
        var random = new Random(7);
        TensorView Make(ElementType type, params int[] shape)
        {
            var host = NativeTensor(type, shape);
            var values = new double[host.ElementCount];
            for (long i = 0; i < values.Length; i++) values[i] = random.NextDouble() * 2 - 1;
            host.CopyFrom(values);
            if (_context.TensorLocation == MemoryLocation.Host) return host;
            var device = _context.Upload(host);
            _owned.Add((IDisposable)device.Storage!);
            return device;
        }
        _query = Make(Type, 1, QueryHeads, 1, HeadDim);
        _keyCache = Make(Type, 1, KeyValueHeads, CacheLength, HeadDim);
        _valueCache = Make(Type, 1, KeyValueHeads, CacheLength, HeadDim);
        _output = Make(Type, 1, QueryHeads, 1, HeadDim);
        _lse = Make(ElementType.Float32, 1, QueryHeads, 1);
        _cache = new KvCacheOptions { CacheSeqLens = new[] { CacheLength } };
    }

    /// <summary>A host tensor over 64-byte aligned native memory, as an inference engine allocates its caches.</summary>
    private TensorView NativeTensor(ElementType type, int[] shape)
    {
        long count = shape.Aggregate(1L, (a, b) => a * b);
        void* memory = NativeMemory.AlignedAlloc((nuint)(count * type.SizeOf()), 64);
        _native.Add((nint)memory);
        return TensorView.FromPointer((nint)memory, count, type, shape, TensorView.ContiguousStrides(shape));
    }

    [Benchmark]
    public void Decode()
    {
        _context!.FlashKvCache(_query, _keyCache, _valueCache, _output, _cache, null, _lse);
        _context.Synchronize();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var owned in _owned) owned.Dispose();
        _owned.Clear();
        _context?.Dispose();
        foreach (var memory in _native) NativeMemory.AlignedFree((void*)memory);
        _native.Clear();
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
