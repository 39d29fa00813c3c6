// Chunked linear attention kernels against the float64 reference and the family's metamorphic properties, written
// once per backend. Backends without a linear kernel yet skip with the NotSupportedException's message.
using FsCheck;
using FsCheck.Fluent;
using Xunit;
using static NativeAttention.Tests.RecurrentTestSupport;

namespace NativeAttention.Tests;

/// <summary>One random linear-attention problem: heads, sizes, options, storage, layout, packing and data seed.</summary>
public sealed record LinearTestCase
{
    public ElementType Type { get; init; } = ElementType.Float32;
    public int Batch { get; init; } = 1;
    public int QueryHeads { get; init; } = 1;
    public int KeyHeads { get; init; } = 1;
    public int ValueHeads { get; init; } = 1;
    public int Length { get; init; } = 8;
    public int KeyDim { get; init; } = 8;
    public int ValueDim { get; init; } = 8;
    public FeatureMap Map { get; init; }
    public DecayKind Decay { get; init; }
    /// <summary>Log gates are uniform in <c>[-GateRange, 0]</c>.</summary>
    public double GateRange { get; init; } = 0.5;
    public bool Normalize { get; init; }
    public bool Causal { get; init; } = true;
    public bool InitialState { get; init; }
    /// <summary>Packed sequence lengths (B = 1, summing to Length), or null for a plain batch.</summary>
    public int[]? Packed { get; init; }
    /// <summary>Token-major memory <c>[B, N, H, D]</c> (and <c>[B, N, H]</c> gates) instead of head-major.</summary>
    public bool TokenMajor { get; init; }
    public int Chunk { get; init; }
    public float Scale { get; init; } = 1;
    public float Epsilon { get; init; } = 1e-3f;
    public int Seed { get; init; }

    public int Heads => Math.Max(QueryHeads, Math.Max(KeyHeads, ValueHeads));
    public int Features => Map == FeatureMap.Taylor2 ? 1 + KeyDim + KeyDim * KeyDim : KeyDim;
    public int Columns => ValueDim + (Normalize ? 1 : 0);
    public int Sequences => Packed?.Length ?? Batch;

    public override string ToString() =>
        $"{Type} B={Batch} H={QueryHeads}/{KeyHeads}/{ValueHeads} N={Length} D={KeyDim}/{ValueDim} {Map} {Decay}(-{GateRange}) norm={Normalize} causal={Causal} " +
        $"state={InitialState} packed=[{string.Join(",", Packed ?? [])}] tokenMajor={TokenMajor} chunk={Chunk} scale={Scale} seed={Seed}";
}

/// <summary>The host tensors and options of one <see cref="LinearTestCase"/>.</summary>
public sealed class LinearData
{
    public required TensorView Query, Key, Value, Output;
    public TensorView? Initial, Final;
    public required LinearOptions Options;

    public static LinearData Create(LinearTestCase c)
    {
        var random = new Random(c.Seed);
        TensorView Input(int heads, int dim, double lo = -1, double hi = 1) => Tensor(c.Type, c.TokenMajor, [c.Batch, heads, c.Length, dim], random, lo, hi);
        var q = Input(c.QueryHeads, c.KeyDim);
        var k = Input(c.KeyHeads, c.KeyDim);
        var v = Input(c.ValueHeads, c.ValueDim);
        TensorView? gate = c.Decay switch
        {
            DecayKind.PerToken => Tensor(ElementType.Float32, c.TokenMajor, [c.Batch, c.Heads, c.Length], random, -c.GateRange, 0),
            DecayKind.PerTokenPerKey => Tensor(ElementType.Float32, c.TokenMajor, [c.Batch, c.Heads, c.Length, c.KeyDim], random, -c.GateRange, 0),
            _ => null,
        };
        float[] headDecay = c.Decay == DecayKind.PerHead ? Enumerable.Range(0, c.Heads).Select(_ => (float)(-c.GateRange * random.NextDouble())).ToArray() : [];
        int[] stateShape = [c.Sequences, c.Heads, c.Features, c.Columns];
        // Initial states with positive normaliser columns, as a real prefix would leave them.
        TensorView? initial = null;
        if (c.InitialState)
        {
            initial = TestTensors.Uniform(ElementType.Float32, random, 1.0, stateShape);
            if (c.Normalize)
            {
                var values = initial.Value.ToDoubleArray();
                for (int i = c.ValueDim; i < values.Length; i += c.Columns) values[i] = Math.Abs(values[i]) + 0.5;
                initial.Value.CopyFrom(values);
            }
        }
        return new LinearData
        {
            Query = q, Key = k, Value = v,
            Output = Tensor(c.Type, c.TokenMajor, [c.Batch, c.Heads, c.Length, c.ValueDim], null, 0, 0),
            Initial = initial,
            Final = c.Causal ? TestTensors.Zeros(ElementType.Float32, stateShape) : null,
            Options = new LinearOptions
            {
                FeatureMap = c.Map, Decay = c.Decay, HeadLogDecay = headDecay, LogGate = gate, Normalize = c.Normalize, Causal = c.Causal,
                ChunkSize = c.Chunk, Scale = c.Scale, Epsilon = c.Epsilon,
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
        var final = Put(Final);
        Kernel(() => context.LinearChunked(on.Put(Query), on.Put(Key), on.Put(Value), o, Options with { LogGate = Put(Options.LogGate) }, Put(Initial), final));
        on.Back(o, Output);
        if (final is { } f) on.Back(f, Final!.Value);
    }
}

/// <summary>
/// Chunked linear attention on one backend: random problems over every option against <see cref="Reference.LinearChunked"/>,
/// and the family's metamorphic properties (chunk-size invariance, prefill + decode, split + carried state, verify +
/// commit, gamma = 1, non-causal form, normalised constant V, long-sequence stability), plus bad input.
/// </summary>
public abstract class LinearTests
{
    /// <summary>The backend under test.</summary>
    protected abstract Backend Backend { get; }

    /// <summary>Random valid problems over every option (sizes small: the reference is a token loop).</summary>
    public static Gen<LinearTestCase> Cases { get; } =
        from type in Gen.Elements(ElementType.Float32, ElementType.Float32, ElementType.Float16, ElementType.BFloat16)
        from heads in Gen.Elements(HeadShapes)
        from length in Gen.Elements(1, 2, 5, 16, 31, 64, 65, 97, 150)
        from map in Gen.Elements(Enum.GetValues<FeatureMap>())
        from dk in map == FeatureMap.Taylor2 ? Gen.Elements(1, 2, 5, 8) : Gen.Elements(1, 3, 8, 16, 33, 64)
        from dv in Gen.Elements(1, 5, 16, 17, 64)
        from causal in Gen.Elements(true, true, true, false)
        from decay in causal ? Gen.Elements(Enum.GetValues<DecayKind>().Where(d => d != DecayKind.PerTokenPerKey || map != FeatureMap.Taylor2).ToArray()) : Gen.Constant(DecayKind.None)
        from gateRange in Gen.Elements(0.5, 0.5, 3.0)
        from normalize in Gen.Elements(false, map is FeatureMap.EluPlusOne or FeatureMap.Taylor2 or FeatureMap.Relu)
        from state in causal ? Gen.Elements(false, true) : Gen.Constant(false)
        from packed in Gen.Elements(false, false, false, true)
        from cuts in Gen.Choose(0, length).ArrayOf(3)
        from batch in Gen.Elements(1, 2)
        from tokenMajor in Gen.Elements(false, true)
        from chunk in Gen.Elements(0, 0, 1, 7, 16, 64)
        from scale in Gen.Elements(1f, 1f, 0.25f)
        from seed in Gen.Choose(0, int.MaxValue)
        let sorted = cuts.Append(0).Append(length).Order().ToArray()
        select new LinearTestCase
        {
            Type = type, QueryHeads = heads.Q, KeyHeads = heads.K, ValueHeads = heads.V, Length = length, KeyDim = dk, ValueDim = dv,
            Map = map, Decay = decay, GateRange = gateRange, Normalize = normalize, Causal = causal, InitialState = state,
            Batch = packed ? 1 : batch, Packed = packed ? sorted.Zip(sorted.Skip(1), (a, b) => b - a).ToArray() : null,
            TokenMajor = tokenMajor, Chunk = chunk, Scale = scale, Seed = seed,
        };

    /// <summary>
    /// The kernel's output is within <c>3e-5</c> of a bound on the float32 accumulation (the reference on absolute
    /// inputs, or the largest |v| for normalised calls, whose outputs are weighted means of V) plus one unit roundoff
    /// of the storage type; the final state within <c>3e-5</c> of the absolute reference's state. No NaN anywhere.
    /// </summary>
    internal static void AssertMatchesReference(LinearTestCase c, LinearData d)
    {
        var exact = Reference.LinearChunked(d.Query, d.Key, d.Value, d.Options, d.Initial);
        var actual = d.Output.ToDoubleArray();
        double[] bound;
        double[]? stateBound = null;
        var absolute = Reference.LinearChunked(Abs(d.Query), Abs(d.Key), Abs(d.Value), d.Options with { Normalize = false }, d.Initial is { } s ? Abs(s, c.Normalize) : null);
        if (c.Normalize)
        {
            double vMax = d.Value.ToDoubleArray().Select(Math.Abs).DefaultIfEmpty(0).Max() + (c.InitialState ? 4 : 0);
            bound = exact.Output.Select(_ => vMax).ToArray();
        }
        else bound = absolute.Output;
        double u = c.Type.UnitRoundoff();
        for (int i = 0; i < actual.Length; i++)
        {
            double allowed = 3e-5 * (bound[i] + 1e-3) + (c.Type == ElementType.Float32 ? 0 : u * Math.Abs(exact.Output[i]));
            if (!(Math.Abs(actual[i] - exact.Output[i]) <= allowed))
                Assert.Fail($"{c}: output element {i} is {actual[i]}, expected {exact.Output[i]} (allowed error {allowed:G3})");
        }
        if (d.Final is not { } final) return;
        var state = final.ToDoubleArray();
        if (!c.Normalize) stateBound = absolute.FinalState;
        double stateScale = exact.FinalState!.Select(Math.Abs).DefaultIfEmpty(0).Max();
        for (int i = 0; i < state.Length; i++)
        {
            double allowed = 3e-5 * ((stateBound?[i] ?? stateScale) + 1e-3);
            if (!(Math.Abs(state[i] - exact.FinalState![i]) <= allowed))
                Assert.Fail($"{c}: final state element {i} is {state[i]}, expected {exact.FinalState[i]} (allowed error {allowed:G3})");
        }
    }

    private static TensorView Abs(TensorView view, bool dropNormaliser = false)
    {
        var copy = TestTensors.Copy(view, view.ElementType);
        copy.CopyFrom(view.ToDoubleArray().Select(Math.Abs).ToArray());
        return dropNormaliser ? copy.Slice(3, 0, view.Shape[3] - 1) : copy;
    }

    /// <summary>The backend's context, after a one-token call that skips the test when the backend has no linear kernel yet.</summary>
    private AttentionContext Context(int? vectorBits = null) =>
        RecurrentTestSupport.Context(Backend, vectorBits, (context, on) =>
        {
            var x = on.Put(TestTensors.Zeros(ElementType.Float32, 1, 1, 1, 1));
            context.LinearChunked(x, x, x, on.Put(TestTensors.Zeros(ElementType.Float32, 1, 1, 1, 1)));
        });

    private void CheckCases(Gen<LinearTestCase> cases, int count, int? vectorBits = null)
    {
        using var context = Context(vectorBits);
        RecurrentTestSupport.CheckCases(cases, count, vectorBits, c =>
        {
            var d = LinearData.Create(c);
            d.Run(context);
            return d;
        }, AssertMatchesReference);
    }

    [SkippableFact]
    public void Linear_RandomProblems_MatchReference() => CheckCases(Cases, count: 60);

    [SkippableFact]
    public void Linear_EveryVectorWidth_MatchesReference()
    {
        Skip.If(Backend != Backend.Cpu, "Vector widths are a CPU notion.");
        foreach (int bits in VectorWidths())
        {
            CheckCases(Cases, count: 8, vectorBits: bits);
            // The decode kernel (column blocks and scalar tails) at this width too.
            using var context = Context(bits);
            SampledCasesPass(context, r => LinearCase.Sample(r) is var c ? c with { Decode = true, Causal = true, Packed = 0, Length = Math.Min(c.Length, LinearProblem.MaxVerifyTokens) } : null!,
                seed: 1400 + bits, count: 6);
        }
    }

    [SkippableFact]
    public void Linear_SampledCases_PassTheCaseCheck()
    {
        // What `verify`, `fuzz --family linear` and `fuzz --replay` run: the case's own call (chunked or in-place decode) and its check.
        using var context = Context();
        SampledCasesPass(context, LinearCase.Sample, seed: 1313, count: 16);
    }

    /// <summary>
    /// Sampled cases with a homogeneous feature map (identity, relu, precomputed) at small magnitudes: small keys and
    /// values, large queries, so phi(q) . phi(k) keeps the magnitude-1 problem's value; mostly binary16.
    /// </summary>
    [SkippableFact]
    public void Linear_SmallInputs_MatchReference()
    {
        using var context = Context();
        SmallInputs.Check(context, LinearCase.Registration, count: 12);
    }

    // ---- Metamorphic properties (float32) ----

    private static readonly Gen<LinearTestCase> Causal32 =
        from c in Cases where c.Causal && c.Packed is null
        select c with { Type = ElementType.Float32 };

    private static double[] Output(AttentionContext context, LinearTestCase c, LinearData d)
    {
        d.Run(context);
        return d.Output.ToDoubleArray();
    }

    [SkippableFact]
    public void Linear_ChunkSize_DoesNotChangeTheResult()
    {
        using var context = Context();
        var cases = from c in Cases select c with { Length = Math.Max(c.Length, 130), Packed = c.Packed is null ? null : [c.Packed.Sum(), Math.Max(c.Length, 130) - c.Packed.Sum()] };
        Properties.Check(Arb.From(cases), c =>
        {
            var baseline = Output(context, c, LinearData.Create(c with { Chunk = 16 }));
            foreach (int chunk in new[] { 32, 64, 128, 37 })
            {
                var d = LinearData.Create(c with { Chunk = chunk });
                AssertNear(baseline, Output(context, c, d), c.Type == ElementType.Float32 ? 2e-5 : 2 * c.Type.UnitRoundoff(), $"{c} chunk {chunk} vs 16");
            }
        }, count: 8);
    }

    [SkippableFact]
    public void Linear_PrefillThenDecode_EqualsOneShot()
    {
        using var context = Context();
        Properties.Check(Arb.From(from c in Causal32 where c.Length >= 2 select c), c =>
        {
            var whole = LinearData.Create(c);
            whole.Run(context);
            var expected = whole.Output.ToDoubleArray();
            int prefix = c.Length / 2;
            var d = LinearData.Create(c);
            using var on = new OnContext(context);
            var (q, k, v, gate) = OnDevice(on, d);
            // The prefill: the first tokens, with the case's initial state, leaving the state to decode from.
            var state = TestTensors.Zeros(ElementType.Float32, [c.Batch, c.Heads, c.Features, c.Columns]);
            var stateOn = on.Put(state);
            LinearOptions For(int start, int n) => d.Options with { LogGate = gate is { } g ? Rows(g, start, n) : null };
            var actual = new double[expected.Length];
            Place(Call(on, TestTensors.Zeros(c.Type, [c.Batch, c.Heads, prefix, c.ValueDim]),
                o => context.LinearChunked(Rows(q, 0, prefix), Rows(k, 0, prefix), Rows(v, 0, prefix), o, For(0, prefix), d.Initial is { } s0 ? on.Put(s0) : null, stateOn)),
                actual, c, 0, prefix);
            for (int t = prefix; t < c.Length; t++)
                Place(Call(on, TestTensors.Zeros(c.Type, [c.Batch, c.Heads, 1, c.ValueDim]),
                    o => context.LinearDecodeStep(Rows(q, t, 1), Rows(k, t, 1), Rows(v, t, 1), o, stateOn, For(t, 1))), actual, c, t, 1);
            on.Back(stateOn, state);
            AssertNear(expected, actual, 2e-5, $"{c}: prefill + decode");
            AssertNear(whole.Final!.Value.ToDoubleArray(), state.ToDoubleArray(), 2e-5, $"{c}: final state");
        }, count: 10);
    }

    /// <summary>Q, K, V and the log gates (if any) of <paramref name="d"/> on the context (the host views themselves on the CPU).</summary>
    private static (TensorView Q, TensorView K, TensorView V, TensorView? Gate) OnDevice(OnContext on, LinearData d) =>
        (on.Put(d.Query), on.Put(d.Key), on.Put(d.Value), d.Options.LogGate is { } g ? on.Put(g) : null);

    /// <summary>Runs <paramref name="call"/> on the context's copy of the host output <paramref name="output"/> and returns what it wrote.</summary>
    private static double[] Call(OnContext on, TensorView output, Action<TensorView> call)
    {
        var placed = on.Put(output);
        Kernel(() => call(placed));
        on.Back(placed, output);
        return output.ToDoubleArray();
    }

    /// <summary>Copies <c>[B, H, n, Dv]</c> rows into tokens <c>[start, start + n)</c> of a <c>[B, H, N, Dv]</c> array.</summary>
    private static void Place(double[] rows, double[] into, LinearTestCase c, int start, int n) =>
        RecurrentTestSupport.Place(rows, into, c.Batch * c.Heads, c.Length, c.ValueDim, start, n);

    [SkippableFact]
    public void Linear_SplitWithCarriedState_EqualsWhole()
    {
        using var context = Context();
        Properties.Check(Arb.From(from c in Causal32 where c.Length >= 2 from cut in Gen.Choose(1, c.Length - 1) select (c, cut)), x =>
        {
            var (c, cut) = x;
            var whole = LinearData.Create(c);
            whole.Run(context);
            var d = LinearData.Create(c);
            using var on = new OnContext(context);
            var (q, k, v, gate) = OnDevice(on, d);
            LinearOptions For(int start, int n) => d.Options with { LogGate = gate is { } g ? Rows(g, start, n) : null };
            var middle = on.Put(TestTensors.Zeros(ElementType.Float32, [c.Batch, c.Heads, c.Features, c.Columns]));
            var end = TestTensors.Zeros(ElementType.Float32, [c.Batch, c.Heads, c.Features, c.Columns]);
            var endOn = on.Put(end);
            var actual = new double[whole.Output.ElementCount];
            Place(Call(on, TestTensors.Zeros(c.Type, [c.Batch, c.Heads, cut, c.ValueDim]),
                o => context.LinearChunked(Rows(q, 0, cut), Rows(k, 0, cut), Rows(v, 0, cut), o, For(0, cut), d.Initial is { } s0 ? on.Put(s0) : null, middle)),
                actual, c, 0, cut);
            int rest = c.Length - cut;
            Place(Call(on, TestTensors.Zeros(c.Type, [c.Batch, c.Heads, rest, c.ValueDim]),
                o => context.LinearChunked(Rows(q, cut, rest), Rows(k, cut, rest), Rows(v, cut, rest), o, For(cut, rest), middle, endOn)),
                actual, c, cut, rest);
            on.Back(endOn, end);
            AssertNear(whole.Output.ToDoubleArray(), actual, 2e-5, $"{c} split at {cut}");
            AssertNear(whole.Final!.Value.ToDoubleArray(), end.ToDoubleArray(), 2e-5, $"{c} split at {cut}: final state");
        }, count: 10);
    }

    [SkippableFact]
    public void Linear_VerifyThenCommit_EqualsDecodingTheAcceptedTokens()
    {
        using var context = Context();
        var cases = from c in Causal32
                    from k in Gen.Choose(1, LinearProblem.MaxVerifyTokens)
                    from accepted in Gen.Choose(0, k).ArrayOf(c.Batch)
                    select (c: c with { Length = k, InitialState = true }, accepted);
        Properties.Check(Arb.From(cases), x =>
        {
            var (c, accepted) = x;
            var d = LinearData.Create(c);
            using var on = new OnContext(context);
            var (q, k, v, gate) = OnDevice(on, d);
            LinearOptions For(int start, int n) => d.Options with { LogGate = gate is { } g ? Rows(g, start, n) : null };
            // Verify all k draft tokens from the state, keeping every intermediate state, then commit the accepted prefix.
            var state = TestTensors.Copy(d.Initial!.Value, ElementType.Float32);
            var stateOn = on.Put(state);
            var intermediate = on.Put(TestTensors.Zeros(ElementType.Float32, [c.Batch, c.Length, c.Heads, c.Features, c.Columns]));
            var verifyOut = Call(on, TestTensors.Zeros(c.Type, [c.Batch, c.Heads, c.Length, c.ValueDim]),
                o => context.LinearDecodeStep(q, k, v, o, stateOn, For(0, c.Length), intermediate));
            on.Back(stateOn, state);
            AssertNear(d.Initial.Value.ToDoubleArray(), state.ToDoubleArray(), 0, $"{c}: verify must not change the state");
            context.LinearCommit(intermediate, stateOn, accepted);
            on.Back(stateOn, state);
            // Plain decode of the same tokens, one at a time, from a copy of the state; element b stops after accepted[b].
            var decoded = on.Put(TestTensors.Copy(d.Initial.Value, ElementType.Float32));
            var expectedState = TestTensors.Copy(d.Initial.Value, ElementType.Float32);
            var expectedOn = on.Put(expectedState);
            var decodeOut = new double[verifyOut.Length];
            for (int t = 0; t < c.Length; t++)
            {
                Place(Call(on, TestTensors.Zeros(c.Type, [c.Batch, c.Heads, 1, c.ValueDim]),
                    o => context.LinearDecodeStep(Rows(q, t, 1), Rows(k, t, 1), Rows(v, t, 1), o, decoded, For(t, 1))), decodeOut, c, t, 1);
                for (int b = 0; b < c.Batch; b++)
                    if (accepted[b] == t + 1) context.Copy(decoded.Slice(0, b, 1), expectedOn.Slice(0, b, 1));
            }
            on.Back(expectedOn, expectedState);
            AssertNear(decodeOut, verifyOut, 1e-6, $"{c}: verify outputs vs decode");
            AssertNear(expectedState.ToDoubleArray(), state.ToDoubleArray(), 1e-6, $"{c} accepted [{string.Join(",", accepted)}]: committed state");
        }, count: 10);
    }

    [SkippableFact]
    public void Linear_UnitDecay_EqualsNoDecay()
    {
        using var context = Context();
        Properties.Check(Arb.From(from c in Causal32 select c with { Decay = DecayKind.None }), c =>
        {
            var none = Output(context, c, LinearData.Create(c));
            var d = LinearData.Create(c);
            var unit = new LinearData
            {
                Query = d.Query, Key = d.Key, Value = d.Value, Output = d.Output, Initial = d.Initial, Final = d.Final,
                Options = d.Options with { Decay = DecayKind.PerHead, HeadLogDecay = new float[c.Heads] },
            };
            AssertNear(none, Output(context, c, unit), 1e-6, $"{c}: gamma = 1");
        }, count: 8);
    }

    [SkippableFact]
    public void Linear_NonCausal_EqualsPhiQTimesPhiKTransposeV()
    {
        // Identity features, no normalisation: O = scale Q (K^T V), summed here in float64 from the stored inputs.
        using var context = Context();
        var cases = from c in Cases
                    select c with { Type = ElementType.Float32, Causal = false, Decay = DecayKind.None, InitialState = false, Map = FeatureMap.Identity, Normalize = false, Packed = null };
        Properties.Check(Arb.From(cases), c =>
        {
            var d = LinearData.Create(c);
            d.Run(context);
            var q = d.Query.ToDoubleArray();
            var k = d.Key.ToDoubleArray();
            var v = d.Value.ToDoubleArray();
            int n = c.Length, dk = c.KeyDim, dv = c.ValueDim, h = c.Heads;
            var expected = new double[(long)c.Batch * h * n * dv];
            for (int b = 0; b < c.Batch; b++)
            for (int head = 0; head < h; head++)
            {
                int qh = head / (h / c.QueryHeads), kh = head / (h / c.KeyHeads), vh = head / (h / c.ValueHeads);
                var kv = new double[dk, dv];
                for (int s = 0; s < n; s++)
                for (int i = 0; i < dk; i++)
                for (int e = 0; e < dv; e++)
                    kv[i, e] += k[((b * c.KeyHeads + kh) * n + s) * dk + i] * v[((b * c.ValueHeads + vh) * n + s) * dv + e];
                for (int t = 0; t < n; t++)
                for (int e = 0; e < dv; e++)
                {
                    double sum = 0;
                    for (int i = 0; i < dk; i++) sum += q[((b * c.QueryHeads + qh) * n + t) * dk + i] * kv[i, e];
                    expected[((b * h + head) * n + t) * dv + e] = c.Scale * sum;
                }
            }
            AssertNear(expected, d.Output.ToDoubleArray(), 1e-5, c.ToString());
        }, count: 8);
    }

    [SkippableFact]
    public void Linear_NormalisedConstantValues_ReturnTheValue()
    {
        // Positive features and eps = 0: every output is a weighted mean of v_s = 0.75 (and of the state's mean, 0.75 too).
        using var context = Context();
        var cases = from c in Causal32
                    from map in Gen.Elements(FeatureMap.EluPlusOne, FeatureMap.Taylor2)
                    select c with { Map = map, KeyDim = Math.Min(c.KeyDim, 8), Decay = c.Decay == DecayKind.PerTokenPerKey && map == FeatureMap.Taylor2 ? DecayKind.PerToken : c.Decay,
                                    Normalize = true, Epsilon = 0, InitialState = false };
        Properties.Check(Arb.From(cases), c =>
        {
            var d = LinearData.Create(c);
            d.Value.CopyFrom(Enumerable.Repeat(0.75, (int)d.Value.ElementCount).ToArray());
            d.Run(context);
            AssertNear(Enumerable.Repeat(0.75, (int)d.Output.ElementCount).ToArray(), d.Output.ToDoubleArray(), 1e-5, c.ToString());
        }, count: 8);
    }

    [SkippableTheory]
    [InlineData(DecayKind.PerHead)]
    [InlineData(DecayKind.PerToken)]
    [InlineData(DecayKind.PerTokenPerKey)]
    public void Linear_MillionTokensWithStrongDecay_StayFinite(DecayKind decay)
    {
        // N = 1,000,000, H = 1, D = 4; log g = -30 everywhere (a per-head decay as strong), normalised with eps = 0 too:
        // every cumulative product underflows many times over, yet no exponential may overflow or give NaN.
        using var context = Context();
        const int N = 1_000_000, D = 4;
        var random = new Random(5);
        var q = TestTensors.Uniform(ElementType.Float32, random, 1.0, [1, 1, N, D]);
        var k = TestTensors.Uniform(ElementType.Float32, random, 1.0, [1, 1, N, D]);
        var v = TestTensors.Uniform(ElementType.Float32, random, 1.0, [1, 1, N, D]);
        var gate = decay switch
        {
            DecayKind.PerToken => TestTensors.Of(ElementType.Float32, [1, 1, N], Enumerable.Repeat(-30.0, N).ToArray()),
            DecayKind.PerTokenPerKey => TestTensors.Of(ElementType.Float32, [1, 1, N, D], Enumerable.Repeat(-30.0, N * D).ToArray()),
            _ => (TensorView?)null,
        };
        foreach (bool normalize in new[] { false, true })
        {
            var options = new LinearOptions
            {
                Decay = decay, LogGate = gate, HeadLogDecay = decay == DecayKind.PerHead ? new[] { -30f } : ReadOnlyMemory<float>.Empty,
                FeatureMap = normalize ? FeatureMap.EluPlusOne : FeatureMap.Identity, Normalize = normalize, Epsilon = 0,
            };
            using var on = new OnContext(context);
            var final = TestTensors.Zeros(ElementType.Float32, [1, 1, D, D + (normalize ? 1 : 0)]);
            var finalOn = on.Put(final);
            var values = Call(on, TestTensors.Zeros(ElementType.Float32, [1, 1, N, D]),
                o => context.LinearChunked(on.Put(q), on.Put(k), on.Put(v), o, options with { LogGate = gate is { } g ? on.Put(g) : null }, null, finalOn));
            on.Back(finalOn, final);
            Assert.All(values, x => Assert.True(double.IsFinite(x), $"non-finite output {x}"));
            Assert.All(final.ToDoubleArray(), x => Assert.True(double.IsFinite(x), $"non-finite state {x}"));
            // With g ~ e^-30 each output is (almost exactly) the current token's own term.
            var last = Reference.LinearChunked(q.Slice(2, N - 1, 1), k.Slice(2, N - 1, 1), v.Slice(2, N - 1, 1), options with { LogGate = gate?.Slice(2, N - 1, 1) });
            AssertNear(last.Output, values[^D..], 1e-5, $"{decay} normalize={normalize}: last token");
        }
    }

    // ---- Bad input ----

    [SkippableFact]
    public void Linear_BadInput_IsNamed()
    {
        using var context = Context();
        var on = new OnContext(context);
        TensorView T(params int[] shape) => on.Put(TestTensors.Uniform(ElementType.Float32, 3, 1.0, shape));
        TensorView Z(params int[] shape) => on.Put(TestTensors.Zeros(ElementType.Float32, shape));
        var (q, k, v, o) = (T(1, 2, 4, 3), T(1, 2, 4, 3), T(1, 2, 4, 5), Z(1, 2, 4, 5));
        // A positive log gate (host tensors are checked), per token and per key.
        var positive = on.Put(TestTensors.Of(ElementType.Float32, [1, 2, 4], -1, -1, 0.5, -1, -1, -1, -1, -1));
        if (context.TensorLocation == MemoryLocation.Host)
        {
            Names("options.LogGate", () => context.LinearChunked(q, k, v, o, new LinearOptions { Decay = DecayKind.PerToken, LogGate = positive }));
            Names("options.LogGate", () => context.LinearDecodeStep(q.Slice(2, 0, 1), k.Slice(2, 0, 1), v.Slice(2, 0, 1), o.Slice(2, 0, 1), Z(1, 2, 3, 5),
                new LinearOptions { Decay = DecayKind.PerTokenPerKey, LogGate = on.Put(TestTensors.Of(ElementType.Float32, [1, 2, 1, 3], 0, 0, 1e-3, 0, 0, 0)) }));
            // Rows of 16 gates: a positive, -inf or NaN gate inside the span the vectorised scan reads is found too.
            var (q16, k16, v16, o16) = (T(1, 2, 16, 3), T(1, 2, 16, 3), T(1, 2, 16, 5), Z(1, 2, 16, 5));
            foreach (double bad in new[] { 0.25, double.NegativeInfinity, double.NaN })
            {
                var gates = Enumerable.Repeat(-0.5, 32).ToArray();
                gates[16 + 9] = bad;
                var gate = on.Put(TestTensors.Of(ElementType.Float32, [1, 2, 16], gates));
                Names("options.LogGate", () => context.LinearChunked(q16, k16, v16, o16, new LinearOptions { Decay = DecayKind.PerToken, LogGate = gate }));
            }
        }
        Names("options.LogGate", () => context.LinearChunked(q, k, v, o, new LinearOptions { Decay = DecayKind.PerTokenPerKey, LogGate = Z(1, 2, 4) }));
        Names("options.Decay", () => context.LinearChunked(q, k, v, o, new LinearOptions { Decay = DecayKind.PerTokenPerKey, FeatureMap = FeatureMap.Taylor2, LogGate = Z(1, 2, 4, 3) }));
        // Wrong state shapes: initial, final, decode state, intermediate states, and varlen states per sequence.
        Names("initialState", () => context.LinearChunked(q, k, v, o, null, Z(1, 2, 3, 6)));
        Names("finalState", () => context.LinearChunked(q, k, v, o, new LinearOptions { Normalize = true }, null, Z(1, 2, 3, 5)));
        Names("state", () => context.LinearDecodeStep(q.Slice(2, 0, 1), k.Slice(2, 0, 1), v.Slice(2, 0, 1), o.Slice(2, 0, 1), Z(1, 2, 5, 3)));
        Names("intermediateStates", () => context.LinearDecodeStep(q, k, v, o, Z(1, 2, 3, 5), null, Z(1, 3, 2, 3, 5)));
        Names("initialState", () => context.LinearChunked(q.Slice(0, 0, 1), k, v, o, new LinearOptions { CuSeqLens = new[] { 0, 1, 4 } }, Z(1, 2, 3, 5)));
        // Packing: offsets that decrease or do not end at N; decode steps take none.
        Names("options.CuSeqLens", () => context.LinearChunked(q, k, v, o, new LinearOptions { CuSeqLens = new[] { 0, 3, 2, 4 } }));
        Names("options.CuSeqLens", () => context.LinearChunked(q, k, v, o, new LinearOptions { CuSeqLens = new[] { 0, 3 } }));
        // Heads: a count that does not divide the largest; outputs with the wrong head count.
        Names("key", () => context.LinearChunked(T(1, 4, 4, 3), T(1, 3, 4, 3), T(1, 2, 4, 5), Z(1, 4, 4, 5)));
        Names("output", () => context.LinearChunked(T(1, 4, 4, 3), T(1, 2, 4, 3), T(1, 2, 4, 5), Z(1, 2, 4, 5)));
        // Verify: at most 8 draft tokens; commit counts within [0, T].
        var nine = (T(1, 2, 9, 3), T(1, 2, 9, 5));
        Names("query", () => context.LinearDecodeStep(nine.Item1, nine.Item1, nine.Item2, Z(1, 2, 9, 5), Z(1, 2, 3, 5), null, Z(1, 9, 2, 3, 5)));
        Names("accepted", () => context.LinearCommit(Z(1, 4, 2, 3, 5), Z(1, 2, 3, 5), [5]));
        Names("accepted", () => context.LinearCommit(Z(1, 4, 2, 3, 5), Z(1, 2, 3, 5), [1, 1]));
        Names("options.Causal", () => context.LinearDecodeStep(q, k, v, o, Z(1, 2, 3, 5), new LinearOptions { Causal = false }));
        Names("options.ChunkSize", () => context.LinearChunked(q, k, v, o, new LinearOptions { ChunkSize = -1 }));
        on.Dispose();
    }
}

[Trait("Backend", "Cpu")]
public sealed class CpuLinearTests : LinearTests
{
    protected override Backend Backend => Backend.Cpu;
}

[Trait("Backend", "OpenCl")]
public sealed class OpenClLinearTests : LinearTests
{
    protected override Backend Backend => Backend.OpenCl;
}

[Trait("Backend", "Cuda")]
public sealed class CudaLinearTests : LinearTests
{
    protected override Backend Backend => Backend.Cuda;
}
