// The linear decode step against memory probes measured in the same process (`--linear-decode-bandwidth [rounds]`):
// issue 13's "decode step at D = 128: at least 60% of measured memory bandwidth on the state". Per round and case, a
// read probe, a copy probe (read one buffer, write another) and an in-place update probe (read and write the same
// lines, as the step does to its state) run over buffers of the state's size, right before the steps they are compared
// with, so that both sides meet the same minutes of a shared host and the same cache level.
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using NativeAttention.Bench;

namespace NativeAttention.Benchmarks;

/// <summary>Bytes moved per second by <see cref="AttentionContext.LinearDecodeStep"/> next to same-process memory probes.</summary>
public static class LinearDecodeBandwidth
{
    private const int Threads = 2;
    private const int Steps = 10;

    /// <summary>
    /// H = 16, D = 128 (64 KiB of float32 state per head): B = 128 is 128 MiB of state (four times a 32 MB L3), B = 4 is
    /// 4 MiB (in the L3); no decay, a per-head decay and a per-token gate.
    /// </summary>
    public static readonly string[] Specs =
    [
        "linear f32 B128 H16 N1 D128 decode",
        "linear f32 B128 H16 N1 D128 decay=head decode",
        "linear f32 B128 H16 N1 D128 decay=token decode",
        "linear f32 B4 H16 N1 D128 decode",
        "linear f32 B4 H16 N1 D128 decay=head decode",
        "linear f32 B4 H16 N1 D128 decay=token decode",
    ];

    /// <summary>Runs <paramref name="rounds"/> rounds over <paramref name="specs"/> (null: <see cref="Specs"/>) and prints the medians.</summary>
    public static int Run(int rounds, TextWriter output, IReadOnlyList<string>? specs = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rounds, 1);
        specs ??= Specs;
        using var context = AttentionContext.Create(Backend.Cpu, new ContextOptions { Threads = Threads });
        var cases = specs.Select(s => (LinearCase)AttentionCaseSpec.Parse(s)).ToArray();
        if (cases.FirstOrDefault(c => !c.Decode || c.Normalize || c.FeatureMap is FeatureMap.Taylor2) is { } bad)
            throw new ArgumentException($"Not a plain decode case: {bad.ToSpec()}.", nameof(specs));
        // The tensors in 64-byte aligned native memory, as an inference engine allocates its state buffers.
        var runs = cases.Select(c => CaseRunner.Prepare(context, c, alignHostMemory: true)).ToArray();
        var results = cases.Select(_ => new Samples()).ToArray();
        var probes = new Dictionary<long, Probes>();
        try
        {
            foreach (var run in runs) { run.Run(); run.Run(); }
            var loads = new List<string>();
            for (int r = 0; r < rounds; r++)
            {
                loads.Add(File.ReadAllText("/proc/loadavg").Split(' ')[0]);
                for (int i = 0; i < cases.Length; i++)
                {
                    var c = cases[i];
                    long stateBytes = StateBytes(c);
                    if (!probes.TryGetValue(stateBytes, out var probe)) probes[stateBytes] = probe = new Probes(Threads, stateBytes);
                    double c0 = CpuSeconds();
                    results[i].Read.Add(probe.Read(3));
                    double c1 = CpuSeconds();
                    results[i].Copy.Add(probe.Copy(3));
                    double c2 = CpuSeconds();
                    results[i].Update.Add(probe.Update(3));
                    double c3 = CpuSeconds();
                    // The same bytes per second of this process's CPU time on the two threads (3 passes each; the
                    // probe threads' start is included, which only matters for the small buffers).
                    results[i].ReadPerCpu.Add(3.0 * stateBytes * Threads / (c1 - c0) / 1e9);
                    results[i].CopyPerCpu.Add(6.0 * stateBytes * Threads / (c2 - c1) / 1e9);
                    results[i].UpdatePerCpu.Add(6.0 * stateBytes * Threads / (c3 - c2) / 1e9);
                    var wall = new double[Steps];
                    double cpu0 = CpuSeconds();
                    for (int j = 0; j < Steps; j++)
                    {
                        long t0 = Stopwatch.GetTimestamp();
                        runs[i].Run();
                        wall[j] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                    }
                    double cpu = (CpuSeconds() - cpu0) / Steps;
                    double bytes = c.MinimumBytes();
                    results[i].Kernel.Add(bytes / Median(wall) / 1e9);
                    results[i].Best.Add(bytes / wall.Min() / 1e9);
                    // Per second of this process's CPU time on both threads: what the step would move with the cores to itself.
                    results[i].PerCpu.Add(bytes * Threads / cpu / 1e9);
                }
            }
            output.WriteLine($"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {rounds} rounds x {Steps} steps, {Threads} threads, load per round {string.Join(" ", loads)}");
            output.WriteLine("GB/s = 10^9 bytes per second; the step's bytes are its state read and written once plus q, k, v and o;");
            output.WriteLine("each probe is the best of 3 passes over buffers of the state's size, right before the round's 10 steps; ratios are per round.");
            for (int i = 0; i < cases.Length; i++)
            {
                var s = results[i];
                output.WriteLine($"{cases[i].ToSpec()} (state {StateBytes(cases[i]) / (1 << 20)} MiB, {cases[i].MinimumBytes() / 1e6:F1} MB per step)");
                output.WriteLine($"    step {Median(s.Kernel):F1} GB/s median of round medians (round bests {Median(s.Best):F1} median, {s.Best.Max():F1} best);"
                    + $" probes: read {Median(s.Read):F1}, copy {Median(s.Copy):F1}, in-place update {Median(s.Update):F1} GB/s");
                output.WriteLine($"    median step / probe per round: read {Ratio(s.Kernel, s.Read)}, copy {Ratio(s.Kernel, s.Copy)}, in-place update {Ratio(s.Kernel, s.Update)}");
                // Small buffers: the probe threads' start outweighs their passes, so no CPU-time line.
                if (StateBytes(cases[i]) >= 64L << 20)
                {
                    output.WriteLine($"    per CPU second (x 2 threads, load-robust where the cores, not memory, are shared): step {Median(s.PerCpu):F1}, read {Median(s.ReadPerCpu):F1},"
                        + $" copy {Median(s.CopyPerCpu):F1}, in-place update {Median(s.UpdatePerCpu):F1} GB/s; step / probe per round: read {Ratio(s.PerCpu, s.ReadPerCpu)},"
                        + $" copy {Ratio(s.PerCpu, s.CopyPerCpu)}, in-place update {Ratio(s.PerCpu, s.UpdatePerCpu)}");
                }
                output.WriteLine($"    best step / probe per round (both a best of their runs): read {Ratio(s.Best, s.Read)}, copy {Ratio(s.Best, s.Copy)}, in-place update {Ratio(s.Best, s.Update)}");
            }
        }
        finally
        {
            foreach (var run in runs) run.Dispose();
            foreach (var probe in probes.Values) probe.Dispose();
        }
        return 0;
    }

    /// <summary>The float32 states of a decode case without normalisation or a widening feature map: B H Dk Dv floats.</summary>
    private static long StateBytes(LinearCase c) => 4L * c.Batch * c.Heads * c.KeyDim * c.ValueDim;

    private sealed class Samples
    {
        public readonly List<double> Kernel = [], Best = [], PerCpu = [], Read = [], Copy = [], Update = [], ReadPerCpu = [], CopyPerCpu = [], UpdatePerCpu = [];
    }

    private static string Ratio(List<double> kernel, List<double> probe)
    {
        var r = kernel.Zip(probe, (k, p) => k / p).ToArray();
        return $"{Median(r):P0} [{r.Min():P0}..{r.Max():P0}]";
    }

    private static double CpuSeconds() => Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;

    private static double Median(IEnumerable<double> values)
    {
        var a = values.Order().ToArray();
        return a.Length % 2 == 1 ? a[a.Length / 2] : (a[a.Length / 2 - 1] + a[a.Length / 2]) / 2;
    }

    /// <summary>
    /// Buffers of the state's size, 2 MiB aligned and first touched by the threads that use them: the project's
    /// streaming-read probe over one (<see cref="Read"/>, <see cref="BandwidthProbe"/>), a copy between two others
    /// (<see cref="Copy"/>: its bytes read plus written), and an in-place <c>x = a x + b</c> over one of those
    /// (<see cref="Update"/>: read plus written, the decode step's state traffic).
    /// </summary>
    private sealed unsafe class Probes : IDisposable
    {
        private readonly int _threads;
        private readonly long _count, _slice;
        private float* _a, _b;
        private readonly BandwidthProbe.Buffer _read;

        public Probes(int threads, long bytes)
        {
            _threads = threads;
            _count = bytes / sizeof(float) / 64 * 64;
            _slice = _count / threads / 64 * 64;
            _a = (float*)NativeMemory.AlignedAlloc((nuint)(_count * sizeof(float)), 2 << 20);
            _b = (float*)NativeMemory.AlignedAlloc((nuint)(_count * sizeof(float)), 2 << 20);
            ParallelRuns.BestSeconds(threads, 1, t => { Slice(_a, t).Fill(1f); Slice(_b, t).Fill(0f); });
            _read = BandwidthProbe.Allocate(threads, bytes);
        }

        private long Start(int t) => t * _slice;

        private long Length(int t) => t == _threads - 1 ? _count - t * _slice : _slice;

        private Span<float> Slice(float* x, int t) => new(x + Start(t), checked((int)Length(t)));

        /// <summary>The project's streaming-read probe (<see cref="BandwidthProbe"/>) over its own buffer of the same size.</summary>
        public double Read(int runs) => _read.Measure(runs);

        public double Copy(int runs) => 8.0 * _count / ParallelRuns.BestSeconds(_threads, runs, t => CopyRun(_a + Start(t), _b + Start(t), Length(t))) / 1e9;

        public double Update(int runs) => 8.0 * _count / ParallelRuns.BestSeconds(_threads, runs, t => UpdateRun(_a + Start(t), Length(t))) / 1e9;

        public void Dispose()
        {
            if (_a is null) return;
            _read.Dispose();
            NativeMemory.AlignedFree(_a);
            NativeMemory.AlignedFree(_b);
            _a = _b = null;
        }

        [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
        private static void CopyRun(float* x, float* y, long n)
        {
            if (Vector512.IsHardwareAccelerated)
            {
                for (long i = 0; i < n; i += 64)
                {
                    Vector512.Load(x + i).Store(y + i); Vector512.Load(x + i + 16).Store(y + i + 16);
                    Vector512.Load(x + i + 32).Store(y + i + 32); Vector512.Load(x + i + 48).Store(y + i + 48);
                }
                return;
            }
            for (long i = 0; i < n; i += 32)
            {
                Vector256.Load(x + i).Store(y + i); Vector256.Load(x + i + 8).Store(y + i + 8);
                Vector256.Load(x + i + 16).Store(y + i + 16); Vector256.Load(x + i + 24).Store(y + i + 24);
            }
        }

        // x = 0.5 x + 0.5: the values stay 1, so repeated runs neither grow nor reach denormals.
        [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
        private static void UpdateRun(float* x, long n)
        {
            if (Vector512.IsHardwareAccelerated)
            {
                var h = Vector512.Create(0.5f);
                for (long i = 0; i < n; i += 64)
                {
                    Vector512.FusedMultiplyAdd(Vector512.Load(x + i), h, h).Store(x + i);
                    Vector512.FusedMultiplyAdd(Vector512.Load(x + i + 16), h, h).Store(x + i + 16);
                    Vector512.FusedMultiplyAdd(Vector512.Load(x + i + 32), h, h).Store(x + i + 32);
                    Vector512.FusedMultiplyAdd(Vector512.Load(x + i + 48), h, h).Store(x + i + 48);
                }
                return;
            }
            var g = Vector256.Create(0.5f);
            for (long i = 0; i < n; i += 32)
            {
                (Vector256.Load(x + i) * g + g).Store(x + i); (Vector256.Load(x + i + 8) * g + g).Store(x + i + 8);
                (Vector256.Load(x + i + 16) * g + g).Store(x + i + 16); (Vector256.Load(x + i + 24) * g + g).Store(x + i + 24);
            }
        }
    }
}
