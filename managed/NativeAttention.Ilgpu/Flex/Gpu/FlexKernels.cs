// The flex kernels, written in C# for ILGPU: ILGPU compiles them, specialised for the user's score and mask structs,
// to PTX and OpenCL C text without a device, and NativeAttention's runtime loads and launches that text
// (FlexCompiler, FlexArguments, FlexGpu). fp32, fp16 or bf16 storage (16-bit values converted by bit manipulation, so
// no device needs half-precision support: OpenCL's cl_khr_fp16 is optional), fp32 accumulation.
//
// Flex forward: one work-group of BQ x 8 work-items per (batch, query head, query tile of BQ rows). Query tiles are
// aligned to the block mask's query blocks (a mask block of 48 rows is three tiles of 16; of 40 rows, 16 + 16 + 8), so
// each tile reads one mask row. The tile walks that row's full blocks, then its partial ones (without a block mask:
// every key, each a partial element), in key tiles of BK: K, V tiles in shared memory; each work-item scores BK / 8 keys
// of its row (scale, mask modification on partial blocks only, score modification on visible scores); an online
// softmax (running max and sum per row, kept redundantly by the row's 8 work-items); the output row accumulates in
// shared memory, each work-item owning every 8th column.
//
// Block mask classification: one work-group per (mask row, key block) counts visible elements; compaction: one
// work-group per mask row lists full and partial key blocks in ascending order through a work-group exclusive scan
// (our own, in shared memory: ILGPU.Algorithms' group scan compiles to warp shuffles in PTX but to OpenCL C 2.0's
// work_group_scan_exclusive_add in OpenCL C, which our OpenCL C 1.2 program build does not offer).
using ILGPU;

namespace NativeAttention.Ilgpu.Flex.Gpu;

/// <summary>Tile shape of the flex kernel: rows per work-group, keys per tile, and the head-dim capacity of the shared tiles.</summary>
internal interface IFlexTile
{
    /// <summary>Largest Dqk and Dv the shared tiles hold.</summary>
    int HeadDims { get; }

    /// <summary>Query rows per work-group (BQ).</summary>
    int Rows { get; }

    /// <summary>Keys per shared tile (BK); a multiple of <see cref="FlexKernels.Lanes"/>.</summary>
    int Keys { get; }
}

/// <summary>Head dims up to 64: 16 rows x 16 keys, 18 KiB of shared memory.</summary>
internal readonly struct FlexTile64 : IFlexTile
{
    public int HeadDims => 64;
    public int Rows => 16;
    public int Keys => 16;
}

/// <summary>Head dims up to 128: 16 rows x 16 keys, 34 KiB of shared memory.</summary>
internal readonly struct FlexTile128 : IFlexTile
{
    public int HeadDims => 128;
    public int Rows => 16;
    public int Keys => 16;
}

/// <summary>Head dims up to 256: 8 rows x 8 keys, 33 KiB of shared memory.</summary>
internal readonly struct FlexTile256 : IFlexTile
{
    public int HeadDims => 256;
    public int Rows => 8;
    public int Keys => 8;
}

/// <summary>How the forward kernel reads and writes a storage element: fp32 as it is, fp16 and bf16 from their bits.</summary>
internal interface IFlexElement<TElement> where TElement : unmanaged
{
    float Load(TElement value);
    TElement Store(float value);
}

/// <summary>fp32 storage.</summary>
internal readonly struct Fp32Element : IFlexElement<float>
{
    public float Load(float value) => value;
    public float Store(float value) => value;
}

/// <summary>IEEE binary16 storage, as raw bits: exact widening; narrowing rounds to nearest even, overflow to infinity.</summary>
internal readonly struct Fp16Element : IFlexElement<ushort>
{
    public float Load(ushort value)
    {
        uint sign = (uint)(value & 0x8000) << 16, exponent = (uint)(value >> 10) & 0x1F, mantissa = value & 0x3FFu;
        if (exponent == 0)
        {
            float subnormal = (int)mantissa * 5.9604644775390625e-8f;   // mantissa x 2^-24, exact (int: ILGPU widens an unsigned conversion to double)
            return sign != 0 ? -subnormal : subnormal;
        }
        uint bits = exponent == 31 ? sign | 0x7F800000u | (mantissa << 13) : sign | ((exponent + 112) << 23) | (mantissa << 13);
        return ILGPU.Interop.IntAsFloat(bits);
    }

    public ushort Store(float value)
    {
        uint bits = ILGPU.Interop.FloatAsInt(value);
        uint sign = (bits >> 16) & 0x8000, magnitude = bits & 0x7FFFFFFF;
        if (magnitude >= 0x47800000)   // 65536 and above, infinities and NaNs
            return (ushort)(sign | (magnitude > 0x7F800000 ? 0x7E00u : 0x7C00u));
        if (magnitude < 0x38800000)   // below 2^-14: a half subnormal; adding 0.5 rounds the mantissa into place (RNE)
            return (ushort)(sign | (ILGPU.Interop.FloatAsInt(ILGPU.Interop.IntAsFloat(magnitude) + 0.5f) - 0x3F000000u));
        uint odd = (magnitude >> 13) & 1;
        magnitude += 0xC8000FFFu + odd;   // rebias the exponent (-112 << 23) and round to nearest even
        return (ushort)(sign | (magnitude >> 13));
    }
}

/// <summary>bfloat16 storage, as raw bits: exact widening; narrowing rounds to nearest even, NaN stays NaN.</summary>
internal readonly struct Bf16Element : IFlexElement<ushort>
{
    public float Load(ushort value) => ILGPU.Interop.IntAsFloat((uint)value << 16);

    public ushort Store(float value)
    {
        uint bits = ILGPU.Interop.FloatAsInt(value);
        if ((bits & 0x7FFFFFFF) > 0x7F800000) return (ushort)((bits >> 16) | 0x40);
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }
}

/// <summary>
/// The flex forward kernel's arguments. Q, K, V, O, Lse and Meta are views of whole root buffers (index 0); the element
/// offsets and strides below locate the tensors in them (long arithmetic: a view's own index is 32-bit on OpenCL).
/// </summary>
internal struct FlexForwardArgs<TScore, TMask, TElement>
    where TScore : struct, IScoreMod where TMask : struct, IMaskMod where TElement : unmanaged
{
    public ArrayView<TElement> Q;
    public ArrayView<TElement> K;
    public ArrayView<TElement> V;
    public ArrayView<TElement> O;
    public ArrayView<float> Lse;
    /// <summary>The block table (<see cref="FlexGpu"/>): per mask row, full blocks then partial ones; unused without a block mask.</summary>
    public ArrayView<int> Meta;
    public long QOffset, KOffset, VOffset, OOffset, LseOffset;
    public long QStrideB, QStrideH, QStrideN, QStrideD;
    public long KStrideB, KStrideH, KStrideN, KStrideD;
    public long VStrideB, VStrideH, VStrideN, VStrideD;
    public long OStrideB, OStrideH, OStrideN, OStrideD;
    public long LseStrideB, LseStrideH, LseStrideN;
    public int Batch, HeadsQ, Group, Nq, Nk, Dqk, Dv;
    public float Scale;
    public int HasLse;
    /// <summary>1 when <see cref="Meta"/> holds a block table.</summary>
    public int HasBlockMask;
    /// <summary>Query block size of the mask rows (the tile's rows without a block mask).</summary>
    public int QueryBlockSize;
    /// <summary>Key block size of the mask (the tile's keys without a block mask).</summary>
    public int KeyBlockSize;
    /// <summary>Query tiles per mask row: ceil(QueryBlockSize / BQ).</summary>
    public int TilesPerBlock;
    /// <summary>Mask rows (query blocks) per (batch, head).</summary>
    public int QueryBlocks;
    /// <summary>Key blocks per row without a block mask.</summary>
    public int KeyBlocks;
    /// <summary>Mask row strides: batch (0 broadcasts), mask head (0 broadcasts); mask head = h / MaskHeadDiv.</summary>
    public int MaskStrideB, MaskStrideH, MaskHeadDiv;
    /// <summary>The view bounds checks' error buffer (<see cref="FlexViewChecks"/>): its record part.</summary>
    public ArrayView<int> Errors;
    public TScore ScoreMod;
    public TMask MaskMod;
}

/// <summary>The block classification kernel's arguments: class per (mask row, key block), 0 empty, 1 partial, 2 full.</summary>
internal struct FlexClassifyArgs<TMask> where TMask : struct, IMaskMod
{
    public ArrayView<int> Classes;
    public int Heads, Nq, Nk, QueryBlockSize, KeyBlockSize, QueryBlocks, KeyBlocks;
    /// <summary>The view bounds checks' error buffer (<see cref="FlexViewChecks"/>): its record part.</summary>
    public ArrayView<int> Errors;
    public TMask MaskMod;
}

/// <summary>The compaction kernel's arguments: per row, counts and ascending full / partial lists from the classes.</summary>
internal struct FlexCompactArgs
{
    public ArrayView<int> Classes;
    /// <summary><c>[R]</c> full counts, <c>[R]</c> partial counts, <c>[R, KeyBlocks]</c> full indices, <c>[R, KeyBlocks]</c> partial indices.</summary>
    public ArrayView<int> Output;
    public int Rows, KeyBlocks;
}

internal static class FlexKernels
{
    /// <summary>Work-items per query row in the forward kernel.</summary>
    public const int Lanes = 8;

    /// <summary>Work-items per group of the classification and compaction kernels.</summary>
    public const int MaskThreads = 128;

    /// <summary>Work-items per group of the forward kernel for <typeparamref name="TTile"/>.</summary>
    public static int Threads<TTile>() where TTile : struct, IFlexTile => default(TTile).Rows * Lanes;

    /// <summary>The flex forward kernel (explicitly grouped: Grid.IdxX = (b * Hq + h) * tiles + tile).</summary>
    public static void Forward<TScore, TMask, TTile, TElement, TCodec>(FlexForwardArgs<TScore, TMask, TElement> a)
        where TScore : struct, IScoreMod where TMask : struct, IMaskMod where TTile : struct, IFlexTile
        where TElement : unmanaged where TCodec : struct, IFlexElement<TElement>
    {
        const int lanes = Lanes;
        // Row strides: V rows are read along the row (consecutive lanes, consecutive columns) and keep HeadDims; Q, K and
        // O rows are read down a column by lanes of different rows or keys, so they are padded by one word: a stride of
        // 64 or 128 words would put every such lane in one shared-memory bank.
        int dm = default(TTile).HeadDims, pm = default(TTile).HeadDims + 1, bq = default(TTile).Rows, bk = default(TTile).Keys;
        var qs = SharedMemory.Allocate<float>(default(TTile).Rows * (default(TTile).HeadDims + 1));
        var ks = SharedMemory.Allocate<float>(default(TTile).Keys * (default(TTile).HeadDims + 1));
        var vs = SharedMemory.Allocate<float>(default(TTile).Keys * default(TTile).HeadDims);
        var os = SharedMemory.Allocate<float>(default(TTile).Rows * (default(TTile).HeadDims + 1));
        var ss = SharedMemory.Allocate<float>(default(TTile).Rows * default(TTile).Keys);

        int tid = Group.IdxX;
        int row = tid / lanes, lane = tid - row * lanes;
        int tilesPerHead = a.QueryBlocks * a.TilesPerBlock;
        int group = Grid.IdxX;
        int bh = group / tilesPerHead;
        int tile = group - bh * tilesPerHead;
        int b = bh / a.HeadsQ, h = bh - b * a.HeadsQ, hk = h / a.Group;
        int maskRow = tile / a.TilesPerBlock;
        int q0 = maskRow * a.QueryBlockSize + (tile - maskRow * a.TilesPerBlock) * bq;
        int qEnd = IntrinsicMath.Min(IntrinsicMath.Min(q0 + bq, (maskRow + 1) * a.QueryBlockSize), a.Nq);
        int rows = qEnd - q0;
        if (rows <= 0) return;   // uniform across the group: a ragged last mask block leaves tiles without rows
        FlexViewChecks.Begin();

        long qBase = a.QOffset + b * a.QStrideB + h * a.QStrideH;
        for (int i = tid; i < bq * a.Dqk; i += bq * lanes)
        {
            int r = i / a.Dqk, d = i - r * a.Dqk;
            qs[r * pm + d] = r < rows ? default(TCodec).Load(a.Q[qBase + (q0 + r) * a.QStrideN + d * a.QStrideD]) : 0.0f;
        }
        for (int c = lane; c < a.Dv; c += lanes) os[row * pm + c] = 0.0f;

        // The block list of this tile's mask row: [first, partialStart) full, [partialStart, end) partial.
        int first = 0, partialStart = 0, end = a.KeyBlocks;
        int blockSize = a.KeyBlockSize;
        if (a.HasBlockMask != 0)
        {
            int r = b * a.MaskStrideB + (h / a.MaskHeadDiv) * a.MaskStrideH + maskRow;
            first = a.Meta[2 * r];
            partialStart = a.Meta[2 * r + 1];
            end = a.Meta[2 * r + 2];
        }

        float m = float.NegativeInfinity, l = 0.0f;
        long kBase = a.KOffset + b * a.KStrideB + hk * a.KStrideH;
        long vBase = a.VOffset + b * a.VStrideB + hk * a.VStrideH;
        int q = q0 + row;
        for (int entry = first; entry < end; entry++)
        {
            int kb = a.HasBlockMask != 0 ? a.Meta[entry] : entry;
            bool full = entry < partialStart;
            int k0 = kb * blockSize;
            int kEnd = IntrinsicMath.Min(k0 + blockSize, a.Nk);
            for (int kt = k0; kt < kEnd; kt += bk)
            {
                int cols = IntrinsicMath.Min(bk, kEnd - kt);
                Group.Barrier();   // the previous tile's readers are done with ks, vs and ss
                for (int i = tid; i < bk * a.Dqk; i += bq * lanes)
                {
                    int j = i / a.Dqk, d = i - j * a.Dqk;
                    ks[j * pm + d] = j < cols ? default(TCodec).Load(a.K[kBase + (kt + j) * a.KStrideN + d * a.KStrideD]) : 0.0f;
                }
                for (int i = tid; i < bk * a.Dv; i += bq * lanes)
                {
                    int j = i / a.Dv, d = i - j * a.Dv;
                    vs[j * dm + d] = j < cols ? default(TCodec).Load(a.V[vBase + (kt + j) * a.VStrideN + d * a.VStrideD]) : 0.0f;
                }
                Group.Barrier();

                for (int j = lane; j < bk; j += lanes)
                {
                    float s = float.NegativeInfinity;
                    if (row < rows && j < cols)
                    {
                        int k = kt + j;
                        if (full || a.MaskMod.Visible(b, h, q, k))
                        {
                            float dot = 0.0f;
                            for (int d = 0; d < a.Dqk; d++) dot += qs[row * pm + d] * ks[j * pm + d];
                            s = a.ScoreMod.Score(dot * a.Scale, b, h, q, k);
                        }
                    }
                    ss[row * bk + j] = s;
                }
                Group.Barrier();

                float tileMax = float.NegativeInfinity;
                for (int j = 0; j < bk; j++) tileMax = IntrinsicMath.Max(tileMax, ss[row * bk + j]);
                float mNew = IntrinsicMath.Max(m, tileMax);
                Group.Barrier();   // every lane read the scores before any overwrites them with probabilities
                if (mNew != float.NegativeInfinity)
                {
                    for (int j = lane; j < bk; j += lanes)
                    {
                        float s = ss[row * bk + j];
                        ss[row * bk + j] = s == float.NegativeInfinity ? 0.0f : MathF.Exp(s - mNew);
                    }
                }
                Group.Barrier();
                if (mNew != float.NegativeInfinity)
                {
                    float alpha = MathF.Exp(m - mNew);   // exp(-inf) = 0 while the row had seen nothing
                    float sum = 0.0f;
                    for (int j = 0; j < bk; j++) sum += ss[row * bk + j];
                    for (int c = lane; c < a.Dv; c += lanes)
                    {
                        float acc = os[row * pm + c] * alpha;
                        for (int j = 0; j < bk; j++) acc += ss[row * bk + j] * vs[j * dm + c];
                        os[row * pm + c] = acc;
                    }
                    l = l * alpha + sum;
                    m = mNew;
                }
            }
        }

        if (row < rows)
        {
            float inverse = l > 0.0f ? 1.0f / l : 0.0f;
            long oBase = a.OOffset + b * a.OStrideB + h * a.OStrideH + q * a.OStrideN;
            for (int c = lane; c < a.Dv; c += lanes) a.O[oBase + c * a.OStrideD] = default(TCodec).Store(os[row * pm + c] * inverse);
            if (a.HasLse != 0 && lane == 0)
                a.Lse[a.LseOffset + b * a.LseStrideB + h * a.LseStrideH + q * a.LseStrideN] =
                    l > 0.0f ? m + MathF.Log(l) : float.NegativeInfinity;
        }
        FlexViewChecks.End(a.Errors);
    }

    /// <summary>
    /// Classifies block (row, key block), Grid.IdxX = row * KeyBlocks + key block with row = (b * H + h) * QueryBlocks +
    /// query block: counts the visible elements inside the sequence bounds; none is empty, all is full.
    /// </summary>
    public static void Classify<TMask>(FlexClassifyArgs<TMask> a) where TMask : struct, IMaskMod
    {
        var counts = SharedMemory.Allocate<int>(MaskThreads);
        int tid = Group.IdxX;
        int group = Grid.IdxX;
        int row = group / a.KeyBlocks, kb = group - row * a.KeyBlocks;
        int bh = row / a.QueryBlocks, qb = row - bh * a.QueryBlocks;
        int b = bh / a.Heads, h = bh - b * a.Heads;
        int q0 = qb * a.QueryBlockSize, k0 = kb * a.KeyBlockSize;
        int rows = IntrinsicMath.Min(a.QueryBlockSize, a.Nq - q0), cols = IntrinsicMath.Min(a.KeyBlockSize, a.Nk - k0);
        int visible = 0;
        FlexViewChecks.Begin();
        for (int i = tid; i < rows * cols; i += MaskThreads)
        {
            int r = i / cols, c = i - r * cols;
            if (a.MaskMod.Visible(b, h, q0 + r, k0 + c)) visible++;
        }
        counts[tid] = visible;
        Group.Barrier();
        if (tid == 0)
        {
            int total = 0;
            for (int i = 0; i < MaskThreads; i++) total += counts[i];
            a.Classes[group] = total == 0 ? 0 : total == rows * cols ? 2 : 1;
        }
        FlexViewChecks.End(a.Errors);
    }

    /// <summary>
    /// Compacts row Grid.IdxX of the classes into its full and partial block lists, ascending: chunks of
    /// <see cref="MaskThreads"/> key blocks, each through an exclusive scan of (full, partial) flags in shared memory.
    /// </summary>
    public static void Compact(FlexCompactArgs a)
    {
        var fullScan = SharedMemory.Allocate<int>(MaskThreads);
        var partialScan = SharedMemory.Allocate<int>(MaskThreads);
        int tid = Group.IdxX;
        int row = Grid.IdxX;
        int fullBase = 0, partialBase = 0;
        long fullIndices = 2L * a.Rows + (long)row * a.KeyBlocks;
        long partialIndices = 2L * a.Rows + (long)a.Rows * a.KeyBlocks + (long)row * a.KeyBlocks;
        for (int chunk = 0; chunk < a.KeyBlocks; chunk += MaskThreads)
        {
            int kb = chunk + tid;
            int cls = kb < a.KeyBlocks ? a.Classes[(long)row * a.KeyBlocks + kb] : 0;
            int isFull = cls == 2 ? 1 : 0, isPartial = cls == 1 ? 1 : 0;
            fullScan[tid] = isFull;
            partialScan[tid] = isPartial;
            Group.Barrier();
            // Hillis-Steele inclusive scan: log2(MaskThreads) steps, each read before any write of the step.
            for (int offset = 1; offset < MaskThreads; offset *= 2)
            {
                int f = tid >= offset ? fullScan[tid - offset] : 0;
                int p = tid >= offset ? partialScan[tid - offset] : 0;
                Group.Barrier();
                fullScan[tid] += f;
                partialScan[tid] += p;
                Group.Barrier();
            }
            if (isFull != 0) a.Output[fullIndices + fullBase + fullScan[tid] - 1] = kb;
            if (isPartial != 0) a.Output[partialIndices + partialBase + partialScan[tid] - 1] = kb;
            fullBase += fullScan[MaskThreads - 1];
            partialBase += partialScan[MaskThreads - 1];
            Group.Barrier();   // the totals are read before the next chunk overwrites the scans
        }
        if (tid == 0)
        {
            a.Output[row] = fullBase;
            a.Output[a.Rows + row] = partialBase;
        }
    }
}
