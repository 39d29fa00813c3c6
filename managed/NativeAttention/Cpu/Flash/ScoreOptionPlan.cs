// A flash call's score options (softcap, ALiBi, dense bias) prepared once for every worker's OptionScoreModifier.

namespace NativeAttention.Cpu;

/// <summary>
/// The per-call, read-only half of <see cref="OptionScoreModifier"/>: softcap constants, ALiBi slopes and where the
/// dense bias lives. Broadcast axes of the bias get stride 0.
/// </summary>
internal sealed unsafe class ScoreOptionPlan
{
    /// <summary>Softcap is on: <c>s2 = SoftcapOut tanh(SoftcapIn s2)</c> is <c>c tanh(s / c)</c> in log2 units.</summary>
    public readonly bool Softcap;
    public readonly float SoftcapIn, SoftcapOut;
    /// <summary>ALiBi slopes times log2(e), <c>[Hq]</c> or <c>[B, Hq]</c> row-major; null without ALiBi.</summary>
    public readonly float[]? SlopesLog2;
    public readonly bool SlopesPerBatch;
    public readonly int QueryHeads, QueryLength, KeyLength;
    /// <summary>The dense bias' first element (null without a bias), its element type and strides in elements.</summary>
    public readonly byte* Bias;
    public readonly ElementType BiasType;
    public readonly long BiasBatchStride, BiasHeadStride, BiasQueryStride, BiasKeyStride;
    /// <summary>
    /// Keys per bias strip: each column group copies this many keys of its columns' bias rows at a time into scratch,
    /// transposed into the score tile's layout (0 without a dense bias). See <see cref="OptionScoreModifier"/>.
    /// </summary>
    public readonly int BiasStripKeys;
    /// <summary>The longest strip: 256 columns x 512 keys of float32 is 512 KB of scratch, half this machine's L2.</summary>
    public const int MaxBiasStripKeys = 512;

    public ScoreOptionPlan(FlashProblem problem, byte* bias)
    {
        var o = problem.Options;
        QueryHeads = problem.QueryHeads;
        QueryLength = problem.QueryLength;
        KeyLength = problem.KeyLength;
        if (o.Softcap > 0)
        {
            Softcap = true;
            SoftcapIn = (float)(1 / (MathConstants.Log2EDouble * o.Softcap));
            SoftcapOut = (float)(o.Softcap * MathConstants.Log2EDouble);
        }
        if (o.AlibiSlopes is { } slopes)
        {
            SlopesLog2 = Array.ConvertAll(slopes.ToDoubleArray(), s => (float)(s * MathConstants.Log2EDouble));
            SlopesPerBatch = slopes.Rank == 2;
        }
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
    }
}
