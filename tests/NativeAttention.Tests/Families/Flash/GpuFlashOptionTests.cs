// Flash score options (softcap, ALiBi, dense and low-rank bias, sinks, sigmoid) on the GPU kernels against the
// float64 reference, written once and bound to OpenCL and CUDA; option tensors are mirrored to the device as they are.
using NativeAttention.Gpu;
using Xunit;

namespace NativeAttention.Tests.Gpu;

/// <summary>
/// Each score option alone, with causal/window masking and GQA, and in combination, checked with FlashAttention's
/// rule (<see cref="CaseVerifier.Compare"/>: output error at most twice a naive same-precision implementation's, LSE
/// likewise; rows that see no key exactly zero with LSE = -inf). Cases are small so that PoCL compiles dominate.
/// The f16/bf16 cases with Dqk == Dv in {64, 128} run the tensor-core kernel on CUDA sm_80+.
/// </summary>
public abstract class GpuFlashOptionTests
{
    /// <summary>The backend under test.</summary>
    protected abstract Backend Backend { get; }

    /// <summary>Hand-picked option cases; option tensors are host tensors, as the reference needs them.</summary>
    public static readonly IReadOnlyDictionary<string, AttentionCase> Cases = new Dictionary<string, AttentionCase>
    {
        ["f32 softcap causal"] = Case(ElementType.Float32, 1, 2, 2, 40, 50, 32) with
        {
            InputScale = 3, Flash = new FlashOptions { Causal = true, Softcap = 4 },
        },
        ["f16 alibi [Hq] window GQA Nq!=Nk"] = Case(ElementType.Float16, 1, 4, 2, 30, 45, 16) with
        {
            Flash = new FlashOptions { WindowLeft = 8, WindowRight = 3, AlibiSlopes = Host(ElementType.Float32, [4], 1, 0.5, 0.25, 0.125) },
        },
        ["bf16 alibi [B, Hq] causal"] = Case(ElementType.BFloat16, 2, 2, 1, 33, 33, 24) with
        {
            Flash = new FlashOptions { Causal = true, AlibiSlopes = Host(ElementType.Float32, [2, 2], 0.3, 0.7, 0.05, 1.5) },
        },
        ["f32 f16 bias [1, Hq] transposed causal GQA"] = Case(ElementType.Float32, 2, 4, 1, 21, 37, 16) with
        {
            Flash = new FlashOptions { Causal = true, Bias = Random(ElementType.Float16, 7, 2, [1, 4, 37, 21]).Permute(0, 1, 3, 2) },
        },
        ["f16 bf16 bias [B, 1] with -inf rows"] = Case(ElementType.Float16, 2, 2, 2, 20, 30, 16) with
        {
            Flash = new FlashOptions { Bias = MaskedRowsBias(ElementType.BFloat16, 2, 1, 20, 30, maskedRows: [3, 11]) },
        },
        ["f32 low-rank U [1, Hq] W [B, 1] causal"] = Case(ElementType.Float32, 2, 2, 2, 35, 35, 16) with
        {
            Flash = new FlashOptions
            {
                Causal = true,
                LowRankBias = new LowRankBias(Random(ElementType.Float32, 11, 1, [1, 2, 35, 5]), Random(ElementType.Float32, 12, 1, [2, 1, 35, 5])),
            },
        },
        ["bf16 low-rank f16 U f32 W window GQA"] = Case(ElementType.BFloat16, 1, 4, 1, 26, 40, 16) with
        {
            Flash = new FlashOptions
            {
                WindowLeft = 6, WindowRight = 6,
                LowRankBias = new LowRankBias(Random(ElementType.Float16, 13, 1, [1, 4, 26, 3]), Random(ElementType.Float32, 14, 1, [1, 1, 40, 3])),
            },
        },
        ["f32 sinks causal Nq>Nk (rows without keys)"] = Case(ElementType.Float32, 1, 3, 1, 30, 20, 16) with
        {
            Flash = new FlashOptions { Causal = true, Sinks = Host(ElementType.Float32, [3], 0.5, -1, 3) },
        },
        ["f16 sigmoid causal GQA Nq>Nk"] = Case(ElementType.Float16, 1, 4, 2, 40, 30, 32) with
        {
            Flash = new FlashOptions { Causal = true, ScoreFunction = ScoreFunction.Sigmoid, SigmoidBias = -(float)Math.Log(30) },
        },
        ["f32 sigmoid softcap bias with -inf rows"] = Case(ElementType.Float32, 1, 2, 2, 20, 25, 16) with
        {
            InputScale = 2,
            Flash = new FlashOptions
            {
                ScoreFunction = ScoreFunction.Sigmoid, SigmoidBias = -2, Softcap = 3,
                Bias = MaskedRowsBias(ElementType.Float32, 1, 2, 20, 25, maskedRows: [0, 19]),
            },
        },
        // Tensor-core shapes (CUDA sm_80+): every option reaches the mma kernel in these two, and so do rows without
        // keys (causal with Nq > Nk; a -inf bias row under sigmoid).
        ["f16 d64 softcap alibi bias low-rank sinks causal GQA Nq>Nk"] = Case(ElementType.Float16, 1, 4, 2, 150, 100, 64) with
        {
            Flash = new FlashOptions
            {
                Causal = true, Softcap = 10,
                AlibiSlopes = Host(ElementType.Float32, [4], 0.5, 0.25, 0.125, 0.0625),
                Bias = Random(ElementType.Float32, 21, 1, [1, 4, 150, 100]),
                LowRankBias = new LowRankBias(Random(ElementType.BFloat16, 22, 1, [1, 1, 150, 4]), Random(ElementType.Float16, 23, 1, [1, 4, 100, 4])),
                Sinks = Host(ElementType.Float32, [4], 1, 0, -2, 4),
            },
        },
        ["bf16 d128 sigmoid alibi bias window"] = Case(ElementType.BFloat16, 1, 2, 1, 70, 90, 128) with
        {
            Flash = new FlashOptions
            {
                WindowLeft = 20, WindowRight = 5, ScoreFunction = ScoreFunction.Sigmoid, SigmoidBias = -3,
                AlibiSlopes = Host(ElementType.Float32, [2], 0.1, 0.02),
                Bias = MaskedRowsBias(ElementType.BFloat16, 1, 2, 70, 90, maskedRows: [5]),
            },
        },
    };

    /// <summary>The names of <see cref="Cases"/>, for xunit.</summary>
    public static TheoryData<string> CaseNames => new(Cases.Keys);

    [SkippableTheory]
    [MemberData(nameof(CaseNames))]
    public void Flash_ScoreOptionCase_MatchesReference(string name)
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var @case = Cases[name];
        var tensors = @case.CreateTensors();
        Run(context, @case, tensors);
        var result = CaseVerifier.Compare(context.Backend, @case, tensors);
        if (!result.Passed) Assert.Fail($"{name}: {result}");
    }

    [SkippableFact]
    public void Flash_SinkOnRowWithoutKeys_WritesZerosAndNegativeInfinityLse()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        // Window (0, 0) with Nq > Nk: rows 0..Nq-Nk-1 sit before every key.
        var @case = Case(ElementType.Float32, 1, 1, 1, 6, 2, 8) with
        {
            Flash = new FlashOptions { WindowLeft = 0, WindowRight = 0, Sinks = Host(ElementType.Float32, [1], 5) },
        };
        var tensors = @case.CreateTensors();
        Run(context, @case, tensors);
        var lse = tensors.LogSumExp.ToDoubleArray();
        var output = tensors.Output.ToDoubleArray();
        for (int row = 0; row < 4; row++)
        {
            Assert.Equal(double.NegativeInfinity, lse[row]);
            for (int d = 0; d < 8; d++) Assert.Equal(0.0, output[row * 8 + d]);
        }
        Assert.True(CaseVerifier.Compare(context.Backend, @case, tensors).Passed);
    }

    [SkippableFact]
    public void Flash_OptionTensorInHostMemory_ThrowsArgumentExceptionNamingIt()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var q = context.Allocate(ElementType.Float32, 1, 2, 4, 8);
        var o = context.Allocate(ElementType.Float32, 1, 2, 4, 8);
        var hostSinks = Host(ElementType.Float32, [2], 1, 2);
        var error = Assert.ThrowsAny<ArgumentException>(() => context.Flash(q, q, q, o, new FlashOptions { Sinks = hostSinks }));
        Assert.Contains("options.Sinks", error.Message);
    }

    /// <summary>Runs a case whose options hold host tensors: every tensor is mirrored to the device with its layout.</summary>
    private static void Run(AttentionContext context, AttentionCase @case, CaseTensors tensors)
    {
        var owned = new List<TensorView>();
        try
        {
            TensorView? Mirror(TensorView? host) => host is { } h ? CaseRunner.Mirror(context, h, owned) : null;
            var options = @case.Flash;
            var deviceOptions = options with
            {
                Bias = Mirror(options.Bias),
                AlibiSlopes = Mirror(options.AlibiSlopes),
                Sinks = Mirror(options.Sinks),
                LowRankBias = options.LowRankBias is { } lr ? new LowRankBias(Mirror(lr.U)!.Value, Mirror(lr.W)!.Value) : null,
            };
            var q = CaseRunner.Mirror(context, tensors.Query, owned);
            var k = CaseRunner.Mirror(context, tensors.Key, owned);
            var v = CaseRunner.Mirror(context, tensors.Value, owned);
            var o = CaseRunner.Mirror(context, tensors.Output, owned);
            var lse = CaseRunner.Mirror(context, tensors.LogSumExp, owned);
            context.Flash(q, k, v, o, deviceOptions, lse);
            CaseRunner.CopyBack(context, o, tensors.Output);
            CaseRunner.CopyBack(context, lse, tensors.LogSumExp);
        }
        finally
        {
            foreach (var view in owned) (view.Storage as IDisposable)?.Dispose();
        }
    }

    private static AttentionCase Case(ElementType type, int batch, int hq, int hkv, int nq, int nk, int d) => new()
    {
        ElementType = type, Batch = batch, QueryHeads = hq, KeyValueHeads = hkv, QueryLength = nq, KeyLength = nk,
        HeadDim = d, ValueDim = d, Seed = nq * 31 + nk + d,
    };

    /// <summary>A contiguous host tensor of <paramref name="type"/> holding <paramref name="values"/> in row-major order.</summary>
    private static TensorView Host(ElementType type, int[] shape, params double[] values) => TestTensors.Of(type, shape, values);

    /// <summary>Uniform values in [-range, range] from a seed.</summary>
    private static TensorView Random(ElementType type, int seed, double range, int[] shape) => TestTensors.Uniform(type, seed, range, shape);

    /// <summary>A random bias <c>[B, H, Nq, Nk]</c> whose <paramref name="maskedRows"/> are -inf everywhere (no key survives).</summary>
    private static TensorView MaskedRowsBias(ElementType type, int batch, int heads, int nq, int nk, int[] maskedRows)
    {
        var view = Random(type, nq * nk + batch, 1, [batch, heads, nq, nk]);
        var values = view.ToDoubleArray();
        for (int bh = 0; bh < batch * heads; bh++)
            foreach (int row in maskedRows)
                values.AsSpan((bh * nq + row) * nk, nk).Fill(double.NegativeInfinity);
        view.CopyFrom(values);
        return view;
    }
}

[Trait("Backend", "OpenCl")]
public sealed class OpenClGpuFlashOptionTests : GpuFlashOptionTests
{
    protected override Backend Backend => Backend.OpenCl;
}

[Trait("Backend", "Cuda")]
public sealed class CudaGpuFlashOptionTests : GpuFlashOptionTests
{
    protected override Backend Backend => Backend.Cuda;
}

/// <summary>Option variants are named after what they are specialised for; the option-free names do not change.</summary>
public sealed class FlashVariantOptionNameTests
{
    [Fact]
    public void ScoreOptions_AppearInTheVariantName_BeforeTheTile()
    {
        var plain = new FlashVariant(ElementType.Float32, 64, 64, true, true, false);
        Assert.Equal("flash_fwd.hd64.f32.masked.evenn", plain.Name);
        var options = new ScoreOptions(true, true, true, true, true, false, ElementType.Float16, ElementType.BFloat16, ElementType.Float32);
        Assert.Equal("flash_fwd.hd64.f32.masked.evenn.softcap.alibi.bias.f16.lowrank.bf16.f32.sinks", (plain with { Options = options }).Name);
        var mma = new FlashVariant(ElementType.Float16, 64, 64, false, false, true, new MmaTile(4, 2, 64, 2), new ScoreOptions(false, false, false, false, false, true));
        Assert.Equal("flash_fwd.hd64.f16.sigmoid.mma.w4m2n64s2", mma.Name);
        Assert.DoesNotContain(plain.Defines(), d => d.Key is "NA_SOFTCAP" or "NA_SIGMOID");
    }
}
