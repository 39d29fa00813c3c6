// The content builder on the GPU backends (OpenCL on PoCL here, CUDA where a device exists): the mask built from device
// tensors equals the CPU builder's on the same values, across options, storage types and layouts.
using Xunit;

namespace NativeAttention.Tests;

/// <summary><see cref="BlockMasks.FromContent(AttentionContext, TensorView, TensorView, ContentMaskOptions)"/> on a GPU backend against the CPU builder.</summary>
public abstract class ContentBuilderGpuTests
{
    /// <summary>The backend under test.</summary>
    protected abstract Backend Backend { get; }

    /// <summary>One comparison: shapes, storage, layout (BNHD: Q and K stored [B, N, H, D+pad] and permuted) and options.</summary>
    public sealed record Case(ElementType Type, int Batch, int Hq, int Hkv, int Nq, int Nk, int D, int Bq, int Bk, bool Bnhd,
        int? TopK = null, double? Gamma = null, double? Similarity = null, int Sinks = 1, bool Diagonal = true, bool Causal = true, float? Scale = null);

    /// <summary>Small shapes (PoCL); random inputs in [-2, 2], so pooled scores do not tie.</summary>
    public static readonly IReadOnlyDictionary<string, Case> Cases = new Dictionary<string, Case>
    {
        ["f32 top-k causal Bq=Bk"] = new(ElementType.Float32, 2, 2, 2, 160, 160, 16, 16, 16, false, TopK: 3),
        ["f32 top-k GQA Bq!=Bk Nq<Nk"] = new(ElementType.Float32, 1, 4, 2, 90, 200, 24, 32, 16, false, TopK: 2, Sinks: 2),
        ["f32 gamma 0.6 non-causal"] = new(ElementType.Float32, 1, 2, 1, 128, 144, 16, 16, 24, false, Gamma: 0.6, Causal: false),
        ["f32 gamma 1 keeps everything"] = new(ElementType.Float32, 2, 2, 1, 100, 120, 8, 16, 32, false, Gamma: 1.0),
        ["f32 gamma 0 forced only, no sinks or diagonal"] = new(ElementType.Float32, 1, 2, 2, 96, 96, 16, 16, 16, false, Gamma: 0.0, Sinks: 0, Diagonal: false),
        ["f32 similarity gate top-1"] = new(ElementType.Float32, 1, 2, 1, 128, 128, 8, 16, 16, false, TopK: 1, Similarity: 0.09),
        ["f16 gamma 0.8 BNHD GQA"] = new(ElementType.Float16, 2, 4, 1, 80, 80, 16, 16, 16, true, Gamma: 0.8, Scale: 0.5f),
        ["bf16 top-k BNHD Bq>Bk sinks 0"] = new(ElementType.BFloat16, 1, 3, 3, 130, 110, 32, 32, 16, true, TopK: 4, Sinks: 0),
        ["f16 similarity gate gamma 0.5 non-causal"] = new(ElementType.Float16, 1, 2, 2, 64, 96, 16, 16, 16, false, Gamma: 0.5, Similarity: 0.08, Causal: false),
    };

    /// <summary>The names of <see cref="Cases"/>, for xunit.</summary>
    public static TheoryData<string> CaseNames => new(Cases.Keys);

    [SkippableTheory]
    [MemberData(nameof(CaseNames))]
    public void FromContent_OnTheDevice_EqualsTheCpuBuilder(string name)
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var c = Cases[name];
        int seed = name.Length * 31 + c.Nq;
        var (hostQ, deviceQ) = Input(context, c, c.Hq, c.Nq, seed);
        var (hostK, deviceK) = Input(context, c, c.Hkv, c.Nk, seed + 1);
        var options = new ContentMaskOptions
        {
            QueryBlockSize = c.Bq, KeyBlockSize = c.Bk, TopK = c.TopK, Gamma = c.Gamma, SimilarityThreshold = c.Similarity,
            SinkBlocks = c.Sinks, KeepDiagonal = c.Diagonal, Causal = c.Causal, Scale = c.Scale,
        };
        var expected = BlockMasks.FromContent(hostQ, hostK, options);
        var actual = BlockMasks.FromContent(context, deviceQ, deviceK, options);
        AssertSameMask(expected, actual);
        if (c.Gamma == 1.0) Assert.Equal(1.0, actual.Density);
        if (c.Similarity is not null)
        {
            // The gate must change something here, or the case tests nothing.
            var ungated = BlockMasks.FromContent(context, deviceQ, deviceK, options with { SimilarityThreshold = null });
            Assert.True(ungated.KeptBlocks < actual.KeptBlocks, $"the gate kept no extra block ({actual.KeptBlocks})");
        }
    }

    [SkippableFact]
    public void FromContent_HostTensorsOnADeviceContext_AreNamed()
    {
        using var context = TestBackend.CreateOrSkip(Backend);
        var q = TestTensors.Uniform(ElementType.Float32, 1, 1.0, [1, 1, 32, 8]);
        var k = TestTensors.Uniform(ElementType.Float32, 2, 1.0, [1, 1, 32, 8]);
        var deviceQ = context.Upload(q);
        var options = new ContentMaskOptions { QueryBlockSize = 16, KeyBlockSize = 16, TopK = 1 };
        Assert.Equal("query", Assert.Throws<ArgumentException>(() => BlockMasks.FromContent(context, q, context.Upload(k), options)).ParamName);
        Assert.Equal("key", Assert.Throws<ArgumentException>(() => BlockMasks.FromContent(context, deviceQ, k, options)).ParamName);
        Assert.Equal("options.KeyBlockSize", Assert.Throws<ArgumentException>(() =>
            BlockMasks.FromContent(context, deviceQ, context.Upload(k), options with { KeyBlockSize = 8 })).ParamName);
        Assert.Equal("options.Gamma", Assert.Throws<ArgumentException>(() =>
            BlockMasks.FromContent(context, deviceQ, context.Upload(k), options with { TopK = null, Gamma = 1.5 })).ParamName);
    }

    /// <summary>Random values as a host tensor [B, H, N, D] and the same values on the device (BNHD: permuted views of [B, N, H, D + 3], from element 1 of D).</summary>
    private static (TensorView Host, TensorView Device) Input(AttentionContext context, Case c, int heads, int n, int seed)
    {
        if (!c.Bnhd)
        {
            var host = TestTensors.Uniform(c.Type, seed, 2.0, [c.Batch, heads, n, c.D]);
            return (host, context.Upload(host));
        }
        var stored = TestTensors.Uniform(c.Type, seed, 2.0, [c.Batch, n, heads, c.D + 3]);
        var device = context.Upload(stored);
        return (stored.Slice(3, 1, c.D).Permute(0, 2, 1, 3), device.Slice(3, 1, c.D).Permute(0, 2, 1, 3));
    }

    internal static void AssertSameMask(ContentMask expected, ContentMask actual)
    {
        var e = expected.Mask;
        var a = actual.Mask;
        Assert.Equal(e.PartialCounts.Length, a.PartialCounts.Length);
        for (int row = 0; row < e.PartialCounts.Length; row++)
        {
            Assert.Equal(Partial(e, row), Partial(a, row));
            Assert.Equal(Full(e, row), Full(a, row));
        }
        Assert.Equal(expected.KeptBlocks, actual.KeptBlocks);
        Assert.Equal(expected.CandidateBlocks, actual.CandidateBlocks);
        Assert.Equal(expected.Density, actual.Density);
    }

    private static int[] Partial(FlexBlockMask mask, int row) => mask.PartialIndices.Slice(row * mask.MaxBlocksPerRow, mask.PartialCounts.Span[row]).ToArray();

    private static int[] Full(FlexBlockMask mask, int row) =>
        mask.FullCounts.IsEmpty ? [] : mask.FullIndices.Slice(row * mask.MaxBlocksPerRow, mask.FullCounts.Span[row]).ToArray();
}

[Trait("Backend", "OpenCl")]
public sealed class OpenClContentBuilderGpuTests : ContentBuilderGpuTests
{
    protected override Backend Backend => Backend.OpenCl;
}

[Trait("Backend", "Cuda")]
public sealed class CudaContentBuilderGpuTests : ContentBuilderGpuTests
{
    protected override Backend Backend => Backend.Cuda;
}

/// <summary>The CPU context's overload is the host builder.</summary>
public sealed class CpuContentBuilderContextTests
{
    [Fact]
    public void FromContent_OnACpuContext_EqualsTheHostBuilder()
    {
        using var context = AttentionContext.Create(Backend.Cpu);
        var q = TestTensors.Uniform(ElementType.Float32, 7, 2.0, [1, 2, 70, 16]);
        var k = TestTensors.Uniform(ElementType.Float32, 8, 2.0, [1, 1, 90, 16]);
        var options = new ContentMaskOptions { QueryBlockSize = 16, KeyBlockSize = 32, Gamma = 0.7 };
        ContentBuilderGpuTests.AssertSameMask(BlockMasks.FromContent(q, k, options), BlockMasks.FromContent(context, q, k, options));
    }
}
