// C# mirror of kernels/decode/decode_params.h; field order, types and comments match the C struct.
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct DecodeParams
{
    /// <summary>NA_INLINE_LENGTHS: batch sizes up to this pass their cache lengths inside the struct.</summary>
    public const int InlineLengths = 64;

    public QkvoParams Qkvo;            // Q, keyCache, valueCache, O, LSE and the sizes; Qkvo.Nk is 0 (lengths vary per batch element)
    public long NkOffset;              // element offset of NewKey[0,0,0,0]; unused when nnew == 0
    public long NvOffset;              // element offset of NewValue[0,0,0,0]
    public long CosOffset;             // element offset of RotaryCos[0,0]; unused when rotary == 0
    public long SinOffset;             // element offset of RotarySin[0,0]
    public long AlibiOffset;           // element offset of the first float32 ALiBi slope; unused when has_alibi == 0
    public long SinksOffset;           // element offset of the first float32 sink logit; unused when has_sinks == 0
    public long NkStrideB;             // NewKey element strides: batch, kv head, token, feature
    public long NkStrideH;
    public long NkStrideN;
    public long NkStrideD;
    public long NvStrideB;             // NewValue element strides: batch, kv head, token, feature
    public long NvStrideH;
    public long NvStrideN;
    public long NvStrideD;
    public long CosStrideP;            // RotaryCos element strides: position, pair
    public long CosStrideI;
    public long SinStrideP;            // RotarySin element strides: position, pair
    public long SinStrideI;
    public long AlibiStrideB;          // slope strides: batch (0 for [Hq] slopes), head
    public long AlibiStrideH;
    public long SinksStrideH;          // sink stride over heads
    public int Nnew;                   // tokens appended per batch element
    public int PageSize;               // tokens per block when paged, else the cache capacity
    public int BlocksPerSeq;           // block-table columns (1 when contiguous)
    public int RotaryHalf;             // RotaryDim / 2; 0 without rotary
    public int WindowLeft;             // -1 unbounded
    public int WindowRight;            // -1 unbounded
    public int Causal;                 // 1: bottom-right causal against L_b
    public int HasLse;                 // 1: write LSE
    public int Splits;                 // key-axis splits S; > 1 writes float32 partials that na_decode_combine merges
    public int RowChunks;              // work-groups per (b, kv head, split) along the G * Nq rows
    public int Paged;                  // 1: caches are [NumBlocks, Hkv, PageSize, D] addressed through the block table
    public int Rotary;                 // 0 none, 1 half-split pairs (i, i + R/2) (GPT-NeoX), 2 interleaved pairs (2i, 2i + 1) (GPT-J)
    public int HasAlibi;               // 1: s -= slope_h |i' - j|
    public int HasSinks;               // 1: a per-head logit joins the softmax denominator
    public int Sigmoid;                // 1: unnormalised sigmoid(s' + b) weights instead of softmax
    public int HasSoftcap;             // 1: s = c tanh(s / c)
    public int LengthsInMeta;          // 1: the cache lengths are meta[0 .. B) and the block table follows; 0: they are `lengths`
    public float ScaleLog2;            // scale * log2(e)
    public float SoftcapLog2;          // softcap c * log2(e); unused when has_softcap == 0
    public float SigmoidBias;          // b of sigmoid(s' + b); unused when sigmoid == 0
    public fixed int Lengths[InlineLengths]; // CacheSeqLens[b] when lengths_in_meta == 0
}
