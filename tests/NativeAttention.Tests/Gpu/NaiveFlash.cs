// A naive double-precision flash attention for the GPU tests: straight from DESIGN.md, no tiling, no online softmax.
namespace NativeAttention.Tests.Gpu;

internal static class NaiveFlash
{
    /// <summary>O [B, Hq, Nq, Dv] and LSE [B, Hq, Nq] from host tensors, row-major results.</summary>
    public static (double[] Output, double[] Lse) Compute(TensorView q, TensorView k, TensorView v, FlashOptions options)
    {
        int b = q.Shape[0], hq = q.Shape[1], nq = q.Shape[2], dqk = q.Shape[3];
        int hkv = k.Shape[1], nk = k.Shape[2], dv = v.Shape[3];
        double scale = options.Scale ?? 1.0 / Math.Sqrt(dqk);
        var output = new double[(long)b * hq * nq * dv];
        var lse = new double[(long)b * hq * nq];
        var s = new double[nk];
        for (int bi = 0; bi < b; bi++)
            for (int h = 0; h < hq; h++)
            {
                int hk = h / (hq / hkv);
                for (int i = 0; i < nq; i++)
                {
                    var (start, end) = FlashProblem.VisibleKeys(i, nq, nk, options.Causal, options.WindowLeft, options.WindowRight);
                    long row = ((long)bi * hq + h) * nq + i;
                    if (end <= start)
                    {
                        lse[row] = double.NegativeInfinity;
                        continue;
                    }
                    double max = double.NegativeInfinity;
                    for (int j = start; j < end; j++)
                    {
                        double dot = 0;
                        for (int d = 0; d < dqk; d++) dot += q.GetDouble(bi, h, i, d) * k.GetDouble(bi, hk, j, d);
                        s[j] = scale * dot;
                        max = Math.Max(max, s[j]);
                    }
                    double sum = 0;
                    for (int j = start; j < end; j++) sum += Math.Exp(s[j] - max);
                    for (int d = 0; d < dv; d++)
                    {
                        double acc = 0;
                        for (int j = start; j < end; j++) acc += Math.Exp(s[j] - max) * v.GetDouble(bi, hk, j, d);
                        output[row * dv + d] = acc / sum;
                    }
                    lse[row] = max + Math.Log(sum);
                }
            }
        return (output, lse);
    }

    /// <summary>A host tensor of the given type filled with uniform values in [-amplitude, amplitude).</summary>
    public static TensorView Random(ElementType type, int[] shape, int seed, double amplitude = 1)
    {
        var rng = new Random(seed);
        long count = 1;
        foreach (int s in shape) count *= s;
        TensorView view = type switch
        {
            ElementType.Float32 => TensorView.FromMemory<float>(new float[count], shape),
            ElementType.Float16 => TensorView.FromMemory<Half>(new Half[count], shape),
            _ => TensorView.FromMemory<BFloat16>(new BFloat16[count], shape),
        };
        var values = new double[count];
        for (long n = 0; n < count; n++) values[n] = (rng.NextDouble() * 2 - 1) * amplitude;
        view.CopyFrom(values);
        return view;
    }
}
