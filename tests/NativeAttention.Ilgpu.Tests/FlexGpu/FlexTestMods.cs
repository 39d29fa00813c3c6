// Modifications the flex GPU tests run: every built-in option of the flash family written as a struct, compositions, and
// structs ILGPU cannot compile. The float64 reference (FlexReference) does not use them: each test states its mask and
// score again, plainly.
using ILGPU;

namespace NativeAttention.Ilgpu.Tests.FlexOnGpu;

/// <summary>Causal, bottom-right aligned: key k is visible to query q when <c>k &lt;= q + Shift</c> (Shift = Nk - Nq).</summary>
public struct CausalMask : IMaskMod
{
    public int Shift;
    public readonly bool Visible(int batch, int head, int query, int key) => key <= query + Shift;
}

/// <summary>Sliding window around the aligned query position: <c>q + Shift - Left &lt;= k &lt;= q + Shift + Right</c>.</summary>
public struct WindowMask : IMaskMod
{
    public int Left, Right, Shift;
    public readonly bool Visible(int batch, int head, int query, int key) => key >= query + Shift - Left && key <= query + Shift + Right;
}

/// <summary>Document mask: query and key carry the same document id ([B, Nq] and [B, Nk] views).</summary>
public struct DocumentMask : IMaskMod
{
    public ArrayView<int> QueryDocuments, KeyDocuments;
    public int Nq, Nk;
    public readonly bool Visible(int batch, int head, int query, int key) =>
        QueryDocuments[batch * Nq + query] == KeyDocuments[batch * Nk + key];
}

/// <summary>Prefix-LM: keys before the sample's prefix length are visible to every query, the rest causally.</summary>
public struct PrefixLmMask : IMaskMod
{
    public ArrayView<int> Prefixes;
    public int Shift;
    public readonly bool Visible(int batch, int head, int query, int key) => key < Prefixes[batch] || key <= query + Shift;
}

/// <summary>Both masks.</summary>
public struct AndMask<TFirst, TSecond> : IMaskMod where TFirst : struct, IMaskMod where TSecond : struct, IMaskMod
{
    public TFirst First;
    public TSecond Second;
    public readonly bool Visible(int batch, int head, int query, int key) => First.Visible(batch, head, query, key) && Second.Visible(batch, head, query, key);
}

/// <summary>Either mask.</summary>
public struct OrMask<TFirst, TSecond> : IMaskMod where TFirst : struct, IMaskMod where TSecond : struct, IMaskMod
{
    public TFirst First;
    public TSecond Second;
    public readonly bool Visible(int batch, int head, int query, int key) => First.Visible(batch, head, query, key) || Second.Visible(batch, head, query, key);
}

/// <summary>A padding mask: keys from <c>Length</c> on are padding.</summary>
public struct PaddingMask : IMaskMod
{
    public int Length;
    public readonly bool Visible(int batch, int head, int query, int key) => key < Length;
}

/// <summary>A checkerboard by key parity per head (a mask with many partial blocks and rows that see nothing).</summary>
public struct StripeMask : IMaskMod
{
    public int Period;
    public readonly bool Visible(int batch, int head, int query, int key) => (key / Period + head) % 2 == 0 && query % 5 != 3;
}

/// <summary>ALiBi: <c>s + slope[h] * (k - q - Shift)</c>, slopes read through a view.</summary>
public struct AlibiScore : IScoreMod
{
    public ArrayView<float> Slopes;
    public int Shift;
    public readonly float Score(float score, int batch, int head, int query, int key) => score + Slopes[head] * (key - query - Shift);
}

/// <summary>Softcap: <c>Cap * tanh(s / Cap)</c>.</summary>
public struct SoftcapScore : IScoreMod
{
    public float Cap;
    public readonly float Score(float score, int batch, int head, int query, int key) => Cap * MathF.Tanh(score / Cap);
}

/// <summary>A dense bias <c>[B, H, Nq, Nk]</c> read through a view.</summary>
public struct BiasScore : IScoreMod
{
    public ArrayView<float> Bias;
    public int Heads, Nq, Nk;
    public readonly float Score(float score, int batch, int head, int query, int key) =>
        score + Bias[(((long)batch * Heads + head) * Nq + query) * Nk + key];
}

/// <summary>A relative-position term with a scalar field: <c>s - Rate * |q - k|</c>.</summary>
public struct DistanceScore : IScoreMod
{
    public float Rate;
    public readonly float Score(float score, int batch, int head, int query, int key) => score - Rate * Math.Abs(query - key);
}

/// <summary><typeparamref name="TSecond"/> applied to <typeparamref name="TFirst"/>'s result.</summary>
public struct ThenScore<TFirst, TSecond> : IScoreMod where TFirst : struct, IScoreMod where TSecond : struct, IScoreMod
{
    public TFirst First;
    public TSecond Second;
    public readonly float Score(float score, int batch, int head, int query, int key) =>
        Second.Score(First.Score(score, batch, head, query, key), batch, head, query, key);
}

/// <summary>
/// Fields of every size and alignment, an empty struct and a nested struct with a view: each changes the score, so a
/// parameter block laid out unlike ILGPU's struct shows in the output.
/// </summary>
public struct MixedFieldsScore : IScoreMod
{
    public byte Small;
    public NoScoreMod Empty;
    public short Medium;
    public long Large;
    public AlibiScore Inner;
    public byte Tail;
    public float Weight;
    public readonly float Score(float score, int batch, int head, int query, int key) =>
        score * Weight + Small * 0.01f + Medium * 0.001f + Large * 1e-4f + Tail * 0.1f + Inner.Score(0, batch, head, query, key) + Empty.Score(0, batch, head, query, key);
}

/// <summary>Allocates a managed object (a class) on every call: ILGPU cannot compile it. (A small constant-size array it
/// can: ILGPU turns it into private memory.)</summary>
public struct ClassAllocatingScore : IScoreMod
{
    public readonly float Score(float score, int batch, int head, int query, int key)
    {
        var values = new List<float> { score, key };
        return values[query & 1];
    }
}

/// <summary>Holds a class: no kernel argument can.</summary>
public struct ClassFieldMask : IMaskMod
{
    public List<int> Keys;
    public readonly bool Visible(int batch, int head, int query, int key) => key < Keys.Count;
}

/// <summary>Holds a bool field, which OpenCL kernel arguments cannot hold.</summary>
public struct BoolFieldMask : IMaskMod
{
    public bool Invert;
    public readonly bool Visible(int batch, int head, int query, int key) => (key <= query) != Invert;
}

/// <summary>A per-key bias table <c>[Nk]</c> read through a view (a table sized one short reads past its end at the last key).</summary>
public struct KeyBiasScore : IScoreMod
{
    public ArrayView<float> Bias;
    public readonly float Score(float score, int batch, int head, int query, int key) => score + Bias[key];
}

/// <summary>A per-head weight read at <c>head - Offset</c>: with Offset 1, head 0 reads index -1.</summary>
public struct HeadGateMask : IMaskMod
{
    public ArrayView<int> Gates;
    public int Offset;
    public readonly bool Visible(int batch, int head, int query, int key) => Gates[head - Offset] != 0 || key <= query;
}
