// A neighborhood call whose windows cover the whole grid, as the dense flash call the CPU and GPU backends run instead:
// the routing rule, the flattened views and the flash problem, kept per thread so that a steady stream of such calls
// allocates nothing.
namespace NativeAttention;

/// <summary>
/// When every query's window is the whole grid (kernel = length on every axis; a causal axis makes it causal flash when
/// it is the only axis longer than 1) and there are no additional keys, no relative-position bias and no padding, a
/// neighborhood call is dense flash attention over the grid flattened to one token axis, provided every tensor's spatial
/// axes flatten into one evenly strided run. <see cref="TryPrepare"/> fills this thread's instance with that flash call:
/// views over the caller's storage through kept shape and stride arrays, and a kept, validated <see cref="FlashProblem"/>.
/// </summary>
internal sealed class WholeGridFlash
{
    /// <summary>This thread's instance, refilled by each whole-grid call (<see cref="TryPrepare"/>).</summary>
    [ThreadStatic] private static WholeGridFlash? t_kept;

    /// <summary>Shape and stride arrays of the flattened views (<c>[B, H, N, D]</c>, the log-sum-exp <c>[B, H, N]</c>), refilled by every call.</summary>
    private readonly FlashViewSlots _views = new();

    /// <summary>The options of the last call (scale and causal only: no caller tensor), reused while they match.</summary>
    private FlashOptions? _options;

    private FlashProblem? _problem;

    /// <summary>The validated flash problem of the flattened call.</summary>
    public FlashProblem Problem => _problem!;
    /// <summary>The flattened Q, K, V and O, <c>[B, H, N, D]</c>.</summary>
    public TensorView Query, Key, Value, Output;
    /// <summary>The flattened log-sum-exp, <c>[B, Hq, N]</c>, when the call has one.</summary>
    public TensorView? LogSumExp;

    /// <summary>
    /// This thread's instance filled with the flash call <paramref name="problem"/> reduces to, or null when the
    /// windows do not cover the whole grid or a tensor's spatial axes do not flatten. End the call with <see cref="Release"/>.
    /// </summary>
    public static WholeGridFlash? TryPrepare(NeighborhoodProblem problem, in TensorView query, in TensorView key, in TensorView value, in TensorView output,
        in TensorView? logSumExp)
    {
        if (!Covers(problem, out bool causal)) return null;
        var kept = t_kept ??= new WholeGridFlash();
        if (!kept.Flatten(FlashViewSlots.Query, query, out kept.Query) || !kept.Flatten(FlashViewSlots.Key, key, out kept.Key)
            || !kept.Flatten(FlashViewSlots.Value, value, out kept.Value) || !kept.Flatten(FlashViewSlots.Output, output, out kept.Output))
        {
            kept.Release();
            return null;
        }
        kept.LogSumExp = null;
        if (logSumExp is { } l)
        {
            if (!kept.Flatten(FlashViewSlots.LogSumExp, l, out var flat))
            {
                kept.Release();
                return null;
            }
            kept.LogSumExp = flat;
        }
        var options = kept._options is { } o && o.Scale == problem.Scale && o.Causal == causal
            ? o : kept._options = new FlashOptions { Scale = problem.Scale, Causal = causal };
        kept._problem = FlashProblem.CreateInto(kept._problem, kept.Query, kept.Key, kept.Value, kept.Output, options, kept.LogSumExp);
        return kept;
    }

    /// <summary>Drops the caller's tensors (the views and the problem's list), so that the kept instance holds none of them.</summary>
    public void Release()
    {
        (Query, Key, Value, Output, LogSumExp) = (default, default, default, default, null);
        _problem?.ReleaseCall();
    }

    /// <summary>True when every query sees the whole grid (see the class); <paramref name="causal"/>: the flash call is causal.</summary>
    private static bool Covers(NeighborhoodProblem problem, out bool causal)
    {
        causal = false;
        if (problem.AdditionalKeyCount > 0 || problem.HasRelativePositionBias || problem.HasValidExtent) return false;
        int longAxes = 0;
        for (int a = 0; a < problem.SpatialRank; a++)
        {
            if (problem.KernelSize[a] != problem.SpatialShape[a]) return false;
            if (problem.SpatialShape[a] == 1) continue;
            longAxes++;
            causal |= problem.Causal[a];
        }
        return !(causal && longAxes > 1);
    }

    /// <summary>
    /// <c>[B, H, X.., (D)]</c> as <c>[B, H, N, (D)]</c> over the same storage, in slot <paramref name="slot"/>'s arrays
    /// (the log-sum-exp slot has no trailing head axis), or false when the spatial axes of length above 1 are not one run
    /// of evenly strided tokens.
    /// </summary>
    private bool Flatten(int slot, in TensorView view, out TensorView flat)
    {
        int trailing = slot == FlashViewSlots.LogSumExp ? 0 : 1, end = view.Rank - trailing;
        ReadOnlySpan<int> shape = view.Shape;
        ReadOnlySpan<long> strides = view.Strides;
        long tokens = 1, step = strides[end - 1];
        for (int a = end - 1; a >= 2; a--)
        {
            int size = shape[a];
            if (size == 1) continue;
            if (tokens == 1) step = strides[a];
            else if (strides[a] != step * tokens)
            {
                flat = default;
                return false;
            }
            tokens *= size;
        }
        var (flatShape, flatStrides) = _views[slot];
        (flatShape[0], flatShape[1], flatShape[2]) = (shape[0], shape[1], (int)tokens);
        (flatStrides[0], flatStrides[1], flatStrides[2]) = (strides[0], strides[1], step);
        if (trailing == 1) (flatShape[3], flatStrides[3]) = (shape[end], strides[end]);
        flat = new TensorView(view.Storage!, flatShape, flatStrides, view.Offset, adopt: true);
        return true;
    }
}
