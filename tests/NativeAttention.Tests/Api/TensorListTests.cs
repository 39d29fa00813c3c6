// Every tensor a call takes is listed once by its problem type and checked by one loop: each one, options included,
// is rejected by name when it lives in the wrong memory (here: a device tensor handed to the CPU backend).
using Xunit;

namespace NativeAttention.Tests;

/// <summary>One valid call per entry point, each tensor passed through a hook that may replace it.</summary>
public static class TensorListCases
{
    /// <summary>Replaces the tensor named <c>name</c> (or returns it unchanged).</summary>
    public delegate TensorView Place(string name, TensorView hostTensor);

    /// <summary>The entry points, each with the names of every tensor its valid call passes (optional ones all given).</summary>
    public static readonly IReadOnlyDictionary<string, string[]> Names = new Dictionary<string, string[]>
    {
        ["Flash"] = ["query", "key", "value", "output", "logSumExp", "options.Bias", "options.LowRankBias.U", "options.LowRankBias.W", "options.AlibiSlopes", "options.Sinks"],
        ["FlashVarlen"] = ["query", "key", "value", "output", "logSumExp", "options.AlibiSlopes", "options.Sinks"],
        ["FlashKvCache"] = ["query", "keyCache", "valueCache", "output", "logSumExp", "cache.NewKey", "cache.NewValue", "cache.RotaryCos", "cache.RotarySin", "options.AlibiSlopes", "options.Sinks"],
        ["MergeStates"] = ["partialOutputs", "partialLogSumExp", "output", "logSumExp"],
        ["Neighborhood"] = ["query", "key", "value", "output", "logSumExp", "options.AdditionalKeys", "options.AdditionalValues"],
        ["BlockSparse"] = ["query", "key", "value", "output", "logSumExp"],
        ["LinearChunked"] = ["query", "key", "value", "output", "initialState", "finalState", "options.LogGate"],
        ["LinearDecodeStep"] = ["query", "key", "value", "output", "state", "intermediateStates", "options.LogGate"],
        ["DeltaRuleChunked"] = ["query", "key", "value", "beta", "output", "initialState", "finalState", "options.LogGate"],
        ["DeltaRuleDecodeStep"] = ["query", "key", "value", "beta", "output", "state", "intermediateStates", "options.LogGate"],
    };

    /// <summary>Every (entry point, tensor name) pair, for theories.</summary>
    public static TheoryData<string, string> All()
    {
        var data = new TheoryData<string, string>();
        foreach (var (call, names) in Names)
            foreach (string name in names) data.Add(call, name);
        return data;
    }

    /// <summary>A small float32 host tensor with values in [-1, 1) (fixed seed).</summary>
    public static TensorView F32(params int[] shape)
    {
        var random = new Random(shape.Aggregate(17, (a, b) => a * 31 + b));
        var data = new float[shape.Aggregate(1, (a, b) => a * b)];
        for (int i = 0; i < data.Length; i++) data[i] = (float)(random.NextDouble() * 2 - 1);
        return TensorView.FromMemory(data.AsMemory(), shape);
    }

    private static TensorView Zeros(params int[] shape) => TensorView.FromMemory(new float[shape.Aggregate(1, (a, b) => a * b)].AsMemory(), shape);

    /// <summary>Runs entry point <paramref name="call"/> on <paramref name="context"/> with every tensor passed through <paramref name="place"/>.</summary>
    public static void Run(AttentionContext context, string call, Place place)
    {
        switch (call)
        {
            case "Flash":
                context.Flash(place("query", F32(1, 2, 3, 8)), place("key", F32(1, 1, 4, 8)), place("value", F32(1, 1, 4, 8)), place("output", Zeros(1, 2, 3, 8)),
                    new FlashOptions
                    {
                        Bias = place("options.Bias", F32(1, 2, 3, 4)),
                        LowRankBias = new LowRankBias(place("options.LowRankBias.U", F32(1, 1, 3, 2)), place("options.LowRankBias.W", F32(1, 1, 4, 2))),
                        AlibiSlopes = place("options.AlibiSlopes", F32(2)), Sinks = place("options.Sinks", F32(2)),
                    },
                    place("logSumExp", Zeros(1, 2, 3)));
                break;
            case "FlashVarlen":
                context.FlashVarlen(place("query", F32(5, 2, 8)), place("key", F32(6, 1, 8)), place("value", F32(6, 1, 8)), place("output", Zeros(5, 2, 8)),
                    VarlenLayout.FromLengths([2, 3], [3, 3]),
                    new FlashOptions { AlibiSlopes = place("options.AlibiSlopes", F32(2)), Sinks = place("options.Sinks", F32(2)) },
                    place("logSumExp", Zeros(2, 5)));
                break;
            case "FlashKvCache":
                context.FlashKvCache(place("query", F32(2, 2, 1, 8)), place("keyCache", F32(2, 1, 8, 8)), place("valueCache", F32(2, 1, 8, 8)), place("output", Zeros(2, 2, 1, 8)),
                    new KvCacheOptions
                    {
                        CacheSeqLens = new[] { 3, 4 },
                        NewKey = place("cache.NewKey", F32(2, 1, 1, 8)), NewValue = place("cache.NewValue", F32(2, 1, 1, 8)),
                        RotaryCos = place("cache.RotaryCos", F32(16, 4)), RotarySin = place("cache.RotarySin", F32(16, 4)),
                    },
                    new FlashOptions { AlibiSlopes = place("options.AlibiSlopes", F32(2)), Sinks = place("options.Sinks", F32(2)) },
                    place("logSumExp", Zeros(2, 2, 1)));
                break;
            case "MergeStates":
                context.MergeStates(place("partialOutputs", F32(3, 2, 4, 8)), place("partialLogSumExp", F32(3, 2, 4)), place("output", Zeros(2, 4, 8)),
                    place("logSumExp", Zeros(2, 4)));
                break;
            case "Neighborhood":
                context.Neighborhood(place("query", F32(1, 2, 6, 8)), place("key", F32(1, 1, 6, 8)), place("value", F32(1, 1, 6, 8)), place("output", Zeros(1, 2, 6, 8)),
                    new NeighborhoodOptions
                    {
                        KernelSize = [3],
                        AdditionalKeys = place("options.AdditionalKeys", F32(1, 1, 2, 8)), AdditionalValues = place("options.AdditionalValues", F32(1, 1, 2, 8)),
                    },
                    place("logSumExp", Zeros(1, 2, 6)));
                break;
            case "BlockSparse":
                context.BlockSparse(place("query", F32(1, 2, 4, 8)), place("key", F32(1, 1, 4, 8)), place("value", F32(1, 1, 4, 8)), place("output", Zeros(1, 2, 4, 8)),
                    new BlockSparseOptions
                    {
                        Mask = new BlockCsrMask { QueryBlockSize = 16, KeyBlockSize = 16, RowOffsets = new[] { 0, 1 }, ColumnIndices = new[] { 0 }, ColumnCapacity = 1 },
                    },
                    place("logSumExp", Zeros(1, 2, 4)));
                break;
            case "LinearChunked":
                context.LinearChunked(place("query", F32(1, 2, 4, 8)), place("key", F32(1, 2, 4, 8)), place("value", F32(1, 2, 4, 8)), place("output", Zeros(1, 2, 4, 8)),
                    new LinearOptions { Decay = DecayKind.PerToken, LogGate = place("options.LogGate", Zeros(1, 2, 4)) },
                    place("initialState", F32(1, 2, 8, 8)), place("finalState", Zeros(1, 2, 8, 8)));
                break;
            case "LinearDecodeStep":
                context.LinearDecodeStep(place("query", F32(1, 2, 2, 8)), place("key", F32(1, 2, 2, 8)), place("value", F32(1, 2, 2, 8)), place("output", Zeros(1, 2, 2, 8)),
                    place("state", F32(1, 2, 8, 8)), new LinearOptions { Decay = DecayKind.PerToken, LogGate = place("options.LogGate", Zeros(1, 2, 2)) },
                    place("intermediateStates", Zeros(1, 2, 2, 8, 8)));
                break;
            case "DeltaRuleChunked":
                context.DeltaRuleChunked(place("query", F32(1, 2, 4, 8)), place("key", F32(1, 2, 4, 8)), place("value", F32(1, 2, 4, 8)), place("beta", Zeros(1, 2, 4)),
                    place("output", Zeros(1, 2, 4, 8)), new DeltaRuleOptions { Variant = DeltaRuleVariant.GatedDeltaNet, LogGate = place("options.LogGate", Zeros(1, 2, 4)) },
                    place("initialState", F32(1, 2, 8, 8)), place("finalState", Zeros(1, 2, 8, 8)));
                break;
            case "DeltaRuleDecodeStep":
                context.DeltaRuleDecodeStep(place("query", F32(1, 2, 2, 8)), place("key", F32(1, 2, 2, 8)), place("value", F32(1, 2, 2, 8)), place("beta", Zeros(1, 2, 2)),
                    place("output", Zeros(1, 2, 2, 8)), place("state", F32(1, 2, 8, 8)),
                    new DeltaRuleOptions { Variant = DeltaRuleVariant.GatedDeltaNet, LogGate = place("options.LogGate", Zeros(1, 2, 2)) },
                    place("intermediateStates", Zeros(1, 2, 2, 8, 8)));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(call), call, "Not an entry point of TensorListCases.");
        }
    }

    /// <summary>Asserts that <paramref name="action"/> throws an <see cref="ArgumentException"/> naming <paramref name="name"/>.</summary>
    public static ArgumentException ThrowsNaming(string name, Action action)
    {
        var e = Assert.ThrowsAny<ArgumentException>(action);
        Assert.Equal(name, e.ParamName);
        Assert.Contains(name, e.Message);
        return e;
    }
}

/// <summary>Device memory that is never touched: enough for validation, which only looks at shapes and identities.</summary>
internal sealed class DeviceStandIn(ElementType type, long length) : TensorStorage
{
    public override ElementType ElementType => type;
    public override long Length => length;
    public override MemoryLocation Location => MemoryLocation.Device;
    internal override (object Allocation, long ByteOffset) Identity => (this, 0);

    /// <summary>A device view with the shape and element type of <paramref name="host"/>.</summary>
    public static TensorView Like(TensorView host) =>
        new(new DeviceStandIn(host.ElementType, Math.Max(host.ElementCount, 1)), host.Shape, TensorView.ContiguousStrides(host.Shape));
}

public sealed class TensorListTests
{
    [Theory]
    [MemberData(nameof(TensorListCases.All), MemberType = typeof(TensorListCases))]
    public void Cpu_DeviceTensor_IsRejectedByName(string call, string name)
    {
        using var context = AttentionContext.Create(Backend.Cpu);
        TensorListCases.ThrowsNaming(name, () => TensorListCases.Run(context, call, (n, host) => n == name ? DeviceStandIn.Like(host) : host));
    }

    [Theory]
    [InlineData("Flash")]
    [InlineData("FlashVarlen")]
    [InlineData("FlashKvCache")]
    [InlineData("MergeStates")]
    [InlineData("Neighborhood")]
    [InlineData("BlockSparse")]
    [InlineData("LinearChunked")]
    [InlineData("LinearDecodeStep")]
    [InlineData("DeltaRuleChunked")]
    [InlineData("DeltaRuleDecodeStep")]
    public void Cpu_ValidCall_Runs(string call)
    {
        using var context = AttentionContext.Create(Backend.Cpu);
        TensorListCases.Run(context, call, (_, host) => host);
    }

    [Theory]
    [MemberData(nameof(Calls))]
    public void Problem_ListsEveryTensorOfItsCall(string call)
    {
        // Capture the problem's list through a context that records what it was asked to check.
        using var probe = new ListingProbe();
        TensorListCases.Run(probe, call, (_, host) => host);
        Assert.Equal(TensorListCases.Names[call], probe.Checked);
    }

    public static TheoryData<string> Calls() => [.. TensorListCases.Names.Keys];

    /// <summary>A host context that records the names it is asked to check and runs nothing.</summary>
    private sealed class ListingProbe : AttentionContext
    {
        public List<string> Checked { get; } = [];
        public override Backend Backend => Backend.Cpu;
        public override string DeviceName => "listing probe";
        public override MemoryLocation TensorLocation => MemoryLocation.Host;

        private protected override void CheckTensor(in TensorView view, string name)
        {
            base.CheckTensor(view, name);
            Checked.Add(name);
        }

        private protected override void FlashCore(FlashProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp) { }
        private protected override void FlashKvCacheCore(KvCacheProblem problem, in TensorView query, in TensorView keyCache, in TensorView valueCache, in TensorView output, in TensorView? logSumExp) { }
        private protected override void MergeStatesCore(MergeProblem problem, in TensorView partialOutputs, in TensorView partialLogSumExp, in TensorView output, in TensorView? logSumExp) { }
        private protected override void NeighborhoodCore(NeighborhoodProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp) { }
        private protected override void BlockSparseCore(BlockSparseProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? logSumExp) { }
        private protected override void LinearChunkedCore(LinearProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView? initialState, in TensorView? finalState) { }
        private protected override void LinearDecodeStepCore(LinearProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output, in TensorView state, in TensorView? intermediateStates) { }
        private protected override void DeltaRuleChunkedCore(DeltaRuleProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView beta, in TensorView output,
            in TensorView? initialState, in TensorView? finalState) { }
        private protected override void DeltaRuleDecodeStepCore(DeltaRuleProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView beta, in TensorView output,
            in TensorView state, in TensorView? intermediateStates) { }
    }
}
