// The tool's only test hook: a deliberate, documented error planted in kernel outputs, so tests (and anyone
// checking the checker) can see `verify` and `fuzz` catch a wrong kernel and report a reproducing spec.
using System.Globalization;

namespace NativeAttention.Cli;

/// <summary>
/// Adds <see cref="Offset"/> to every output element of cases with at least <see cref="MinKeyLength"/> keys
/// (<see cref="CaseSizes.KeyLength"/>), after
/// the kernel ran and before the result is checked. It exists only to test the checking commands: set by the CLI
/// tests through <see cref="CliHost"/>, or for a whole process by the environment variable <see cref="Variable"/>,
/// e.g. <c>NATIVEATTENTION_CLI_FAULT="offset=0.1,min-keys=20"</c>. Benchmark timings never include it.
/// </summary>
/// <param name="Offset">Added to each output element.</param>
/// <param name="MinKeyLength">Cases with fewer keys are left alone, so shrinking has a boundary to find.</param>
internal sealed record KernelFault(double Offset, int MinKeyLength = 1)
{
    /// <summary>The environment variable that plants a fault in every kernel this process checks.</summary>
    public const string Variable = "NATIVEATTENTION_CLI_FAULT";

    /// <summary>True when the fault applies to <paramref name="case"/>.</summary>
    public bool Affects(IAttentionCase @case) => @case.Sizes.KeyLength >= MinKeyLength;

    /// <summary>Perturbs the output (the tensor named <c>output</c>) of <paramref name="case"/> held in <paramref name="results"/>, when the fault applies to it.</summary>
    public void Apply(IAttentionCase @case, CaseTensors results)
    {
        if (!Affects(@case)) return;
        var output = results.Output;
        double[] values = output.ToDoubleArray();
        for (int i = 0; i < values.Length; i++) values[i] += Offset;
        output.CopyFrom(values);
    }

    /// <summary>The fault named by <see cref="Variable"/>, or null when it is unset.</summary>
    /// <exception cref="FormatException">The variable is set but not of the form <c>offset=X[,min-keys=N]</c>.</exception>
    public static KernelFault? FromEnvironment() =>
        Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } text ? Parse(text) : null;

    /// <summary>Reads <c>offset=X[,min-keys=N]</c>.</summary>
    /// <exception cref="FormatException">The text is not of that form.</exception>
    public static KernelFault Parse(string text)
    {
        double offset = double.NaN;
        int minKeys = 1;
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var pair = part.Split('=', 2, StringSplitOptions.TrimEntries);
            bool ok = pair.Length == 2 && pair[0] switch
            {
                "offset" => double.TryParse(pair[1], NumberStyles.Float, CultureInfo.InvariantCulture, out offset),
                "min-keys" => int.TryParse(pair[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out minKeys),
                _ => false,
            };
            if (!ok) throw new FormatException($"{Variable} must look like offset=0.1[,min-keys=20], not '{text}'.");
        }
        if (double.IsNaN(offset)) throw new FormatException($"{Variable} must name an offset, e.g. offset=0.1, not '{text}'.");
        return new KernelFault(offset, minKeys);
    }
}
