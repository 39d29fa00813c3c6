// When the tensor-core flex kernel (FlexMmaKernels) runs: fp16 or bf16 storage on a CUDA device of compute capability
// 8.0 or more, head dims up to 128, unless NATIVEATTENTION_FLEX_MMA=0; and only after a one-time self-check per context
// (per input type and accumulator width) has found it equal to the scalar kernel on a small problem. The kernel was
// written and compiled (PTX, CUBIN for sm_80 and sm_90) without a GPU, so its first run on a device is checked before
// any result of it is returned; a mismatch or a failure turns it off for that context with a Trace warning.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using NativeAttention.Gpu;
using NativeAttention.Gpu.Cuda;

namespace NativeAttention.Ilgpu.Flex.Gpu;

internal static class FlexMmaPath
{
    /// <summary>Set to 0 to keep every flex call on the scalar kernel.</summary>
    public const string Variable = "NATIVEATTENTION_FLEX_MMA";

    private static readonly bool Disabled = Environment.GetEnvironmentVariable(Variable)?.Trim() == "0";

    private static readonly ConditionalWeakTable<GpuContext, ConcurrentDictionary<(Type Type, Type Accumulator), Lazy<bool>>> Checks = new();

    /// <summary>
    /// The mma input type and accumulator for a call with codec <paramref name="codec"/> (fp16 or bf16) and head dims up to
    /// <paramref name="dims"/> (at most 128) on <paramref name="context"/>, or null for the scalar kernel. Unless
    /// <paramref name="force"/>, the switch and the self-check apply (the first call per context and type runs it).
    /// </summary>
    public static (Type Type, Type Accumulator)? Pick(GpuContext context, Type codec, int dims, bool force)
    {
        if (context is not CudaContext { ComputeCapability: >= 80 } || dims > 128) return null;
        var choice = (codec == typeof(Fp16Element) ? typeof(MmaF16) : typeof(MmaBf16), dims <= 64 ? typeof(MmaAcc64) : typeof(MmaAcc128));
        if (force) return choice;
        if (Disabled) return null;
        var results = Checks.GetValue(context, static _ => new());
        return results.GetOrAdd(choice, c => new Lazy<bool>(() => SelfCheck(context, codec, c.Accumulator))).Value ? choice : null;
    }

    /// <summary>True when this context passed (or is forced past) the self-check for the type; for tests.</summary>
    internal static bool? CheckResult(GpuContext context, Type codec, int dims)
    {
        var choice = (codec == typeof(Fp16Element) ? typeof(MmaF16) : typeof(MmaBf16), dims <= 64 ? typeof(MmaAcc64) : typeof(MmaAcc128));
        return Checks.TryGetValue(context, out var results) && results.TryGetValue(choice, out var result) && result.IsValueCreated ? result.Value : null;
    }

    /// <summary>
    /// Runs both kernels on one small problem (GQA, ragged tiles, Dv &lt; Dqk, a partial mask with an empty row, a score
    /// modification) and compares output and log-sum-exp. False, with a Trace warning, on a mismatch or a failure.
    /// </summary>
    private static bool SelfCheck(GpuContext context, Type codec, Type accumulator)
    {
        var type = codec == typeof(Fp16Element) ? ElementType.Float16 : ElementType.BFloat16;
        int d = accumulator == typeof(MmaAcc64) ? 64 : 128, dv = d - 24;
        const int B = 1, Hq = 2, Hkv = 1, Nq = 40, Nk = 56;
        var random = new Random(7);
        var owned = new List<TensorView>();
        TensorView Tensor(ElementType elementType, params int[] shape)
        {
            var view = context.Allocate(elementType, shape);
            owned.Add(view);
            return view;
        }
        TensorView Input(params int[] shape)
        {
            var view = Tensor(type, shape);
            var values = new float[view.ElementCount];
            for (int i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
            var buffer = (DeviceBuffer)view.Storage!;
            if (type == ElementType.Float16) buffer.Write<System.Half>(values.Select(x => (System.Half)x).ToArray());
            else buffer.Write<BFloat16>(values.Select(x => (BFloat16)x).ToArray());
            return view;
        }
        float[] Output(in TensorView view)
        {
            var buffer = (DeviceBuffer)view.Storage!;
            if (view.ElementType == ElementType.Float32)
            {
                var floats = new float[view.ElementCount];
                buffer.Read<float>(floats);
                return floats;
            }
            if (type == ElementType.Float16)
            {
                var halves = new System.Half[view.ElementCount];
                buffer.Read<System.Half>(halves);
                return halves.Select(x => (float)x).ToArray();
            }
            var bf = new BFloat16[view.ElementCount];
            buffer.Read<BFloat16>(bf);
            return bf.Select(x => (float)x).ToArray();
        }
        string name = $"{(type == ElementType.Float16 ? "fp16" : "bf16")} tensor-core flex kernel (head dims up to {d})";
        try
        {
            var q = Input(B, Hq, Nq, d);
            var k = Input(B, Hkv, Nk, d);
            var v = Input(B, Hkv, Nk, dv);
            var (o1, o2) = (Tensor(type, B, Hq, Nq, dv), Tensor(type, B, Hq, Nq, dv));
            var (l1, l2) = (Tensor(ElementType.Float32, B, Hq, Nq), Tensor(ElementType.Float32, B, Hq, Nq));
            float scale = 1 / MathF.Sqrt(d);
            FlexGpu.Run(context, q, k, v, o1, l1, scale, null, new SelfCheckScore(), new SelfCheckMask(), viewChecks: true, FlexPath.Mma);
            FlexGpu.Run(context, q, k, v, o2, l2, scale, null, new SelfCheckScore(), new SelfCheckMask(), viewChecks: true, FlexPath.Scalar);
            context.Synchronize();
            double tolerance = type == ElementType.Float16 ? 1e-2 : 4e-2;
            string? mismatch = Compare("output", Output(o1), Output(o2), tolerance) ?? Compare("log-sum-exp", Output(l1), Output(l2), 1e-2);
            if (mismatch is null) return true;
            Trace.TraceWarning($"NativeAttention: the {name} disagrees with the scalar flex kernel on {context.DeviceName} ({mismatch}); this context uses the scalar kernel.");
            return false;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Trace.TraceWarning($"NativeAttention: the {name} failed its self-check on {context.DeviceName} ({e.GetType().Name}: {e.Message}); this context uses the scalar kernel.");
            return false;
        }
        finally
        {
            foreach (var view in owned) (view.Storage as IDisposable)?.Dispose();
        }
    }

    private static string? Compare(string what, float[] actual, float[] expected, double tolerance)
    {
        for (int i = 0; i < expected.Length; i++)
        {
            if (float.IsNegativeInfinity(expected[i]) && float.IsNegativeInfinity(actual[i])) continue;
            double error = Math.Abs(actual[i] - expected[i]);
            if (!(error <= tolerance * (1 + Math.Abs(expected[i]))))
                return $"{what}[{i}] is {actual[i]}, the scalar kernel's {expected[i]}";
        }
        return null;
    }
}

/// <summary>The self-check's mask: causal with a shift of 16, every 7th diagonal hidden, query 5 sees nothing.</summary>
internal readonly struct SelfCheckMask : IMaskMod
{
    public bool Visible(int batch, int head, int query, int key) => key <= query + 16 && (key + query) % 7 != 3 && query != 5;
}

/// <summary>The self-check's score modification: a per-head distance penalty.</summary>
internal readonly struct SelfCheckScore : IScoreMod
{
    public float Score(float score, int batch, int head, int query, int key) => score - 0.03f * (head + 1) * Math.Abs(query - key) * 0.1f;
}
