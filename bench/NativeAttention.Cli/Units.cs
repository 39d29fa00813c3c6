// Formats the quantities the tool reports, the same way in every command.
using System.Globalization;

namespace NativeAttention.Cli;

internal static class Units
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>A duration in s, ms or µs with three significant digits.</summary>
    public static string Time(double seconds) => seconds switch
    {
        >= 1 => seconds.ToString("0.00", Invariant) + " s",
        >= 1e-3 => (seconds * 1e3).ToString("0.00", Invariant) + " ms",
        _ => (seconds * 1e6).ToString("0.0", Invariant) + " µs",
    };

    public static string Gflops(double gflops) => gflops.ToString("0.0", Invariant);

    /// <summary>A rate (GFLOP/s, GB/s) with three significant digits, down to 0.001.</summary>
    public static string Rate(double rate) => rate switch
    {
        >= 100 => rate.ToString("0", Invariant),
        >= 10 => rate.ToString("0.0", Invariant),
        >= 1 => rate.ToString("0.00", Invariant),
        _ => rate.ToString("0.000", Invariant),
    };

    public static string Percent(double percent) => percent.ToString("0.0", Invariant) + " %";

    /// <summary>An absolute error in scientific notation, e.g. <c>3.1e-07</c>.</summary>
    public static string Error(double error) => double.IsFinite(error) ? error.ToString("0.0e+00", Invariant) : error.ToString(Invariant);
}
