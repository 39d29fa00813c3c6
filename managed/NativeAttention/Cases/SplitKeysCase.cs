// Split-KV attention as a case: flash over contiguous key ranges into partial outputs and log-sum-exps, then
// MergeStates into the output, which must equal the unsplit result. Written as a flash spec with `split=<parts>`.
using System.Globalization;

namespace NativeAttention;

/// <summary>
/// <see cref="Flash"/> computed as split-KV attention: <see cref="AttentionContext.Flash"/> on each of
/// <see cref="Parts"/> contiguous key ranges (partials stored in the case's type, LSEs in float32), then
/// <see cref="AttentionContext.MergeStates"/>. It is checked against the unsplit float64 reference. Only non-causal,
/// windowless cases with softmax scoring and no option tensors split this way (a split moves where masks and ALiBi
/// align, and sinks or sigmoid weights do not merge through log-sum-exps).
/// </summary>
public sealed record SplitKeysCase : IAttentionCase
{
    /// <summary>Names of the scratch tensors in <see cref="CaseTensors"/>.</summary>
    public const string PartialOutputsName = "partialOutputs", PartialLogSumExpName = "partialLogSumExp";

    /// <summary>The attention problem.</summary>
    public required AttentionCase Flash { get; init; }

    /// <summary>Number of key ranges (clamped to Nk when run).</summary>
    public int Parts { get; init; } = 2;

    string IAttentionCase.FamilyName => AttentionCase.Registration.Name;

    /// <inheritdoc/>
    public string KernelName => string.Create(CultureInfo.InvariantCulture, $"flash x{EffectiveParts} + merge");

    /// <inheritdoc/>
    public ElementType ElementType => Flash.ElementType;

    /// <inheritdoc/>
    public int Seed => Flash.Seed;

    /// <inheritdoc/>
    public CaseSizes Sizes => Flash.Sizes;

    /// <inheritdoc/>
    public bool IsMemoryBound => Flash.IsMemoryBound;

    private int EffectiveParts => Math.Clamp(Parts, 1, Math.Max(1, Flash.KeyLength));

    /// <inheritdoc/>
    public CaseTensors CreateTensors()
    {
        if (Problem() is { } problem) throw new ArgumentException($"The case \"{ToSpec()}\" is not a valid problem: {problem}.", "case");
        var c = Flash;
        var flash = c.CreateTensors();
        int parts = EffectiveParts;
        return new CaseTensors([
            .. flash.All,
            new(PartialOutputsName, CaseData.Zeros(c.ElementType, parts, c.Batch, c.QueryHeads, c.QueryLength, c.ValueDim), CaseTensorRole.Scratch),
            new(PartialLogSumExpName, CaseData.Zeros(ElementType.Float32, parts, c.Batch, c.QueryHeads, c.QueryLength), CaseTensorRole.Scratch),
        ]);
    }

    /// <inheritdoc/>
    public void Invoke(AttentionContext context, CaseTensors tensors)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(tensors);
        var c = Flash;
        int parts = EffectiveParts;
        var partials = tensors[PartialOutputsName];
        var partialLse = tensors[PartialLogSumExpName];
        for (int s = 0; s < parts; s++)
        {
            int start = (int)((long)c.KeyLength * s / parts), end = (int)((long)c.KeyLength * (s + 1) / parts);
            context.Flash(tensors.Query, tensors.Key.Slice(2, start, end - start), tensors.Value.Slice(2, start, end - start),
                partials.Slice(0, s, 1).Reshape(c.Batch, c.QueryHeads, c.QueryLength, c.ValueDim), c.Flash,
                partialLse.Slice(0, s, 1).Reshape(c.Batch, c.QueryHeads, c.QueryLength));
        }
        context.MergeStates(partials, partialLse, tensors.Output, tensors.LogSumExp);
    }

    /// <inheritdoc/>
    public ReferenceResult ExactReference(CaseTensors tensors) => Flash.ExactReference(tensors);

    /// <inheritdoc/>
    public ReferenceResult NaiveReference(CaseTensors tensors) => Flash.NaiveReference(tensors);

    /// <inheritdoc/>
    public ReferenceCheck Check(CaseTensors tensors) => Flash.Check(tensors);

    /// <summary>The flash FLOPs (the merge adds O(S Nq Dv), left out).</summary>
    public double Flops() => Flash.Flops();

    /// <summary>The flash bytes plus the partials written and read once.</summary>
    public double MinimumBytes()
    {
        var c = Flash;
        double rows = (double)EffectiveParts * c.Batch * c.QueryHeads * c.QueryLength;
        return Flash.MinimumBytes() + 2 * rows * (c.ValueDim * (double)c.ElementType.SizeOf() + 4);
    }

    /// <inheritdoc/>
    public string ToSpec() => Flash.Spec(null, string.Create(CultureInfo.InvariantCulture, $"split={Parts}"));

    /// <summary>The spec.</summary>
    public override string ToString() => ToSpec();

    /// <inheritdoc/>
    public IEnumerable<IAttentionCase> Shrink()
    {
        if (Parts > 2) yield return this with { Parts = 2 };
        foreach (var smaller in CaseSampler.Shrink(Flash))
        {
            var candidate = this with { Flash = smaller };
            if (candidate.Problem() is null) yield return candidate;
        }
    }

    /// <summary>Why this is not a valid problem, or null.</summary>
    internal string? Problem()
    {
        ArgumentNullException.ThrowIfNull(Flash);
        if (Flash.Problem() is { } problem) return problem;
        if (Flash.KvCache) return "split= runs Flash, not FlashKvCache";
        if (Parts < 2) return "split= takes at least 2 parts";
        var o = Flash.Flash;
        if (o.Causal || o.WindowLeft >= 0 || o.WindowRight >= 0) return "split= needs a non-causal, windowless case (a split moves where those masks align)";
        if (o.ScoreFunction != ScoreFunction.Softmax) return "split= needs softmax scoring (sigmoid weights do not merge through log-sum-exps)";
        if (Flash.OptionTensors is not null || o.AlibiSlopes is not null || o.Bias is not null || o.LowRankBias is not null || o.Sinks is not null)
            return "split= takes no option tensors (ALiBi and biases depend on key positions, sinks would join every part)";
        return null;
    }
}
