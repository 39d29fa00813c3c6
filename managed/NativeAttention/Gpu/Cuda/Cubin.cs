// A CUBIN compiled by NVRTC for a real architecture, with the resources of each kernel read twice: the register count
// and stack frame from the ELF image itself (the .nv.info attributes ptxas writes for the driver), and the spill
// traffic from ptxas's verbose report (spills leave no attribute of their own in the image). CI fails a tensor-core
// kernel that spills, and checks that both sources agree on the register count.
using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace NativeAttention.Gpu.Cuda;

/// <summary>The resources ptxas gave one kernel.</summary>
/// <param name="Name">The kernel's symbol.</param>
/// <param name="Registers">Registers per thread, from the image's <c>EIATTR_REGCOUNT</c>.</param>
/// <param name="FrameBytes">Per-thread stack frame (local memory), from the image's <c>EIATTR_FRAME_SIZE</c>.</param>
/// <param name="ReportedRegisters">Registers per thread as ptxas reported them (-1 when the report lacks the kernel).</param>
/// <param name="SpillStoreBytes">Bytes of spill stores ptxas reported (-1 when the report lacks the kernel).</param>
/// <param name="SpillLoadBytes">Bytes of spill loads ptxas reported (-1 when the report lacks the kernel).</param>
internal sealed record KernelResources(string Name, int Registers, int FrameBytes, int ReportedRegisters, int SpillStoreBytes, int SpillLoadBytes)
{
    /// <summary>True when ptxas reported spill stores or loads.</summary>
    public bool Spills => SpillStoreBytes > 0 || SpillLoadBytes > 0;
}

/// <summary>A CUBIN image for <see cref="Target"/> and ptxas's verbose log.</summary>
internal sealed partial class Cubin(string target, byte[] image, string ptxasLog, string ptx)
{
    private const byte AttributeFrameSize = 0x11;   // EIATTR_FRAME_SIZE: (symbol, bytes)
    private const byte AttributeRegisterCount = 0x2f; // EIATTR_REGCOUNT: (symbol, registers)

    /// <summary>The real architecture, e.g. <c>sm_90a</c>.</summary>
    public string Target { get; } = target;

    /// <summary>The ELF image a driver loads.</summary>
    public byte[] Image { get; } = image;

    /// <summary>ptxas's verbose report (<c>--ptxas-options=-v</c>).</summary>
    public string PtxasLog { get; } = ptxasLog;

    /// <summary>The PTX the image was assembled from.</summary>
    public string Ptx { get; } = ptx;

    /// <summary>True when the PTX issues tensor-core instructions (<c>mma.sync</c> or Hopper's <c>wgmma</c>).</summary>
    public bool UsesTensorCores => Ptx.Contains("mma.sync.aligned", StringComparison.Ordinal) || Ptx.Contains("wgmma.", StringComparison.Ordinal);

    /// <summary>Every kernel in the image with its resources, image order.</summary>
    public IReadOnlyList<KernelResources> Kernels => _kernels ??= ReadKernels();
    private IReadOnlyList<KernelResources>? _kernels;

    private List<KernelResources> ReadKernels()
    {
        var (registers, frames) = ReadAttributes(Image);
        var report = ParseReport(PtxasLog);
        var kernels = new List<KernelResources>();
        foreach (var (name, count) in registers)
        {
            var reported = report.TryGetValue(name, out var r) ? r : (Registers: -1, Stores: -1, Loads: -1);
            kernels.Add(new KernelResources(name, count, frames.GetValueOrDefault(name), reported.Registers, reported.Stores, reported.Loads));
        }
        return kernels;
    }

    /// <summary>Reads the register count and frame size of every function from the ELF's global <c>.nv.info</c> section.</summary>
    /// <exception cref="InvalidDataException">The image is not a 64-bit little-endian ELF, or a section runs past its end.</exception>
    internal static (List<(string Name, int Registers)> Registers, Dictionary<string, int> Frames) ReadAttributes(byte[] elf)
    {
        ReadOnlySpan<byte> header = elf;
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F' || elf[4] != 2 || elf[5] != 1)
            throw new InvalidDataException("The CUBIN is not a 64-bit little-endian ELF image.");
        long sectionTable = (long)BinaryPrimitives.ReadUInt64LittleEndian(header[0x28..]);
        int entrySize = BinaryPrimitives.ReadUInt16LittleEndian(header[0x3a..]);
        int count = BinaryPrimitives.ReadUInt16LittleEndian(header[0x3c..]);
        int namesIndex = BinaryPrimitives.ReadUInt16LittleEndian(header[0x3e..]);
        if (entrySize < 64 || sectionTable < 0 || sectionTable + (long)entrySize * count > elf.Length || namesIndex >= count)
            throw new InvalidDataException("The CUBIN's section table lies outside the image.");

        var sections = new (uint Name, uint Type, long Offset, long Size, int Link)[count];
        for (int i = 0; i < count; i++)
        {
            var h = header.Slice((int)(sectionTable + (long)i * entrySize), entrySize);
            sections[i] = (BinaryPrimitives.ReadUInt32LittleEndian(h), BinaryPrimitives.ReadUInt32LittleEndian(h[4..]),
                (long)BinaryPrimitives.ReadUInt64LittleEndian(h[0x18..]), (long)BinaryPrimitives.ReadUInt64LittleEndian(h[0x20..]),
                (int)BinaryPrimitives.ReadUInt32LittleEndian(h[0x28..]));
            if (sections[i].Type != 8 /* SHT_NOBITS */ && (sections[i].Offset < 0 || sections[i].Size < 0 || sections[i].Offset + sections[i].Size > elf.Length))
                throw new InvalidDataException($"CUBIN section {i} lies outside the image.");
        }
        ReadOnlySpan<byte> Body(int index) => elf.AsSpan((int)sections[index].Offset, (int)sections[index].Size);
        var sectionNames = Body(namesIndex);

        int symbols = -1, info = -1;
        for (int i = 0; i < count; i++)
        {
            string name = CString(sectionNames, sections[i].Name);
            if (sections[i].Type == 2 /* SHT_SYMTAB */) symbols = i;
            else if (name == ".nv.info") info = i;
        }
        if (symbols < 0) throw new InvalidDataException("The CUBIN has no symbol table.");
        string Symbol(uint index)
        {
            var symbolBody = Body(symbols);
            if ((long)(index + 1) * 24 > symbolBody.Length) throw new InvalidDataException($"CUBIN attribute names symbol {index}, past the symbol table.");
            return CString(Body(sections[symbols].Link), BinaryPrimitives.ReadUInt32LittleEndian(symbolBody[(int)(index * 24)..]));
        }

        var registers = new List<(string, int)>();
        var frames = new Dictionary<string, int>();
        if (info < 0) return (registers, frames);
        var attributes = Body(info);
        for (int at = 0; at + 2 <= attributes.Length;)
        {
            byte format = attributes[at], attribute = attributes[at + 1];
            switch (format)
            {
                case 1: at += 2; break;            // no value
                case 2: case 3: at += 4; break;    // a byte or a half word, padded to four
                case 4:                            // a sized value
                {
                    if (at + 4 > attributes.Length) throw new InvalidDataException("A CUBIN attribute runs past .nv.info.");
                    int size = BinaryPrimitives.ReadUInt16LittleEndian(attributes[(at + 2)..]);
                    if (at + 4 + size > attributes.Length) throw new InvalidDataException("A CUBIN attribute runs past .nv.info.");
                    var value = attributes.Slice(at + 4, size);
                    if (size == 8 && attribute is AttributeRegisterCount or AttributeFrameSize)
                    {
                        string name = Symbol(BinaryPrimitives.ReadUInt32LittleEndian(value));
                        int amount = (int)BinaryPrimitives.ReadUInt32LittleEndian(value[4..]);
                        if (attribute == AttributeRegisterCount) registers.Add((name, amount));
                        else frames[name] = amount;
                    }
                    at += 4 + size;
                    break;
                }
                default:
                    throw new InvalidDataException($"Unknown attribute format {format} at offset {at} of the CUBIN's .nv.info.");
            }
        }
        return (registers, frames);
    }

    private static string CString(ReadOnlySpan<byte> table, uint offset)
    {
        if (offset >= table.Length) throw new InvalidDataException($"CUBIN string offset {offset} is past its string table.");
        var rest = table[(int)offset..];
        int end = rest.IndexOf((byte)0);
        return Encoding.ASCII.GetString(end < 0 ? rest : rest[..end]);
    }

    /// <summary>Per kernel: registers, spill store bytes and spill load bytes from ptxas's verbose report.</summary>
    internal static Dictionary<string, (int Registers, int Stores, int Loads)> ParseReport(string log)
    {
        var result = new Dictionary<string, (int, int, int)>();
        string? current = null;
        int stores = -1, loads = -1;
        foreach (string line in log.Split('\n'))
        {
            if (EntryLine().Match(line) is { Success: true } entry)
            {
                current = entry.Groups[1].Value;
                stores = loads = -1;
            }
            else if (current is not null && SpillLine().Match(line) is { Success: true } spill)
            {
                stores = int.Parse(spill.Groups[1].Value, CultureInfo.InvariantCulture);
                loads = int.Parse(spill.Groups[2].Value, CultureInfo.InvariantCulture);
            }
            else if (current is not null && RegisterLine().Match(line) is { Success: true } used)
            {
                result[current] = (int.Parse(used.Groups[1].Value, CultureInfo.InvariantCulture), stores, loads);
                current = null;
            }
        }
        return result;
    }

    [GeneratedRegex(@"Compiling entry function '([^']+)'")]
    private static partial Regex EntryLine();

    [GeneratedRegex(@"(\d+) bytes spill stores, (\d+) bytes spill loads")]
    private static partial Regex SpillLine();

    [GeneratedRegex(@"Used (\d+) registers")]
    private static partial Regex RegisterLine();

    /// <summary>The disk-cache form: log length, PTX length, log, PTX, image.</summary>
    internal byte[] Pack()
    {
        byte[] log = Encoding.UTF8.GetBytes(PtxasLog), ptx = Encoding.ASCII.GetBytes(Ptx);
        var packed = new byte[8 + log.Length + ptx.Length + Image.Length];
        BinaryPrimitives.WriteInt32LittleEndian(packed, log.Length);
        BinaryPrimitives.WriteInt32LittleEndian(packed.AsSpan(4), ptx.Length);
        log.CopyTo(packed, 8);
        ptx.CopyTo(packed, 8 + log.Length);
        Image.CopyTo(packed, 8 + log.Length + ptx.Length);
        return packed;
    }

    /// <summary>Reads <see cref="Pack"/>'s form back; null when it is damaged (the caller recompiles).</summary>
    internal static Cubin? TryUnpack(byte[] packed, string target)
    {
        if (packed.Length < 8) return null;
        int logLength = BinaryPrimitives.ReadInt32LittleEndian(packed), ptxLength = BinaryPrimitives.ReadInt32LittleEndian(packed.AsSpan(4));
        if (logLength < 0 || ptxLength < 0 || 8L + logLength + ptxLength >= packed.Length) return null;
        return new Cubin(target, packed[(8 + logLength + ptxLength)..], Encoding.UTF8.GetString(packed, 8, logLength),
            Encoding.ASCII.GetString(packed, 8 + logLength, ptxLength));
    }
}
