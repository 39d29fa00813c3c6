// Creates GPU contexts for AttentionContext.Create; ContextOptions.Device picks the device.
namespace NativeAttention;

internal static class GpuContexts
{
    public static AttentionContext Create(Backend backend, ContextOptions options) => backend switch
    {
        Backend.OpenCl => Gpu.OpenCl.OpenClContext.Create(options),
        Backend.Cuda => Gpu.Cuda.CudaContext.Create(options),
        _ => throw new ArgumentOutOfRangeException(nameof(backend), backend, "Not a GPU backend."),
    };
}
