// Every family on ILGPU CPU accelerator buffers: the same call on managed arrays gives the same bits.
using ILGPU;
using Xunit;
using ILGPU.Runtime;
using NativeAttention.Ilgpu;

namespace NativeAttention.Ilgpu.Tests.Interop;

/// <summary>
/// Runs cases of every family twice on the CPU backend with the same thread count: once on the case's managed arrays,
/// once on copies in ILGPU buffers of the CPU accelerator viewed through <see cref="IlgpuAttention"/> (same shapes,
/// strides and offsets, each storage a few elements into its buffer). Every tensor, inputs included (in-place cache
/// appends and states are written), must hold the same bytes afterwards: the views address exactly the elements the
/// managed views do.
/// </summary>
public sealed class IlgpuRoundTripTests(IlgpuCpuAccelerator ilgpu) : IClassFixture<IlgpuCpuAccelerator>
{
    private const int Threads = 2;

    public static TheoryData<string> Specs =>
    [
        // Flash: layouts, GQA, masks, option tensors, fp16/bf16, and a decode-shaped call (the split-KV decode kernel).
        "flash f32 B2 H4/2 N48x80 D64/96 bnhd causal seed=11",
        "flash f16 B1 H4/2 N33x65 D32 causal alibi bias sinks seed=12",
        "flash bf16 B1 H2 N40x40 D32 window(8,4) softcap=30 lowrank2 seed=13",
        "flash f32 B1 H4/1 N1x257 D128/128 seed=5",
        // FlashKvCache: paged with an append (the caches are written), and ragged lengths with option tensors.
        "flash f32 B2 H4/2 N4x96 D32/32 kvcache page=16 new=4 ragged causal seed=30",
        "flash f16 B3 H8/2 N1x150 D64/64 kvcache cache=200 ragged alibi sinks seed=29",
        // Split-KV flash then MergeStates, and MergeStates alone.
        "flash bf16 B1 H2/2 N16x96 D80/80 split=3 seed=35",
        "merge f16 S2 B2 H4 N33 D128 out=bf16 seed=42",
        "merge f32 S3 B1 H2 N17 D64 seed=41",
        // Neighborhood: 1-D, 2-D with extra tokens and causal axes, 3-D, a bias and padding.
        "neighborhood f32 B1 H2/1 grid=33 k=7 D32/32 seed=51",
        "neighborhood f16 B2 H2/2 grid=12x10 k=5x3 D16/16 dil=2x1 stride=1x3 causal=0x1 extra=4 seed=52",
        "neighborhood bf16 B1 H4/2 grid=6x5x4 k=3 D16/24 causal seed=53",
        "neighborhood f32 B2 H4/2 grid=11x9 k=5x3 D16/16 dil=1x2 rpb valid=7x8 extra=2 seed=54",
        // Block-sparse: FlexAttention-style masks, block CSR, BSR, document predicates.
        "blocksparse f32 B1 H2/1 N70x90 D32/32 block=16x32 density=0.6 full=0.5 causal seed=61",
        "blocksparse f16 B2 H2/1 N64x80 D64/64 block=16x32 density=0.6 full=0.3 docs=3 seed=73",
        "blocksparse f32 B1 H4/2 N1x300 D32 block=16x64 density=0.5 full=0.5 bsr seed=65",
        "blocksparse bf16 B1 H4/2 N40x56 D16/16 block=16 density=0.5 full=0 csr docs=3 mask=group seed=63",
        // Chunked linear attention: feature maps, decays, states (read and written), token-major memory, packing.
        "linear f32 B1 H2 N70 D16/24 phi=elu normalize seed=71",
        "linear f16 B2 H2 N33 D8/8 phi=taylor decay=token state chunk=16 seed=72",
        "linear f32 B1 H4 hq=2 hk=2 N90 D16/16 decay=key tokenmajor state seed=75",
        "linear f32 B1 H2 N100 D8/8 decay=token packed=3 state seed=76",
        // The delta rule: chunked (gated, KDA, packed, V-major states) and a decode step (the state written in place).
        "delta f32 B1 H4 hq=2 hk=2 N90 D16/16 variant=gated tokenmajor state vmajor seed=84",
        "delta f16 B2 H2 N33 D8/8 variant=gated state chunk=16 seed=82",
        "delta f32 B1 H2 N100 D8/8 variant=kda packed=3 state seed=85",
        "delta f32 B2 H2 N1 D16/16 variant=gated l2norm decode seed=86",
    ];

    [Theory]
    [MemberData(nameof(Specs))]
    public void CaseOnIlgpuBuffersEqualsTheCaseOnManagedArrays(string spec)
    {
        var @case = AttentionCaseSpec.Parse(spec);
        var expected = @case.CreateTensors();
        using (var managed = AttentionContext.Create(Backend.Cpu, new ContextOptions { Threads = Threads }))
            @case.Invoke(managed, expected);

        using var attention = IlgpuAttention.Create(ilgpu.Accelerator, options: new ContextOptions { Threads = Threads });
        Assert.Equal(Backend.Cpu, attention.Context.Backend);
        var host = @case.CreateTensors();
        using var placement = new IlgpuPlacement(attention, host);
        foreach (var t in placement.Placed.All) Assert.Equal(MemoryLocation.Host, t.View.Location);
        @case.Invoke(attention.Context, placement.Placed);

        var compared = new HashSet<TensorStorage>(ReferenceEqualityComparer.Instance);
        foreach (var t in host.All)
        {
            if (!compared.Add(t.View.Storage!)) continue;
            var want = HostBytes.Of(expected[t.Name].Storage!);
            var got = placement.Bytes(t.View.Storage!);
            Assert.True(want.AsSpan().SequenceEqual(got), $"{spec}: tensor '{t.Name}' ({t.Role}) differs from the managed run.");
        }
    }

    [Fact]
    public void FlashVarlenReadsSequenceOffsetsFromIlgpuIndexBuffers()
    {
        int[] cuQ = [0, 5, 12, 13], cuK = [0, 7, 20, 41];
        const int hq = 4, hkv = 2, d = 16;
        var q = Random(cuQ[^1] * hq * d, 1);
        var k = Random(cuK[^1] * hkv * d, 2);
        var v = Random(cuK[^1] * hkv * d, 3);
        var options = new FlashOptions { Causal = true };

        var expectedOutput = new float[cuQ[^1] * hq * d];
        var expectedLse = new float[hq * cuQ[^1]];
        using (var managed = AttentionContext.Create(Backend.Cpu, new ContextOptions { Threads = Threads }))
            managed.FlashVarlen(TensorView.FromMemory<float>(q, cuQ[^1], hq, d), TensorView.FromMemory<float>(k, cuK[^1], hkv, d),
                TensorView.FromMemory<float>(v, cuK[^1], hkv, d), TensorView.FromMemory<float>(expectedOutput, cuQ[^1], hq, d),
                new VarlenLayout(cuQ, cuK), options, TensorView.FromMemory<float>(expectedLse, hq, cuQ[^1]));

        using var attention = IlgpuAttention.Create(ilgpu.Accelerator, options: new ContextOptions { Threads = Threads });
        var acc = ilgpu.Accelerator;
        using var qb = acc.Allocate1D(q);
        using var kb = acc.Allocate1D(k);
        using var vb = acc.Allocate1D(v);
        using var ob = acc.Allocate1D<float>(expectedOutput.Length);
        using var lb = acc.Allocate1D<float>(expectedLse.Length);
        // Both offset arrays in one int buffer, the second at an offset: Indices must honour the view's index.
        using var offsets = acc.Allocate1D([.. cuQ, .. cuK]);
        var layout = new VarlenLayout(attention.Indices(offsets.View.SubView(0, cuQ.Length)), attention.Indices(offsets.View.SubView(cuQ.Length, cuK.Length)));
        Assert.Equal(cuK, layout.CuSeqLensK.ToArray());

        attention.Context.FlashVarlen(attention.View<float>(qb.View, cuQ[^1], hq, d), attention.View<float>(kb.View, cuK[^1], hkv, d),
            attention.View<float>(vb.View, cuK[^1], hkv, d), attention.View<float>(ob.View, cuQ[^1], hq, d), layout, options,
            attention.View<float>(lb.View, hq, cuQ[^1]));

        Assert.Equal(expectedOutput, ob.GetAsArray1D());
        Assert.Equal(expectedLse, lb.GetAsArray1D());
    }

    [Fact]
    public void FlashKvCacheReadsCacheLengthsAndBlockTableFromIlgpuIndexBuffers()
    {
        const int b = 2, hq = 4, hkv = 2, page = 8, blocks = 6, d = 16;
        int[] lengths = [13, 21], table = [5, 0, 3, 1, 4, 2];
        var q = Random(b * hq * 1 * d, 4);
        var kc = Random(blocks * hkv * page * d, 5);
        var vc = Random(blocks * hkv * page * d, 6);

        var expected = new float[b * hq * d];
        using (var managed = AttentionContext.Create(Backend.Cpu, new ContextOptions { Threads = Threads }))
            managed.FlashKvCache(TensorView.FromMemory<float>(q, b, hq, 1, d), TensorView.FromMemory<float>(kc, blocks, hkv, page, d),
                TensorView.FromMemory<float>(vc, blocks, hkv, page, d), TensorView.FromMemory<float>(expected, b, hq, 1, d),
                new KvCacheOptions { CacheSeqLens = lengths, BlockTable = table, PageSize = page });

        using var attention = IlgpuAttention.Create(ilgpu.Accelerator, options: new ContextOptions { Threads = Threads });
        var acc = ilgpu.Accelerator;
        using var qb = acc.Allocate1D(q);
        using var kb = acc.Allocate1D(kc);
        using var vb = acc.Allocate1D(vc);
        using var ob = acc.Allocate1D<float>(expected.Length);
        using var lengthBuffer = acc.Allocate1D(lengths);
        using var tableBuffer = acc.Allocate1D(table);
        attention.Context.FlashKvCache(attention.View<float>(qb.View, b, hq, 1, d), attention.View<float>(kb.View, blocks, hkv, page, d),
            attention.View<float>(vb.View, blocks, hkv, page, d), attention.View<float>(ob.View, b, hq, 1, d),
            new KvCacheOptions { CacheSeqLens = attention.Indices(lengthBuffer.View), BlockTable = attention.Indices(tableBuffer.View), PageSize = page });

        Assert.Equal(expected, ob.GetAsArray1D());
    }

    [Fact]
    public void LinearDecodeStepUpdatesAStateInAnIlgpuBuffer()
    {
        const int b = 2, h = 2, t = 1, dk = 8, dv = 12;
        var q = Random(b * h * t * dk, 7);
        var k = Random(b * h * t * dk, 8);
        var v = Random(b * h * t * dv, 9);
        var state = Random(b * h * dk * dv, 10);
        var options = new LinearOptions { FeatureMap = FeatureMap.EluPlusOne };

        var expectedOutput = new float[b * h * t * dv];
        var expectedState = (float[])state.Clone();
        using (var managed = AttentionContext.Create(Backend.Cpu, new ContextOptions { Threads = Threads }))
            managed.LinearDecodeStep(TensorView.FromMemory<float>(q, b, h, t, dk), TensorView.FromMemory<float>(k, b, h, t, dk),
                TensorView.FromMemory<float>(v, b, h, t, dv), TensorView.FromMemory<float>(expectedOutput, b, h, t, dv),
                TensorView.FromMemory<float>(expectedState, b, h, dk, dv), options);

        using var attention = IlgpuAttention.Create(ilgpu.Accelerator, options: new ContextOptions { Threads = Threads });
        var acc = ilgpu.Accelerator;
        using var qb = acc.Allocate1D(q);
        using var kb = acc.Allocate1D(k);
        using var vb = acc.Allocate1D(v);
        using var ob = acc.Allocate1D<float>(expectedOutput.Length);
        using var sb = acc.Allocate1D(state);
        attention.Context.LinearDecodeStep(attention.View<float>(qb.View, b, h, t, dk), attention.View<float>(kb.View, b, h, t, dk),
            attention.View<float>(vb.View, b, h, t, dv), attention.View<float>(ob.View, b, h, t, dv), attention.View<float>(sb.View, b, h, dk, dv), options);

        Assert.Equal(expectedOutput, ob.GetAsArray1D());
        Assert.Equal(expectedState, sb.GetAsArray1D());
    }

    [Fact]
    public void LinearVerifyThenCommitRunsOnIlgpuStatesWithAcceptedCountsFromAnIlgpuBuffer()
    {
        const int b = 2, h = 2, t = 3, dk = 8, dv = 8;
        var q = Random(b * h * t * dk, 11);
        var k = Random(b * h * t * dk, 12);
        var v = Random(b * h * t * dv, 13);
        var state = Random(b * h * dk * dv, 14);
        int[] accepted = [2, 0];

        var expectedOutput = new float[b * h * t * dv];
        var expectedState = (float[])state.Clone();
        var expectedIntermediate = new float[b * t * h * dk * dv];
        using (var managed = AttentionContext.Create(Backend.Cpu, new ContextOptions { Threads = Threads }))
        {
            var intermediate = TensorView.FromMemory<float>(expectedIntermediate, b, t, h, dk, dv);
            var s = TensorView.FromMemory<float>(expectedState, b, h, dk, dv);
            managed.LinearDecodeStep(TensorView.FromMemory<float>(q, b, h, t, dk), TensorView.FromMemory<float>(k, b, h, t, dk),
                TensorView.FromMemory<float>(v, b, h, t, dv), TensorView.FromMemory<float>(expectedOutput, b, h, t, dv), s, intermediateStates: intermediate);
            managed.LinearCommit(intermediate, s, accepted);
        }

        using var attention = IlgpuAttention.Create(ilgpu.Accelerator, options: new ContextOptions { Threads = Threads });
        var acc = ilgpu.Accelerator;
        using var qb = acc.Allocate1D(q);
        using var kb = acc.Allocate1D(k);
        using var vb = acc.Allocate1D(v);
        using var ob = acc.Allocate1D<float>(expectedOutput.Length);
        using var sb = acc.Allocate1D(state);
        using var ib = acc.Allocate1D<float>(expectedIntermediate.Length);
        using var acceptedBuffer = acc.Allocate1D(accepted);
        var ti = attention.View(ib, b, t, h, dk, dv);
        var ts = attention.View(sb, b, h, dk, dv);
        attention.Context.LinearDecodeStep(attention.View(qb, b, h, t, dk), attention.View(kb, b, h, t, dk), attention.View(vb, b, h, t, dv),
            attention.View(ob, b, h, t, dv), ts, intermediateStates: ti);
        attention.Context.LinearCommit(ti, ts, attention.Indices(acceptedBuffer.View).Span);

        Assert.Equal(expectedOutput, ob.GetAsArray1D());
        Assert.Equal(expectedIntermediate, ib.GetAsArray1D());
        Assert.Equal(expectedState, sb.GetAsArray1D());
        Assert.NotEqual(state, expectedState);
    }

    [Fact]
    public void SystemHalfAndIlgpuHalfViewsAreTheSameTensor()
    {
        const int n = 24;
        var values = Enumerable.Range(0, n).Select(i => (System.Half)(i * 0.25f - 2)).ToArray();
        using var attention = IlgpuAttention.Create(ilgpu.Accelerator);
        using var buffer = ilgpu.Accelerator.Allocate1D(values);
        var system = attention.View<System.Half>(buffer.View, 2, 3, 4);
        var ilgpuHalf = attention.View(buffer.View.BaseView.Cast<ILGPU.Half>(), 2, 3, 4);
        Assert.Equal(ElementType.Float16, system.ElementType);
        Assert.Equal(ElementType.Float16, ilgpuHalf.ElementType);
        Assert.Equal(values.Select(x => (double)x), system.ToDoubleArray());
        Assert.Equal(system.ToDoubleArray(), ilgpuHalf.ToDoubleArray());
    }

    private static float[] Random(int length, int seed)
    {
        var random = new Random(seed);
        var values = new float[length];
        for (int i = 0; i < length; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        return values;
    }
}
