// What every family's case type provides, so the tests, `verify`, `fuzz`, `bench`, `demo` and the BenchmarkDotNet
// suites handle any family the same way: through CaseRunner, CaseVerifier and AttentionCaseSpec.
namespace NativeAttention;

/// <summary>
/// A reproducible problem of one family: everything needed to build its tensors from a seed, run it on any backend
/// (through <see cref="CaseRunner"/>, which places the tensors where the context reads them), run its float64 and
/// same-precision naive references, check a result under <see cref="CaseVerifier"/>'s rule, count its FLOPs and
/// bytes, and write it as a spec string that <see cref="AttentionCaseSpec.Parse"/> reads back into an equal case.
/// Implementations are immutable records; equal cases build equal tensors.
/// </summary>
/// <remarks>
/// A new family adds one case type implementing this interface (with a static <see cref="CaseFamily"/> describing
/// its spec grammar) and one line in <see cref="CaseFamilies.All"/>.
/// </remarks>
public interface IAttentionCase
{
    /// <summary>The registered family whose grammar writes and reads this case (<see cref="CaseFamily.Name"/>).</summary>
    string FamilyName { get; }

    /// <summary>The entry points one run calls, for reports: <c>flash</c>, <c>flash kvcache</c>, <c>flash x3 + merge</c>, <c>merge</c>, ...</summary>
    string KernelName { get; }

    /// <summary>Storage type of the case's main tensors (inputs and output).</summary>
    ElementType ElementType { get; }

    /// <summary>Seed of the generated inputs.</summary>
    int Seed { get; }

    /// <summary>Sizes for reports, tables and charts.</summary>
    CaseSizes Sizes { get; }

    /// <summary>
    /// True when memory traffic, not arithmetic, bounds the case (decode-like: at most
    /// <see cref="AttentionCase.DecodeQueryRows"/> query rows per head; merges), so benchmarks judge it against memory
    /// bandwidth rather than FMA throughput.
    /// </summary>
    bool IsMemoryBound { get; }

    /// <summary>Allocates host tensors holding this case's inputs and option tensors (drawn from its seeds) and zeroed outputs.</summary>
    /// <exception cref="ArgumentException">The case does not describe a valid problem.</exception>
    CaseTensors CreateTensors();

    /// <summary>
    /// Makes this case's kernel call(s) on <paramref name="context"/> with <paramref name="tensors"/>, which must already
    /// live where the context reads tensors (see <see cref="CaseRunner"/>). On a GPU the work may still be running when
    /// this returns.
    /// </summary>
    /// <exception cref="NotSupportedException">The backend has no kernel for this family or option yet (the context's own exception).</exception>
    void Invoke(AttentionContext context, CaseTensors tensors);

    /// <summary>The float64 reference result of the inputs in <paramref name="tensors"/> (host tensors).</summary>
    ReferenceResult ExactReference(CaseTensors tensors);

    /// <summary>
    /// The result a naive implementation in the case's precision computes from the same inputs: the yardstick of
    /// FlashAttention's error rule (see <see cref="CaseVerifier.CompareToReference"/>).
    /// </summary>
    ReferenceResult NaiveReference(CaseTensors tensors);

    /// <summary>Compares the outputs in <paramref name="tensors"/> (host tensors, after a run) with both references under <see cref="CaseVerifier.CompareToReference"/>'s rule.</summary>
    ReferenceCheck Check(CaseTensors tensors);

    /// <summary>Floating-point operations one run performs, counted as DESIGN.md's "Benchmarks" section says (visible pairs only).</summary>
    double Flops();

    /// <summary>Bytes one run must read and write at least once.</summary>
    double MinimumBytes();

    /// <summary>The canonical text form; <see cref="AttentionCaseSpec.Parse"/> reads it back into an equal case.</summary>
    /// <exception cref="NotSupportedException">The case holds something with no text form (e.g. a caller's own option tensor).</exception>
    string ToSpec();

    /// <summary>Valid, smaller variants of this case (most aggressive first) with the same seeds, for shrinking a failure; may be empty.</summary>
    IEnumerable<IAttentionCase> Shrink();
}

/// <summary>
/// The sizes reports and charts show for a case, in the terms of attention: every family states them as best it can
/// (a neighborhood grid's token count as both lengths, a merge's split count as the key length, ...).
/// </summary>
/// <param name="Batch">Batch size B.</param>
/// <param name="QueryHeads">Query heads (or heads).</param>
/// <param name="KeyValueHeads">Key/value heads.</param>
/// <param name="QueryLength">Query rows per head.</param>
/// <param name="KeyLength">Keys per head (the length a sweep varies and a chart's x axis shows).</param>
/// <param name="HeadDim">Query/key head dimension.</param>
/// <param name="ValueDim">Value head dimension.</param>
/// <param name="Layout">Memory layout of the main tensors.</param>
public sealed record CaseSizes(int Batch, int QueryHeads, int KeyValueHeads, int QueryLength, int KeyLength, int HeadDim, int ValueDim, TensorLayout Layout = TensorLayout.HeadsFirst);
