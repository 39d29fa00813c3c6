// The Hopper wgmma flash kernel's host side without a GPU (variants, tensor maps, the kernel choice, the self-check's
// comparison and bookkeeping), and on an sm_90 device the kernel itself against the float64 reference with wgmma
// forced on and off (skipped elsewhere).
using System.Diagnostics;
using NativeAttention.Gpu;
using NativeAttention.Gpu.Cuda;
using Xunit;

namespace NativeAttention.Tests.Gpu;

public sealed class WgmmaFlashTests
{
    private static QkvoParams Contiguous(int batch, int hq, int hkv, int nq, int nk, int d) => new()
    {
        QStrideB = (long)hq * nq * d, QStrideH = (long)nq * d, QStrideN = d, QStrideD = 1,
        KStrideB = (long)hkv * nk * d, KStrideH = (long)nk * d, KStrideN = d, KStrideD = 1,
        VStrideB = (long)hkv * nk * d, VStrideH = (long)nk * d, VStrideN = d, VStrideD = 1,
        OStrideB = (long)hq * nq * d, OStrideH = (long)nq * d, OStrideN = d, OStrideD = 1,
        LseStrideB = (long)hq * nq, LseStrideH = nq, LseStrideN = 1,
        Batch = batch, HeadsQ = hq, HeadsKv = hkv, Group = hq / hkv, Nq = nq, Nk = nk, Dqk = d, Dv = d,
    };

    private static WgmmaChoice Choose(in QkvoParams t, WgmmaMode mode = WgmmaMode.Auto, int cc = 90, (int, int)? nvrtc = null,
        ElementType type = ElementType.Float16, ScoreOptions options = default, bool aligned = true, string? selfCheck = null) =>
        WgmmaSelection.Choose(mode, cc, nvrtc ?? (12, 4), type, t.Dqk, t.Dv, options, t, aligned, selfCheck);

    [Fact]
    public void Variants_HaveTheHopperShape()
    {
        var v = FlashVariant.ForWgmma(ElementType.Float16, 128, true, default);
        Assert.Equal("flash_fwd.hd128.f16.masked.wgmma.n128s2", v.Name);
        Assert.Equal((128, 128), v.Tiles);
        Assert.Equal(384, v.Threads);
        Assert.Equal((128 + 2 * 128 * 2) * 128 * 2 + 1024, v.DynamicSharedBytes);
        var defines = v.Defines().ToDictionary(d => d.Key, d => d.Value);
        Assert.Equal("1", defines["NA_FLASH_WGMMA"]);
        Assert.Equal("2", defines["NA_WGMMA_STAGES"]);
        Assert.False(defines.ContainsKey("NA_WARPS"));
        // D = 256 and dense-bias tiles take 64 keys; every variant fits an H100's 227 KiB of shared memory per block.
        Assert.Equal(64, FlashVariant.ForWgmma(ElementType.BFloat16, 256, false, default).Tiles.BlockN);
        Assert.Equal(64, FlashVariant.ForWgmma(ElementType.BFloat16, 128, false, default(ScoreOptions) with { Bias = true }).Tiles.BlockN);
        var all = FlashVariant.WgmmaVariants().ToArray();
        Assert.All(all, x => Assert.True(x.DynamicSharedBytes <= 227 * 1024, x.Name));
        Assert.Equal(all.Length, all.Select(x => x.Name).Distinct().Count());
        Assert.Contains(all, x => x.HeadDimQk == 256 && x.Masked && x.ElementType == ElementType.BFloat16);
        Assert.DoesNotContain(all, x => x.HeadDimQk == 256 && x.Options.Bias);
        Assert.Contains("#error", KernelSource.Read("flash/flash_fwd_wgmma.h"), StringComparison.Ordinal);
    }

    [Fact]
    public void ParamBytes_AreThreeMapsThenTheFlashParams()
    {
        int size = System.Runtime.CompilerServices.Unsafe.SizeOf<FlashParams>();
        Assert.Equal((384 + size + 63) / 64 * 64, GpuFlash.WgmmaParamBytes);
        Assert.Equal(0, GpuFlash.WgmmaParamBytes % 64);
    }

    [Fact]
    public void TensorMaps_DescribeQkvInBytesInnermostFirst()
    {
        var t = Contiguous(2, 8, 2, 1000, 777, 128) with { QOffset = 64, KOffset = 8 };
        var (q, k, v) = WgmmaTensorMaps.For(FlashVariant.ForWgmma(ElementType.BFloat16, 128, true, default), t);
        Assert.Equal(TensorMapSpec.DataTypeBFloat16, q.DataType);
        Assert.Equal(128L, q.ByteOffset);
        Assert.Equal(new ulong[] { 128, 1000, 8, 2 }, q.Dims());
        Assert.Equal(new ulong[] { 256, 256 * 1000, 256 * 1000 * 8 }, q.Strides());
        Assert.Equal(new uint[] { 64, 128, 1, 1 }, q.Box());
        Assert.Equal(new ulong[] { 128, 777, 2, 2 }, k.Dims());
        Assert.Equal(new uint[] { 64, 128, 1, 1 }, k.Box());
        Assert.Equal(16L, k.ByteOffset);
        Assert.Equal(new ulong[] { 256, 256 * 777, 256 * 777 * 2 }, v.Strides());
        Assert.Null(WgmmaTensorMaps.Unsupported(q, "Q"));
        Assert.Null(WgmmaTensorMaps.Unsupported(k, "K"));
    }

    [Fact]
    public void TensorMaps_GiveSizeOneDimensionsDenseStrides()
    {
        // B = 1, H = 1, N = 1: whatever strides the view had there (here 3, 0 and 5 elements) are never used.
        var spec = WgmmaTensorMaps.For(ElementType.Float16, 0, 64, 1, 1, 1, strideN: 3, strideH: 0, strideB: 5, boxRows: 128);
        Assert.Equal(new ulong[] { 128, 128, 128 }, spec.Strides());
        Assert.Null(WgmmaTensorMaps.Unsupported(spec, "Q"));
        Assert.Throws<ArgumentException>(() => WgmmaTensorMaps.For(ElementType.Float32, 0, 64, 1, 1, 1, 64, 64, 64, 128));
    }

    [Fact]
    public void TensorMaps_RejectWhatTmaCannotAddress()
    {
        Assert.Contains("not a multiple of 16", WgmmaTensorMaps.Unsupported(WgmmaTensorMaps.For(ElementType.Float16, 4, 64, 10, 2, 1, 64, 640, 1280, 128), "Q"));
        Assert.Contains("stride of 200 bytes", WgmmaTensorMaps.Unsupported(WgmmaTensorMaps.For(ElementType.Float16, 0, 64, 10, 2, 1, 100, 1000, 2000, 128), "K"));
        Assert.Contains("stride of 0 bytes", WgmmaTensorMaps.Unsupported(WgmmaTensorMaps.For(ElementType.Float16, 0, 64, 10, 2, 1, 64, 0, 2000, 128), "V"));
    }

    [Fact]
    public void Selection_UsesWgmmaOnSm90ForSuitableCalls()
    {
        var t = Contiguous(2, 8, 2, 300, 500, 128);
        Assert.True(Choose(t).Use, Choose(t).Reason);
        Assert.True(Choose(Contiguous(1, 2, 1, 70, 90, 64), type: ElementType.BFloat16).Use);
        Assert.True(Choose(Contiguous(1, 2, 1, 70, 90, 256), options: default(ScoreOptions) with { Softcap = true, Alibi = true, Sinks = true }).Use);
        Assert.True(Choose(Contiguous(1, 2, 1, 70, 90, 128), nvrtc: (13, 0)).Use);
    }

    [Fact]
    public void Selection_FallsBackWithTheReason()
    {
        var t = Contiguous(2, 8, 2, 300, 500, 128);
        Assert.Contains("NATIVEATTENTION_CUDA_WGMMA=0", Choose(t, WgmmaMode.Off).Reason);
        Assert.Contains("sm_89", Choose(t, cc: 89).Reason);
        Assert.Contains("sm_100", Choose(t, cc: 100).Reason);
        Assert.Contains("NVRTC 11.8", Choose(t, nvrtc: (11, 8)).Reason);
        Assert.Contains("NVRTC 12.3", Choose(t, nvrtc: (12, 3)).Reason);
        Assert.Contains("Float32", Choose(t, type: ElementType.Float32).Reason);
        Assert.Contains("head dims 96/96", Choose(Contiguous(1, 1, 1, 10, 10, 96)).Reason);
        Assert.Contains("head dims 128/64", Choose(Contiguous(1, 1, 1, 10, 10, 128) with { Dv = 64 }).Reason);
        Assert.Contains("dense bias", Choose(Contiguous(1, 1, 1, 10, 10, 256), options: default(ScoreOptions) with { Bias = true }).Reason);
        Assert.True(Choose(Contiguous(1, 1, 1, 10, 10, 128), options: default(ScoreOptions) with { Bias = true }).Use);
        Assert.Contains("feature stride", Choose(t with { KStrideD = 2 }).Reason);
        Assert.Contains("root address", Choose(t, aligned: false).Reason);
        Assert.Contains("Q starts", Choose(t with { QOffset = 4 }).Reason);
        Assert.Contains("K has a stride of 264 bytes", Choose(t with { KStrideN = 132 }).Reason);
        Assert.True(Choose(t with { KStrideN = 120 }).Use);   // 240 bytes: a multiple of 16, fine for TMA
        Assert.Contains("O's offset or strides", Choose(t with { OStrideN = 132 }).Reason);
        Assert.Contains("O's offset or strides", Choose(t with { OOffset = 3 }).Reason);
        foreach (var choice in new[] { Choose(t, WgmmaMode.Off), Choose(t, cc: 80), Choose(t with { QOffset = 4 }) })
            Assert.False(choice.Use);
    }

    [Fact]
    public void Selection_HonoursTheSelfCheckUnlessForced()
    {
        var t = Contiguous(1, 4, 2, 200, 333, 64);
        var failed = Choose(t, selfCheck: "O[3] = 1 on wgmma, 0 on the reference kernel");
        Assert.False(failed.Use);
        Assert.Contains("self-check failed: O[3]", failed.Reason);
        Assert.True(Choose(t, WgmmaMode.Forced, selfCheck: "O[3] differs").Use);
        Assert.Contains("forced", Choose(t, WgmmaMode.Forced).Reason);
    }

    [Theory]
    [InlineData(null, "Auto")]
    [InlineData("", "Auto")]
    [InlineData("0", "Off")]
    [InlineData(" 0 ", "Off")]
    [InlineData("1", "Forced")]
    [InlineData("auto", "Auto")]
    public void Mode_ComesFromTheVariable(string? value, string mode) => Assert.Equal(mode, WgmmaSelection.ModeFrom(value).ToString());

    [Fact]
    public void SelfCheckComparison_AcceptsRoundingAndNamesTheFirstMismatch()
    {
        float[] reference = [0.5f, -0.25f, 0.125f, 0f], lse = [1.5f, float.NegativeInfinity];
        Assert.Null(WgmmaSelfCheck.Compare(reference, [0.505f, -0.255f, 0.12f, 0.004f], lse, [1.505f, float.NegativeInfinity], ElementType.Float16));
        Assert.Null(WgmmaSelfCheck.Compare(reference, [0.52f, -0.23f, 0.14f, 0.02f], lse, lse, ElementType.BFloat16));
        string? off = WgmmaSelfCheck.Compare(reference, [0.5f, -0.25f, 0.3f, 0.2f], lse, lse, ElementType.Float16);
        Assert.NotNull(off);
        Assert.StartsWith("O[2] = 0.3 on wgmma, 0.125 on the reference kernel; 2 of 4", off);
        Assert.Contains("O[1] = NaN", WgmmaSelfCheck.Compare(reference, [0.5f, float.NaN, 0.125f, 0f], lse, lse, ElementType.Float16));
        Assert.Contains("O[0] = ", WgmmaSelfCheck.Compare(reference, [float.PositiveInfinity, -0.25f, 0.125f, 0f], lse, lse, ElementType.Float16));
        Assert.Contains("LSE[1]", WgmmaSelfCheck.Compare(reference, reference, lse, [1.5f, 0f], ElementType.Float16));
        Assert.Contains("LSE[0]", WgmmaSelfCheck.Compare(reference, reference, lse, [1.6f, float.NegativeInfinity], ElementType.Float16));
        Assert.Contains("lengths differ", WgmmaSelfCheck.Compare(reference, reference.AsSpan(1), lse, lse, ElementType.Float16));
    }

    [Fact]
    public void SelfCheckState_ChecksD64AndTheRequestedDOnceEach()
    {
        var state = new WgmmaSelfCheckState();
        var calls = new List<(ElementType, int)>();
        string? Pass(ElementType type, int d)
        {
            calls.Add((type, d));
            return null;
        }
        Assert.True(state.Needs(ElementType.Float16, 128));
        Assert.Null(state.Run(ElementType.Float16, 128, Pass));
        Assert.Equal([(ElementType.Float16, 64), (ElementType.Float16, 128)], calls);
        Assert.False(state.Needs(ElementType.Float16, 128));
        Assert.False(state.Needs(ElementType.Float16, 64));
        Assert.True(state.Needs(ElementType.BFloat16, 64));
        Assert.Null(state.Run(ElementType.Float16, 256, Pass));
        Assert.Equal((ElementType.Float16, 256), calls[^1]);
        Assert.Equal(3, calls.Count);
        Assert.Null(state.Failure);
    }

    [Fact]
    public void SelfCheckState_FirstMismatchDisablesWgmmaForTheContextWithATraceWarning()
    {
        var state = new WgmmaSelfCheckState();
        var listener = new RecordingListener();
        Trace.Listeners.Add(listener);
        try
        {
            string? failure = state.Run(ElementType.BFloat16, 256, (_, d) => d == 64 ? null : "O[7] = 2 on wgmma, 1 on the reference kernel");
            Assert.Equal("BFloat16 D = 256: O[7] = 2 on wgmma, 1 on the reference kernel", failure);
            Assert.Equal(failure, state.Failure);
        }
        finally
        {
            Trace.Listeners.Remove(listener);
        }
        Assert.Contains(listener.Messages, m => m.Contains("wgmma", StringComparison.Ordinal) && m.Contains("BFloat16 D = 256: O[7]", StringComparison.Ordinal));
        // Disabled for good: nothing else is checked and every type and D now needs nothing.
        bool ran = false;
        Assert.Equal(state.Failure, state.Run(ElementType.Float16, 64, (_, _) => { ran = true; return null; }));
        Assert.False(ran);
        Assert.False(state.Needs(ElementType.Float16, 64));
    }

    [Fact]
    public void SelfCheckState_CountsALaunchErrorAsAMismatch()
    {
        var state = new WgmmaSelfCheckState();
        string? failure = state.Run(ElementType.Float16, 64, (_, _) => throw new InvalidOperationException("CUDA_ERROR_ILLEGAL_ADDRESS"));
        Assert.Equal("Float16 D = 64: InvalidOperationException: CUDA_ERROR_ILLEGAL_ADDRESS", failure);
    }

    private sealed class RecordingListener : TraceListener
    {
        public List<string> Messages { get; } = [];
        public override void Write(string? message) { lock (Messages) Messages.Add(message ?? ""); }
        public override void WriteLine(string? message) => Write(message);
    }

    // ---- On an sm_90 device (skipped elsewhere): the kernel itself. ----

    /// <summary>Cases aimed at the wgmma kernel's paths: every head dim and type, tails, masks, GQA/MQA, strides, options.</summary>
    public static readonly IReadOnlyDictionary<string, AttentionCase> DeviceCases = new Dictionary<string, AttentionCase>
    {
        ["f16 d64 even"] = Case(ElementType.Float16, 1, 2, 2, 256, 256, 64),
        ["f16 d64 causal GQA tails"] = Case(ElementType.Float16, 1, 4, 2, 200, 333, 64, causal: true),
        ["bf16 d64 causal Nq>Nk"] = Case(ElementType.BFloat16, 1, 2, 2, 300, 70, 64, causal: true),
        ["f16 d128 causal GQA tails"] = Case(ElementType.Float16, 2, 4, 2, 200, 333, 128, causal: true),
        ["bf16 d128 MQA"] = Case(ElementType.BFloat16, 1, 6, 1, 130, 1000, 128),
        ["f16 d128 bnhd"] = Case(ElementType.Float16, 2, 2, 2, 128, 384, 128) with { Layout = TensorLayout.SequenceFirst },
        ["f16 d256 causal"] = Case(ElementType.Float16, 1, 2, 1, 257, 300, 256, causal: true),
        ["bf16 d256 tails"] = Case(ElementType.BFloat16, 1, 2, 2, 65, 77, 256),
        ["f16 d64 window"] = Case(ElementType.Float16, 1, 2, 2, 600, 600, 64) with { Flash = new FlashOptions { WindowLeft = 100, WindowRight = 7 } },
        ["bf16 d128 window rows without keys"] = Case(ElementType.BFloat16, 1, 2, 1, 300, 200, 128) with { Flash = new FlashOptions { Causal = true, WindowLeft = 20 } },
        ["f16 d128 softcap"] = Case(ElementType.Float16, 1, 2, 2, 150, 260, 128) with { Flash = new FlashOptions { Softcap = 5 } },
        ["f16 d64 causal ALiBi"] = Case(ElementType.Float16, 1, 2, 2, 140, 140, 64) with
        {
            Flash = new FlashOptions { Causal = true, AlibiSlopes = TestTensors.Of(ElementType.Float32, [2], 0.5, 0.0625) },
        },
        ["bf16 d128 sinks"] = Case(ElementType.BFloat16, 1, 2, 2, 100, 300, 128) with
        {
            Flash = new FlashOptions { Sinks = TestTensors.Of(ElementType.Float32, [2], 1.5, -2.0) },
        },
        ["f16 d128 sigmoid"] = Case(ElementType.Float16, 1, 2, 2, 100, 300, 128) with { Flash = new FlashOptions { ScoreFunction = ScoreFunction.Sigmoid, SigmoidBias = -3 } },
        ["f16 B3 H24/8 causal"] = Case(ElementType.Float16, 3, 24, 8, 333, 470, 64, causal: true),
    };

    /// <summary>The names of <see cref="DeviceCases"/>, for xunit.</summary>
    public static TheoryData<string> DeviceCaseNames => new(DeviceCases.Keys);

    private static AttentionCase Case(ElementType type, int batch, int hq, int hkv, int nq, int nk, int d, bool causal = false) => new()
    {
        ElementType = type, Batch = batch, QueryHeads = hq, KeyValueHeads = hkv, QueryLength = nq, KeyLength = nk,
        HeadDim = d, ValueDim = d, Seed = nq * 31 + nk + d, Flash = new FlashOptions { Causal = causal },
    };

    private static CudaContext Sm90OrSkip()
    {
        var context = (CudaContext)TestBackend.CreateOrSkip(Backend.Cuda);
        if (context.ComputeCapability != 90)
        {
            context.Dispose();
            Skip.If(true, $"The wgmma kernel runs on sm_90 only; this device is sm_{context.ComputeCapability}.");
        }
        return context;
    }

    [SkippableTheory]
    [MemberData(nameof(DeviceCaseNames))]
    [Trait("Backend", "Cuda")]
    public void Flash_MatchesReference_WithWgmmaForcedOnAndOff(string name)
    {
        using var context = Sm90OrSkip();
        foreach (var mode in new[] { WgmmaMode.Forced, WgmmaMode.Off })
        {
            context.WgmmaMode = mode;
            var result = CaseVerifier.Verify(context, DeviceCases[name]);
            if (!result.Passed) Assert.Fail($"wgmma {mode}: {result}");
        }
    }

    [SkippableFact]
    [Trait("Backend", "Cuda")]
    public void SelfCheck_PassesOnTheDevice()
    {
        using var context = Sm90OrSkip();
        foreach (var type in new[] { ElementType.Float16, ElementType.BFloat16 })
            foreach (int d in FlashVariant.WgmmaHeadDims.ToArray())
                Assert.Null(GpuFlash.SelfCheck(context, type, d));
        context.WgmmaMode = WgmmaMode.Auto;
        AssertPassed(CaseVerifier.Verify(context, DeviceCases["f16 d128 causal GQA tails"]));
        Assert.Null(context.WgmmaCheck.Failure);
        Assert.False(context.WgmmaCheck.Needs(ElementType.Float16, 128));
    }

    private static void AssertPassed(VerificationResult result)
    {
        if (!result.Passed) Assert.Fail(result.ToString());
    }
}
