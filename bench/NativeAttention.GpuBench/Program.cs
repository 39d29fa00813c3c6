// Times GPU kernels over the shapes of bench/results/cuda.md and prints markdown tables:
//   cuda-bench|opencl-bench [--quick]     flash forward, B = 4, H = 16, D = 64/128, N = 1024..16384, TFLOP/s
//   cuda-decode|opencl-decode [--quick]   FlashKvCache decode, B = 1, Hq = 32, D = 128, Nk = 4096/16384, GB/s of K and V
//   cuda-shapes|opencl-shapes             issue-4 shapes: sliding window, GQA, cross-attention, TFLOP/s on visible pairs
using System.Diagnostics;
using System.Globalization;
using NativeAttention;
using NativeAttention.Gpu;
using NativeAttention.GpuBench;

string[] commands = ["cuda-bench", "opencl-bench", "cuda-decode", "opencl-decode", "cuda-shapes", "opencl-shapes"];
if (args.Length == 0 || !commands.Contains(args[0]))
{
    Console.Error.WriteLine("usage: NativeAttention.GpuBench cuda-bench|opencl-bench|cuda-decode|opencl-decode|cuda-shapes|opencl-shapes [--quick]");
    return 2;
}
var backend = args[0].StartsWith("cuda", StringComparison.Ordinal) ? Backend.Cuda : Backend.OpenCl;
bool quick = args.Contains("--quick");
using var context = AttentionContext.Create(backend);
if (args[0].EndsWith("-decode", StringComparison.Ordinal)) return GpuBenchmarks.Decode(context, quick);
if (args[0].EndsWith("-shapes", StringComparison.Ordinal)) return GpuBenchmarks.Shapes(context);
Console.WriteLine($"# {backend} flash forward on {context.DeviceName}, NATIVEATTENTION_FLASH_MMA_TILE={Environment.GetEnvironmentVariable("NATIVEATTENTION_FLASH_MMA_TILE") ?? "(table)"}");
Console.WriteLine("| dtype | B | H | D | N | causal | ms | TFLOP/s |");
Console.WriteLine("|---|---|---|---|---|---|---|---|");
const int batch = 4, heads = 16;
int[] lengths = quick ? [1024] : [1024, 4096, 16384];
foreach (var type in new[] { ElementType.Float16, ElementType.BFloat16 })
    foreach (int d in new[] { 64, 128 })
        foreach (int n in lengths)
            foreach (bool causal in new[] { false, true })
            {
                var q = DeviceTensors.Random(context, type, [batch, heads, n, d], 1);
                var k = DeviceTensors.Random(context, type, [batch, heads, n, d], 2);
                var v = DeviceTensors.Random(context, type, [batch, heads, n, d], 3);
                var o = context.Allocate(type, batch, heads, n, d);
                var options = new FlashOptions { Causal = causal };
                context.Flash(q, k, v, o, options);
                context.Synchronize();
                double pairs = causal ? (double)n * (n + 1) / 2 : (double)n * n;
                double flops = 4.0 * d * pairs * batch * heads;
                int iterations = Math.Clamp((int)(2e13 / flops), 3, 200);
                var watch = Stopwatch.StartNew();
                for (int i = 0; i < iterations; i++) context.Flash(q, k, v, o, options);
                context.Synchronize();
                double ms = watch.Elapsed.TotalMilliseconds / iterations;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {(type == ElementType.Float16 ? "fp16" : "bf16")} | {batch} | {heads} | {d} | {n} | {causal} | {ms:F3} | {flops / ms / 1e9:F1} |"));
                foreach (var view in new[] { q, k, v, o }) ((DeviceBuffer)view.Storage!).Dispose();
            }
return 0;
