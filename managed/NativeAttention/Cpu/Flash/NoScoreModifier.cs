// The identity score modifier: the CPU flash kernel without score options.

namespace NativeAttention.Cpu;

/// <summary>Plain scaled dot-product scores.</summary>
internal struct NoScoreModifier : IScoreModifier
{
    public static bool IsIdentity => true;

    public readonly void SetColumn(int column, int batch, int queryHead, int queryIndex) { }

    public readonly unsafe void Apply<TSimd, T>(float* scores, int width, int firstColumn, int keyStart, int keyCount, int realKeys, int keyEnd)
        where TSimd : struct, ISimd<T> where T : unmanaged { }
}
