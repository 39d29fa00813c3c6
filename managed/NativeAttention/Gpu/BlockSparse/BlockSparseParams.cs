// C# mirror of kernels/blocksparse/blocksparse_params.h; field order, types and comments match the C struct.
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

[StructLayout(LayoutKind.Sequential)]
internal struct BlockSparseParams
{
    public QkvoParams Qkvo;   // Q, K, V, O, LSE and the sizes (common/qkvo_params.h)
    public int MaskStrideB;   // block-table rows between mask batches; 0 when the mask broadcasts over the batch
    public int MaskStrideH;   // block-table rows between mask heads; 0 when the mask broadcasts over heads
    public int MaskHeadDiv;   // query heads per mask head: the mask head of query head h is h / MaskHeadDiv
    public int QdocOffset;    // index in meta of the first query document id; unused unless Predicate == 3
    public int KdocOffset;    // index in meta of the first key document id; unused unless Predicate == 3
    public int Bq;            // query block size
    public int Bk;            // key block size
    public int QueryBlocks;   // ceil(nq / bq)
    public int RowTiles;      // work-groups per query block: ceil(min(bq, nq) / rows per work-group)
    public int Predicate;     // in partial blocks: 0 every element, 1 causal, 2 sliding window, 3 equal document ids, 4 prefix-LM
    public int WindowLeft;    // predicate 2: -1 unbounded
    public int WindowRight;   // predicate 2: -1 unbounded
    public int WindowCausal;  // predicate 2: 1 also hides keys after the aligned query position
    public int PrefixOffset;  // predicate 4: index in meta of the first prefix length
    public int PrefixStride;  // predicate 4: meta elements between samples' prefix lengths; 0 when one length is shared
    public int HasLse;        // 1: write LSE
    public float ScaleLog2;   // scale * log2(e)
    public float SoftcapLog2; // softcap c * log2(e); 0 without softcap
    public int Splits;        // key splits per row: 1 writes O (and LSE) directly, more write float32 partials for MergeStates
    public int Reserved;      // keeps the size a multiple of 8 without compiler padding
}
