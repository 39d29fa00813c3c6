// Device tensors of random values for the GPU benchmarks.
using NativeAttention;
using NativeAttention.Gpu;

namespace NativeAttention.GpuBench;

internal static class DeviceTensors
{
    /// <summary>A device tensor of uniform [-1, 1) values (fp16, bf16 or fp32).</summary>
    public static TensorView Random(AttentionContext context, ElementType type, int[] shape, int seed)
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
            if (type == ElementType.Float32)
                buffer.Write<float>(values.AsSpan(0, count), start);
            else if (type == ElementType.Float16)
                buffer.Write<Half>(values.Take(count).Select(x => (Half)x).ToArray(), start);
            else
                buffer.Write<BFloat16>(values.Take(count).Select(x => (BFloat16)x).ToArray(), start);
        }
        return view;
    }
}
