// A flash call's score options (softcap, ALiBi, dense bias) prepared once for every worker's OptionScoreModifier.

namespace NativeAttention.Cpu;

/// <summary>
/// The per-call, read-only half of <see cref="OptionScoreModifier"/>: softcap constants, ALiBi slopes and where the
/// dense bias lives. Broadcast axes of the bias get stride 0.
/// </summary>
internal sealed unsafe class ScoreOptionPlan
{
    /// <summary>Softcap is on: <c>s2 = SoftcapOut tanh(SoftcapIn s2)</c> is <c>c tanh(s / c)</c> in log2 units.</summary>
    public bool Softcap;
    public float SoftcapIn, SoftcapOut;
    /// <summary>ALiBi slopes times log2(e), <c>[Hq]</c> or <c>[B, Hq]</c> row-major; null without ALiBi.</summary>
    public float[]? SlopesLog2;
    public bool SlopesPerBatch;
    public int QueryHeads, QueryLength, KeyLength;
    /// <summary>The dense bias' first element (null without a bias), its element type and strides in elements.</summary>
    public byte* Bias;
    public ElementType BiasType;
    public long BiasBatchStride, BiasHeadStride, BiasQueryStride, BiasKeyStride;
    /// <summary>
    /// Keys per bias strip: each column group copies this many keys of its columns' bias rows at a time into scratch,
    /// transposed into the score tile's layout (0 without a dense bias). See <see cref="OptionScoreModifier"/>.
    /// </summary>
    public int BiasStripKeys;
    /// <summary>The longest strip: 256 columns x 512 keys of float32 is 512 KB of scratch, half this machine's L2.</summary>
    public const int MaxBiasStripKeys = 512;

    /// <summary>The storage of <see cref="SlopesLog2"/>, kept for the next call with as many slopes.</summary>
    private float[]? _slopesBuffer;

    /// <summary>
    /// Fills every field for <paramref name="problem"/> (a plan is kept per thread and refilled by each call, so that
    /// a steady stream of calls allocates nothing); returns this plan.
    /// </summary>
    public ScoreOptionPlan Fill(FlashProblem problem, byte* bias)
    {
        var o = problem.Options;
        QueryHeads = problem.QueryHeads;
        QueryLength = problem.QueryLength;
        KeyLength = problem.KeyLength;
        (Softcap, SoftcapIn, SoftcapOut) = (false, 0, 0);
        if (o.Softcap > 0)
        {
            Softcap = true;
            SoftcapIn = (float)(1 / (MathConstants.Log2EDouble * o.Softcap));
            SoftcapOut = (float)(o.Softcap * MathConstants.Log2EDouble);
        }
        (SlopesLog2, SlopesPerBatch) = (null, false);
        if (o.AlibiSlopes is { } slopes)
        {
            // float32 [Hq] or [B', Hq] host tensors (validated), read in row-major order through their strides: one row
            // per batch element of this problem, from the problem's ALiBi row on (a varlen sequence reads its own row).
            int rows = slopes.Rank == 2 ? problem.Batch : 1, heads = slopes.Shape[slopes.Rank - 1];
            var buffer = _slopesBuffer is { } kept && kept.Length == rows * heads ? kept : _slopesBuffer = new float[rows * heads];
            long rowStride = slopes.Rank == 2 ? slopes.Strides[0] : 0, headStride = slopes.Strides[slopes.Rank - 1];
            using var pin = slopes.Storage!.Pin();
            float* first = (float*)pin.Pointer + slopes.Offset + problem.AlibiRowOffset(slopes);
            for (int r = 0; r < rows; r++)
                for (int h = 0; h < heads; h++)
                    buffer[r * heads + h] = (float)(first[r * rowStride + h * headStride] * MathConstants.Log2EDouble);
            SlopesLog2 = buffer;
            SlopesPerBatch = slopes.Rank == 2;
        }
        Bias = null;
        (BiasType, BiasBatchStride, BiasHeadStride, BiasQueryStride, BiasKeyStride, BiasStripKeys) = (default, 0, 0, 0, 0, 0);
        if (o.Bias is { } b && bias != null)
        {
            BiasType = b.ElementType;
            Bias = bias + b.Offset * BiasType.SizeOf();
            BiasBatchStride = b.Shape[0] == 1 ? 0 : b.Strides[0];
            BiasHeadStride = b.Shape[1] == 1 ? 0 : b.Strides[1];
            BiasQueryStride = b.Strides[2];
            BiasKeyStride = b.Strides[3];
            BiasStripKeys = Math.Min(MaxBiasStripKeys, KeyLength);
        }
        return this;
    }
}
