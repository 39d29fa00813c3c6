// The banded 1-D CPU neighborhood kernel allocates nothing in steady state: its plan, items, bias copy and extents are
// kept per thread and refilled, so a stream of calls with the same shapes never wakes the GC.
using Xunit;
using Xunit.Abstractions;

namespace NativeAttention.Tests;

/// <summary>
/// Steady-state calls of <see cref="Cpu.Neighborhood1D"/> (through <see cref="Cpu.CpuNeighborhood.Run"/>, the CPU
/// context's dispatch, on two workers) allocate 0 bytes on the calling thread and on the CPU pool threads, as
/// <see cref="AllocationTests"/> measures. The problem is validated once, outside the
/// measured loop: this checks the kernel's own plan, not <see cref="NeighborhoodProblem.Create"/>, which builds its
/// validated description (arrays, the tensor list) on every public call.
/// </summary>
[Collection(AllocationCollection.Name)]
[Trait("Backend", "Cpu")]
public sealed class Neighborhood1DAllocationTests(ITestOutputHelper output)
{
    private const int Warmup = 20, Calls = 100, Windows = 5;

    public static TheoryData<string> Shapes() =>
    [
        "N 600 k 33 MHA lse", "N 600 k 17 dilation 3 GQA causal rpb padded batch 2 Dv 24", "N 300 k 9 dilation 4 rpb heads-last lse",
    ];

    [SkippableTheory]
    [MemberData(nameof(Shapes))]
    public void BandedCall_SteadyState_AllocatesNothing(string shape)
    {
        Skip.IfNot(System.Runtime.Intrinsics.X86.Avx512F.IsSupported && System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated,
            "the banded 1-D path needs AVX-512F");
        var c = new NeighborhoodCase
        {
            Grid = [shape.Contains("N 600") ? 600 : 300],
            Kernel = [shape.Contains("k 33") ? 33 : shape.Contains("k 17") ? 17 : 9],
            Dilation = [shape.Contains("dilation 3") ? 3 : shape.Contains("dilation 4") ? 4 : 1],
            Causal = [shape.Contains("causal")],
            Batch = shape.Contains("batch 2") ? 2 : 1,
            KeyValueHeads = 2, GroupSize = shape.Contains("GQA") ? 3 : 1,
            HeadDim = 64, ValueDim = shape.Contains("Dv 24") ? 24 : 64,
            Rpb = shape.Contains("rpb"), PadSeed = shape.Contains("padded") ? 2 : null,
            Layout = shape.Contains("heads-last") ? NeighborhoodLayout.HeadsLast : NeighborhoodLayout.Contiguous,
            Seed = shape.Length,
        };
        var data = NeighborhoodData.Create(c);
        TensorView? lse = shape.Contains("lse") ? data.LogSumExp : null;
        var problem = NeighborhoodProblem.Create(data.Query, data.Key, data.Value, data.Output, data.Options, lse);
        long ran0 = Cpu.Neighborhood1D.CallsOnThisThread;
        void Call() => Cpu.CpuNeighborhood.Run(problem, data.Query, data.Key, data.Value, data.Output, lse, threads: 2, vectorBits: 512);
        for (int i = 0; i < Warmup; i++) Call();
        Assert.True(Cpu.Neighborhood1D.CallsOnThisThread - ran0 == Warmup, $"{shape}: the banded 1-D path did not run");

        var bytes = AllocationMeter.Measure(Call, Calls, Windows);
        output.WriteLine($"banded 1-D {shape}: {AllocationMeter.Describe(bytes, Calls)}");
        AllocationMeter.AssertNothing(bytes, Calls, shape);
    }
}
