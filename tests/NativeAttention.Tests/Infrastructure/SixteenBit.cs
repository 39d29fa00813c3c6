// The 16-bit property every family binds to every backend: a float16/bfloat16 run computes in float32 and rounds
// its output once to nearest, so it equals the float32 run on the same (already rounded) inputs to within half an ulp
// of the output type, plus what the backend's 16-bit path truly computes differently (see Slack).
using Xunit;

namespace NativeAttention.Tests;

/// <summary>Compares a 16-bit run with the float32 run of the same rounded inputs, element by element.</summary>
public static class SixteenBit
{
    /// <summary>Significant bits (implicit bit included) of a 16-bit type.</summary>
    private static int Precision(ElementType type) => type == ElementType.Float16 ? 11 : 8;

    /// <summary>Smallest exponent of a normal number: below it the spacing stays fixed (subnormals).</summary>
    private static int MinExponent(ElementType type) => type == ElementType.Float16 ? -14 : -126;

    /// <summary>The spacing of <paramref name="type"/>'s values around <paramref name="x"/>: one ulp at |x|'s binade.</summary>
    public static double Ulp(ElementType type, double x)
    {
        int exponent = x == 0 || !double.IsFinite(x) ? MinExponent(type) : Math.Max(Math.ILogB(x), MinExponent(type));
        return Math.ScaleB(1.0, exponent - (Precision(type) - 1));
    }

    /// <summary>
    /// The accumulated-order slack a backend's 16-bit path needs beyond the output's rounding, relative to the largest
    /// |V| (the outputs are convex combinations of value rows, so every float32 error is a fraction of it):
    /// <list type="bullet">
    /// <item>CPU and OpenCL widen 16-bit inputs to float32 and run the float32 arithmetic in the float32 order, so
    /// the float32 result before the final rounding is the same; 2^-20 (16 float32 units roundoff) only absorbs the
    /// float32 rounding of a differently fused multiply-add, far below half a bfloat16 (2^-9) or float16 (2^-12) ulp
    /// of outputs down to 1/8 of max |V|.</item>
    /// <item>CUDA's tensor-core kernel (f16/bf16, Dqk = Dv in {64, 128}) rounds the probabilities P to the input type
    /// before P V, an error of at most u16 x sum_j p_j |v_j| &lt;= u16 x max |V|, so the bound is half an ulp plus that.</item>
    /// </list>
    /// </summary>
    public static double Slack(Backend backend, ElementType type, double maxValue) =>
        backend == Backend.Cuda ? type.UnitRoundoff() * maxValue : Math.ScaleB(maxValue, -20);

    /// <summary>
    /// Asserts <c>|o16 - o32| &lt;= ulp(o32) / 2 + slack</c> for every element (rows that see no key: both exactly 0),
    /// where o32 is the float32 run's output and ulp is the 16-bit type's spacing at |o32|. A truncating or otherwise
    /// mis-rounding output conversion is off by up to a whole ulp, which this catches on most elements.
    /// </summary>
    public static void AssertRoundedOnce(ElementType type, double[] sixteen, double[] thirtyTwo, double slack, string what)
    {
        Assert.Equal(thirtyTwo.Length, sixteen.Length);
        for (int i = 0; i < sixteen.Length; i++)
        {
            double o32 = thirtyTwo[i], o16 = sixteen[i];
            double bound = Ulp(type, o32) / 2 + slack;
            if (!(Math.Abs(o16 - o32) <= bound))
                Assert.Fail($"{what}: element {i} is {o16:G9} in {AttentionCase.TypeName(type)} but {o32:G9} in f32: off by {Math.Abs(o16 - o32):G3} > half an ulp + slack = {bound:G3}");
        }
    }

    /// <summary>
    /// Asserts that the 16-bit run's float32 log-sum-exps equal the float32 run's up to float32 rounding
    /// (<c>1e-5 (1 + |LSE|)</c>; both -inf on rows that see no key): the LSE is never rounded to 16 bits.
    /// </summary>
    public static void AssertSameLse(double[] thirtyTwo, double[] sixteen, string what)
    {
        Assert.Equal(thirtyTwo.Length, sixteen.Length);
        for (int i = 0; i < sixteen.Length; i++)
        {
            double e = thirtyTwo[i], a = sixteen[i];
            if (e.Equals(a) || Math.Abs(e - a) <= 1e-5 * (1 + Math.Abs(e))) continue;
            Assert.Fail($"{what}: LSE {i} is {a:G9} in the 16-bit run but {e:G9} in the float32 run");
        }
    }

    /// <summary>The largest finite magnitude in <paramref name="values"/> (0 when none).</summary>
    public static double MaxAbs(IEnumerable<double> values) => values.Where(double.IsFinite).Select(Math.Abs).DefaultIfEmpty(0).Max();
}
