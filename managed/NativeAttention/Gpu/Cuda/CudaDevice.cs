// A CUDA device as the backend probe found it.
namespace NativeAttention.Gpu.Cuda;

/// <summary>One CUDA device: ordinal, name, compute capability (e.g. 90) and multiprocessor count.</summary>
internal sealed record CudaDevice(int Ordinal, string Name, int ComputeCapability, int Multiprocessors);
