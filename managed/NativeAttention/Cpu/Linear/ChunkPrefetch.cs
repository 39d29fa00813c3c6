// The next chunk's rows, prefetched a few cache lines at a time from inside the current chunk's products.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace NativeAttention.Cpu;

/// <summary>
/// A queue of cache lines to prefetch into L2, drained a few lines at a time (<see cref="Step"/>) between the register
/// blocks of a chunk's products instead of in one burst per tensor: a burst of a whole 8 KB tensor chunk fills the
/// core's miss buffers and stalls the products behind it until the lines arrive. Up to four regions of rows (a tensor's
/// rows of one chunk each); rows that lie back to back are walked as one run of lines. A hint only: results do not change.
/// </summary>
internal unsafe struct ChunkPrefetch
{
    private const int MaxRegions = 4;
    private fixed long _base[MaxRegions];
    private fixed long _stride[MaxRegions];
    private fixed long _bytes[MaxRegions];
    private fixed int _rows[MaxRegions];
    private int _count, _region, _row;
    private byte* _line, _last;

    /// <summary>Lines still queued (an upper bound: the current row's remainder counts whole).</summary>
    public long Pending { get; private set; }

    /// <summary>Empties the queue.</summary>
    public void Clear()
    {
        _count = 0; _region = 0; _row = 0; _line = null; _last = null; Pending = 0;
    }

    /// <summary>
    /// Queues <paramref name="rows"/> rows of <paramref name="bytes"/> bytes from <paramref name="first"/>, each
    /// <paramref name="stride"/> bytes after the previous; nothing when the queue holds four regions already.
    /// </summary>
    public void Add(byte* first, long stride, int rows, long bytes)
    {
        if (rows <= 0 || bytes <= 0 || _count == MaxRegions || !Sse.IsSupported) return;
        if (stride == bytes) { bytes *= rows; rows = 1; }
        _base[_count] = (long)first; _stride[_count] = stride; _bytes[_count] = bytes; _rows[_count] = rows;
        Pending += rows * ((bytes + 63) / 64 + 1);
        if (_count++ == 0) Start(0, 0);
    }

    private void Start(int region, int row)
    {
        _region = region; _row = row;
        byte* start = (byte*)_base[region] + row * _stride[region];
        _line = (byte*)((nuint)start & ~(nuint)63);
        _last = start + _bytes[region] - 1;
    }

    /// <summary>
    /// Prefetches the first queued line of every 4 KB page of the queued regions (each row's first line, then each
    /// page boundary inside it), so that the page walks of the whole queue start at once; the queue is not advanced.
    /// </summary>
    public void TouchPages()
    {
        if (!Sse.IsSupported) return;
        for (int r = 0; r < _count; r++)
            for (int row = 0; row < _rows[r]; row++)
            {
                byte* start = (byte*)_base[r] + row * _stride[r];
                byte* end = start + _bytes[r];
                Sse.Prefetch1(start);
                for (byte* page = (byte*)(((nuint)start + 4096) & ~(nuint)4095); page < end; page += 4096) Sse.Prefetch1(page);
            }
    }

    /// <summary>Prefetches the next <paramref name="lines"/> queued lines (fewer when the queue runs out).</summary>
    /// <remarks>
    /// The lines of the current run are issued from locals in an unrolled loop, and the count is settled once per run:
    /// stepping the fields line by line (a load, a store and a test per line) was about 7 % of the streamed chunk's time
    /// in wip-lin3's profile, on 512 lines per chunk.
    /// </remarks>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public void Step(int lines)
    {
        byte* line = _line, last = _last;
        while (lines > 0 && _region < _count)
        {
            if (line <= last)
            {
                long run = ((last - line) >> 6) + 1;
                int n = run < lines ? (int)run : lines;
                byte* end = line + ((long)n << 6);
                for (; line + 192 < end; line += 256)
                {
                    Sse.Prefetch1(line);
                    Sse.Prefetch1(line + 64);
                    Sse.Prefetch1(line + 128);
                    Sse.Prefetch1(line + 192);
                }
                for (; line < end; line += 64) Sse.Prefetch1(line);
                lines -= n;
                Pending -= n;
                continue;
            }
            if (_row + 1 < _rows[_region]) Start(_region, _row + 1);
            else if (_region + 1 < _count) Start(_region + 1, 0);
            else { _region = _count; Pending = 0; _line = line; return; }
            line = _line; last = _last;
        }
        _line = line;
    }
}
