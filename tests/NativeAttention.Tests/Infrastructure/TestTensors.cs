// The tests' one way to make host tensors: random (uniform, seeded), zero, or from literal values, in any storage
// type. Every family test and the reference tests' helpers draw their inputs through here.
namespace NativeAttention.Tests;

/// <summary>Host tensors for tests: seeded uniform values, zeros, or literals, stored as float, Half or BFloat16.</summary>
public static class TestTensors
{
    /// <summary>
    /// A contiguous tensor of <paramref name="type"/> holding values uniform in <c>[-range, range]</c> drawn from
    /// <paramref name="random"/> in row-major order (zeros when <paramref name="random"/> is null), each rounded once
    /// to the storage type.
    /// </summary>
    public static TensorView Uniform(ElementType type, Random? random, double range, int[] shape)
    {
        var view = Zeros(type, shape);
        if (random is not null) view.CopyFrom(Values(random, view.ElementCount, range));
        return view;
    }

    /// <summary><see cref="Uniform(ElementType, Random?, double, int[])"/> with range 1.</summary>
    public static TensorView Uniform(ElementType type, Random? random, params int[] shape) => Uniform(type, random, 1.0, shape);

    /// <summary><see cref="Uniform(ElementType, Random?, double, int[])"/> from a fresh generator seeded with <paramref name="seed"/>.</summary>
    public static TensorView Uniform(ElementType type, int seed, double range, int[] shape) => Uniform(type, new Random(seed), range, shape);

    /// <summary>A contiguous tensor of zeros.</summary>
    public static TensorView Zeros(ElementType type, params int[] shape) => NativeAttention.Gpu.TensorCopy.AllocateHost(type, shape);

    /// <summary>A contiguous tensor holding <paramref name="values"/> in row-major order, rounded to <paramref name="type"/>.</summary>
    public static TensorView Of(ElementType type, int[] shape, params double[] values)
    {
        var view = Zeros(type, shape);
        view.CopyFrom(values);
        return view;
    }

    /// <summary><paramref name="count"/> values uniform in <c>[-range, range]</c>: <c>(2 u - 1) range</c> for u from <paramref name="random"/>.</summary>
    public static double[] Values(Random random, long count, double range = 1.0)
    {
        ArgumentNullException.ThrowIfNull(random);
        var values = new double[count];
        for (long i = 0; i < count; i++) values[i] = (random.NextDouble() * 2 - 1) * range;
        return values;
    }

    /// <summary>A contiguous copy of <paramref name="view"/> in <paramref name="type"/> (values rounded once).</summary>
    public static TensorView Copy(TensorView view, ElementType type)
    {
        var copy = Zeros(type, view.Shape.ToArray());
        copy.CopyFrom(view.ToDoubleArray());
        return copy;
    }
}
