// Rows stored as bfloat16, as an IRowFormat type argument.
namespace NativeAttention.Cpu;

/// <summary>Rows of bfloat16 elements.</summary>
internal struct BFloat16Rows : IRowFormat
{
    public static ElementType Type => ElementType.BFloat16;
}
