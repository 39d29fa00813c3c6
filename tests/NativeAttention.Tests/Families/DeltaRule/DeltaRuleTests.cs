// Delta-rule kernels (DeltaNet, Gated DeltaNet, KDA) against the float64 reference and the family's metamorphic
// properties, written once per backend. Backends without a delta-rule kernel yet skip with the NotSupportedException's message.
using FsCheck;
using FsCheck.Fluent;
using Xunit;
using static NativeAttention.Tests.RecurrentTestSupport;

namespace NativeAttention.Tests;

/// <summary>One random delta-rule problem: heads, sizes, variant, options, storage, layout, packing and data seed.</summary>
public sealed record DeltaRuleTestCase
{
    public ElementType Type { get; init; } = ElementType.Float32;
    public int Batch { get; init; } = 1;
    public int QueryHeads { get; init; } = 1;
    public int KeyHeads { get; init; } = 1;
    public int ValueHeads { get; init; } = 1;
    public int Length { get; init; } = 8;
    public int KeyDim { get; init; } = 8;
    public int ValueDim { get; init; } = 8;
    public DeltaRuleVariant Variant { get; init; }
    /// <summary>Log gates are uniform in <c>[-GateRange, 0]</c>.</summary>
    public double GateRange { get; init; } = 0.5;
    /// <summary>beta is uniform in <c>[0, BetaMax]</c>.</summary>
    public double BetaMax { get; init; } = 1;
    public bool L2Norm { get; init; }
    public bool InitialState { get; init; }
    public bool ValueMajor { get; init; }
    /// <summary>beta stored in the inputs' type instead of float32.</summary>
    public bool BetaInStorageType { get; init; }
    /// <summary>Packed sequence lengths (B = 1, summing to Length), or null for a plain batch.</summary>
    public int[]? Packed { get; init; }
    /// <summary>Token-major memory <c>[B, N, H, D]</c> (and <c>[B, N, H]</c> beta and gates) instead of head-major.</summary>
    public bool TokenMajor { get; init; }
    public int Chunk { get; init; }
    public float? Scale { get; init; }
    public int Seed { get; init; }

    public int Heads => Math.Max(QueryHeads, Math.Max(KeyHeads, ValueHeads));
    public int Sequences => Packed?.Length ?? Batch;
    public int[] StateTail => ValueMajor ? [ValueDim, KeyDim] : [KeyDim, ValueDim];

    public override string ToString() =>
        $"{Type} B={Batch} H={QueryHeads}/{KeyHeads}/{ValueHeads} N={Length} D={KeyDim}/{ValueDim} {Variant}(-{GateRange}) beta<={BetaMax} l2={L2Norm} " +
        $"state={InitialState} vmajor={ValueMajor} betaType={BetaInStorageType} packed=[{string.Join(",", Packed ?? [])}] tokenMajor={TokenMajor} chunk={Chunk} scale={Scale} seed={Seed}";
}

/// <summary>The host tensors and options of one <see cref="DeltaRuleTestCase"/>.</summary>
public sealed class DeltaRuleData
{
    public required TensorView Query, Key, Value, Beta, Output, Final;
    public TensorView? Initial;
    public required DeltaRuleOptions Options;

    public static DeltaRuleData Create(DeltaRuleTestCase c)
    {
        var random = new Random(c.Seed);
        TensorView Input(int heads, int dim, double range) => Tensor(c.Type, c.TokenMajor, [c.Batch, heads, c.Length, dim], random, -range, range);
        // Without normalisation keys get |k|^2 about 1/3, so that I - beta k k^T stays a contraction for beta <= 2.
        var q = Input(c.QueryHeads, c.KeyDim, 1);
        var k = Input(c.KeyHeads, c.KeyDim, c.L2Norm ? 1 : 1 / Math.Sqrt(c.KeyDim));
        var v = Input(c.ValueHeads, c.ValueDim, 1);
        var beta = Tensor(c.BetaInStorageType ? c.Type : ElementType.Float32, c.TokenMajor, [c.Batch, c.Heads, c.Length], random, 0, c.BetaMax);
        TensorView? gate = c.Variant switch
        {
            DeltaRuleVariant.GatedDeltaNet => Tensor(ElementType.Float32, c.TokenMajor, [c.Batch, c.Heads, c.Length], random, -c.GateRange, 0),
            DeltaRuleVariant.Kda => Tensor(ElementType.Float32, c.TokenMajor, [c.Batch, c.Heads, c.Length, c.KeyDim], random, -c.GateRange, 0),
            _ => null,
        };
        int[] stateShape = [c.Sequences, c.Heads, .. c.StateTail];
        return new DeltaRuleData
        {
            Query = q, Key = k, Value = v, Beta = beta,
            Output = Tensor(c.Type, c.TokenMajor, [c.Batch, c.Heads, c.Length, c.ValueDim], null, 0, 0),
            Initial = c.InitialState ? TestTensors.Uniform(ElementType.Float32, random, 1.0, stateShape) : null,
            Final = TestTensors.Zeros(ElementType.Float32, stateShape),
            Options = new DeltaRuleOptions
            {
                Variant = c.Variant, LogGate = gate, L2NormalizeQueryKey = c.L2Norm, Scale = c.Scale, ChunkSize = c.Chunk,
                StateLayout = c.ValueMajor ? DeltaStateLayout.ValueMajor : DeltaStateLayout.KeyMajor,
                CuSeqLens = Offsets(c.Packed),
            },
        };
    }

    /// <summary>Runs the chunked call on <paramref name="context"/> and brings the output and final state back.</summary>
    public void Run(AttentionContext context)
    {
        using var on = new OnContext(context);
        TensorView? Put(TensorView? host) => host is { } view ? on.Put(view) : null;
        var o = on.Put(Output);
        var final = on.Put(Final);
        Kernel(() => context.DeltaRuleChunked(on.Put(Query), on.Put(Key), on.Put(Value), on.Put(Beta), o, Options with { LogGate = Put(Options.LogGate) }, Put(Initial), final));
        on.Back(o, Output);
        on.Back(final, Final);
    }
}

/// <summary>
/// The delta rule on one backend: random problems over every option against <see cref="Reference.DeltaRuleChunked"/>,
/// and the family's metamorphic properties (chunk-size invariance, prefill + decode, split + carried state, verify +
/// commit, beta = 0, beta = 1 with a unit key, DeltaNet == Gated DeltaNet with log g = 0, KDA with equal gates == Gated
/// DeltaNet, a million tokens), plus bad input. On GPU backends the chunked (UT) and recurrent prefill kernels are also
/// pitted against each other on every random problem, whatever its length.
/// </summary>
public abstract class DeltaRuleTests
{
    /// <summary>The backend under test.</summary>
    protected abstract Backend Backend { get; }

    /// <summary>Random valid problems over every option (sizes small: the reference is a token loop).</summary>
    public static Gen<DeltaRuleTestCase> Cases { get; } =
        from type in Gen.Elements(ElementType.Float32, ElementType.Float32, ElementType.Float16, ElementType.BFloat16)
        from heads in Gen.Elements(HeadShapes)
        from length in Gen.Elements(1, 2, 5, 16, 31, 64, 65, 97, 150)
        from dk in Gen.Elements(1, 3, 8, 16, 33, 64)
        from dv in Gen.Elements(1, 5, 16, 17, 64)
        from variant in Gen.Elements(Enum.GetValues<DeltaRuleVariant>())
        from gateRange in Gen.Elements(0.5, 0.5, 3.0)
        from betaMax in Gen.Elements(1.0, 1.0, 2.0)
        from l2 in Gen.Elements(false, true)
        from state in Gen.Elements(false, true)
        from valueMajor in Gen.Elements(false, true)
        from betaType in Gen.Elements(false, false, true)
        from packed in Gen.Elements(false, false, false, true)
        from cuts in Gen.Choose(0, length).ArrayOf(3)
        from batch in Gen.Elements(1, 2)
        from tokenMajor in Gen.Elements(false, true)
        from chunk in Gen.Elements(0, 0, 1, 7, 16, 64)
        from scale in Gen.Elements<float?>(null, null, 1f, 0.25f)
        from seed in Gen.Choose(0, int.MaxValue)
        let sorted = cuts.Append(0).Append(length).Order().ToArray()
        select new DeltaRuleTestCase
        {
            Type = type, QueryHeads = heads.Q, KeyHeads = heads.K, ValueHeads = heads.V, Length = length, KeyDim = dk, ValueDim = dv,
            Variant = variant, GateRange = gateRange, BetaMax = betaMax, L2Norm = l2, InitialState = state, ValueMajor = valueMajor,
            BetaInStorageType = betaType, Batch = packed ? 1 : batch, Packed = packed ? sorted.Zip(sorted.Skip(1), (a, b) => b - a).ToArray() : null,
            TokenMajor = tokenMajor, Chunk = chunk, Scale = scale, Seed = seed,
        };

    /// <summary>
    /// The kernel's output is within <c>1e-4</c> of the largest exact output of its (batch, head) plus one unit roundoff
    /// of the storage type; the final state within <c>1e-4</c> of the largest exact state element. No NaN anywhere.
    /// </summary>
    internal static void AssertMatchesReference(DeltaRuleTestCase c, DeltaRuleData d)
    {
        var exact = Reference.DeltaRuleChunked(d.Query, d.Key, d.Value, d.Beta, d.Options, d.Initial);
        var actual = d.Output.ToDoubleArray();
        double u = c.Type.UnitRoundoff();
        int perHead = c.Length * c.ValueDim;
        for (int bh = 0; bh < c.Batch * c.Heads; bh++)
        {
            double scale = exact.Output.AsSpan(bh * perHead, perHead).ToArray().Select(Math.Abs).DefaultIfEmpty(0).Max();
            for (int i = bh * perHead; i < (bh + 1) * perHead; i++)
            {
                double allowed = 1e-4 * (scale + 1e-3) + (c.Type == ElementType.Float32 ? 0 : u * Math.Abs(exact.Output[i]));
                if (!(Math.Abs(actual[i] - exact.Output[i]) <= allowed))
                    Assert.Fail($"{c}: output element {i} is {actual[i]}, expected {exact.Output[i]} (allowed error {allowed:G3})");
            }
        }
        var state = d.Final.ToDoubleArray();
        double stateScale = exact.FinalState!.Select(Math.Abs).DefaultIfEmpty(0).Max();
        for (int i = 0; i < state.Length; i++)
        {
            double allowed = 1e-4 * (stateScale + 1e-3);
            if (!(Math.Abs(state[i] - exact.FinalState![i]) <= allowed))
                Assert.Fail($"{c}: final state element {i} is {state[i]}, expected {exact.FinalState[i]} (allowed error {allowed:G3})");
        }
    }

    /// <summary>The backend's context, after a one-token call that skips the test when the backend has no delta-rule kernel yet.</summary>
    private AttentionContext Context(int? vectorBits = null) =>
        RecurrentTestSupport.Context(Backend, vectorBits, (context, on) =>
        {
            var x = on.Put(TestTensors.Zeros(ElementType.Float32, 1, 1, 1, 1));
            context.DeltaRuleChunked(x, x, x, on.Put(TestTensors.Zeros(ElementType.Float32, 1, 1, 1)), on.Put(TestTensors.Zeros(ElementType.Float32, 1, 1, 1, 1)));
        });

    private void CheckCases(Gen<DeltaRuleTestCase> cases, int count, int? vectorBits = null)
    {
        using var context = Context(vectorBits);
        RecurrentTestSupport.CheckCases(cases, count, vectorBits, c =>
        {
            var d = DeltaRuleData.Create(c);
            d.Run(context);
            return d;
        }, AssertMatchesReference);
    }

    [SkippableFact]
    public void DeltaRule_RandomProblems_MatchReference() => CheckCases(Cases, count: 50);

    /// <summary>Sampled cases that L2-normalise queries and keys, with all inputs at magnitude 0.01 or 0.001, mostly binary16.</summary>
    [SkippableFact]
    public void DeltaRule_SmallInputs_MatchReference()
    {
        using var context = Context();
        SmallInputs.Check(context, DeltaRuleCase.Registration, count: 12);
    }

    [SkippableFact]
    public void DeltaRule_EveryVectorWidth_MatchesReference()
    {
        Skip.If(Backend != Backend.Cpu, "Vector widths are a CPU notion.");
        foreach (int bits in VectorWidths())
        {
            CheckCases(Cases, count: 6, vectorBits: bits);
            // The decode kernels (both state layouts, column blocks and scalar tails) at this width too.
            using var context = Context(bits);
            SampledCasesPass(context, r => DeltaRuleCase.Sample(r) is var c ? c with { Decode = true, Packed = 0, Length = Math.Min(c.Length, LinearProblem.MaxVerifyTokens) } : null!,
                seed: 1500 + bits, count: 6);
        }
    }

    [SkippableFact]
    public void DeltaRule_ChunkedKernel_EqualsRecurrentKernel()
    {
        // GPU only: the same random problem through the chunked (UT) kernels and the recurrent one, whatever its length
        // (by default prefills shorter than GpuDeltaRule.ChunkedMinTokens run recurrent): each against the reference,
        // and the two within rounding of each other. The chunked run takes windows of 1 or 2 chunks per sequence for a
        // third of the cases each (a prepare and a state launch per window), the automatic window otherwise.
        Skip.If(Backend == Backend.Cpu, "The CPU has one prefill kernel.");
        using var context = Context();
        var gpu = (NativeAttention.Gpu.GpuContext)context;
        Properties.Check(Arb.From(Cases), c =>
        {
            gpu.DeltaRuleChunkedMinTokens = int.MaxValue;
            var recurrent = DeltaRuleData.Create(c);
            recurrent.Run(context);
            gpu.DeltaRuleChunkedMinTokens = 1;
            gpu.DeltaRuleWindowChunks = c.Seed % 3;
            var chunked = DeltaRuleData.Create(c);
            try
            {
                chunked.Run(context);
            }
            finally
            {
                gpu.DeltaRuleWindowChunks = 0;
            }
            AssertMatchesReference(c, recurrent);
            AssertMatchesReference(c, chunked);
            AssertNear(recurrent.Output.ToDoubleArray(), chunked.Output.ToDoubleArray(), c.Type == ElementType.Float32 ? 2e-5 : 2 * c.Type.UnitRoundoff(), $"{c}: chunked vs recurrent");
            AssertNear(recurrent.Final.ToDoubleArray(), chunked.Final.ToDoubleArray(), 2e-5, $"{c}: chunked vs recurrent, final state");
        }, count: 20);
    }

    [SkippableFact]
    public void DeltaRule_ChunkedKernels_DeclareTheLocalMemoryTheHostAssumes()
    {
        // The host picks the chunked kernels only where DeltaVariant.ChunkedLocalBytes fits the device; each kernel's
        // figure must be what the compiled kernel really declares, and both fit OpenCL's guaranteed 32 KB.
        Skip.If(Backend != Backend.OpenCl, "The OpenCL runtime reports a kernel's local memory.");
        using var context = (NativeAttention.Gpu.OpenCl.OpenClContext)Context();
        foreach (bool prepare in new[] { true, false })
        {
            var variant = new NativeAttention.Gpu.DeltaVariant(ElementType.Float32, Chunked: true, Prepare: prepare);
            using var module = context.BuildSource(variant.Source(NativeAttention.Gpu.KernelApi.OpenCl), variant.EntryPoint);
            Assert.Equal(variant.LocalBytes, module.LocalMemoryBytes(context.Device));
        }
        Assert.True(NativeAttention.Gpu.DeltaVariant.ChunkedLocalBytes <= 32 * 1024, $"the chunked kernels need {NativeAttention.Gpu.DeltaVariant.ChunkedLocalBytes} B of local memory, more than OpenCL's 32 KB");
    }

    [SkippableTheory]
    [InlineData(32 * 1024, true)]
    [InlineData(16 * 1024, false)]
    public void DeltaRule_DeviceLocalMemory_PicksTheKernel(int localBytes, bool chunked)
    {
        // A device with OpenCL's guaranteed 32 KB of local memory runs long prefills on the chunked kernels; one with less
        // than they declare runs every prefill on the recurrent kernel, with the same results.
        Skip.If(Backend != Backend.OpenCl, "Which modules were built is visible on OpenCL.");
        using var context = (NativeAttention.Gpu.OpenCl.OpenClContext)Context();
        context.LocalMemoryLimit = localBytes;
        var c = new DeltaRuleTestCase { Length = 80, KeyDim = 16, ValueDim = 17, Variant = DeltaRuleVariant.GatedDeltaNet, InitialState = true, Seed = 5 };
        var d = DeltaRuleData.Create(c);
        d.Run(context);
        AssertMatchesReference(c, d);
        Assert.Equal(chunked, context.HasModule(new NativeAttention.Gpu.DeltaVariant(ElementType.Float32, Chunked: true).Name));
        Assert.Equal(chunked, context.HasModule(new NativeAttention.Gpu.DeltaVariant(ElementType.Float32, Chunked: true, Prepare: true).Name));
        // (The context's one-token probe call built the recurrent kernel already.)
        Assert.True(context.HasModule(new NativeAttention.Gpu.DeltaVariant(ElementType.Float32).Name), "the recurrent kernel was not built");
    }

    [SkippableFact]
    public void DeltaRule_SampledCases_PassTheCaseCheck()
    {
        // What `verify` and `fuzz --replay` run: the case's own call (prefill or in-place decode) and its check.
        using var context = Context();
        SampledCasesPass(context, DeltaRuleCase.Sample, seed: 1414, count: 16);
    }

    // ---- Metamorphic properties (float32) ----

    private static readonly Gen<DeltaRuleTestCase> Plain32 =
        from c in Cases where c.Packed is null
        select c with { Type = ElementType.Float32 };

    private static DeltaRuleOptions For(DeltaRuleData d, int start, int n) => d.Options with { LogGate = d.Options.LogGate is { } g ? Rows(g, start, n) : null };

    /// <summary>Copies <c>[B, H, n, Dv]</c> rows into tokens <c>[start, start + n)</c> of a <c>[B, H, N, Dv]</c> array.</summary>
    private static void Place(double[] rows, double[] into, DeltaRuleTestCase c, int start, int n) =>
        RecurrentTestSupport.Place(rows, into, c.Batch * c.Heads, c.Length, c.ValueDim, start, n);

    private static double[] Output(AttentionContext context, DeltaRuleData d)
    {
        d.Run(context);
        return d.Output.ToDoubleArray();
    }

    [SkippableFact]
    public void DeltaRule_ChunkSize_DoesNotChangeTheResult()
    {
        using var context = Context();
        var cases = from c in Cases select c with { Length = Math.Max(c.Length, 130), Packed = c.Packed is null ? null : [c.Packed.Sum(), Math.Max(c.Length, 130) - c.Packed.Sum()] };
        Properties.Check(Arb.From(cases), c =>
        {
            var baseline = DeltaRuleData.Create(c with { Chunk = 16 });
            var expected = Output(context, baseline);
            foreach (int chunk in new[] { 32, 64, 128, 37 })
            {
                var d = DeltaRuleData.Create(c with { Chunk = chunk });
                AssertNear(expected, Output(context, d), c.Type == ElementType.Float32 ? 2e-5 : 2 * c.Type.UnitRoundoff(), $"{c} chunk {chunk} vs 16");
                AssertNear(baseline.Final.ToDoubleArray(), d.Final.ToDoubleArray(), 2e-5, $"{c} chunk {chunk} vs 16: final state");
            }
        }, count: 8);
    }

    [SkippableFact]
    public void DeltaRule_PrefillThenDecode_EqualsOneShot()
    {
        using var context = Context();
        Properties.Check(Arb.From(from c in Plain32 where c.Length >= 2 select c), c =>
        {
            var whole = DeltaRuleData.Create(c);
            whole.Run(context);
            var expected = whole.Output.ToDoubleArray();
            int prefix = c.Length / 2;
            var d = DeltaRuleData.Create(c);
            using var on = new OnContext(context);
            var state = TestTensors.Zeros(ElementType.Float32, [c.Batch, c.Heads, .. c.StateTail]);
            var prefillOut = TestTensors.Zeros(c.Type, [c.Batch, c.Heads, prefix, c.ValueDim]);
            var stateOn = on.Put(state);
            var prefillOutOn = on.Put(prefillOut);
            Kernel(() => context.DeltaRuleChunked(Put(on, Rows(d.Query, 0, prefix)), Put(on, Rows(d.Key, 0, prefix)), Put(on, Rows(d.Value, 0, prefix)),
                Put(on, Rows(d.Beta, 0, prefix)), prefillOutOn, On(on, For(d, 0, prefix)), Put(on, d.Initial), stateOn));
            on.Back(prefillOutOn, prefillOut);
            var actual = new double[expected.Length];
            Place(prefillOut.ToDoubleArray(), actual, c, 0, prefix);
            for (int t = prefix; t < c.Length; t++)
            {
                var o = TestTensors.Zeros(c.Type, [c.Batch, c.Heads, 1, c.ValueDim]);
                var oOn = on.Put(o);
                Kernel(() => context.DeltaRuleDecodeStep(Put(on, Rows(d.Query, t, 1)), Put(on, Rows(d.Key, t, 1)), Put(on, Rows(d.Value, t, 1)), Put(on, Rows(d.Beta, t, 1)),
                    oOn, stateOn, On(on, For(d, t, 1))));
                on.Back(oOn, o);
                Place(o.ToDoubleArray(), actual, c, t, 1);
            }
            on.Back(stateOn, state);
            AssertNear(expected, actual, 2e-5, $"{c}: prefill + decode");
            AssertNear(whole.Final.ToDoubleArray(), state.ToDoubleArray(), 2e-5, $"{c}: final state");
        }, count: 10);
    }

    [SkippableFact]
    public void DeltaRule_SplitWithCarriedState_EqualsWhole()
    {
        using var context = Context();
        Properties.Check(Arb.From(from c in Plain32 where c.Length >= 2 from cut in Gen.Choose(1, c.Length - 1) select (c, cut)), x =>
        {
            var (c, cut) = x;
            var whole = DeltaRuleData.Create(c);
            whole.Run(context);
            var d = DeltaRuleData.Create(c);
            int[] stateShape = [c.Batch, c.Heads, .. c.StateTail];
            var middle = TestTensors.Zeros(ElementType.Float32, stateShape);
            var end = TestTensors.Zeros(ElementType.Float32, stateShape);
            int rest = c.Length - cut;
            var first = TestTensors.Zeros(c.Type, [c.Batch, c.Heads, cut, c.ValueDim]);
            var second = TestTensors.Zeros(c.Type, [c.Batch, c.Heads, rest, c.ValueDim]);
            using var on = new OnContext(context);
            var (middleOn, endOn, firstOn, secondOn) = (on.Put(middle), on.Put(end), on.Put(first), on.Put(second));
            Kernel(() => context.DeltaRuleChunked(Put(on, Rows(d.Query, 0, cut)), Put(on, Rows(d.Key, 0, cut)), Put(on, Rows(d.Value, 0, cut)), Put(on, Rows(d.Beta, 0, cut)),
                firstOn, On(on, For(d, 0, cut)), Put(on, d.Initial), middleOn));
            Kernel(() => context.DeltaRuleChunked(Put(on, Rows(d.Query, cut, rest)), Put(on, Rows(d.Key, cut, rest)), Put(on, Rows(d.Value, cut, rest)), Put(on, Rows(d.Beta, cut, rest)),
                secondOn, On(on, For(d, cut, rest)), middleOn, endOn));
            on.Back(firstOn, first);
            on.Back(secondOn, second);
            on.Back(endOn, end);
            var actual = new double[whole.Output.ElementCount];
            Place(first.ToDoubleArray(), actual, c, 0, cut);
            Place(second.ToDoubleArray(), actual, c, cut, rest);
            AssertNear(whole.Output.ToDoubleArray(), actual, 2e-5, $"{c} split at {cut}");
            AssertNear(whole.Final.ToDoubleArray(), end.ToDoubleArray(), 2e-5, $"{c} split at {cut}: final state");
        }, count: 10);
    }

    [SkippableFact]
    public void DeltaRule_VerifyThenCommit_EqualsDecodingTheAcceptedTokens()
    {
        using var context = Context();
        var cases = from c in Plain32
                    from k in Gen.Choose(1, LinearProblem.MaxVerifyTokens)
                    from accepted in Gen.Choose(0, k).ArrayOf(c.Batch)
                    select (c: c with { Length = k, InitialState = true }, accepted);
        Properties.Check(Arb.From(cases), x =>
        {
            var (c, accepted) = x;
            var d = DeltaRuleData.Create(c);
            var state = TestTensors.Copy(d.Initial!.Value, ElementType.Float32);
            var intermediate = TestTensors.Zeros(ElementType.Float32, [c.Batch, c.Length, c.Heads, .. c.StateTail]);
            var verifyOut = TestTensors.Zeros(c.Type, [c.Batch, c.Heads, c.Length, c.ValueDim]);
            using var on = new OnContext(context);
            var (stateOn, intermediateOn, verifyOutOn) = (on.Put(state), on.Put(intermediate), on.Put(verifyOut));
            Kernel(() => context.DeltaRuleDecodeStep(on.Put(d.Query), on.Put(d.Key), on.Put(d.Value), on.Put(d.Beta), verifyOutOn, stateOn, On(on, d.Options), intermediateOn));
            on.Back(stateOn, state);
            on.Back(verifyOutOn, verifyOut);
            AssertNear(d.Initial.Value.ToDoubleArray(), state.ToDoubleArray(), 0, $"{c}: verify must not change the state");
            context.DeltaRuleCommit(intermediateOn, stateOn, accepted);
            on.Back(stateOn, state);
            var decoded = TestTensors.Copy(d.Initial.Value, ElementType.Float32);
            var expectedState = TestTensors.Copy(d.Initial.Value, ElementType.Float32);
            var (decodedOn, expectedOn) = (on.Put(decoded), on.Put(expectedState));
            var decodeOut = new double[verifyOut.ElementCount];
            for (int t = 0; t < c.Length; t++)
            {
                var o = TestTensors.Zeros(c.Type, [c.Batch, c.Heads, 1, c.ValueDim]);
                var oOn = on.Put(o);
                Kernel(() => context.DeltaRuleDecodeStep(Put(on, Rows(d.Query, t, 1)), Put(on, Rows(d.Key, t, 1)), Put(on, Rows(d.Value, t, 1)), Put(on, Rows(d.Beta, t, 1)),
                    oOn, decodedOn, On(on, For(d, t, 1))));
                on.Back(oOn, o);
                Place(o.ToDoubleArray(), decodeOut, c, t, 1);
                for (int b = 0; b < c.Batch; b++)
                    if (accepted[b] == t + 1) context.Copy(decodedOn.Slice(0, b, 1), expectedOn.Slice(0, b, 1));
            }
            on.Back(expectedOn, expectedState);
            AssertNear(decodeOut, verifyOut.ToDoubleArray(), 1e-6, $"{c}: verify outputs vs decode");
            AssertNear(expectedState.ToDoubleArray(), state.ToDoubleArray(), 1e-6, $"{c} accepted [{string.Join(",", accepted)}]: committed state");
        }, count: 10);
    }

    [SkippableFact]
    public void DeltaRule_ZeroBeta_LeavesTheStateUnchanged()
    {
        // DeltaNet with beta = 0 everywhere: the final state is the initial one and o_t = scale S0^T q_t.
        using var context = Context();
        Properties.Check(Arb.From(from c in Plain32 select c with { Variant = DeltaRuleVariant.DeltaNet, InitialState = true, BetaMax = 0 }), c =>
        {
            var d = DeltaRuleData.Create(c);
            d.Run(context);
            AssertNear(d.Initial!.Value.ToDoubleArray(), d.Final.ToDoubleArray(), 1e-6, $"{c}: state");
            AssertMatchesReference(c, d);
        }, count: 8);
    }

    [SkippableFact]
    public void DeltaRule_UnitBetaWithOneUnitKey_WritesTheValueIntoTheKeyDirection()
    {
        // The last token of each sequence gets beta = 1 and a unit key k: afterwards k^T S = v (up to the 1e-6 of the
        // normalisation), whatever the state held before.
        using var context = Context();
        Properties.Check(Arb.From(from c in Plain32 select c with { L2Norm = true }), c =>
        {
            var d = DeltaRuleData.Create(c);
            int t = c.Length - 1;
            var beta = d.Beta.ToDoubleArray();
            for (int bh = 0; bh < c.Batch * c.Heads; bh++) beta[(long)bh * c.Length + t] = 1;
            d.Beta.CopyFrom(beta);
            var k = d.Key.ToDoubleArray();
            var random = new Random(c.Seed ^ 0x5eed);
            for (int bh = 0; bh < c.Batch * c.KeyHeads; bh++)
            {
                var unit = Enumerable.Range(0, c.KeyDim).Select(_ => random.NextDouble() + 0.1).ToArray();
                double norm = Math.Sqrt(unit.Sum(x => x * x));
                for (int i = 0; i < c.KeyDim; i++) k[((long)bh * c.Length + t) * c.KeyDim + i] = unit[i] / norm;
            }
            d.Key.CopyFrom(k);
            k = d.Key.ToDoubleArray();
            d.Run(context);
            var v = d.Value.ToDoubleArray();
            var s = d.Final.ToDoubleArray();
            double stateScale = s.Select(Math.Abs).DefaultIfEmpty(0).Max();
            for (int b = 0; b < c.Batch; b++)
            for (int h = 0; h < c.Heads; h++)
            {
                int kh = h / (c.Heads / c.KeyHeads), vh = h / (c.Heads / c.ValueHeads);
                long state = ((long)b * c.Heads + h) * c.KeyDim * c.ValueDim;
                for (int e = 0; e < c.ValueDim; e++)
                {
                    double kS = 0;
                    for (int i = 0; i < c.KeyDim; i++)
                        kS += k[(((long)b * c.KeyHeads + kh) * c.Length + t) * c.KeyDim + i] * s[state + (c.ValueMajor ? (long)e * c.KeyDim + i : (long)i * c.ValueDim + e)];
                    double expected = v[(((long)b * c.ValueHeads + vh) * c.Length + t) * c.ValueDim + e];
                    if (!(Math.Abs(kS - expected) <= 1e-4 * (1 + stateScale)))
                        Assert.Fail($"{c}: k^T S [{b}, {h}, {e}] is {kS}, expected v = {expected}");
                }
            }
        }, count: 10);
    }

    [SkippableFact]
    public void DeltaRule_DeltaNet_EqualsGatedDeltaNetWithZeroLogGates()
    {
        using var context = Context();
        Properties.Check(Arb.From(from c in Plain32 select c with { Variant = DeltaRuleVariant.DeltaNet }), c =>
        {
            var plain = DeltaRuleData.Create(c);
            var expected = Output(context, plain);
            var gated = DeltaRuleData.Create(c);
            gated = new DeltaRuleData
            {
                Query = gated.Query, Key = gated.Key, Value = gated.Value, Beta = gated.Beta, Output = gated.Output, Final = gated.Final, Initial = gated.Initial,
                Options = gated.Options with { Variant = DeltaRuleVariant.GatedDeltaNet, LogGate = TestTensors.Zeros(ElementType.Float32, c.Batch, c.Heads, c.Length) },
            };
            AssertNear(expected, Output(context, gated), 1e-6, $"{c}: log g = 0");
            AssertNear(plain.Final.ToDoubleArray(), gated.Final.ToDoubleArray(), 1e-6, $"{c}: log g = 0, final state");
        }, count: 8);
    }

    [SkippableFact]
    public void DeltaRule_KdaWithEqualGates_EqualsGatedDeltaNet()
    {
        using var context = Context();
        Properties.Check(Arb.From(from c in Plain32 select c with { Variant = DeltaRuleVariant.GatedDeltaNet }), c =>
        {
            var gated = DeltaRuleData.Create(c);
            var expected = Output(context, gated);
            var scalar = gated.Options.LogGate!.Value.ToDoubleArray();
            var perKey = TestTensors.Of(ElementType.Float32, [c.Batch, c.Heads, c.Length, c.KeyDim], scalar.SelectMany(x => Enumerable.Repeat(x, c.KeyDim)).ToArray());
            var kda = DeltaRuleData.Create(c);
            kda = new DeltaRuleData
            {
                Query = kda.Query, Key = kda.Key, Value = kda.Value, Beta = kda.Beta, Output = kda.Output, Final = kda.Final, Initial = kda.Initial,
                Options = kda.Options with { Variant = DeltaRuleVariant.Kda, LogGate = perKey },
            };
            AssertNear(expected, Output(context, kda), 2e-5, $"{c}: KDA with equal gates");
            AssertNear(gated.Final.ToDoubleArray(), kda.Final.ToDoubleArray(), 2e-5, $"{c}: KDA with equal gates, final state");
        }, count: 8);
    }

    [SkippableFact]
    public void DeltaRule_KdaStrongAndMixedGates_MatchReference()
    {
        // KDA over gates whose in-chunk decays underflow float32 in some key dimensions and not in others: per dimension
        // strong (log g in [-30, -5]), weak ([-0.05, 0]) or exactly 0, or spikes (-100 at one token in ten, else 0; the
        // exact decays are then 0 or 1). The GPU's chunked kernel splits a decay across its 16-token sub-chunks into two
        // factors, either of which may underflow; that may drop only terms that are negligible in exact arithmetic too.
        // On GPU backends the chunked kernels run whatever the automatic choice, next to the recurrent one.
        using var context = Context();
        var gpu = context as NativeAttention.Gpu.GpuContext;
        int automatic = gpu?.DeltaRuleChunkedMinTokens ?? 0;
        var cases =
            from length in Gen.Elements(40, 97, 150)
            from dk in Gen.Elements(5, 16, 33, 64)
            from dv in Gen.Elements(3, 17)
            from chunk in Gen.Elements(0, 0, 48, 37, 20)
            from l2 in Gen.Elements(false, true)
            from pattern in Gen.Choose(0, 3)
            from seed in Gen.Choose(0, int.MaxValue)
            select (Case: new DeltaRuleTestCase
            {
                Length = length, KeyDim = dk, ValueDim = dv, Variant = DeltaRuleVariant.Kda, L2Norm = l2, InitialState = seed % 2 == 0,
                Chunk = chunk, Seed = seed, BetaMax = 2,
            }, Pattern: pattern);
        Properties.Check(Arb.From(cases), x =>
        {
            var c = x.Case;
            var random = new Random(c.Seed ^ 0x5eed);
            // Per key dimension: 0 strong, 1 weak, 2 zero, 3 spikes; pattern 3 mixes them, the others use one kind throughout.
            var kinds = Enumerable.Range(0, c.KeyDim).Select(_ => x.Pattern == 3 ? random.Next(4) : x.Pattern).ToArray();
            var gates = new double[c.Heads * c.Length * c.KeyDim];
            for (int i = 0; i < gates.Length; i++)
                gates[i] = kinds[i % c.KeyDim] switch
                {
                    0 => -5 - 25 * random.NextDouble(),
                    1 => -0.05 * random.NextDouble(),
                    2 => 0,
                    _ => random.Next(10) == 0 ? -100 : 0,
                };
            var gate = TestTensors.Of(ElementType.Float32, [1, c.Heads, c.Length, c.KeyDim], gates);
            DeltaRuleData Make()
            {
                var d = DeltaRuleData.Create(c);
                return new DeltaRuleData
                {
                    Query = d.Query, Key = d.Key, Value = d.Value, Beta = d.Beta, Output = d.Output, Final = d.Final, Initial = d.Initial,
                    Options = d.Options with { LogGate = gate },
                };
            }
            var chunked = Make();
            if (gpu is not null) gpu.DeltaRuleChunkedMinTokens = 1;
            try
            {
                chunked.Run(context);
            }
            finally
            {
                if (gpu is not null) gpu.DeltaRuleChunkedMinTokens = automatic;
            }
            AssertMatchesReference(c, chunked);
            if (gpu is not null)
            {
                gpu.DeltaRuleChunkedMinTokens = int.MaxValue;
                var recurrent = Make();
                try
                {
                    recurrent.Run(context);
                }
                finally
                {
                    gpu.DeltaRuleChunkedMinTokens = automatic;
                }
                AssertMatchesReference(c, recurrent);
                AssertNear(recurrent.Output.ToDoubleArray(), chunked.Output.ToDoubleArray(), 2e-5, $"{c} pattern {x.Pattern}: chunked vs recurrent");
                AssertNear(recurrent.Final.ToDoubleArray(), chunked.Final.ToDoubleArray(), 2e-5, $"{c} pattern {x.Pattern}: chunked vs recurrent, final state");
            }
        }, count: 12);
    }

    [SkippableTheory]
    [InlineData(DeltaRuleVariant.DeltaNet)]
    [InlineData(DeltaRuleVariant.GatedDeltaNet)]
    [InlineData(DeltaRuleVariant.Kda)]
    public void DeltaRule_MillionTokens_StayFiniteAndMatchTheReference(DeltaRuleVariant variant)
    {
        // N = 1,000,000, H = 1, D = 4, L2-normalised q and k, beta uniform in [0, 2], log g uniform in [-30, 0]: every
        // in-chunk cumulative product underflows many times over, yet nothing may overflow or give NaN, and the final
        // state and the last outputs must still agree with the float64 recurrence.
        using var context = Context();
        const int N = 1_000_000, D = 4;
        var random = new Random(7);
        var q = TestTensors.Uniform(ElementType.Float32, random, 1.0, [1, 1, N, D]);
        var k = TestTensors.Uniform(ElementType.Float32, random, 1.0, [1, 1, N, D]);
        var v = TestTensors.Uniform(ElementType.Float32, random, 1.0, [1, 1, N, D]);
        var beta = TestTensors.Of(ElementType.Float32, [1, 1, N], Enumerable.Range(0, N).Select(_ => 2 * random.NextDouble()).ToArray());
        TensorView? gate = variant switch
        {
            DeltaRuleVariant.GatedDeltaNet => TestTensors.Of(ElementType.Float32, [1, 1, N], Enumerable.Range(0, N).Select(_ => -30 * random.NextDouble()).ToArray()),
            DeltaRuleVariant.Kda => TestTensors.Of(ElementType.Float32, [1, 1, N, D], Enumerable.Range(0, N * D).Select(_ => -30 * random.NextDouble()).ToArray()),
            _ => null,
        };
        var options = new DeltaRuleOptions { Variant = variant, LogGate = gate, L2NormalizeQueryKey = true };
        var o = TestTensors.Zeros(ElementType.Float32, [1, 1, N, D]);
        var final = TestTensors.Zeros(ElementType.Float32, [1, 1, D, D]);
        using (var on = new OnContext(context))
        {
            var (oOn, finalOn) = (on.Put(o), on.Put(final));
            Kernel(() => context.DeltaRuleChunked(on.Put(q), on.Put(k), on.Put(v), on.Put(beta), oOn, On(on, options), null, finalOn));
            on.Back(oOn, o);
            on.Back(finalOn, final);
        }
        var values = o.ToDoubleArray();
        Assert.All(values, x => Assert.True(double.IsFinite(x), $"non-finite output {x}"));
        var exact = Reference.DeltaRuleChunked(q, k, v, beta, options);
        AssertNear(exact.FinalState!, final.ToDoubleArray(), 1e-4, $"{variant}: final state");
        AssertNear(exact.Output[^(64 * D)..], values[^(64 * D)..], 1e-4, $"{variant}: last 64 tokens");
    }

    // ---- Bad input ----

    /// <summary>A host view placed on the context (null stays null).</summary>
    private static TensorView? Put(OnContext on, TensorView? host) => host is { } view ? on.Put(view) : null;

    /// <summary>Put, for views that are always there.</summary>
    private static TensorView Put(OnContext on, TensorView host) => on.Put(host);

    /// <summary>Options whose log gates are placed on the context.</summary>
    private static DeltaRuleOptions On(OnContext on, DeltaRuleOptions options) => options with { LogGate = Put(on, options.LogGate) };

    [SkippableFact]
    public void DeltaRule_BadInput_IsNamed()
    {
        using var context = Context();
        var on = new OnContext(context);
        TensorView T(params int[] shape) => on.Put(TestTensors.Uniform(ElementType.Float32, 3, 1.0, shape));
        TensorView Z(params int[] shape) => on.Put(TestTensors.Zeros(ElementType.Float32, shape));
        TensorView Of(int[] shape, params double[] values) => on.Put(TestTensors.Of(ElementType.Float32, shape, values));
        var (q, k, v, o, beta) = (T(1, 2, 4, 3), T(1, 2, 4, 3), T(1, 2, 4, 5), Z(1, 2, 4, 5), Z(1, 2, 4));
        var gated = new DeltaRuleOptions { Variant = DeltaRuleVariant.GatedDeltaNet };
        if (context.TensorLocation == MemoryLocation.Host)
        {
            // beta outside [0, 2] and positive log gates (host tensors are checked element by element).
            Names("beta", () => context.DeltaRuleChunked(q, k, v, Of([1, 2, 4], 1, 1, 2.5, 1, 1, 1, 1, 1), o));
            Names("beta", () => context.DeltaRuleChunked(q, k, v, Of([1, 2, 4], 1, 1, 1, 1, 1, -0.5, 1, 1), o));
            Names("beta", () => context.DeltaRuleChunked(q, k, v, Of([1, 2, 4], 1, 1, 1, 1, 1, double.NaN, 1, 1), o));
            Names("options.LogGate", () => context.DeltaRuleChunked(q, k, v, beta, o, gated with { LogGate = Of([1, 2, 4], -1, -1, 0.5, -1, -1, -1, -1, -1) }));
            Names("options.LogGate", () => context.DeltaRuleDecodeStep(q.Slice(2, 0, 1), k.Slice(2, 0, 1), v.Slice(2, 0, 1), beta.Slice(2, 0, 1), o.Slice(2, 0, 1), Z(1, 2, 3, 5),
                new DeltaRuleOptions { Variant = DeltaRuleVariant.Kda, LogGate = Of([1, 2, 1, 3], 0, 0, 1e-3, 0, 0, 0) }));
        }
        Names("beta", () => context.DeltaRuleChunked(q, k, v, Z(1, 1, 4), o));
        Names("options.LogGate", () => context.DeltaRuleChunked(q, k, v, beta, o, gated));
        Names("options.LogGate", () => context.DeltaRuleChunked(q, k, v, beta, o, new DeltaRuleOptions { Variant = DeltaRuleVariant.Kda, LogGate = Z(1, 2, 4) }));
        Names("options.LogGate", () => context.DeltaRuleChunked(q, k, v, beta, o, new DeltaRuleOptions { LogGate = Z(1, 2, 4) }));
        // Wrong state shapes and layouts: K-major [.., Dk, Dv] given where V-major [.., Dv, Dk] is declared, and the reverse.
        Names("initialState", () => context.DeltaRuleChunked(q, k, v, beta, o, null, Z(1, 2, 5, 3)));
        Names("finalState", () => context.DeltaRuleChunked(q, k, v, beta, o, new DeltaRuleOptions { StateLayout = DeltaStateLayout.ValueMajor }, null, Z(1, 2, 3, 5)));
        Names("state", () => context.DeltaRuleDecodeStep(q.Slice(2, 0, 1), k.Slice(2, 0, 1), v.Slice(2, 0, 1), beta.Slice(2, 0, 1), o.Slice(2, 0, 1), Z(1, 2, 5, 3)));
        Names("intermediateStates", () => context.DeltaRuleDecodeStep(q, k, v, beta, o, Z(1, 2, 3, 5), null, Z(1, 3, 2, 3, 5)));
        Names("initialState", () => context.DeltaRuleChunked(q.Slice(0, 0, 1), k, v, beta, o, new DeltaRuleOptions { CuSeqLens = new[] { 0, 1, 4 } }, Z(1, 2, 3, 5)));
        Names("options.StateLayout", () => context.DeltaRuleChunked(q, k, v, beta, o, new DeltaRuleOptions { StateLayout = (DeltaStateLayout)7 }));
        Names("options.Variant", () => context.DeltaRuleChunked(q, k, v, beta, o, new DeltaRuleOptions { Variant = (DeltaRuleVariant)7 }));
        Names("options.CuSeqLens", () => context.DeltaRuleChunked(q, k, v, beta, o, new DeltaRuleOptions { CuSeqLens = new[] { 0, 3, 2, 4 } }));
        Names("options.CuSeqLens", () => context.DeltaRuleDecodeStep(q, k, v, beta, o, Z(1, 2, 3, 5), new DeltaRuleOptions { CuSeqLens = new[] { 0, 4 } }));
        Names("key", () => context.DeltaRuleChunked(T(1, 4, 4, 3), T(1, 3, 4, 3), T(1, 2, 4, 5), Z(1, 4, 4), Z(1, 4, 4, 5)));
        Names("output", () => context.DeltaRuleChunked(T(1, 4, 4, 3), T(1, 2, 4, 3), T(1, 2, 4, 5), Z(1, 4, 4), Z(1, 2, 4, 5)));
        var nine = (T(1, 2, 9, 3), T(1, 2, 9, 5));
        Names("query", () => context.DeltaRuleDecodeStep(nine.Item1, nine.Item1, nine.Item2, Z(1, 2, 9), Z(1, 2, 9, 5), Z(1, 2, 3, 5), null, Z(1, 9, 2, 3, 5)));
        Names("accepted", () => context.DeltaRuleCommit(Z(1, 4, 2, 3, 5), Z(1, 2, 3, 5), [5]));
        Names("options.ChunkSize", () => context.DeltaRuleChunked(q, k, v, beta, o, new DeltaRuleOptions { ChunkSize = -1 }));
        Names("options.Scale", () => context.DeltaRuleChunked(q, k, v, beta, o, new DeltaRuleOptions { Scale = float.NaN }));
        Names("output", () => context.DeltaRuleChunked(q, k, v, beta, Z(1, 2, 4, 3)));
        on.Dispose();
    }
}

[Trait("Backend", "Cpu")]
public sealed class CpuDeltaRuleTests : DeltaRuleTests
{
    protected override Backend Backend => Backend.Cpu;
}

[Trait("Backend", "OpenCl")]
public sealed class OpenClDeltaRuleTests : DeltaRuleTests
{
    protected override Backend Backend => Backend.OpenCl;
}

[Trait("Backend", "Cuda")]
public sealed class CudaDeltaRuleTests : DeltaRuleTests
{
    protected override Backend Backend => Backend.Cuda;
}
