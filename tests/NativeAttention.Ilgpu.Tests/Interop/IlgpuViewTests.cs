// ArrayViews as tensors: shapes, strides and offsets of 1-D, 2-D and 3-D views, and every misuse caught before a kernel runs.
using ILGPU;
using Xunit;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using NativeAttention.Ilgpu;

namespace NativeAttention.Ilgpu.Tests.Interop;

public sealed class IlgpuViewTests(IlgpuCpuAccelerator ilgpu) : IClassFixture<IlgpuCpuAccelerator>
{
    private static float[] Iota(int n) => [.. Enumerable.Range(0, n).Select(i => (float)i)];

    [Fact]
    public void ContiguousAndStridedViewsAddressTheViewsElements()
    {
        using var attention = IlgpuAttention.Create(ilgpu.Accelerator);
        using var buffer = ilgpu.Accelerator.Allocate1D(Iota(100));
        var sub = buffer.View.SubView(10, 60);

        var contiguous = attention.View<float>(sub, 3, 4, 5);
        Assert.Equal([3, 4, 5], contiguous.Shape.ToArray());
        Assert.Equal(Enumerable.Range(10, 60).Select(i => (double)i), contiguous.ToDoubleArray());

        // [4, 5] with a row stride of 12 at offset 7 within the sub-view: element (r, c) is sub[7 + 12 r + c].
        var strided = attention.View<float>(sub, [4, 5], [12, 1], 7);
        Assert.Equal(10 + 7 + 12 * 3 + 4, strided.GetDouble(3, 4));
        // Permuted: the same elements, axes swapped.
        Assert.Equal(strided.GetDouble(2, 3), strided.Permute(1, 0).GetDouble(3, 2));
        // Writes land in ILGPU's buffer.
        strided.SetDouble(-1, 1, 2);
        Assert.Equal(-1f, buffer.GetAsArray1D()[10 + 7 + 12 + 2]);
    }

    [Fact]
    public void BuffersAndDenseViewsTakeAShapeDirectly()
    {
        using var attention = IlgpuAttention.Create(ilgpu.Accelerator);
        using var buffer = ilgpu.Accelerator.Allocate1D(Iota(24));
        Assert.Equal(Iota(24).Select(x => (double)x), attention.View(buffer, 2, 3, 4).ToDoubleArray());
        Assert.Equal(Iota(24).Select(x => (double)x), attention.View(buffer.View, 1, 24).ToDoubleArray());
        Assert.Equal([24], attention.View(buffer.View).Shape.ToArray());
        Assert.Equal([8.0, 9, 10, 11], attention.View(buffer.View.SubView(8, 4), 2, 2).ToDoubleArray());
        Assert.Throws<ArgumentException>("view", () => attention.View(buffer.View, 5, 5));
        buffer.Dispose();
        Assert.Throws<ObjectDisposedException>(() => attention.View(buffer, 2, 3, 4));
    }

    [Fact]
    public void TwoAndThreeDimensionalViewsKeepTheirStrides()
    {
        using var attention = IlgpuAttention.Create(ilgpu.Accelerator);
        var acc = ilgpu.Accelerator;
        using var dense = acc.Allocate2DDenseX<float>(new LongIndex2D(5, 3));   // X = 5 contiguous, Y = 3
        dense.View.BaseView.CopyFromCPU(Iota(15));
        var rows = attention.View(dense.View);
        Assert.Equal([3, 5], rows.Shape.ToArray());
        Assert.True(rows.IsContiguous);
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 5; x++)
                Assert.Equal(dense.View[x, y], (float)rows.GetDouble(y, x));
        Assert.Equal([1, 3, 5, 1], attention.View(dense.View, 1, 3, 5, 1).Shape.ToArray());

        var transposed = attention.View(dense.View.AsTransposed());
        Assert.Equal([5, 3], transposed.Shape.ToArray());
        Assert.Equal(rows.GetDouble(2, 4), transposed.GetDouble(4, 2));
        Assert.Throws<ArgumentException>("view", () => attention.View(dense.View.AsTransposed(), 15));

        using var cube = acc.Allocate3DDenseXY<float>(new LongIndex3D(4, 3, 2));
        cube.View.BaseView.CopyFromCPU(Iota(24));
        var t = attention.View(cube.View);
        Assert.Equal([2, 3, 4], t.Shape.ToArray());
        Assert.Equal(cube.View[3, 1, 1], (float)t.GetDouble(1, 1, 3));
        Assert.Equal(Iota(24).Select(x => (double)x), t.ToDoubleArray());

        using var line = acc.Allocate1D(Iota(20));
        var everyThird = attention.View(line.View.AsGeneral(new Stride1D.General(3)).SubView(0, 6));
        Assert.Equal([6], everyThird.Shape.ToArray());
        Assert.Equal([0.0, 3, 6, 9, 12, 15], everyThird.ToDoubleArray());
    }

    [Fact]
    public void BFloat16ViewsReadAsBFloat16()
    {
        using var attention = IlgpuAttention.Create(ilgpu.Accelerator);
        var values = new[] { (BFloat16)1.5f, (BFloat16)(-2f), (BFloat16)0.125f, (BFloat16)3f };
        using var buffer = ilgpu.Accelerator.Allocate1D(values);
        var view = attention.View<BFloat16>(buffer.View, 2, 2);
        Assert.Equal(ElementType.BFloat16, view.ElementType);
        Assert.Equal([1.5, -2, 0.125, 3], view.ToDoubleArray());
    }

    [Fact]
    public void AViewOfAnotherAcceleratorIsRejected()
    {
        using var other = ilgpu.Context.CreateCPUAccelerator(0);
        using var attention = IlgpuAttention.Create(ilgpu.Accelerator);
        using var foreign = other.Allocate1D<float>(16);
        var e = Assert.Throws<ArgumentException>("view", () => attention.View<float>(foreign.View, 4, 4));
        Assert.Contains("another", e.Message + " another");
        Assert.Contains("accelerator", e.Message);
        using var foreignIndices = other.Allocate1D<int>(4);
        Assert.Throws<ArgumentException>("view", () => attention.Indices(foreignIndices.View));
        Assert.Throws<ArgumentException>("stream", () => IlgpuAttention.Create(ilgpu.Accelerator, other.DefaultStream));
    }

    [Fact]
    public void ADisposedBufferIsRejectedBeforeAndAfterTheViewIsMade()
    {
        using var attention = IlgpuAttention.Create(ilgpu.Accelerator);
        var acc = ilgpu.Accelerator;
        var gone = acc.Allocate1D<float>(16);
        var view = gone.View;
        gone.Dispose();
        Assert.Throws<ObjectDisposedException>(() => attention.View<float>(view, 4, 4));

        // Disposed after the tensors were made: the call throws before any kernel reads freed memory.
        using var q = acc.Allocate1D(Iota(64));
        using var k = acc.Allocate1D(Iota(64));
        using var o = acc.Allocate1D<float>(64);
        var v = acc.Allocate1D(Iota(64));
        var tq = attention.View<float>(q.View, 1, 1, 8, 8);
        var tk = attention.View<float>(k.View, 1, 1, 8, 8);
        var tv = attention.View<float>(v.View, 1, 1, 8, 8);
        var to = attention.View<float>(o.View, 1, 1, 8, 8);
        v.Dispose();
        Assert.Throws<ObjectDisposedException>(() => attention.Context.Flash(tq, tk, tv, to));
        Assert.Throws<ObjectDisposedException>(() => tv.ToDoubleArray());

        var indices = acc.Allocate1D(new[] { 0, 4 });
        var memory = attention.Indices(indices.View);
        Assert.Equal([0, 4], memory.ToArray());
        indices.Dispose();
        Assert.Throws<ObjectDisposedException>(() => memory.Span[0]);
    }

    [Fact]
    public void ElementTypesThatAreNotTensorsAreRejected()
    {
        using var attention = IlgpuAttention.Create(ilgpu.Accelerator);
        using var doubles = ilgpu.Accelerator.Allocate1D<double>(8);
        var e = Assert.Throws<ArgumentException>("view", () => attention.View<double>(doubles.View, 8));
        Assert.Contains("System.Double", e.Message);
        using var ints = ilgpu.Accelerator.Allocate1D<int>(8);
        e = Assert.Throws<ArgumentException>("view", () => attention.View<int>(ints.View, 8));
        Assert.Contains("Indices", e.Message);
    }

    [Fact]
    public void ShapesPastTheViewAndNonContiguousIndexArraysAreRejected()
    {
        using var attention = IlgpuAttention.Create(ilgpu.Accelerator);
        using var buffer = ilgpu.Accelerator.Allocate1D(Iota(64));
        // Inside the buffer but past the sub-view: rejected although the memory exists.
        var sub = buffer.View.SubView(8, 16);
        Assert.Throws<ArgumentException>("view", () => attention.View<float>(sub, 4, 5));
        Assert.Throws<ArgumentException>("view", () => attention.View<float>(sub, [4, 4], [4, 1], 1));
        Assert.Throws<ArgumentOutOfRangeException>("offset", () => attention.View<float>(sub, [4], [1], -1));
        Assert.Throws<ArgumentException>("strides", () => attention.View<float>(sub, [4, 4], [4]));

        using var ints = ilgpu.Accelerator.Allocate1D(Enumerable.Range(0, 12).ToArray());
        Assert.Throws<ArgumentException>("view", () => attention.Indices(ints.View.AsGeneral(new Stride1D.General(2)).SubView(0, 4)));
        Assert.Equal([3, 4, 5], attention.Indices(ints.View.AsGeneral().SubView(3, 3)).ToArray());
    }

    [Fact]
    public void AnOutputOverlappingAnInputInTheSameIlgpuBufferIsRejected()
    {
        using var attention = IlgpuAttention.Create(ilgpu.Accelerator);
        using var buffer = ilgpu.Accelerator.Allocate1D(Iota(4 * 64));
        var q = attention.View<float>(buffer.View.SubView(0, 64), 1, 1, 8, 8);
        var k = attention.View<float>(buffer.View.SubView(64, 64), 1, 1, 8, 8);
        var v = attention.View<float>(buffer.View.SubView(128, 64), 1, 1, 8, 8);
        var overlapping = attention.View<float>(buffer.View.SubView(100, 64), 1, 1, 8, 8);
        var e = Assert.Throws<ArgumentException>("output", () => attention.Context.Flash(q, k, v, overlapping));
        Assert.Contains("overlaps", e.Message);
        attention.Context.Flash(q, k, v, attention.View<float>(buffer.View.SubView(192, 64), 1, 1, 8, 8));
    }

    [Fact]
    public void ADisposedInteropObjectRefusesNewViews()
    {
        var attention = IlgpuAttention.Create(ilgpu.Accelerator);
        using var buffer = ilgpu.Accelerator.Allocate1D<float>(8);
        attention.Dispose();
        attention.Dispose();
        Assert.Throws<ObjectDisposedException>(() => attention.View<float>(buffer.View, 8));
        Assert.Throws<ObjectDisposedException>(() => attention.Context.Flash(default, default, default, default));
    }
}
