// The built-in options of Flash and BlockSparse written as Flex modifications whose tables are ILGPU view fields made by
// FlexViews.Of: the same structs run on the CPU (views of host tensors) and on OpenCL and CUDA (views of device tensors).
using ILGPU;

namespace NativeAttention.Ilgpu.Tests.Flex;

/// <summary>Bottom-right aligned causal mask: query i sits at <c>i + Shift</c> (Shift = Nk - Nq).</summary>
public struct ViewCausalMask : IMaskMod
{
    public int Shift;
    public readonly bool Visible(int batch, int head, int query, int key) => key <= query + Shift;
}

/// <summary>Sliding window (Left, Right; -1 unbounded) around the aligned query position; causal when Causal is 1.</summary>
public struct ViewWindowMask : IMaskMod
{
    public int Left, Right, Shift, Causal;
    public readonly bool Visible(int batch, int head, int query, int key)
    {
        int at = query + Shift;
        return (Left < 0 || key >= at - Left) && (Right < 0 || key <= at + Right) && (Causal == 0 || key <= at);
    }
}

/// <summary>ALiBi: <c>s - Slopes[h] |i + Shift - j|</c>, the slopes a view.</summary>
public struct ViewAlibiScore : IScoreMod
{
    public ArrayView<float> Slopes;
    public int Shift;
    public readonly float Score(float score, int batch, int head, int query, int key) => score - Slopes[head] * Math.Abs(query + Shift - key);
}

/// <summary>Softcap: <c>Cap tanh(s / Cap)</c>.</summary>
public struct ViewSoftcapScore : IScoreMod
{
    public float Cap;
    public readonly float Score(float score, int batch, int head, int query, int key) => Cap * MathF.Tanh(score / Cap);
}

/// <summary>Softcap, then ALiBi (the built-in order).</summary>
public struct ViewSoftcapAlibiScore : IScoreMod
{
    public float Cap;
    public ViewAlibiScore Alibi;
    public readonly float Score(float score, int batch, int head, int query, int key) =>
        Alibi.Score(Cap * MathF.Tanh(score / Cap), batch, head, query, key);
}

/// <summary>A dense additive bias <c>[Batches (1 or B), Heads (1 or Hq), Nq, Nk]</c>, a view.</summary>
public struct ViewBiasScore : IScoreMod
{
    public ArrayView<float> Bias;
    public int Batches, Heads, Nq, Nk;
    public readonly float Score(float score, int batch, int head, int query, int key) =>
        score + Bias[(((long)(Batches == 1 ? 0 : batch) * Heads + (Heads == 1 ? 0 : head)) * Nq + query) * Nk + key];
}

/// <summary>Document mask: query and key carry the same id (views of <c>[B, Nq]</c> and <c>[B, Nk]</c> ids).</summary>
public struct ViewDocumentMask : IMaskMod
{
    public ArrayView<int> QueryDocuments, KeyDocuments;
    public int Nq, Nk;
    public readonly bool Visible(int batch, int head, int query, int key) =>
        QueryDocuments[batch * Nq + query] == KeyDocuments[batch * Nk + key];
}

/// <summary>Prefix-LM: keys before the sample's prefix (a view of <c>[B]</c> lengths) are visible to all, the rest causally.</summary>
public struct ViewPrefixLmMask : IMaskMod
{
    public ArrayView<int> Prefixes;
    public int Shift;
    public readonly bool Visible(int batch, int head, int query, int key) => key < Prefixes[batch] || key <= query + Shift;
}

/// <summary>A score modification that reads its view at <c>Index</c> for key <c>AtKey</c> and at 0 elsewhere (an out-of-range read in the middle of the call).</summary>
public struct ViewReadAtKeyScore : IScoreMod
{
    public ArrayView<float> Table;
    public int AtKey, Index;
    public readonly float Score(float score, int batch, int head, int query, int key) => score + Table[key == AtKey ? Index : 0];
}

/// <summary>A mask modification that reads a document id per key from its view (too short a view reads out of range).</summary>
public struct ViewKeyTableMask : IMaskMod
{
    public ArrayView<int> Ids;
    public readonly bool Visible(int batch, int head, int query, int key) => Ids[key] >= 0;
}
