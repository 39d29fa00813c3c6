// C# mirror of kernels/common/qkvo_params.h, the Q/K/V/O block every attention family's params struct embeds first;
// field order, types and comments match the C struct.
using System.Runtime.InteropServices;

namespace NativeAttention.Gpu;

[StructLayout(LayoutKind.Sequential)]
internal struct QkvoParams
{
    public long QOffset;      // element offset of Q[0,0,0,0] from the Q buffer's base
    public long KOffset;      // element offset of K[0,0,0,0]
    public long VOffset;      // element offset of V[0,0,0,0]
    public long OOffset;      // element offset of O[0,0,0,0]
    public long LseOffset;    // element offset of LSE[0,0,0]; unused when the family writes no LSE
    public long QStrideB, QStrideH, QStrideN, QStrideD;  // Q element strides: batch, head, token, feature
    public long KStrideB, KStrideH, KStrideN, KStrideD;  // K element strides: batch, kv head, token, feature
    public long VStrideB, VStrideH, VStrideN, VStrideD;  // V element strides: batch, kv head, token, feature
    public long OStrideB, OStrideH, OStrideN, OStrideD;  // O element strides: batch, head, token, feature
    public long LseStrideB, LseStrideH, LseStrideN;      // LSE element strides: batch, head, token
    public int Batch;         // B
    public int HeadsQ;        // Hq
    public int HeadsKv;       // Hkv (divides Hq)
    public int Group;         // Hq / Hkv
    public int Nq;            // query length
    public int Nk;            // key length; 0 where it differs per batch element (KV-cache decode)
    public int Dqk;           // query/key head dim
    public int Dv;            // value head dim

    /// <summary>
    /// The block of a validated call: offsets (each storage's offset inside its root buffer included) and strides of the
    /// rank-4 views <paramref name="q"/>, <paramref name="k"/>, <paramref name="v"/>, <paramref name="o"/> and the rank-3
    /// <paramref name="lse"/> (zeros when absent), then the sizes.
    /// </summary>
    public static QkvoParams From(in TensorView q, in TensorView k, in TensorView v, in TensorView o, in TensorView? lse,
        int batch, int headsQ, int headsKv, int nq, int nk, int dqk, int dv)
    {
        var p = new QkvoParams
        {
            QOffset = GpuFlash.ElementOffset(q), KOffset = GpuFlash.ElementOffset(k),
            VOffset = GpuFlash.ElementOffset(v), OOffset = GpuFlash.ElementOffset(o),
            QStrideB = q.Strides[0], QStrideH = q.Strides[1], QStrideN = q.Strides[2], QStrideD = q.Strides[3],
            KStrideB = k.Strides[0], KStrideH = k.Strides[1], KStrideN = k.Strides[2], KStrideD = k.Strides[3],
            VStrideB = v.Strides[0], VStrideH = v.Strides[1], VStrideN = v.Strides[2], VStrideD = v.Strides[3],
            OStrideB = o.Strides[0], OStrideH = o.Strides[1], OStrideN = o.Strides[2], OStrideD = o.Strides[3],
            Batch = batch, HeadsQ = headsQ, HeadsKv = headsKv, Group = headsQ / headsKv,
            Nq = nq, Nk = nk, Dqk = dqk, Dv = dv,
        };
        if (lse is { } l)
        {
            p.LseOffset = GpuFlash.ElementOffset(l);
            (p.LseStrideB, p.LseStrideH, p.LseStrideN) = (l.Strides[0], l.Strides[1], l.Strides[2]);
        }
        return p;
    }
}
