// Rows stored as binary16, as an IRowFormat type argument.
namespace NativeAttention.Cpu;

/// <summary>Rows of binary16 elements.</summary>
internal struct Float16Rows : IRowFormat
{
    public static ElementType Type => ElementType.Float16;
}
