// The OpenCL context the flex GPU tests share, the skip/require rule of the main tests (NATIVEATTENTION_REQUIRE names
// opencl: a missing backend fails), and helpers that upload host data and run one flex call against the reference.
using System.Runtime.InteropServices;
using ILGPU;
using Half = System.Half;
using NativeAttention.Gpu;
using NativeAttention.Ilgpu.Flex.Gpu;
using Xunit;

namespace NativeAttention.Ilgpu.Tests.FlexOnGpu;

/// <summary>One OpenCL context for the class, or the reason there is none.</summary>
public sealed class OpenClFixture : IDisposable
{
    private readonly Lazy<(GpuContext? Context, string? Reason)> _context = new(() =>
    {
        var info = Backends.Query(Backend.OpenCl);
        return info.IsSupported ? ((GpuContext)AttentionContext.Create(Backend.OpenCl), null) : (null, info.Description);
    });

    /// <summary>The context, or a skip (a failure when NATIVEATTENTION_REQUIRE names opencl).</summary>
    public GpuContext Context
    {
        get
        {
            var (context, reason) = _context.Value;
            if (context is not null) return context;
            bool required = (Environment.GetEnvironmentVariable("NATIVEATTENTION_REQUIRE") ?? "").Split(',', StringSplitOptions.TrimEntries)
                .Any(n => n.Equals("opencl", StringComparison.OrdinalIgnoreCase));
            if (required) throw new InvalidOperationException("NATIVEATTENTION_REQUIRE names opencl, but it is not available: " + reason);
            Skip.If(true, "opencl is not available here: " + reason);
            throw new InvalidOperationException("unreachable");
        }
    }

    public void Dispose()
    {
        if (_context.IsValueCreated) _context.Value.Context?.Dispose();
    }
}

/// <summary>Device tensors and one checked flex call.</summary>
internal static class FlexCheck
{
    public static TensorView Upload(GpuContext context, float[] data, params int[] shape)
    {
        var view = context.Allocate(ElementType.Float32, shape);
        ((DeviceBuffer)view.Storage!).Write<float>(data);
        return view;
    }

    /// <summary>int32 data in a Float32 device buffer (by bit pattern), as a view for a modification's field.</summary>
    public static ArrayView<int> Ints(GpuContext context, int[] data)
    {
        var view = context.Allocate(ElementType.Float32, data.Length);
        ((DeviceBuffer)view.Storage!).Write<float>(MemoryMarshal.Cast<int, float>(data.AsSpan()));
        return FlexViews.Of<int>(view);
    }

    public static ArrayView<float> Floats(GpuContext context, float[] data) => FlexViews.Of<float>(Upload(context, data, data.Length));

    /// <summary>Values rounded to <paramref name="type"/> (to nearest even), as floats.</summary>
    public static float[] Round(float[] values, ElementType type) => type switch
    {
        ElementType.Float16 => values.Select(x => (float)(Half)x).ToArray(),
        ElementType.BFloat16 => values.Select(x => (float)(BFloat16)x).ToArray(),
        _ => values,
    };

    public static TensorView Upload(GpuContext context, float[] data, ElementType type, params int[] shape)
    {
        if (type == ElementType.Float32) return Upload(context, data, shape);
        var view = context.Allocate(type, shape);
        var buffer = (DeviceBuffer)view.Storage!;
        if (type == ElementType.Float16) buffer.Write<Half>(data.Select(x => (Half)x).ToArray());
        else buffer.Write<BFloat16>(data.Select(x => (BFloat16)x).ToArray());
        return view;
    }

    public static float[] Read(in TensorView view, ElementType type)
    {
        var buffer = (DeviceBuffer)view.Storage!;
        switch (type)
        {
            case ElementType.Float16:
            {
                var values = new Half[view.ElementCount];
                buffer.Read<Half>(values);
                return values.Select(x => (float)x).ToArray();
            }
            case ElementType.BFloat16:
            {
                var values = new BFloat16[view.ElementCount];
                buffer.Read<BFloat16>(values);
                return values.Select(x => (float)x).ToArray();
            }
            default:
                return Read(view);
        }
    }

    public static float[] Read(in TensorView view)
    {
        var values = new float[view.ElementCount];
        ((DeviceBuffer)view.Storage!).Read<float>(values);
        return values;
    }

    public static float[] Random(Random random, int count)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        return values;
    }

    /// <summary>A problem shape: B, Hq, Hkv, Nq, Nk, Dqk, Dv.</summary>
    public readonly record struct Shape(int B, int Hq, int Hkv, int Nq, int Nk, int D, int Dv);

    /// <summary>
    /// Runs flex on <paramref name="context"/> with random Q, K, V of <paramref name="shape"/> and checks O and LSE against
    /// the float64 reference given <paramref name="visible"/> and <paramref name="score"/>. <paramref name="blockMask"/>:
    /// none, or the one the test built (its full blocks must be fully visible under <paramref name="visible"/>).
    /// </summary>
    public static void Check<TScore, TMask>(GpuContext context, Shape shape, TScore scoreMod, TMask maskMod, Func<int, int, int, int, bool> visible,
        Func<double, int, int, int, int, double> score, FlexBlockMask? blockMask, int seed = 1, double tolerance = 2e-4,
        ElementType type = ElementType.Float32, FlexPath path = FlexPath.Auto)
        where TScore : struct, IScoreMod where TMask : struct, IMaskMod
    {
        var random = new Random(seed);
        var (b, hq, hkv, nq, nk, d, dv) = shape;
        // 16-bit inputs: the reference reads the values the device holds (rounded to the storage type).
        float[] q = Round(Random(random, b * hq * nq * d), type), k = Round(Random(random, b * hkv * nk * d), type), v = Round(Random(random, b * hkv * nk * dv), type);
        var qd = Upload(context, q, type, b, hq, nq, d);
        var kd = Upload(context, k, type, b, hkv, nk, d);
        var vd = Upload(context, v, type, b, hkv, nk, dv);
        var od = Upload(context, Enumerable.Repeat(float.NaN, b * hq * nq * dv).ToArray(), type, b, hq, nq, dv);
        var ld = Upload(context, Enumerable.Repeat(float.NaN, b * hq * nq).ToArray(), b, hq, nq);
        double scale = 1 / Math.Sqrt(d);
        FlexGpu.Run(context, qd, kd, vd, od, ld, (float)scale, blockMask, scoreMod, maskMod, path: path);
        context.Synchronize();
        var (expected, expectedLse) = FlexReference.Run(q, k, v, b, hq, hkv, nq, nk, d, dv, scale, visible, score);
        Compare("output", expected, Read(od, type), tolerance);
        Compare("logSumExp", expectedLse, Read(ld), tolerance);
    }

    public static void Compare(string what, double[] expected, float[] actual, double tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            if (double.IsNegativeInfinity(expected[i]))
            {
                Assert.True(float.IsNegativeInfinity(actual[i]), $"{what}[{i}]: expected -inf, got {actual[i]}");
                continue;
            }
            double error = Math.Abs(expected[i] - actual[i]);
            Assert.True(error <= tolerance * (1 + Math.Abs(expected[i])), $"{what}[{i}]: expected {expected[i]}, got {actual[i]} (error {error:G3})");
        }
    }
}
