// The decode kernel's quads read binary16 blocks without infinity or NaN scaled down by 2^112 (FiniteHalf), against
// queries and weights scaled up by as much: check the widening on every bit pattern at every width, the check that
// guards it, and that a binary16 decode gives exactly the bits of a float32 decode on the same values.
using System.Runtime.Intrinsics;
using NativeAttention.Cpu;
using Xunit;

namespace NativeAttention.Tests;

[Trait("Backend", "Cpu")]
public unsafe class FiniteHalfTests
{
    private static bool IsSpecial(ushort bits) => (bits & 0x7C00) == 0x7C00;

    [Fact]
    public void LoadScaledDown_IsExactForEveryFinitePattern()
    {
        var patterns = new ushort[65536];
        for (int i = 0; i < patterns.Length; i++) patterns[i] = (ushort)i;
        fixed (ushort* source = patterns)
        {
            if (Vector512.IsHardwareAccelerated) Check<Simd512, Vector512<float>>(source);
            if (Vector256.IsHardwareAccelerated) Check<Simd256, Vector256<float>>(source);
            if (Vector128.IsHardwareAccelerated) Check<Simd128, Vector128<float>>(source);
            Check<SimdScalar, float>(source);
        }
    }

    private static void Check<TSimd, T>(ushort* source) where TSimd : struct, ISimd<T> where T : unmanaged
    {
        // Factors the kernel scales up by 2^112 (queries, weights): products must equal those with the widened value.
        float[] factors = [1f, -3.5f, 0.1f, 1e-30f, 1e-40f, 6.1e-5f, 65000f, -0.0f];
        int w = TSimd.Count;
        var buffer = stackalloc float[w];
        for (int i = 0; i < 65536; i += w)
        {
            TSimd.Store(buffer, FiniteHalf.LoadScaledDown<TSimd, T>(source + i));
            for (int l = 0; l < w; l++)
            {
                ushort bits = source[i + l];
                if (IsSpecial(bits)) continue;
                float expected = (float)BitConverter.UInt16BitsToHalf(bits), scaled = buffer[l];
                Assert.True(BitConverter.SingleToUInt32Bits(expected) == BitConverter.SingleToUInt32Bits(scaled * MathConstants.TwoTo112),
                    $"{typeof(TSimd).Name} half 0x{bits:X4}: 0x{BitConverter.SingleToUInt32Bits(scaled):X8} x 2^112 is not 0x{BitConverter.SingleToUInt32Bits(expected):X8}");
                foreach (float x in factors)
                {
                    // float x float is exact in double: the two products must be the same real number.
                    double actual = (double)(x * MathConstants.TwoTo112) * scaled, wanted = (double)x * expected;
                    Assert.True(actual == wanted && double.IsNegative(actual) == double.IsNegative(wanted),
                        $"{typeof(TSimd).Name} half 0x{bits:X4} times {x}: {actual}, expected {wanted}");
                }
            }
        }
    }

    [Fact]
    public void AllFinite_FlagsEveryInfinityAndNaN()
    {
        // Rows of finite values (every finite pattern cycles through them), one pattern planted in one row; every
        // length exercises the 32-wide loop and the tail.
        const int rows = 3, longest = 130;
        var data = new ushort[rows * longest];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (ushort)(i * 2654435761u >> 16);
            if (IsSpecial(data[i])) data[i] &= 0xBFFF;
        }
        var pointers = stackalloc byte*[rows];
        fixed (ushort* start = data)
        {
            for (int r = 0; r < rows; r++) pointers[r] = (byte*)(start + r * longest);
            foreach (int length in new[] { 1, 15, 16, 31, 32, 33, 64, 128, 130 })
            {
                Assert.True(FiniteHalf.AllFinite(pointers, rows, length), $"finite rows of {length}");
                for (int bits = 0; bits < 65536; bits++)
                {
                    int r = bits % rows, at = bits * 7 % length;
                    ushort kept = start[r * longest + at];
                    start[r * longest + at] = (ushort)bits;
                    bool finite = FiniteHalf.AllFinite(pointers, rows, length);
                    start[r * longest + at] = kept;
                    if (finite == IsSpecial((ushort)bits)) Assert.Fail($"half 0x{bits:X4} at {at} of row {r} (length {length}): AllFinite {finite}");
                }
            }
        }
    }

    /// <summary>
    /// A decode on a binary16 cache read in place (GQA with four query heads per kv head: row quads; MHA and groups of
    /// two: rows one at a time) gives exactly the bits of the same decode on float32 copies of the values, rounded to
    /// binary16: the scaled-down reads change no product. Values include subnormals and the largest magnitudes; with
    /// <paramref name="special"/> some key blocks also hold an infinity (K) or a NaN (V) only, which must take the exact
    /// widening (groups of 8: two quads per block; of 6: a quad and two rows one at a time); also through a paged cache (the
    /// check inside the tiles) and a token-major one (the check passes).
    /// </summary>
    [Theory]
    [InlineData(false, 1, 4)]
    [InlineData(false, 3, 4)]
    [InlineData(true, 1, 4)]
    [InlineData(true, 2, 4)]
    [InlineData(false, 1, 1)]
    [InlineData(false, 3, 1)]
    [InlineData(true, 1, 1)]
    [InlineData(true, 2, 2)]
    [InlineData(true, 1, 8)]
    [InlineData(true, 2, 6)]
    [InlineData(false, 1, 6)]
    [InlineData(true, 1, 4, Layout.Paged)]
    [InlineData(true, 2, 1, Layout.Paged)]
    [InlineData(true, 1, 4, Layout.TokenMajor)]
    [InlineData(true, 3, 1, Layout.TokenMajor)]
    public void Float16Decode_EqualsFloat32DecodeOnTheSameValues(bool special, int splits, int group, Layout layout = Layout.HeadMajor)
    {
        const int hkv = 4, n = 100, d = 64;
        int hq = hkv * group;
        var random = new Random(17 + splits);
        // Subnormals (one value in 41) only outside the first four keys of each split's blocks of 64, which decode
        // counts to leave the scaled reads when subnormals are frequent (Float16Decode_FrequentSubnormals_EqualFloat32Decode):
        // here every block is read scaled down unless it holds an infinity or NaN.
        bool Counted(int key) => Enumerable.Range(0, splits).Any(part => key >= n * part / splits && (key - n * part / splits) % 64 < 4);
        Half Value(int pattern, int i) => (pattern % 41) switch
        {
            0 when !Counted(i / d % n) => BitConverter.UInt16BitsToHalf((ushort)random.Next(1, 0x400)), // subnormal
            1 => (Half)(random.NextDouble() * 2 - 1) * (Half)60000, // large
            _ => (Half)(random.NextDouble() * 2 - 1),
        };
        var q = Halves(hq * d, i => (Half)((random.NextDouble() * 2 - 1) * 0.05));
        var k = Halves(hkv * n * d, i => (Half)((float)Value(i, i) * (i % 41 == 1 ? 1e-4f : 1f)));
        var v = Halves(hkv * n * d, i => Value(i + 7, i));
        if (special)
        {
            k[(1 * n + 37) * d + 5] = Half.PositiveInfinity;
            v[(0 * n + 70) * d + 9] = Half.NaN;
            // In the first values of a block's first row, where a check that folds rows from the wrong offset misses them.
            k[(2 * n + 48) * d + 2] = Half.NegativeInfinity;
            v[(3 * n + 16) * d + 1] = Half.NaN;
            // In the fourth key of a tile (a key index of 3 modulo 4), past a row's first 32 values.
            k[(0 * n + 27) * d + 40] = Half.PositiveInfinity;
            v[(2 * n + 91) * d + 33] = Half.NaN;
            // In the first values of the first row of a block of 64 keys (and of 16 or 32).
            k[(3 * n + 64) * d + 3] = Half.NegativeInfinity;
            v[(1 * n + 64) * d + 0] = Half.NaN;
        }
        var cache = new KvCacheOptions { CacheSeqLens = new[] { n }, Splits = splits };
        var (outputHalf, outputFloat, lseHalf, lseFloat) = DecodeBothWays(q, k, v, hkv, n, d, cache, null, layout);
        int nonFinite = AssertSameBits(outputHalf, outputFloat, lseHalf, lseFloat);
        // The planted infinities and NaNs reach the output (so the exact path really ran on their blocks).
        Assert.Equal(special, nonFinite > 0);
    }

    /// <summary>
    /// Binary16 queries that overflow float32 once scaled by 2^112 (here |q x scale| of 2^18) must keep the exact
    /// widening: read scaled down against an infinite query, a key of 0 gives NaN and any other key an infinity, where
    /// the exact products are finite. Rows of quads (group 4) and single rows (group 1), one and two splits.
    /// </summary>
    [Theory]
    [InlineData(1, 4)]
    [InlineData(2, 4)]
    [InlineData(1, 1)]
    public void Float16Decode_QueriesThatOverflowOnceScaled_EqualFloat32Decode(int splits, int group)
    {
        const int hkv = 2, n = 80, d = 64;
        int hq = hkv * group;
        var random = new Random(5 + splits);
        var q = Halves(hq * d, i => (Half)((random.NextDouble() * 2 - 1) * 1e-3));
        // One large element in every query row; with a scale of 8 it is 2^18 before the 2^112 scaling.
        for (int h = 0; h < hq; h++) q[h * d + (h * 7) % d] = (Half)32768;
        // Keys of magnitude 0.5e-3 to 1e-3 (and zeros): no subnormals, so the blocks would take the scaled reads
        // (frequent subnormals move them to the exact widening, see Float16Decode_FrequentSubnormals_EqualFloat32Decode).
        var k = Halves(hkv * n * d, i => i % 13 == 0 ? (Half)0 : (Half)((random.Next(2) * 2 - 1) * (0.5 + random.NextDouble() / 2) * 1e-3));
        var v = Halves(hkv * n * d, i => (Half)(random.NextDouble() * 2 - 1));
        var cache = new KvCacheOptions { CacheSeqLens = new[] { n }, Splits = splits };
        var (outputHalf, outputFloat, _, _) = DecodeBothWays(q, k, v, hkv, n, d, cache, new FlashOptions { Scale = 8f });
        for (int i = 0; i < outputHalf.Length; i++)
        {
            Assert.True(float.IsFinite(outputFloat[i]), $"element {i} of the float32 output: {outputFloat[i]}");
            Half expected = (Half)outputFloat[i];
            Assert.True(BitConverter.HalfToUInt16Bits(expected) == BitConverter.HalfToUInt16Bits(outputHalf[i]), $"element {i}: {outputHalf[i]}, expected {expected}");
        }
    }

    [Fact]
    public void CountSubnormals_CountsEverySubnormalAndNothingElse()
    {
        // Rows mixing zeros of both signs, subnormals of both signs, normals and specials; every length runs the vector
        // loops and the tail.
        const int rows = 4, longest = 130;
        var random = new Random(3);
        var data = new ushort[rows * longest];
        for (int i = 0; i < data.Length; i++)
            data[i] = (ushort)(random.Next(5) switch
            {
                0 => random.Next(2) * 0x8000,
                1 => random.Next(2) * 0x8000 + random.Next(1, 0x400),
                2 => random.Next(2) * 0x8000 + 0x7C00 + random.Next(0x400),
                _ => random.Next(2) * 0x8000 + random.Next(0x400, 0x7C00),
            });
        var pointers = stackalloc byte*[rows];
        fixed (ushort* start = data)
        {
            for (int r = 0; r < rows; r++) pointers[r] = (byte*)(start + r * longest);
            foreach (int count in new[] { 1, 2, 4 })
                foreach (int length in new[] { 1, 15, 16, 31, 32, 33, 64, 100, 128, 130 })
                {
                    int expected = 0;
                    for (int r = 0; r < count; r++)
                        for (int i = 0; i < length; i++)
                        {
                            int bits = data[r * longest + i] & 0x7FFF;
                            if (bits != 0 && bits < 0x400) expected++;
                        }
                    Assert.Equal(expected, FiniteHalf.CountSubnormals(pointers, count, length));
                }
        }
    }

    /// <summary>
    /// The watch that moves an item's blocks off the scaled reads: quads move at about 5 subnormals in 10^4 counted
    /// values and single rows at about five times that, both come back once the subnormals stop, and rare subnormals
    /// never move them.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void SubnormalWatch_MovesAtFrequentSubnormalsAndBack(bool quads)
    {
        const int values = 256; // D = 128: K and V rows of a key
        var watch = new CpuDecode.SubnormalWatch(values, quads);
        int counted = watch.SampleKeys * values;
        Assert.Equal(quads ? 4 : 2, watch.SampleKeys);
        // One subnormal every few blocks, a quarter of the threshold's rate: scaled throughout.
        double threshold = quads ? 5e-4 : 2.5e-3;
        int gap = (int)Math.Ceiling(4 / (threshold * counted));
        for (int block = 0; block < 200; block++) Assert.True(watch.Observe(block % gap == 0 ? 1 : 0), $"block {block}: left the scaled reads at a quarter of the threshold");
        // Four times the threshold: exact within a few blocks, and it stays there.
        int frequent = (int)Math.Ceiling(4 * threshold * counted);
        int moved = -1;
        for (int block = 0; block < 40; block++)
            if (!watch.Observe(frequent) && moved < 0) moved = block;
        Assert.InRange(moved, 0, 4);
        Assert.True(watch.Exact);
        // Subnormals stop: back to the scaled reads within 20 blocks.
        int back = -1;
        for (int block = 0; block < 40; block++)
            if (watch.Observe(0) && back < 0) back = block;
        Assert.InRange(back, 1, 20);
        Assert.False(watch.Exact);
    }

    /// <summary>
    /// Frequent subnormals move an item's blocks to the exact widening (Simd512.HalfToSingle), rare ones back to the
    /// scaled reads: a decode over a cache whose first and last keys are mostly subnormal (magnitude 10^-3) and whose
    /// middle keys are not gives exactly the bits of the same decode on float32 copies, for quads, single rows and
    /// both, one and two splits.
    /// </summary>
    [Theory]
    [InlineData(1, 4)]
    [InlineData(2, 4)]
    [InlineData(1, 1)]
    [InlineData(2, 6)]
    public void Float16Decode_FrequentSubnormals_EqualFloat32Decode(int splits, int group)
    {
        const int hkv = 2, n = 2000, d = 64;
        int hq = hkv * group;
        var random = new Random(29 + splits + group);
        bool Tiny(int i) => i / d % n is < 300 or >= 1700;
        var q = Halves(hq * d, i => (Half)((random.NextDouble() * 2 - 1) * 4));
        var k = Halves(hkv * n * d, i => (Half)((random.NextDouble() * 2 - 1) * (Tiny(i) ? 1e-3 : 1)));
        var v = Halves(hkv * n * d, i => (Half)((random.NextDouble() * 2 - 1) * (Tiny(i) ? 1e-3 : 1)));
        var cache = new KvCacheOptions { CacheSeqLens = new[] { n }, Splits = splits };
        var (outputHalf, outputFloat, lseHalf, lseFloat) = DecodeBothWays(q, k, v, hkv, n, d, cache, new FlashOptions { Scale = 2000f });
        Assert.Equal(0, AssertSameBits(outputHalf, outputFloat, lseHalf, lseFloat));
    }

    /// <summary><paramref name="count"/> values, element i of them <paramref name="value"/>(i), drawn in order.</summary>
    private static Half[] Halves(int count, Func<int, Half> value)
    {
        var values = new Half[count];
        for (int i = 0; i < count; i++) values[i] = value(i);
        return values;
    }

    /// <summary>
    /// Asserts that the binary16 output is the float32 output rounded to binary16, bit for bit (NaN where it is NaN),
    /// and that the two log-sum-exps are the same floats; returns how many outputs are NaN.
    /// </summary>
    private static int AssertSameBits(Half[] outputHalf, float[] outputFloat, float[] lseHalf, float[] lseFloat)
    {
        int nan = 0;
        for (int i = 0; i < outputHalf.Length; i++)
        {
            Half expected = (Half)outputFloat[i];
            if (Half.IsNaN(expected))
            {
                Assert.True(Half.IsNaN(outputHalf[i]), $"element {i}: {outputHalf[i]}, expected NaN");
                nan++;
                continue;
            }
            Assert.True(BitConverter.HalfToUInt16Bits(expected) == BitConverter.HalfToUInt16Bits(outputHalf[i]), $"element {i}: {outputHalf[i]}, expected {expected}");
        }
        for (int h = 0; h < lseHalf.Length; h++)
            Assert.True(BitConverter.SingleToUInt32Bits(lseFloat[h]) == BitConverter.SingleToUInt32Bits(lseHalf[h]) || (float.IsNaN(lseFloat[h]) && float.IsNaN(lseHalf[h])),
                $"LSE of head {h}: {lseHalf[h]}, expected {lseFloat[h]}");
        return nan;
    }

    /// <summary>
    /// One decode step on the CPU over binary16 queries, keys and values ([1, Hq, 1, D] and [Hkv, N, D], the binary16
    /// cache laid out as <paramref name="layout"/>), and the same step over the same values widened to float32 (head-major):
    /// both outputs and both log-sum-exps.
    /// </summary>
    private static (Half[] OutputHalf, float[] OutputFloat, float[] LseHalf, float[] LseFloat) DecodeBothWays(Half[] q, Half[] k, Half[] v, int hkv, int n, int d,
        KvCacheOptions cache, FlashOptions? options, Layout layout = Layout.HeadMajor)
    {
        int hq = q.Length / d;
        var outputHalf = new Half[hq * d];
        var outputFloat = new float[hq * d];
        var lseHalf = new float[hq];
        var lseFloat = new float[hq];
        using var context = AttentionContext.Create(Backend.Cpu, new ContextOptions { Threads = 2 });
        var (kHalf, vHalf, halfCache) = Lay(k, v, hkv, n, d, layout, cache);
        context.FlashKvCache(TensorView.FromMemory<Half>(q, 1, hq, 1, d), kHalf, vHalf, TensorView.FromMemory<Half>(outputHalf, 1, hq, 1, d), halfCache, options,
            TensorView.FromMemory<float>(lseHalf, 1, hq, 1));
        float[] Widen(Half[] values) => values.Select(x => (float)x).ToArray();
        context.FlashKvCache(TensorView.FromMemory<float>(Widen(q), 1, hq, 1, d), TensorView.FromMemory<float>(Widen(k), 1, hkv, n, d),
            TensorView.FromMemory<float>(Widen(v), 1, hkv, n, d), TensorView.FromMemory<float>(outputFloat, 1, hq, 1, d), cache, options,
            TensorView.FromMemory<float>(lseFloat, 1, hq, 1));
        return (outputHalf, outputFloat, lseHalf, lseFloat);
    }

    /// <summary>How <see cref="Float16Decode_EqualsFloat32DecodeOnTheSameValues"/> lays out its binary16 cache.</summary>
    public enum Layout
    {
        /// <summary>[1, Hkv, N, D], contiguous.</summary>
        HeadMajor,

        /// <summary>Pages of 16 tokens ([blocks, Hkv, 16, D]) in shuffled order through a block table, two spare.</summary>
        Paged,

        /// <summary>[1, N, Hkv, D] in memory, viewed as [1, Hkv, N, D] (a key's heads adjacent).</summary>
        TokenMajor,
    }

    /// <summary>The K and V caches of [Hkv, N, D] values <paramref name="k"/> and <paramref name="v"/> in <paramref name="layout"/>, and the options that read them.</summary>
    private static (TensorView Key, TensorView Value, KvCacheOptions Cache) Lay(Half[] k, Half[] v, int hkv, int n, int d, Layout layout, KvCacheOptions cache)
    {
        switch (layout)
        {
            case Layout.Paged:
            {
                const int page = 16;
                int perSequence = (n + page - 1) / page, blocks = perSequence + 2;
                var order = Enumerable.Range(0, blocks).OrderBy(i => (i * 7919) % blocks).ToArray();
                var table = order.Take(perSequence).ToArray();
                var kPaged = new Half[blocks * hkv * page * d];
                var vPaged = new Half[blocks * hkv * page * d];
                for (int h = 0; h < hkv; h++)
                    for (int t = 0; t < n; t++)
                        for (int e = 0; e < d; e++)
                        {
                            long at = (((long)table[t / page] * hkv + h) * page + t % page) * d + e;
                            kPaged[at] = k[((long)h * n + t) * d + e];
                            vPaged[at] = v[((long)h * n + t) * d + e];
                        }
                return (TensorView.FromMemory<Half>(kPaged, blocks, hkv, page, d), TensorView.FromMemory<Half>(vPaged, blocks, hkv, page, d),
                    cache with { BlockTable = table, PageSize = page });
            }
            case Layout.TokenMajor:
            {
                var kTokens = new Half[n * hkv * d];
                var vTokens = new Half[n * hkv * d];
                for (int h = 0; h < hkv; h++)
                    for (int t = 0; t < n; t++)
                        for (int e = 0; e < d; e++)
                        {
                            kTokens[((long)t * hkv + h) * d + e] = k[((long)h * n + t) * d + e];
                            vTokens[((long)t * hkv + h) * d + e] = v[((long)h * n + t) * d + e];
                        }
                return (TensorView.FromMemory<Half>(kTokens, 1, n, hkv, d).Permute(0, 2, 1, 3), TensorView.FromMemory<Half>(vTokens, 1, n, hkv, d).Permute(0, 2, 1, 3), cache);
            }
            default:
                return (TensorView.FromMemory<Half>(k, 1, hkv, n, d), TensorView.FromMemory<Half>(v, 1, hkv, n, d), cache);
        }
    }
}
