// What the CPU offers: SIMD widths the JIT accelerates and the core count.
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NativeAttention.Cpu;

/// <summary>The CPU's SIMD features as the .NET JIT sees them.</summary>
public static class CpuFeatures
{
    /// <summary>The widest accelerated vector width in bits (512, 256, 128 or 0).</summary>
    public static int VectorBits =>
        Vector512.IsHardwareAccelerated ? 512 : Vector256.IsHardwareAccelerated ? 256 : Vector128.IsHardwareAccelerated ? 128 : 0;

    /// <summary>A one-line description, e.g. "x64, 2 cores, AVX-512F, AVX2, FMA".</summary>
    public static string Describe()
    {
        var features = new List<string>();
        if (Avx512F.IsSupported) features.Add("AVX-512F");
        if (Avx2.IsSupported) features.Add("AVX2");
        if (Fma.IsSupported) features.Add("FMA");
        if (System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported) features.Add("NEON");
        string simd = features.Count > 0 ? string.Join(", ", features) : "no SIMD";
        return $"{System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture}, {Environment.ProcessorCount} cores, {simd}, {VectorBits}-bit vectors";
    }
}
