// What the recurrent families' tests (chunked linear attention, the delta rule) share: tensors in either memory order,
// a context that skips when the backend has no kernel, the random-problem loop at every vector width, the sampled
// case check, and the comparisons and reassembly the metamorphic properties use.
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace NativeAttention.Tests;

/// <summary>Helpers of <see cref="LinearTests"/> and <see cref="DeltaRuleTests"/>.</summary>
internal static class RecurrentTestSupport
{
    /// <summary>Query, key and value head counts the random problems draw from (GQA and grouped value heads).</summary>
    public static readonly (int Q, int K, int V)[] HeadShapes = [(1, 1, 1), (2, 2, 2), (4, 2, 2), (4, 1, 1), (2, 2, 4), (1, 1, 3)];

    /// <summary>Runs a kernel call; a backend without the family's kernel skips the test with its message.</summary>
    public static void Kernel(Action call)
    {
        try
        {
            call();
        }
        catch (NotSupportedException e)
        {
            Skip.If(true, $"no kernel: {e.Message}");
        }
    }

    /// <summary>
    /// A tensor of logical shape <paramref name="shape"/> (<c>[B, H, N, ...]</c>), head-major or token-major
    /// (<c>[B, N, H, ...]</c> in memory), uniform in <c>[lo, hi]</c> (zeros without a random source).
    /// </summary>
    public static TensorView Tensor(ElementType type, bool tokenMajor, int[] shape, Random? random, double lo, double hi)
    {
        int[] order = tokenMajor ? [0, 2, 1, .. Enumerable.Range(3, shape.Length - 3)] : Enumerable.Range(0, shape.Length).ToArray();
        var storage = TestTensors.Zeros(type, order.Select(a => shape[a]).ToArray());
        var view = storage.Permute(order); // order is its own inverse
        if (random is not null)
        {
            var values = new double[view.ElementCount];
            for (long i = 0; i < values.Length; i++) values[i] = lo + (hi - lo) * random.NextDouble();
            view.CopyFrom(values);
        }
        return view;
    }

    /// <summary>Varlen offsets (<c>cu_seqlens</c>) of packed sequence lengths, or none for a plain batch.</summary>
    public static ReadOnlyMemory<int> Offsets(int[]? lengths) =>
        lengths is { } l ? l.Aggregate(new List<int> { 0 }, (list, n) => { list.Add(list[^1] + n); return list; }).ToArray() : ReadOnlyMemory<int>.Empty;

    /// <summary>
    /// The backend's context (on the CPU, with <paramref name="vectorBits"/>, one forced to that vector width), after
    /// <paramref name="probe"/>, a one-token call that skips the test when the backend has no kernel for the family yet.
    /// </summary>
    public static AttentionContext Context(Backend backend, int? vectorBits, Action<AttentionContext, OnContext> probe)
    {
        var context = vectorBits is int bits && backend == Backend.Cpu
            ? new Cpu.CpuContext(new ContextOptions { Threads = 2 }) { ForcedVectorBits = bits }
            : TestBackend.CreateOrSkip(backend, threads: 2);
        using var on = new OnContext(context);
        try
        {
            Kernel(() => probe(context, on));
        }
        catch (SkipException)
        {
            context.Dispose();
            throw;
        }
        return context;
    }

    /// <summary>The CPU vector widths this machine runs, scalar (0) first.</summary>
    public static IEnumerable<int> VectorWidths() => new[] { 0, 128, 256, 512 }.Where(b => b <= Cpu.CpuFeatures.VectorBits);

    /// <summary>
    /// <paramref name="count"/> random problems: each is <paramref name="run"/> on the context, then
    /// <paramref name="check"/>ed; at a forced vector width a failure names the width.
    /// </summary>
    public static void CheckCases<TCase, TData>(Gen<TCase> cases, int count, int? vectorBits, Func<TCase, TData> run, Action<TCase, TData> check)
    {
        Properties.Check(Arb.From(cases), c =>
        {
            var d = run(c);
            try
            {
                check(c, d);
            }
            catch (Exception e) when (vectorBits.HasValue)
            {
                throw new InvalidOperationException($"at {vectorBits}-bit vectors: {e.Message}", e);
            }
        }, count);
    }

    /// <summary>
    /// What <c>verify</c>, <c>fuzz --family</c> and <c>fuzz --replay</c> run: <paramref name="count"/> cases of the
    /// family's sampler from <paramref name="seed"/>, each through its own call (prefill or in-place decode) and check.
    /// </summary>
    public static void SampledCasesPass(AttentionContext context, Func<Random, IAttentionCase> sample, int seed, int count)
    {
        var random = new Random(seed);
        for (int i = 0; i < count; i++)
        {
            var c = sample(random);
            var tensors = c.CreateTensors();
            CaseRunner.Run(context, c, tensors);
            var check = c.Check(tensors);
            Assert.True(check.Passed, $"{c.ToSpec()}: {check.Detail}");
        }
    }

    /// <summary>Every element within <c>relative * (1 + max |expected|)</c>.</summary>
    public static void AssertNear(double[] expected, double[] actual, double relative, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Select(Math.Abs).DefaultIfEmpty(0).Max();
        for (int i = 0; i < expected.Length; i++)
            if (!(Math.Abs(expected[i] - actual[i]) <= relative * (1 + scale)))
                Assert.Fail($"{what}: element {i} is {actual[i]}, expected {expected[i]}");
    }

    /// <summary>The rows <c>[start, start + length)</c> of axis 2 of a <c>[B, H, N, ...]</c> tensor, as a tensor of their own.</summary>
    public static TensorView Rows(TensorView view, int start, int length) => view.Slice(2, start, length);

    /// <summary>
    /// Copies <c>[B, H, n, Dv]</c> rows (<paramref name="batchHeads"/> = B H) into tokens <c>[start, start + n)</c> of a
    /// <c>[B, H, N, Dv]</c> array of <paramref name="length"/> = N tokens.
    /// </summary>
    public static void Place(double[] rows, double[] into, int batchHeads, int length, int valueDim, int start, int n)
    {
        for (int bh = 0; bh < batchHeads; bh++)
            Array.Copy(rows, (long)bh * n * valueDim, into, ((long)bh * length + start) * valueDim, (long)n * valueDim);
    }

    /// <summary>The call throws an <see cref="ArgumentException"/> whose parameter is <paramref name="name"/>.</summary>
    public static ArgumentException Names(string name, Action call)
    {
        var e = Assert.ThrowsAny<ArgumentException>(call);
        Assert.Equal(name, e.ParamName);
        return e;
    }
}
