// The built-in options of Flash and BlockSparse written as Flex modifications, and random compositions of them.
using System.Runtime.Intrinsics;

namespace NativeAttention.Ilgpu.Tests.Flex;

/// <summary>Bottom-right aligned causal mask: query i sits at <c>i + Nk - Nq</c>.</summary>
public readonly struct CausalMask(int queryLength, int keyLength) : IMaskMod
{
    public bool Visible(int batch, int head, int query, int key) => key <= query + keyLength - queryLength;
}

/// <summary>Sliding window (left, right; -1 unbounded) around the aligned query position, optionally causal.</summary>
public readonly struct WindowMask(int queryLength, int keyLength, int left, int right, bool causal) : IMaskMod
{
    public bool Visible(int batch, int head, int query, int key)
    {
        long at = (long)query + keyLength - queryLength;
        return (left < 0 || key >= at - left) && (right < 0 || key <= at + right) && (!causal || key <= at);
    }
}

/// <summary>Document mask: query and key carry the same id (ids <c>[B, Nq]</c> and <c>[B, Nk]</c> in array fields).</summary>
public readonly struct DocumentMask(int[] queryDocuments, int[] keyDocuments, int queryLength, int keyLength) : IMaskMod
{
    public bool Visible(int batch, int head, int query, int key) =>
        queryDocuments[batch * queryLength + query] == keyDocuments[batch * keyLength + key];
}

/// <summary>Prefix-LM: keys before the sample's prefix are visible to all, the rest causally (prefix <c>[B]</c> or <c>[1]</c>).</summary>
public readonly struct PrefixLmMask(int[] prefixes, int queryLength, int keyLength) : IMaskMod
{
    public bool Visible(int batch, int head, int query, int key) =>
        key < prefixes[prefixes.Length == 1 ? 0 : batch] || key <= query + keyLength - queryLength;
}

/// <summary>ALiBi: <c>s - slope[h] |i + Nk - Nq - j|</c>, with a vector form.</summary>
public readonly struct AlibiScore(float[] slopes, int queryLength, int keyLength) : IScoreModVector
{
    public float Score(float score, int batch, int head, int query, int key) =>
        score - slopes[head] * Math.Abs(query + keyLength - queryLength - key);

    public Vector256<float> Score(Vector256<float> score, int batch, Vector256<int> head, Vector256<int> query, int key) =>
        score - FlexVector.Gather(slopes, head) * Vector256.ConvertToSingle(Vector256.Abs(query + Vector256.Create(keyLength - queryLength - key)));
}

/// <summary>ALiBi without the vector form (the kernel's scalar path).</summary>
public readonly struct ScalarAlibiScore(float[] slopes, int queryLength, int keyLength) : IScoreMod
{
    public float Score(float score, int batch, int head, int query, int key) =>
        score - slopes[head] * Math.Abs(query + keyLength - queryLength - key);
}

/// <summary>Softcap: <c>c tanh(s / c)</c>.</summary>
public readonly struct SoftcapScore(float cap) : IScoreMod
{
    public float Score(float score, int batch, int head, int query, int key) => cap * MathF.Tanh(score / cap);
}

/// <summary>Softcap, then ALiBi: the built-in order.</summary>
public readonly struct SoftcapAlibiScore(float cap, float[] slopes, int queryLength, int keyLength) : IScoreMod
{
    public float Score(float score, int batch, int head, int query, int key) =>
        cap * MathF.Tanh(score / cap) - slopes[head] * Math.Abs(query + keyLength - queryLength - key);
}

/// <summary>A dense additive bias <c>[B|1, Hq|1, Nq, Nk]</c> read through an array field.</summary>
public readonly struct DenseBiasScore(float[] bias, int batches, int heads, int queryLength, int keyLength) : IScoreMod
{
    public float Score(float score, int batch, int head, int query, int key) =>
        score + bias[(((long)(batches == 1 ? 0 : batch) * heads + (heads == 1 ? 0 : head)) * queryLength + query) * keyLength + key];
}

/// <summary>One step of a random score program.</summary>
public readonly record struct ScoreStep(ScoreStepKind Kind, float A);

/// <summary>The kinds of score steps.</summary>
public enum ScoreStepKind { Softcap, Alibi, Bias, Scale, HeadOffset, KeyParity }

/// <summary>A random composition of score modifications, applied in order (tables in fields).</summary>
public readonly struct ScoreProgram(ScoreStep[] steps, float[] slopes, float[] bias, int heads, int queryLength, int keyLength) : IScoreMod
{
    public float Score(float score, int batch, int head, int query, int key)
    {
        foreach (var step in steps)
        {
            score = step.Kind switch
            {
                ScoreStepKind.Softcap => step.A * MathF.Tanh(score / step.A),
                ScoreStepKind.Alibi => score - slopes[head] * Math.Abs(query + keyLength - queryLength - key),
                ScoreStepKind.Bias => score + bias[(((long)batch * heads + head) * queryLength + query) * keyLength + key],
                ScoreStepKind.Scale => score * step.A,
                ScoreStepKind.HeadOffset => score + step.A * head,
                _ => (key & 1) == 0 ? score + step.A : score,
            };
        }
        return score;
    }

    public override string ToString() => string.Join(" -> ", steps.Select(s => $"{s.Kind}({s.A:G3})"));
}

/// <summary>The same program with a vector form that evaluates the scalar one lane by lane (checks the lanes' indices).</summary>
public readonly struct VectorScoreProgram(ScoreProgram program) : IScoreModVector
{
    public float Score(float score, int batch, int head, int query, int key) => program.Score(score, batch, head, query, key);

    public Vector256<float> Score(Vector256<float> score, int batch, Vector256<int> head, Vector256<int> query, int key)
    {
        Span<float> lanes = stackalloc float[8];
        for (int i = 0; i < 8; i++) lanes[i] = program.Score(score[i], batch, head[i], query[i], key);
        return Vector256.Create((ReadOnlySpan<float>)lanes);
    }

    public override string ToString() => program + " (vector form)";
}

/// <summary>One clause of a random mask program.</summary>
public readonly record struct MaskClause(MaskClauseKind Kind, int A, int B);

/// <summary>The kinds of mask clauses.</summary>
public enum MaskClauseKind { Causal, Window, Document, Prefix, KeyStripe, HiddenQueries, HeadCausal }

/// <summary>A random composition of masks: every clause (or any clause) must hold.</summary>
public readonly struct MaskProgram(MaskClause[] clauses, bool any, int[] queryDocuments, int[] keyDocuments, int[] prefixes, int queryLength, int keyLength) : IMaskMod
{
    public bool Visible(int batch, int head, int query, int key)
    {
        foreach (var clause in clauses)
        {
            bool holds = Holds(clause, batch, head, query, key);
            if (any && holds) return true;
            if (!any && !holds) return false;
        }
        return !any || clauses.Length == 0;
    }

    private bool Holds(MaskClause c, int batch, int head, int query, int key)
    {
        long at = (long)query + keyLength - queryLength;
        return c.Kind switch
        {
            MaskClauseKind.Causal => key <= at,
            MaskClauseKind.Window => key >= at - c.A && key <= at + c.B,
            MaskClauseKind.Document => queryDocuments[batch * queryLength + query] == keyDocuments[batch * keyLength + key],
            MaskClauseKind.Prefix => key < prefixes[batch] || key <= at,
            MaskClauseKind.KeyStripe => key % c.A != c.B,
            MaskClauseKind.HiddenQueries => query % c.A != c.B,
            _ => head % 2 == 0 || key <= at,
        };
    }

    public override string ToString() => string.Join(any ? " | " : " & ", clauses.Select(c => $"{c.Kind}({c.A},{c.B})"));
}

/// <summary>A score modification that reads a table too short for the problem (out of range at the last key).</summary>
public readonly struct ShortTableScore(float[] perKey) : IScoreMod
{
    public float Score(float score, int batch, int head, int query, int key) => score + perKey[key];
}

/// <summary>A mask modification that throws in the middle of the index space only (query 37).</summary>
public readonly struct ThrowingMask : IMaskMod
{
    public bool Visible(int batch, int head, int query, int key) =>
        query == 37 && key == 5 ? throw new InvalidOperationException("query 37 is cursed") : true;
}

/// <summary>A score modification that throws in the middle of the index space only (query 37, key 5).</summary>
public readonly struct ThrowingScore : IScoreMod
{
    public float Score(float score, int batch, int head, int query, int key) =>
        query == 37 && key == 5 ? throw new InvalidOperationException("pair (37, 5) is cursed") : score;
}

/// <summary>A causal window whose width depends on the head: <c>16 (head + 1)</c> keys back.</summary>
public readonly struct HeadWindowMask(int queryLength, int keyLength) : IMaskMod
{
    public bool Visible(int batch, int head, int query, int key)
    {
        int at = query + keyLength - queryLength;
        return key <= at && key > at - 16 * (head + 1);
    }
}
