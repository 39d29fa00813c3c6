// ISimd over a single float: the path for hardware the JIT does not vectorise.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace NativeAttention.Cpu;

/// <summary>The scalar path: a "vector" of one float.</summary>
internal unsafe struct SimdScalar : ISimd<float>
{
    public static int Count => 1;
    public static int Registers => 16;
    public static float Zero => 0f;
    public static float NegativeInfinity => float.NegativeInfinity;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Load(float* source) => *source;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float LoadBFloat16(ushort* source) => BitConverter.UInt32BitsToSingle((uint)*source << 16);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float LoadHalf(ushort* source) => (float)*(Half*)source;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* destination, float value) => *destination = value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Broadcast(float value) => value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MultiplyAdd(float a, float b, float c) =>
        Fma.IsSupported || AdvSimd.IsSupported ? MathF.FusedMultiplyAdd(a, b, c) : a * b + c;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Add(float a, float b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Subtract(float a, float b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Multiply(float a, float b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Divide(float a, float b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Max(float a, float b) => MathF.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Min(float a, float b) => MathF.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Exp2NonPositive(float x) => x < Exp2Polynomial.Floor ? 0f : float.Exp2(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float KeepInRange(float score, float index, float start, float end) =>
        index >= start && index < end ? score : float.NegativeInfinity;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float NegativeInfinityToZero(float value) => value == float.NegativeInfinity ? 0f : value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(float value) => value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Sum4(float a, float b, float c, float d) => Vector128.Create(a, b, c, d);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MaxAcross(float value) => value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Max4(float a, float b, float c, float d) => Vector128.Create(a, b, c, d);
}
