// Rows stored as float32, as an IRowFormat type argument.
namespace NativeAttention.Cpu;

/// <summary>Rows of float32 elements.</summary>
internal struct Float32Rows : IRowFormat
{
    public static ElementType Type => ElementType.Float32;
}
