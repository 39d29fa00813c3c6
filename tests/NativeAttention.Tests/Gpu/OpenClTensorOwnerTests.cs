// Every tensor of every entry point, options included, must be in a buffer of the context's own cl_context: a host
// tensor or one of another OpenCL context is rejected by name before any kernel runs.
using NativeAttention.Gpu.OpenCl;
using Xunit;

namespace NativeAttention.Tests.Gpu;

public sealed class OpenClTensorOwnerTests
{
    [RuntimeTheory(TestRuntime.OpenCl)]
    [MemberData(nameof(TensorListCases.All), MemberType = typeof(TensorListCases))]
    public void HostTensor_IsRejectedByName(string call, string name)
    {
        RuntimeAvailability.Require(TestRuntime.OpenCl);
        using var context = AttentionContext.Create(Backend.OpenCl);
        var e = TensorListCases.ThrowsNaming(name, () => TensorListCases.Run(context, call, (n, host) => n == name ? host : context.Upload(host)));
        Assert.Contains("Host memory", e.Message);
    }

    [RuntimeTheory(TestRuntime.OpenCl)]
    [MemberData(nameof(TensorListCases.All), MemberType = typeof(TensorListCases))]
    public void TensorOfAnotherContext_IsRejectedByName(string call, string name)
    {
        RuntimeAvailability.Require(TestRuntime.OpenCl);
        using var context = AttentionContext.Create(Backend.OpenCl);
        using var other = AttentionContext.Create(Backend.OpenCl);
        var e = TensorListCases.ThrowsNaming(name, () => TensorListCases.Run(context, call, (n, host) => n == name ? other.Upload(host) : context.Upload(host)));
        Assert.Contains("another OpenCL context", e.Message);
    }

    [RuntimeFact(TestRuntime.OpenCl)]
    public void TensorsOfTheSameClContext_AreAccepted()
    {
        // A second context on the first one's queue shares its cl_context, so its buffers are usable there.
        RuntimeAvailability.Require(TestRuntime.OpenCl);
        using var owner = (OpenClContext)AttentionContext.Create(Backend.OpenCl);
        using var borrowed = OpenClContext.FromQueue(owner.CommandQueue);
        var partialOutputs = TensorListCases.F32(2, 3, 4);
        var partialLse = TensorListCases.F32(2, 3);
        var output = owner.Allocate(ElementType.Float32, 3, 4);
        borrowed.MergeStates(owner.Upload(partialOutputs), owner.Upload(partialLse), output);
        var expected = Reference.MergeStates(partialOutputs, partialLse);
        var actual = owner.Download(output).ToDoubleArray();
        for (int i = 0; i < expected.Output.Length; i++) Assert.Equal(expected.Output[i], actual[i], 5);
    }
}
