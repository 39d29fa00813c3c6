// Block-sparse attention shapes of issue 12, each beside the dense call it is measured against (same input, same
// run, so the speedup is a ratio of two rows of one table): prefill with 25% of the causal blocks against causal flash,
// decoding at 10% density against FlashKvCache, and the content builder against the sparse call it feeds.
using BenchmarkDotNet.Attributes;

namespace NativeAttention.Benchmarks;

/// <summary>Times one synchronised block-sparse (or dense reference) forward call of a named shape.</summary>
public abstract class BlockSparseShapesBenchmark : CaseForwardBenchmark
{
    /// <summary>The shape, by name (see <see cref="CaseOf"/>).</summary>
    [Params("causal25-N4096", "causal100-N4096", "dense-causal-N4096", "decode10-N65536", "dense-decode-N65536")]
    public string Shape { get; set; } = "causal25-N4096";

    public override IAttentionCase Case => CaseOf(Shape);

    /// <summary>
    /// causal25: fp32, H = 8, D = 64, N = 4096, blocks 64 x 64, 25% of the causal blocks listed (the diagonal blocks
    /// partial under the causal predicate, the rest full); causal100: every causal block listed (the same tiles as causal
    /// flash: the kernel's cost per tile against flash's); dense-causal: causal flash on the same sizes. decode10: one
    /// query against Nk = 65536 keys, H = 8, D = 64, blocks of 64, 10% of them listed; dense-decode: FlashKvCache on
    /// the same sizes with the whole cache.
    /// </summary>
    public static IAttentionCase CaseOf(string shape) => AttentionCaseSpec.Parse(shape switch
    {
        "causal25-N4096" => "blocksparse f32 B1 H8 N4096 D64 block=64 density=0.25 full=1 tril causal seed=1",
        "causal100-N4096" => "blocksparse f32 B1 H8 N4096 D64 block=64 density=1 full=1 tril causal seed=1",
        "dense-causal-N4096" => "flash f32 B1 H8 N4096 D64 causal seed=1",
        "decode10-N65536" => "blocksparse f32 B1 H8 N1x65536 D64 block=64 density=0.1 full=1 seed=1",
        "dense-decode-N65536" => "flash f32 B1 H8 N1x65536 D64 kvcache seed=1",
        _ => throw new ArgumentOutOfRangeException(nameof(shape), shape, "Unknown shape."),
    });
}

/// <summary>The managed SIMD kernels on 2 threads (the figures issue 12 targets).</summary>
public class CpuBlockSparseShapes : BlockSparseShapesBenchmark
{
    public override Backend Backend => Backend.Cpu;

    public override ContextOptions ContextOptions => new() { Threads = 2 };
}

/// <summary>The portable GPU kernel (kernels/blocksparse/blocksparse_fwd.h) on OpenCL device 0.</summary>
[RequiresBackend(Backend.OpenCl)]
public class OpenClBlockSparseShapes : BlockSparseShapesBenchmark
{
    public override Backend Backend => Backend.OpenCl;
}

/// <summary>The CUDA kernels on device 0 (fp32: the portable kernel).</summary>
[RequiresBackend(Backend.Cuda)]
public class CudaBlockSparseShapes : BlockSparseShapesBenchmark
{
    public override Backend Backend => Backend.Cuda;
}

/// <summary>
/// The CUDA tensor-core kernels (kernels/blocksparse/blocksparse_fwd_mma.h against flash/flash_fwd_mma.h): the
/// causal25 prefill shape and its dense causal flash in fp16 and bf16, as FlexAttention is usually run.
/// </summary>
[RequiresBackend(Backend.Cuda)]
public class CudaBlockSparseShapes16 : CaseForwardBenchmark
{
    [Params("causal25-N4096-f16", "dense-causal-N4096-f16", "causal25-N4096-bf16", "dense-causal-N4096-bf16")]
    public string Shape { get; set; } = "causal25-N4096-f16";

    public override Backend Backend => Backend.Cuda;

    public override IAttentionCase Case => AttentionCaseSpec.Parse(Shape switch
    {
        "causal25-N4096-f16" => "blocksparse f16 B1 H8 N4096 D64 block=64 density=0.25 full=1 tril causal seed=1",
        "dense-causal-N4096-f16" => "flash f16 B1 H8 N4096 D64 causal seed=1",
        "causal25-N4096-bf16" => "blocksparse bf16 B1 H8 N4096 D64 block=64 density=0.25 full=1 tril causal seed=1",
        "dense-causal-N4096-bf16" => "flash bf16 B1 H8 N4096 D64 causal seed=1",
        _ => throw new ArgumentOutOfRangeException(nameof(Shape), Shape, "Unknown shape."),
    });
}

/// <summary>
/// The CPU content builder at N = 32768 (H = 8, D = 64, blocks of 64, top-40 key blocks per query block plus sinks and diagonal, causal) against the
/// block-sparse call it feeds (the mask it built, causal predicate, 2 threads).
/// </summary>
public class CpuBlockSparseContentBuilder
{
    private const int Length = 32768, Heads = 8, HeadDim = 64, Block = 64;
    private AttentionContext? _context;
    private TensorView _query, _key, _value, _output;
    private ContentMaskOptions _options = null!;
    private BlockSparseOptions _sparse = null!;

    [GlobalSetup]
    public void Setup()
    {
        _context = AttentionContext.Create(Backend.Cpu, new ContextOptions { Threads = 2 });
        var random = new Random(1);
        TensorView Random(int n)
        {
            var data = new float[(long)Heads * n * HeadDim];
            for (long i = 0; i < data.Length; i++) data[i] = (float)(random.NextDouble() * 2 - 1);
            return TensorView.FromMemory(data.AsMemory(), 1, Heads, n, HeadDim);
        }
        (_query, _key, _value) = (Random(Length), Random(Length), Random(Length));
        _output = TensorView.FromMemory(new float[(long)Heads * Length * HeadDim].AsMemory(), 1, Heads, Length, HeadDim);
        _options = new ContentMaskOptions { QueryBlockSize = Block, KeyBlockSize = Block, TopK = 40, Threads = 2 };
        var built = BlockMasks.FromContent(_query, _key, _options);
        Console.WriteLine($"// content builder: density {built.Density:P1} of the causal blocks ({built.KeptBlocks} of {built.CandidateBlocks})");
        _sparse = new BlockSparseOptions { Mask = built.Mask, Predicate = ElementPredicate.CausalMask };
    }

    /// <summary>Pooling, pooled scores, softmax and gamma selection.</summary>
    [Benchmark]
    public ContentMask Build() => BlockMasks.FromContent(_query, _key, _options);

    /// <summary>The block-sparse attention call the built mask feeds.</summary>
    [Benchmark]
    public void Attend() => _context!.BlockSparse(_query, _key, _value, _output, _sparse);

    [GlobalCleanup]
    public void Cleanup() => _context?.Dispose();
}
