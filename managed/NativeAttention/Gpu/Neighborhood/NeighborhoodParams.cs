// C# mirror of kernels/neighborhood/neighborhood_params.h; field order, types and comments match the C struct.
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct NeighborhoodParams
{
    public QkvoParams Qkvo;            // Q, K, V, O, LSE and the sizes; Nq = Nk = tokens; *StrideN: the last spatial axis' strides
    public fixed long QStrideX[3];     // Q element strides of the internal axes x, y, z
    public fixed long KStrideX[3];     // K element strides of the internal axes
    public fixed long VStrideX[3];     // V element strides of the internal axes
    public fixed long OStrideX[3];     // O element strides of the internal axes
    public fixed long LseStrideX[3];   // LSE element strides of the internal axes; unused without has_lse
    public long EkOffset;              // element offset of AdditionalKeys[0,0,0,0]; unused when n_extra == 0
    public long EkStrideB;             // AdditionalKeys element strides: batch, kv head, token, feature
    public long EkStrideH;
    public long EkStrideN;
    public long EkStrideD;
    public long EvOffset;              // element offset of AdditionalValues[0,0,0,0]
    public long EvStrideB;             // AdditionalValues element strides: batch, kv head, token, feature
    public long EvStrideH;
    public long EvStrideN;
    public long EvStrideD;
    public long RpbOffset;             // element offset of RelativePositionBias[0, 0..]; unused without has_rpb
    public long RpbStrideH;            // RelativePositionBias element strides: query head, then the offset axes
    public fixed long RpbStrideX[3];   // (internal axes; 0 for a padding axis, whose only offset is 0)
    public fixed int Length[3];        // axis lengths
    public fixed int KernelSize[3];    // kernel size per axis
    public fixed int Dilation[3];      // dilation per axis
    public fixed int Stride[3];        // query stride per axis
    public fixed int Causal[3];        // 1: the axis is causal
    public fixed int Tile[3];          // query tile extent per axis (group coordinates)
    public fixed int Tiles[3];         // query tiles per axis, over every dilation group
    public int NExtra;                 // additional key/value tokens, visible to every query
    public int HasLse;                 // 1: write LSE
    public int HasRpb;                 // 1: add the relative-position bias to grid keys' scores
    public int HasExtent;              // 1: the extents buffer holds the valid extent per sample and internal axis, [B][3]
    public float ScaleLog2;            // scale * log2(e)
}
