// Compile-time integers as type arguments, so that the JIT specialises the CPU flash micro-kernels per block shape.

namespace NativeAttention.Cpu;

/// <summary>A compile-time integer, so that the JIT drops the unused parts of a register block.</summary>
internal interface IConstant
{
    static abstract int Value { get; }
}

internal struct One : IConstant { public static int Value => 1; }
internal struct Two : IConstant { public static int Value => 2; }
internal struct Three : IConstant { public static int Value => 3; }
internal struct Four : IConstant { public static int Value => 4; }
