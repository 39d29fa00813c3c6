// Issue 15's "every built-in option, expressed as a modification, equals the built-in path on every backend": the same
// view-field structs (FlexViewModifications) against Flash and BlockSparse on the CPU, on OpenCL (PoCL in CI) and on
// CUDA (skipped without a device), with and without a block mask from CreateBlockMask; and the misuse of view fields.
using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using NativeAttention.Cpu;
using NativeAttention.Ilgpu.Tests.Interop;
using Xunit;
using static NativeAttention.Ilgpu.Tests.Flex.FlexTests;

namespace NativeAttention.Ilgpu.Tests.Flex;

/// <summary>The built-in comparisons for one context, with every table a view made by <see cref="FlexViews.Of{T}"/>.</summary>
public abstract class FlexViewTests
{
    /// <summary>The context the tests run on (a skip when its backend is not available).</summary>
    protected abstract AttentionContext Context { get; }

    /// <summary>The output tolerance of fp32 beyond storage rounding (flex and the built-in kernel sum in different orders).</summary>
    protected virtual double Tolerance => 3e-5;

    // Small shapes: on PoCL every modification type is one ILGPU compile and one OpenCL build.
    private static Problem BuiltInProblem(ElementType type, int seed, double range = 1) =>
        MakeProblem(new Random(seed), batch: 2, hq: 4, hkv: 2, nq: 45, nk: 70, d: 32, dv: 24, type, range);

    private TensorView Put(TensorView host) => Context.TensorLocation == MemoryLocation.Host ? host : Context.Upload(host);

    /// <summary>A view of <paramref name="values"/> in a tensor of the context.</summary>
    private ArrayView<float> Floats(float[] values) => FlexViews.Of<float>(Put(TensorView.FromMemory<float>(values.ToArray(), values.Length)));

    /// <summary>A view of <paramref name="values"/> held by bit pattern in a Float32 tensor of the context.</summary>
    private ArrayView<int> Ints(int[] values) =>
        FlexViews.Of<int>(Put(TensorView.FromMemory<float>(MemoryMarshal.Cast<int, float>(values.AsSpan()).ToArray(), values.Length)));

    private void AssertEqualsBuiltIn<TScore, TMask>(Problem p, TScore score, TMask mask, (double[], double[]) builtIn, string what)
        where TScore : struct, IScoreMod where TMask : struct, IMaskMod
    {
        double outTol = OutputTolerance(p.Type, Tolerance), lseTol = Math.Max(1e-4, Tolerance);
        AssertClose(builtIn, RunFlex(Context, p, score, mask), outTol, lseTol, $"{what} (no block mask) {p} on {Context.Backend}");
        var blocks = new FlexOptions { BlockMask = Context.CreateBlockMask(mask, p.Batch, p.QueryHeads, p.QueryLength, p.KeyLength, 16, 32) };
        AssertClose(builtIn, RunFlex(Context, p, score, mask, blocks), outTol, lseTol, $"{what} (block mask) {p} on {Context.Backend}");
    }

    [SkippableTheory]
    [InlineData(ElementType.Float32)]
    [InlineData(ElementType.Float16)]
    public void CausalEqualsBuiltIn(ElementType type)
    {
        var p = BuiltInProblem(type, 1);
        var flash = RunFlash(Context, p, new FlashOptions { Causal = true });
        AssertEqualsBuiltIn(p, new NoScoreMod(), new ViewCausalMask { Shift = p.KeyLength - p.QueryLength }, flash, "causal");
    }

    [SkippableTheory]
    [InlineData(20, 5, false)]
    [InlineData(30, -1, true)]
    public void SlidingWindowEqualsBuiltIn(int left, int right, bool causal)
    {
        var p = BuiltInProblem(ElementType.Float32, 2);
        var flash = RunFlash(Context, p, new FlashOptions { WindowLeft = left, WindowRight = right, Causal = causal });
        var mask = new ViewWindowMask { Left = left, Right = right, Shift = p.KeyLength - p.QueryLength, Causal = causal ? 1 : 0 };
        AssertEqualsBuiltIn(p, new NoScoreMod(), mask, flash, $"window({left},{right},{causal})");
    }

    [SkippableFact]
    public void AlibiEqualsBuiltIn()
    {
        var p = BuiltInProblem(ElementType.Float32, 3);
        float[] slopes = [0.5f, 0.25f, 0.0625f, 0.0078125f];
        var flash = RunFlash(Context, p, new FlashOptions { Causal = true, AlibiSlopes = Put(TensorView.FromMemory<float>(slopes.ToArray(), slopes.Length)) });
        int shift = p.KeyLength - p.QueryLength;
        // The slopes three elements into their tensor's storage: the view starts at the tensor's offset.
        var padded = Put(TensorView.FromMemory<float>(new float[] { 9, 9, 9 }.Concat(slopes).ToArray(), 3 + slopes.Length)).Slice(0, 3, slopes.Length);
        AssertEqualsBuiltIn(p, new ViewAlibiScore { Slopes = FlexViews.Of<float>(padded), Shift = shift }, new ViewCausalMask { Shift = shift }, flash, "ALiBi");
    }

    [SkippableFact]
    public void SoftcapEqualsBuiltIn()
    {
        var p = BuiltInProblem(ElementType.Float32, 4, range: 2);
        AssertEqualsBuiltIn(p, new ViewSoftcapScore { Cap = 3 }, new NoMask(), RunFlash(Context, p, new FlashOptions { Softcap = 3 }), "softcap");
        float[] slopes = [0.5f, 0.25f, 0.125f, 0.0625f];
        var both = RunFlash(Context, p, new FlashOptions { Softcap = 3, AlibiSlopes = Put(TensorView.FromMemory<float>(slopes.ToArray(), slopes.Length)) });
        var score = new ViewSoftcapAlibiScore { Cap = 3, Alibi = new ViewAlibiScore { Slopes = Floats(slopes), Shift = p.KeyLength - p.QueryLength } };
        AssertEqualsBuiltIn(p, score, new NoMask(), both, "softcap then ALiBi");
    }

    [SkippableTheory]
    [InlineData(2, 4)]
    [InlineData(1, 1)]
    public void DenseBiasEqualsBuiltIn(int biasBatch, int biasHeads)
    {
        var p = BuiltInProblem(ElementType.Float32, 5);
        var random = new Random(55);
        var bias = new float[biasBatch * biasHeads * p.QueryLength * p.KeyLength];
        for (int i = 0; i < bias.Length; i++) bias[i] = (float)(3 * random.NextDouble() - 1.5);
        var biasTensor = Put(TensorView.FromMemory<float>(bias.ToArray(), biasBatch, biasHeads, p.QueryLength, p.KeyLength));
        var flash = RunFlash(Context, p, new FlashOptions { Causal = true, Bias = biasTensor });
        var score = new ViewBiasScore { Bias = FlexViews.Of<float>(biasTensor), Batches = biasBatch, Heads = biasHeads, Nq = p.QueryLength, Nk = p.KeyLength };
        AssertEqualsBuiltIn(p, score, new ViewCausalMask { Shift = p.KeyLength - p.QueryLength }, flash, $"dense bias [{biasBatch}, {biasHeads}]");
    }

    [SkippableFact]
    public void DocumentMaskEqualsBuiltIn()
    {
        var p = BuiltInProblem(ElementType.Float32, 6);
        var random = new Random(66);
        int[] Documents(int n)
        {
            var ids = new int[p.Batch * n];
            for (int b = 0; b < p.Batch; b++)
            {
                int id = 0;
                for (int i = 0; i < n; i++) { if (random.Next(12) == 0) id++; ids[b * n + i] = id; }
            }
            return ids;
        }
        int[] queryDocuments = Documents(p.QueryLength), keyDocuments = Documents(p.KeyLength);
        var builtIn = RunBlockSparse(Context, p, ElementPredicate.Documents(queryDocuments, keyDocuments));
        var mask = new ViewDocumentMask { QueryDocuments = Ints(queryDocuments), KeyDocuments = Ints(keyDocuments), Nq = p.QueryLength, Nk = p.KeyLength };
        AssertEqualsBuiltIn(p, new NoScoreMod(), mask, builtIn, "document mask");
    }

    [SkippableFact]
    public void PrefixLmEqualsBuiltIn()
    {
        var p = BuiltInProblem(ElementType.Float32, 7);
        int[] prefixes = [12, 51];
        var builtIn = RunBlockSparse(Context, p, ElementPredicate.PrefixLM(prefixes));
        AssertEqualsBuiltIn(p, new NoScoreMod(), new ViewPrefixLmMask { Prefixes = Ints(prefixes), Shift = p.KeyLength - p.QueryLength }, builtIn, "prefix-LM");
    }
}

/// <summary>The view-field built-in comparisons on the CPU: views of host tensors, read in place by the CPU kernel.</summary>
public sealed class CpuFlexViewTests : FlexViewTests, IDisposable
{
    private readonly CpuContext _context = new(new ContextOptions { Threads = 2 });

    protected override AttentionContext Context => _context;

    public void Dispose() => _context.Dispose();
}

/// <summary>One context of a GPU backend per test class, or a skip (a failure when NATIVEATTENTION_REQUIRE names it).</summary>
public abstract class FlexBackendFixture(Backend backend, string requireName) : IDisposable
{
    private readonly Lazy<(AttentionContext? Context, string? Reason)> _context = new(() =>
    {
        var info = Backends.Query(backend);
        return info.IsSupported ? (AttentionContext.Create(backend), null) : (null, info.Description);
    });

    public AttentionContext Context
    {
        get
        {
            var (context, reason) = _context.Value;
            if (context is not null) return context;
            bool required = (Environment.GetEnvironmentVariable("NATIVEATTENTION_REQUIRE") ?? "").Split(',', StringSplitOptions.TrimEntries)
                .Any(n => n.Equals(requireName, StringComparison.OrdinalIgnoreCase));
            if (required) throw new InvalidOperationException($"NATIVEATTENTION_REQUIRE names {requireName}, but it is not available: {reason}");
            Skip.If(true, $"{requireName} is not available here: {reason}");
            throw new InvalidOperationException("unreachable");
        }
    }

    public void Dispose()
    {
        if (_context.IsValueCreated) _context.Value.Context?.Dispose();
    }
}

/// <summary>An OpenCL context (PoCL in CI).</summary>
public sealed class FlexOpenClContext() : FlexBackendFixture(Backend.OpenCl, "opencl");

/// <summary>A CUDA context (a lent GPU; skipped here).</summary>
public sealed class FlexCudaContext() : FlexBackendFixture(Backend.Cuda, "cuda");

/// <summary>The view-field built-in comparisons on OpenCL: views of the context's device tensors.</summary>
public sealed class OpenClFlexViewTests(FlexOpenClContext fixture) : FlexViewTests, IClassFixture<FlexOpenClContext>
{
    protected override AttentionContext Context => fixture.Context;

    protected override double Tolerance => 1e-4;
}

/// <summary>The view-field built-in comparisons on CUDA (run by run-device.sh when a GPU is lent).</summary>
public sealed class CudaFlexViewTests(FlexCudaContext fixture) : FlexViewTests, IClassFixture<FlexCudaContext>
{
    protected override AttentionContext Context => fixture.Context;

    protected override double Tolerance => 1e-4;
}

/// <summary>FlexViews.Of's checks, views of the wrong memory, and views of an ILGPU CPU accelerator's buffers.</summary>
public sealed class FlexViewMisuseTests(FlexOpenClContext openCl)
    : IClassFixture<FlexOpenClContext>
{
    private static readonly Problem Small = MakeProblem(new Random(31), 2, 4, 2, 20, 30, 16, 16, ElementType.Float32);

    [Fact]
    public void OfRejectsNonContiguousAndMismatchedTensorsNamingTheTensor()
    {
        var matrix = TensorView.FromMemory<float>(new float[12], 3, 4);
        Assert.Equal("tensor", Assert.ThrowsAny<ArgumentException>(() => FlexViews.Of<float>(matrix.Permute(1, 0))).ParamName);
        Assert.Equal("tensor", Assert.ThrowsAny<ArgumentException>(() => FlexViews.Of<long>(matrix)).ParamName);
        var halves = Uniform(ElementType.Float16, new Random(1), 1, 8);
        Assert.Equal("tensor", Assert.ThrowsAny<ArgumentException>(() => FlexViews.Of<float>(halves)).ParamName);
        Assert.Equal("tensor", Assert.ThrowsAny<ArgumentException>(() => FlexViews.Of<float>(default)).ParamName);
        // A view of a host tensor reads its elements in place, from the tensor's offset.
        var values = TensorView.FromMemory<float>(Enumerable.Range(0, 12).Select(i => (float)i).ToArray(), 3, 4);
        var row = FlexViews.Of<float>(values.Slice(0, 1, 1));
        Assert.Equal(4, row.Length);
        Assert.Equal(new float[] { 4, 5, 6, 7 }, Enumerable.Range(0, 4).Select(i => row[i]).ToArray());
    }

    [SkippableFact]
    public void ViewsOfTheWrongMemoryThrowBeforeAnythingRuns()
    {
        var gpu = openCl.Context;
        float[] slopes = [0.5f, 0.25f, 0.125f, 0.0625f];
        var hostSlopes = FlexViews.Of<float>(TensorView.FromMemory<float>(slopes.ToArray(), 4));
        var deviceSlopes = FlexViews.Of<float>(gpu.Upload(TensorView.FromMemory<float>(slopes.ToArray(), 4)));
        var mask = new ViewCausalMask { Shift = 10 };
        // A host view on OpenCL, a device view on the CPU: named for the argument and the field.
        var e = Assert.ThrowsAny<ArgumentException>(() => RunFlex(gpu, Small, new ViewAlibiScore { Slopes = hostSlopes, Shift = 10 }, mask));
        Assert.Equal("scoreMod", e.ParamName);
        Assert.Contains("scoreMod.Slopes", e.Message);
        using var cpu = new CpuContext(new ContextOptions { Threads = 1 });
        e = Assert.ThrowsAny<ArgumentException>(() => RunFlex(cpu, Small, new ViewAlibiScore { Slopes = deviceSlopes, Shift = 10 }, mask));
        Assert.Equal("scoreMod", e.ParamName);
        var ids = FlexViews.Of<int>(gpu.Upload(TensorView.FromMemory<float>(new float[60], 60)));
        e = Assert.ThrowsAny<ArgumentException>(() => cpu.CreateBlockMask(new ViewDocumentMask { QueryDocuments = ids, KeyDocuments = ids, Nq = 20, Nk = 30 }, 1, 1, 20, 30));
        Assert.Equal("maskMod", e.ParamName);
        Assert.Contains("maskMod.QueryDocuments", e.Message);
        // A view of another OpenCL context's tensor.
        using var other = AttentionContext.Create(Backend.OpenCl);
        var foreign = FlexViews.Of<float>(other.Upload(TensorView.FromMemory<float>(slopes.ToArray(), 4)));
        e = Assert.ThrowsAny<ArgumentException>(() => RunFlex(gpu, Small, new ViewAlibiScore { Slopes = foreign, Shift = 10 }, mask));
        Assert.Equal("scoreMod", e.ParamName);
        Assert.Contains("scoreMod.Slopes", e.Message);
    }

    [Fact]
    public void ViewReadOutOfRangeOnTheCpu_ThrowsNamingTheStruct()
    {
        // ILGPU asserts view bounds with Trace.Assert, which by default ends the process; inside a CPU Flex call it must
        // become a FlexModificationException naming the struct, whether the probe before the call finds it (a slope
        // table shorter than the heads), the kernel does (a read out of range at one key in the middle), or
        // CreateBlockMask does (a document table shorter than the keys).
        using var cpu = new CpuContext(new ContextOptions { Threads = 2 });
        var mask = new ViewCausalMask { Shift = Small.KeyLength - Small.QueryLength };
        var shortSlopes = FlexViews.Of<float>(TensorView.FromMemory<float>(new float[] { 0.5f }, 1));
        var e = Assert.Throws<FlexModificationException>(() => RunFlex(cpu, Small, new ViewAlibiScore { Slopes = shortSlopes, Shift = 10 }, mask));
        Assert.Contains(nameof(ViewAlibiScore), e.Message);
        Assert.IsType<IndexOutOfRangeException>(e.InnerException);
        var table = FlexViews.Of<float>(TensorView.FromMemory<float>(new float[4], 4));
        e = Assert.Throws<FlexModificationException>(() => RunFlex(cpu, Small, new ViewReadAtKeyScore { Table = table, AtKey = 7, Index = 99 }, mask));
        Assert.Contains(nameof(ViewReadAtKeyScore), e.Message);
        var ids = FlexViews.Of<int>(TensorView.FromMemory<float>(new float[Small.KeyLength - 3], Small.KeyLength - 3));
        e = Assert.Throws<FlexModificationException>(() => cpu.CreateBlockMask(new ViewKeyTableMask { Ids = ids }, 1, 1, Small.QueryLength, Small.KeyLength, 16, 16));
        Assert.Contains(nameof(ViewKeyTableMask), e.Message);
        // In range, the same structs run.
        var fine = FlexViews.Of<float>(TensorView.FromMemory<float>(new float[100], 100));
        RunFlex(cpu, Small, new ViewReadAtKeyScore { Table = fine, AtKey = 7, Index = 99 }, mask);
        // Assertions outside Flex are left to the other listeners (the guard does not throw there).
        Assert.True(System.Diagnostics.Trace.Listeners.Count >= 1);
    }

    [Fact]
    public void IlgpuCpuAcceleratorBuffersAreViewFieldsOfItsContext()
    {
        using var ilgpu = new IlgpuCpuAccelerator();
        using var attention = IlgpuAttention.Create(ilgpu.Accelerator, options: new ContextOptions { Threads = 2 });
        float[] slopes = [0.5f, 0.25f, 0.125f, 0.0625f];
        // The slopes three elements into the buffer: the view's index counts.
        using var buffer = ilgpu.Accelerator.Allocate1D(new float[] { 9, 9, 9 }.Concat(slopes).ToArray());
        var view = buffer.View.AsContiguous().SubView(3, 4);
        int shift = Small.KeyLength - Small.QueryLength;
        var mask = new ViewCausalMask { Shift = shift };
        var flash = RunFlash(attention.Context, Small, new FlashOptions { Causal = true, AlibiSlopes = TensorView.FromMemory<float>(slopes.ToArray(), 4) });
        AssertClose(flash, RunFlex(attention.Context, Small, new ViewAlibiScore { Slopes = view, Shift = shift }, mask), 3e-5, 1e-4, "ALiBi slopes in a CPU accelerator buffer");
        // Another accelerator's buffer, or a context not created from this accelerator: named errors.
        using var otherAccelerator = ilgpu.Context.CreateCPUAccelerator(0);
        using var otherBuffer = otherAccelerator.Allocate1D(slopes);
        var e = Assert.ThrowsAny<ArgumentException>(() =>
            RunFlex(attention.Context, Small, new ViewAlibiScore { Slopes = otherBuffer.View.AsContiguous(), Shift = shift }, mask));
        Assert.Equal("scoreMod", e.ParamName);
        Assert.Contains("scoreMod.Slopes", e.Message);
        using var plain = new CpuContext(new ContextOptions { Threads = 1 });
        e = Assert.ThrowsAny<ArgumentException>(() => RunFlex(plain, Small, new ViewAlibiScore { Slopes = view, Shift = shift }, mask));
        Assert.Equal("scoreMod", e.ParamName);
        // A disposed buffer.
        var gone = ilgpu.Accelerator.Allocate1D(slopes);
        var goneView = gone.View.AsContiguous();
        gone.Dispose();
        Assert.Throws<ObjectDisposedException>(() => RunFlex(attention.Context, Small, new ViewAlibiScore { Slopes = goneView, Shift = shift }, mask));
    }
}
