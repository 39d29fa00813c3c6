// The storage type of a row as a type argument, so that the JIT specialises a kernel's loads for it.
namespace NativeAttention.Cpu;

/// <summary>The element type of the rows a kernel reads, as a type (see <see cref="RowLoads"/>).</summary>
internal interface IRowFormat
{
    static abstract ElementType Type { get; }
}
