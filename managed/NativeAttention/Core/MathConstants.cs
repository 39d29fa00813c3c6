// The mathematical constants of the kernels' host code, written once (kernels/common/math.h is their C twin): scores
// are kept in log2 units (exp2 is the cheap exponential), so natural-log inputs are scaled by log2(e) on the way in and
// log-sum-exps by ln 2 on the way out.
namespace NativeAttention;

/// <summary>Constants shared by the CPU kernels and the GPU host code, in float32 for kernels and float64 for host-side setup.</summary>
internal static class MathConstants
{
    /// <summary>log2(e) = 1 / ln 2: a natural-log quantity times this is in log2 units.</summary>
    public const float Log2E = 1.44269504088896341f;

    /// <summary><see cref="Log2E"/> in float64, for factors computed on the host before rounding to float32.</summary>
    public const double Log2EDouble = 1.4426950408889634;

    /// <summary>ln 2: a log2-unit quantity times this is a natural log.</summary>
    public const float Ln2 = 0.693147180559945309f;

    /// <summary>2^112, the factor that moves a binary16 exponent (bias 15) to a binary32 one (bias 127).</summary>
    public const float TwoTo112 = 5.192296858534828e33f;
}
