// Flash cases run on a GPU context and compared with NaiveFlash; shared by the OpenCL and CUDA test classes.
using Xunit;

namespace NativeAttention.Tests.Gpu;

/// <summary>One flash problem; <see cref="Permuted"/> stores Q/K/V/O as [B, N, H, D] and passes permuted views.</summary>
public sealed record GpuFlashCase(
    string Name, ElementType Type, int Batch, int HeadsQ, int HeadsKv, int Nq, int Nk, int Dqk, int Dv,
    bool Causal = false, int WindowLeft = -1, int WindowRight = -1, float? Scale = null, bool Permuted = false, double Tolerance = 8)
{
    public override string ToString() => Name;

    /// <summary>Runs the case on <paramref name="context"/> and checks output and LSE against the float64 computation.</summary>
    public void Check(AttentionContext context, int seed = 1)
    {
        var options = new FlashOptions { Causal = Causal, WindowLeft = WindowLeft, WindowRight = WindowRight, Scale = Scale };
        var q = NaiveFlash.Random(Type, [Batch, HeadsQ, Nq, Dqk], seed);
        var k = NaiveFlash.Random(Type, [Batch, HeadsKv, Nk, Dqk], seed + 1);
        var v = NaiveFlash.Random(Type, [Batch, HeadsKv, Nk, Dv], seed + 2);
        var (expected, expectedLse) = NaiveFlash.Compute(q, k, v, options);

        TensorView dq, dk, dv, dout;
        if (Permuted)
        {
            dq = context.Upload(q.Permute(0, 2, 1, 3)).Permute(0, 2, 1, 3);
            dk = context.Upload(k.Permute(0, 2, 1, 3)).Permute(0, 2, 1, 3);
            dv = context.Upload(v.Permute(0, 2, 1, 3)).Permute(0, 2, 1, 3);
            dout = context.Allocate(Type, Batch, Nq, HeadsQ, Dv).Permute(0, 2, 1, 3);
        }
        else
        {
            dq = context.Upload(q);
            dk = context.Upload(k);
            dv = context.Upload(v);
            dout = context.Allocate(Type, Batch, HeadsQ, Nq, Dv);
        }
        var dlse = context.Allocate(ElementType.Float32, Batch, HeadsQ, Nq);
        context.Flash(dq, dk, dv, dout, options, dlse);
        var actual = context.Download(dout).ToDoubleArray();
        var actualLse = context.Download(dlse).ToDoubleArray();

        double unit = Type == ElementType.Float32 ? 1e-6 : Type.UnitRoundoff();
        double tolerance = Tolerance * unit;   // |V| < 1, so this bounds the absolute error
        double worst = 0;
        for (int n = 0; n < expected.Length; n++)
        {
            Assert.False(double.IsNaN(actual[n]), $"{Name}: output element {n} is NaN.");
            worst = Math.Max(worst, Math.Abs(actual[n] - expected[n]));
        }
        Assert.True(worst <= tolerance, $"{Name}: max |O - O_ref| = {worst:E3} > {tolerance:E3}.");
        for (int n = 0; n < expectedLse.Length; n++)
        {
            if (double.IsNegativeInfinity(expectedLse[n]))
            {
                Assert.True(double.IsNegativeInfinity(actualLse[n]), $"{Name}: LSE row {n} should be -inf (no visible key), got {actualLse[n]}.");
                continue;
            }
            double lseTolerance = 1e-4 * (1 + Math.Abs(expectedLse[n])) * Tolerance;
            Assert.True(Math.Abs(actualLse[n] - expectedLse[n]) <= lseTolerance,
                $"{Name}: LSE row {n} = {actualLse[n]}, expected {expectedLse[n]}.");
        }
    }

    /// <summary>Cases every GPU backend runs (few distinct kernel variants, so PoCL compiles stay short).</summary>
    public static TheoryData<GpuFlashCase> Portable => new(PortableCases);

    /// <summary>The cases of <see cref="Portable"/>.</summary>
    public static GpuFlashCase[] PortableCases =>
    [
        new("f32 causal GQA Nq!=Nk Dqk!=Dv", ElementType.Float32, 2, 4, 2, 37, 53, 40, 24, Causal: true),
        new("f32 causal permuted [B,N,H,D] layout MQA", ElementType.Float32, 1, 3, 1, 37, 53, 40, 24, Causal: true, Permuted: true),
        new("f32 fully masked rows", ElementType.Float32, 1, 2, 2, 8, 3, 8, 8, Causal: true),
        new("f32 scale 1e4", ElementType.Float32, 1, 1, 1, 16, 16, 32, 32, Scale: 1e4f, Tolerance: 1e4),
        new("f16 even tiles", ElementType.Float16, 1, 2, 2, 64, 64, 64, 64),
        new("bf16 window", ElementType.BFloat16, 1, 2, 1, 20, 30, 16, 16, WindowLeft: 5, WindowRight: 3),
        new("f16 head dims 200/256", ElementType.Float16, 1, 1, 1, 9, 17, 200, 256),
    ];

    /// <summary>Cases that take the CUDA tensor-core kernel on sm_80+ (f16/bf16, Dqk == Dv in {64, 128}).</summary>
    public static TheoryData<GpuFlashCase> TensorCore => new(TensorCoreCases);

    /// <summary>The cases of <see cref="TensorCore"/>.</summary>
    public static GpuFlashCase[] TensorCoreCases =>
    [
        new("mma f16 d64", ElementType.Float16, 2, 4, 4, 256, 256, 64, 64),
        new("mma f16 d128 causal uneven", ElementType.Float16, 1, 4, 2, 200, 333, 128, 128, Causal: true),
        new("mma bf16 d128", ElementType.BFloat16, 1, 2, 1, 130, 190, 128, 128),
        new("mma bf16 d64 causal Nq>Nk", ElementType.BFloat16, 1, 2, 2, 100, 70, 64, 64, Causal: true),
        new("mma f16 d64 window", ElementType.Float16, 1, 2, 2, 300, 300, 64, 64, WindowLeft: 40, WindowRight: 7),
        new("mma f16 d128 permuted", ElementType.Float16, 2, 2, 2, 128, 128, 128, 128, Permuted: true),
        new("mma f16 d64 scale 1e4", ElementType.Float16, 1, 1, 1, 64, 64, 64, 64, Scale: 1e4f, Tolerance: 200),
    ];
}
