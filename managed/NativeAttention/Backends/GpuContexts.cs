// Creates GPU contexts. Filled in by the OpenCL and CUDA runtime layers (issue 3).
namespace NativeAttention;

internal static class GpuContexts
{
    public static AttentionContext Create(Backend backend, ContextOptions options) =>
        throw new NotSupportedException($"The {backend} backend is not built yet (issue 3).");
}
