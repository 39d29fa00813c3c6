// The CPU half of the content builder: block means and self-similarity of Q and K, pooled block scores softmaxed per
// query block, and the selection (top-k or cumulative mass) by a heap, so a row costs O(candidates + kept log).
using System.Numerics;

namespace NativeAttention.Cpu;

/// <summary>Builds <see cref="BlockMasks.FromContent(TensorView, TensorView, ContentMaskOptions)"/>'s mask on host tensors with managed SIMD.</summary>
internal static unsafe class CpuBlockScores
{
    public static ContentMask Build(in TensorView query, in TensorView key, BlockGrid grid, ContentMaskOptions options, float scale, int threads)
    {
        int batch = query.Shape[0], hq = query.Shape[1], hkv = key.Shape[1], d = query.Shape[3];
        int queryBlocks = grid.QueryBlocks, keyBlocks = grid.KeyBlocks;
        // Means padded to whole vectors, so the pooled dot products need no tail loop.
        int stride = (d + Vector<float>.Count - 1) / Vector<float>.Count * Vector<float>.Count;
        var queryMeans = new float[(long)batch * hq * queryBlocks * stride];
        var keyMeans = new float[(long)batch * hkv * keyBlocks * stride];
        var querySimilar = new float[(long)batch * hq * queryBlocks];
        var keySimilar = new float[(long)batch * hkv * keyBlocks];
        var q = query;
        var k = key;
        Parallel.For(0, batch * hq, new ParallelOptions { MaxDegreeOfParallelism = threads }, bh =>
            Pool(q, bh / hq, bh % hq, grid.QueryBlockSize, queryBlocks, stride, queryMeans, querySimilar));
        Parallel.For(0, batch * hkv, new ParallelOptions { MaxDegreeOfParallelism = threads }, bh =>
            Pool(k, bh / hkv, bh % hkv, grid.KeyBlockSize, keyBlocks, stride, keyMeans, keySimilar));

        var partial = new int[(long)batch * hq * queryBlocks][];
        var full = new int[partial.Length][];
        long kept = 0, candidates = 0;
        double threshold = options.SimilarityThreshold ?? double.NegativeInfinity;
        Parallel.For(0, batch * hq, new ParallelOptions { MaxDegreeOfParallelism = threads }, () => (Kept: 0L, Candidates: 0L), (bh, _, totals) =>
        {
            int b = bh / hq, h = bh % hq, kvHead = h / (hq / hkv);
            var probabilities = new float[keyBlocks];
            var forced = new bool[keyBlocks];
            var heap = new int[keyBlocks];
            var chosen = new List<int>(keyBlocks);
            for (int qb = 0; qb < queryBlocks; qb++)
            {
                long row = (long)bh * queryBlocks + qb;
                var (seen, frontier) = options.Causal ? grid.Causal(qb) : (keyBlocks, keyBlocks);
                int diagonal = grid.Diagonal(qb);
                fixed (float* qMean = &queryMeans[row * stride], kMeans = &keyMeans[((long)b * hkv + kvHead) * keyBlocks * stride])
                {
                    // Pooled scores over the candidates, softmaxed (max-subtracted) per query block.
                    float max = float.NegativeInfinity;
                    for (int c = 0; c < seen; c++)
                    {
                        probabilities[c] = scale * Dot(qMean, kMeans + (long)c * stride, stride);
                        max = Math.Max(max, probabilities[c]);
                    }
                    double sum = 0;
                    for (int c = 0; c < seen; c++) sum += probabilities[c] = MathF.Exp(probabilities[c] - max);
                    for (int c = 0; c < seen; c++) probabilities[c] = (float)(probabilities[c] / sum);
                }
                bool keepRow = querySimilar[row] < threshold;
                double mass = 0;
                int heapSize = 0;
                for (int c = 0; c < seen; c++)
                {
                    forced[c] = keepRow || c < options.SinkBlocks || (options.KeepDiagonal && (options.Causal ? c >= frontier : c == diagonal))
                        || keySimilar[((long)b * hkv + kvHead) * keyBlocks + c] < threshold;
                    if (forced[c]) mass += probabilities[c];
                    else heap[heapSize++] = c;
                }
                // The rest by decreasing probability: pop a max-heap while top-k or the mass threshold asks for more.
                Heapify(heap, heapSize, probabilities);
                int taken = 0;
                double gamma = options.Gamma ?? 0;
                while (heapSize > 0 && (options.TopK is int topK ? taken < topK : gamma >= 1 || mass < gamma))
                {
                    int c = heap[0];
                    heap[0] = heap[--heapSize];
                    SiftDown(heap, heapSize, 0, probabilities);
                    forced[c] = true;
                    mass += probabilities[c];
                    taken++;
                }
                chosen.Clear();
                var p = new List<int>();
                var f = new List<int>();
                for (int c = 0; c < seen; c++)
                {
                    if (!forced[c]) continue;
                    (options.Causal && c >= frontier ? p : f).Add(c);
                }
                partial[row] = [.. p];
                full[row] = [.. f];
                totals.Kept += p.Count + f.Count;
                totals.Candidates += seen;
            }
            return totals;
        }, totals =>
        {
            Interlocked.Add(ref kept, totals.Kept);
            Interlocked.Add(ref candidates, totals.Candidates);
        });
        var mask = BlockMasks.Build(batch, hq, queryBlocks, grid.QueryBlockSize, grid.KeyBlockSize, partial, full);
        return new ContentMask(mask, kept, candidates);
    }

    /// <summary>
    /// The mean row of every block of one (batch, head) of <paramref name="view"/> (written at stride
    /// <paramref name="stride"/>), and the block's mean pairwise cosine similarity <c>|sum of unit rows|^2 / n^2</c>.
    /// </summary>
    private static void Pool(in TensorView view, int b, int h, int blockSize, int blocks, int stride, float[] means, float[] similarity)
    {
        int n = view.Shape[2], d = view.Shape[3], w = Vector<float>.Count;
        long elementSize = view.ElementType.SizeOf();
        // Rows, sums and unit-row sums padded with zeros to whole vectors (the padding stays zero).
        var row = new float[stride];
        var unitSum = new float[stride];
        var sum = new float[stride];
        using var pin = view.Storage!.Pin();
        byte* basePointer = (byte*)pin.Pointer + elementSize * (view.Offset + b * view.Strides[0] + h * view.Strides[1]);
        fixed (float* r = row, s = sum, u = unitSum)
        {
            for (int block = 0; block < blocks; block++)
            {
                int first = block * blockSize, count = Math.Min(blockSize, n - first);
                Array.Clear(sum);
                Array.Clear(unitSum);
                for (int i = first; i < first + count; i++)
                {
                    CpuPacking.ReadRow(r, basePointer + elementSize * i * view.Strides[2], view.Strides[3], d, view.ElementType);
                    float norm = Dot(r, r, stride);
                    var inverse = new Vector<float>(norm > 0 ? 1 / MathF.Sqrt(norm) : 0);
                    for (int x = 0; x < stride; x += w)
                    {
                        var value = *(Vector<float>*)(r + x);
                        *(Vector<float>*)(s + x) += value;
                        *(Vector<float>*)(u + x) += value * inverse;
                    }
                }
                long at = ((long)(b * view.Shape[1] + h) * blocks + block) * stride;
                float inverseCount = 1f / count;
                for (int x = 0; x < d; x++) means[at + x] = sum[x] * inverseCount;
                similarity[(long)(b * view.Shape[1] + h) * blocks + block] = Dot(u, u, stride) * inverseCount * inverseCount;
            }
        }
    }

    private static float Dot(float* a, float* b, int length)
    {
        var acc = Vector<float>.Zero;
        for (int x = 0; x < length; x += Vector<float>.Count)
            acc += *(Vector<float>*)(a + x) * *(Vector<float>*)(b + x);
        return Vector.Sum(acc);
    }

    /// <summary>Orders <c>heap[0..size)</c> (block indices) as a max-heap on their probabilities (ties: lower index first).</summary>
    private static void Heapify(int[] heap, int size, float[] keys)
    {
        for (int i = size / 2 - 1; i >= 0; i--) SiftDown(heap, size, i, keys);
    }

    private static bool Above(int a, int b, float[] keys) => keys[a] > keys[b] || (keys[a] == keys[b] && a < b);

    private static void SiftDown(int[] heap, int size, int i, float[] keys)
    {
        while (true)
        {
            int left = 2 * i + 1, right = left + 1, top = i;
            if (left < size && Above(heap[left], heap[top], keys)) top = left;
            if (right < size && Above(heap[right], heap[top], keys)) top = right;
            if (top == i) return;
            (heap[i], heap[top]) = (heap[top], heap[i]);
            i = top;
        }
    }
}
