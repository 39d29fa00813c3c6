// Times flash forward on a GPU backend over the shapes of bench/results/cuda.md and prints a markdown table.
// Usage: NativeAttention.GpuBench cuda-bench|opencl-bench [--quick]
using System.Diagnostics;
using System.Globalization;
using NativeAttention;
using NativeAttention.Gpu;

if (args.Length == 0 || args[0] is not ("cuda-bench" or "opencl-bench"))
{
    Console.Error.WriteLine("usage: NativeAttention.GpuBench cuda-bench|opencl-bench [--quick]");
    return 2;
}
var backend = args[0] == "cuda-bench" ? Backend.Cuda : Backend.OpenCl;
bool quick = args.Contains("--quick");
using var context = AttentionContext.Create(backend);
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
                var q = Random(context, type, [batch, heads, n, d], 1);
                var k = Random(context, type, [batch, heads, n, d], 2);
                var v = Random(context, type, [batch, heads, n, d], 3);
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

static TensorView Random(AttentionContext context, ElementType type, int[] shape, int seed)
{
    var view = context.Allocate(type, shape);
    var buffer = (DeviceBuffer)view.Storage!;
    // One random block repeated over the buffer: generating 10^8 values on the host would dominate the run.
    const int block = 1 << 20;
    var rng = new Random(seed);
    var values = new float[block];
    for (int i = 0; i < block; i++) values[i] = (float)(rng.NextDouble() * 2 - 1);
    for (long start = 0; start < buffer.Length; start += block)
    {
        int count = (int)Math.Min(block, buffer.Length - start);
        if (type == ElementType.Float16)
            buffer.Write<Half>(values.Take(count).Select(x => (Half)x).ToArray(), start);
        else
            buffer.Write<BFloat16>(values.Take(count).Select(x => (BFloat16)x).ToArray(), start);
    }
    return view;
}
