// Shape and stride arrays a per-thread problem keeps for the flash-call views it derives from a caller's tensors (one
// sequence of a varlen batch, one element of a KV cache, a whole-grid neighborhood flattened), so that deriving them
// allocates nothing once warm.
namespace NativeAttention;

/// <summary>
/// One shape and one stride array per view slot of a flash call: Q, K, V, O (rank 4) and the log-sum-exp (rank 3).
/// A slot's arrays are refilled for each view and adopted by it (<see cref="TensorView"/>'s adopting constructor), so a
/// view is valid until its slot's next one: a caller uses one call's views before deriving the next call's.
/// </summary>
internal sealed class FlashViewSlots
{
    public const int Query = 0, Key = 1, Value = 2, Output = 3, LogSumExp = 4;

    private readonly int[][] _shapes = [new int[4], new int[4], new int[4], new int[4], new int[3]];
    private readonly long[][] _strides = [new long[4], new long[4], new long[4], new long[4], new long[3]];

    /// <summary>Slot <paramref name="slot"/>'s shape and stride arrays, to fill before adopting them in a view.</summary>
    public (int[] Shape, long[] Strides) this[int slot] => (_shapes[slot], _strides[slot]);
}
