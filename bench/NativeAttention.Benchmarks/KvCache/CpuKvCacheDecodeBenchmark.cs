// KV-cache decoding on the CPU (FlashKvCache, one new query token, no append): GB/s of K and V read, MHA, GQA and MQA.
using System.Buffers;
using System.Globalization;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using NativeAttention.Bench;

namespace NativeAttention.Benchmarks;

/// <summary>
/// Times one <see cref="AttentionContext.FlashKvCache"/> call with Nq = 1, B = 1, Hq = 32, D = 128 over a contiguous
/// cache holding <see cref="Keys"/> tokens, for MHA (Hkv = 32), GQA (Hkv = 8) and MQA (Hkv = 1). Decoding reads every
/// K and V element once, so the figure of merit is bandwidth: (K + V bytes) / time, and that as a percentage of the
/// machine's measured streaming read bandwidth (<c>NativeAttention.Cli info</c>). Caches are 64-byte aligned native
/// memory, as an inference engine allocates them.
/// </summary>
[Config(typeof(KvCacheDecodeConfig))]
public unsafe class CpuKvCacheDecode
{
    private const int QueryHeads = 32, HeadDim = 128;

    private AttentionContext? _context;
    private readonly List<nint> _buffers = [];
    private TensorView _query, _keys, _values, _output, _lse;
    private KvCacheOptions? _cache;

    /// <summary>Cached tokens.</summary>
    [Params(4096, 16384)]
    public int Keys { get; set; }

    /// <summary>Key/value heads: 32 (MHA), 8 (GQA, 4 query heads each), 1 (MQA).</summary>
    [Params(32, 8, 1)]
    public int KeyValueHeads { get; set; }

    /// <summary>Storage type of Q, the caches and O.</summary>
    [Params(ElementType.Float32, ElementType.Float16, ElementType.BFloat16)]
    public ElementType Type { get; set; }

    /// <summary>CPU worker threads (NATIVEATTENTION_BENCH_THREADS, as for the flash suite; default 2).</summary>
    [ParamsSource(nameof(ThreadCounts))]
    public int Threads { get; set; }

    public static IEnumerable<int> ThreadCounts => CpuFlashForward.ThreadCounts;

    /// <summary>Bytes of K and V one call reads.</summary>
    public double CacheBytes => 2.0 * KeyValueHeads * Keys * HeadDim * Type.SizeOf();

    [GlobalSetup]
    public void Setup()
    {
        _context = AttentionContext.Create(Backend.Cpu, new ContextOptions { Threads = Threads });
        var random = new Random(1);
        _query = Tensor(random, 1, QueryHeads, 1, HeadDim);
        _keys = Tensor(random, 1, KeyValueHeads, Keys, HeadDim);
        _values = Tensor(random, 1, KeyValueHeads, Keys, HeadDim);
        _output = Tensor(random, 1, QueryHeads, 1, HeadDim);
        _lse = TensorView.FromMemory(new float[QueryHeads].AsMemory(), 1, QueryHeads, 1);
        _cache = new KvCacheOptions { CacheSeqLens = new[] { Keys } };
    }

    [Benchmark]
    public void Decode() => _context!.FlashKvCache(_query, _keys, _values, _output, _cache!, null, _lse);

    [GlobalCleanup]
    public void Cleanup()
    {
        _context?.Dispose();
        foreach (var buffer in _buffers) NativeMemory.AlignedFree((void*)buffer);
        _buffers.Clear();
    }

    /// <summary>A tensor of <see cref="Type"/> over 64-byte aligned native memory, filled with values in [-1, 1).</summary>
    private TensorView Tensor(Random random, params int[] shape)
    {
        long count = shape.Aggregate(1L, (a, b) => a * b);
        int size = Type.SizeOf();
        void* memory = NativeMemory.AlignedAlloc((nuint)(count * size), 64);
        _buffers.Add((nint)memory);
        var values = new double[count];
        for (long i = 0; i < count; i++) values[i] = random.NextDouble() * 2 - 1;
        TensorView view = Type switch
        {
            ElementType.Float32 => TensorView.FromMemory(new NativeBuffer<float>((float*)memory, count).Memory, shape),
            ElementType.Float16 => TensorView.FromMemory(new NativeBuffer<Half>((Half*)memory, count).Memory, shape),
            _ => TensorView.FromMemory(new NativeBuffer<BFloat16>((BFloat16*)memory, count).Memory, shape),
        };
        view.CopyFrom(values);
        return view;
    }

    /// <summary>Native memory as a <see cref="Memory{T}"/>; the benchmark frees it.</summary>
    private sealed class NativeBuffer<T>(T* pointer, long count) : MemoryManager<T> where T : unmanaged
    {
        public override Span<T> GetSpan() => new(pointer, checked((int)count));
        public override MemoryHandle Pin(int elementIndex = 0) => new(pointer + elementIndex);
        public override void Unpin() { }
        protected override void Dispose(bool disposing) { }
    }
}

/// <summary>GB/s of K and V and its percentage of the measured bandwidth, plus allocated bytes.</summary>
public sealed class KvCacheDecodeConfig : ManualConfig
{
    public KvCacheDecodeConfig()
    {
        AddColumn(new BandwidthColumn(percent: false), new BandwidthColumn(percent: true));
        AddDiagnoser(MemoryDiagnoser.Default);
    }

    private sealed class BandwidthColumn(bool percent) : IColumn
    {
        public string Id => percent ? "NativeAttention.KvPercentOfBandwidth" : "NativeAttention.KvGBs";
        public string ColumnName => percent ? "% of bandwidth" : "GB/s";
        public string Legend => percent
            ? "GB/s as a percentage of this machine's measured streaming read bandwidth on the same threads (see `NativeAttention.Cli info`)"
            : "Bytes of K and V read (2 Hkv Nk D x element size) divided by the mean time, in 10^9 per second";
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
            var benchmark = new CpuKvCacheDecode();
            foreach (var parameter in benchmarkCase.Parameters.Items)
                typeof(CpuKvCacheDecode).GetProperty(parameter.Name)?.SetValue(benchmark, parameter.Value);
            double gbs = benchmark.CacheBytes / (statistics.Mean / 1e9) / 1e9;
            if (!percent) return gbs.ToString("0.0", CultureInfo.InvariantCulture);
            var peaks = MachinePeaks.GetOrMeasure(benchmark.Threads, progress: message => Console.WriteLine($"// {message}"));
            return (100 * gbs / peaks.BandwidthGBs).ToString("0.0", CultureInfo.InvariantCulture) + "%";
        }

        public override string ToString() => ColumnName;
    }
}
