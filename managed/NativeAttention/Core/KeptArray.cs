// Arrays a per-thread problem or plan keeps between calls and refills, so that a steady stream of calls with the same
// shapes allocates nothing.
namespace NativeAttention;

internal static class KeptArray
{
    /// <summary>
    /// <paramref name="values"/> copied into <paramref name="array"/>, or into a new array when the lengths differ; returns
    /// the array that holds them (keep it for the next call).
    /// </summary>
    public static T[] Refill<T>(T[] array, ReadOnlySpan<T> values)
    {
        if (array.Length != values.Length) array = new T[values.Length];
        values.CopyTo(array);
        return array;
    }
}
