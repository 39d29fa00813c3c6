// NATTEN windows listed by hand, checked both on the window rule and through the float64 reference's outputs.
using Xunit;
using static NativeAttention.Tests.References.Tensors;

namespace NativeAttention.Tests.References;

public sealed class NeighborhoodReferenceTests
{
    /// <summary>Key sets per query from <see cref="NeighborhoodProblem.WindowOnAxis(int, int, int, int, int, bool)"/>.</summary>
    private static int[][] WindowSets(int length, int kernel, int dilation = 1, int stride = 1, bool causal = false) =>
        Enumerable.Range(0, length).Select(x =>
        {
            var w = NeighborhoodProblem.WindowOnAxis(x, length, kernel, dilation, stride, causal);
            return Enumerable.Range(0, w.Count).Select(w.KeyAt).ToArray();
        }).ToArray();

    /// <summary>Key sets per query read off the reference: zero queries make weights uniform, one-hot values expose them.</summary>
    private static int[][] ReferenceSets(int length, int kernel, int dilation = 1, int stride = 1, bool causal = false)
    {
        var options = new NeighborhoodOptions { KernelSize = [kernel], Dilation = [dilation], Stride = [stride], Causal = [causal] };
        var r = Reference.Neighborhood(Zeros(1, 1, length, 1), Zeros(1, 1, length, 1), OneHotValues(1, 1, length), options);
        return Enumerable.Range(0, length).Select(x => VisibleKeys(r, x, length)).ToArray();
    }

    private static void AssertSets(int[][] expected, int length, int kernel, int dilation = 1, int stride = 1, bool causal = false)
    {
        Assert.Equal(expected, WindowSets(length, kernel, dilation, stride, causal));
        Assert.Equal(expected, ReferenceSets(length, kernel, dilation, stride, causal));
    }

    [Fact]
    public void Neighborhood_Kernel3OnLength5_ShiftsWindowInwardAtBorders()
    {
        // One key each side; queries 0 and 4 would hang over the border, so their windows shift inward and keep 3 keys.
        AssertSets([[0, 1, 2], [0, 1, 2], [1, 2, 3], [2, 3, 4], [2, 3, 4]], length: 5, kernel: 3);
    }

    [Fact]
    public void Neighborhood_Kernel4OnLength5_TakesTwoLeftOneRightAndShiftsInward()
    {
        // Even k = 4: k/2 = 2 keys left, k/2 - 1 = 1 right. Query 2 gets [0, 3] unshifted; 0 and 1 shift right to
        // [0, 3]; 3 would be [1, 4] unshifted and 4 would reach 5, so it shifts left to [1, 4].
        AssertSets([[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3], [1, 2, 3, 4], [1, 2, 3, 4]], length: 5, kernel: 4);
    }

    [Fact]
    public void Neighborhood_Dilation2OnLength7_AttendsWithinInterleavedGroups()
    {
        // Groups: even positions {0, 2, 4, 6} (4 long) and odd {1, 3, 5} (3 long); kernel 3 inside each group.
        // Even group: group coordinates 0,1 -> {0,1,2} = {0,2,4}; 2,3 -> {1,2,3} = {2,4,6}.
        // Odd group of length 3: every query sees all of it, {1, 3, 5}.
        AssertSets([[0, 2, 4], [1, 3, 5], [0, 2, 4], [1, 3, 5], [2, 4, 6], [1, 3, 5], [2, 4, 6]], length: 7, kernel: 3, dilation: 2);
    }

    [Fact]
    public void Neighborhood_Stride2_QueriesShareTheWindowOfTheTileCentre()
    {
        // Tiles {0,1}, {2,3}, {4}; the centre is tile start + s/2 = 1, 3, and 5 clamped to the last position 4.
        // Centre 1 -> [0, 2]; centre 3 -> [2, 4]; centre 4 -> [3, 5] shifted inward to [2, 4].
        AssertSets([[0, 1, 2], [0, 1, 2], [2, 3, 4], [2, 3, 4], [2, 3, 4]], length: 5, kernel: 3, stride: 2);
    }

    [Fact]
    public void Neighborhood_BlockedStrideWithCutOffTile_UsesTheLastPositionAsCentre()
    {
        // s = k = 3 on length 7 (Swin-style blocks): tiles {0,1,2} (centre 1), {3,4,5} (centre 4), {6} whose centre
        // 6 + 1 = 7 is clamped to 6: window [5, 7] shifted inward to [4, 6], overlapping the previous block.
        AssertSets([[0, 1, 2], [0, 1, 2], [0, 1, 2], [3, 4, 5], [3, 4, 5], [3, 4, 5], [4, 5, 6]], length: 7, kernel: 3, stride: 3);
    }

    [Fact]
    public void Neighborhood_CausalAxis_TakesTheKeysEndingAtTheQueryAndShrinksAtTheStart()
    {
        AssertSets([[0], [0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4]], length: 5, kernel: 3, causal: true);
    }

    [Fact]
    public void Neighborhood_CausalWithStride2_StartsAtTheTileLeadersWindowAndEndsAtTheQuery()
    {
        // Causal leader = last query of the tile (clamped): tiles {0,1} -> leader 1, start max(1 - 2, 0) = 0;
        // {2,3} -> leader 3, start 1; {4} -> leader 4, start 2. Each query still ends at itself.
        AssertSets([[0], [0, 1], [1, 2], [1, 2, 3], [2, 3, 4]], length: 5, kernel: 3, stride: 2, causal: true);
    }

    [Fact]
    public void Neighborhood_CausalWithDilation2_CountsWithinTheQuerysGroup()
    {
        // Even group {0,2,4,6}: group coordinate x' sees x' - 1 .. x' (k = 2); odd group {1,3,5} likewise.
        AssertSets([[0], [1], [0, 2], [1, 3], [2, 4], [3, 5], [4, 6]], length: 7, kernel: 2, dilation: 2, causal: true);
    }

    [Fact]
    public void Neighborhood_2D_VisibleSetIsTheProductOfAxisWindows()
    {
        // Grid 3 x 4, kernel [3, 2]. Axis 0 (length 3, k 3): every row sees rows {0, 1, 2}. Axis 1 (length 4, k 2:
        // one left, none right): column 0 -> {0, 1} (shifted), 1 -> {0, 1}, 2 -> {1, 2}, 3 -> {2, 3}.
        // Flat key = row * 4 + column.
        var options = new NeighborhoodOptions { KernelSize = [3, 2] };
        var r = Reference.Neighborhood(Zeros(1, 1, 3, 4, 1), Zeros(1, 1, 3, 4, 1), OneHotValues(1, 1, 12).Reshape(1, 1, 3, 4, 12), options);
        Assert.Equal(new[] { 1, 2, 5, 6, 9, 10 }, VisibleKeys(r, 1 * 4 + 2, 12));   // query (1, 2): rows {0,1,2} x columns {1,2}
        Assert.Equal(new[] { 0, 1, 4, 5, 8, 9 }, VisibleKeys(r, 0 * 4 + 0, 12));    // query (0, 0): columns {0,1}
        Assert.Equal(new[] { 2, 3, 6, 7, 10, 11 }, VisibleKeys(r, 2 * 4 + 3, 12));  // query (2, 3): columns {2,3}
        Assert.Equal(1.0 / 6, r.OutputAt(0, 0, 1, 2, 5), 12);

        // Causal along axis 0: query (1, 2) keeps rows {0, 1} only.
        var causal = Reference.Neighborhood(Zeros(1, 1, 3, 4, 1), Zeros(1, 1, 3, 4, 1), OneHotValues(1, 1, 12).Reshape(1, 1, 3, 4, 12),
            options with { Causal = [true, false] });
        Assert.Equal(new[] { 1, 2, 5, 6 }, VisibleKeys(causal, 1 * 4 + 2, 12));
    }

    [Fact]
    public void Neighborhood_WindowRule_KeepsItsInvariantsOnEverySmallAxis()
    {
        for (int length = 1; length <= 12; length++)
        for (int dilation = 1; dilation <= 4; dilation++)
        for (int kernel = 1; kernel * dilation <= length; kernel++)
        for (int stride = 1; stride <= kernel; stride++)
        for (int x = 0; x < length; x++)
        {
            var w = NeighborhoodProblem.WindowOnAxis(x, length, kernel, dilation, stride, causal: false);
            Assert.Equal(kernel, w.Count);
            Assert.Equal(dilation, w.Step);
            Assert.Equal(x % dilation, w.Start % dilation);
            Assert.InRange(w.Start, 0, length - 1);
            Assert.InRange(w.KeyAt(w.Count - 1), 0, length - 1);
            if (stride == 1) Assert.True(w.Contains(x), $"L={length} k={kernel} d={dilation}: query {x} outside its window {w}");

            var c = NeighborhoodProblem.WindowOnAxis(x, length, kernel, dilation, stride, causal: true);
            Assert.Equal(x, c.KeyAt(c.Count - 1));
            Assert.InRange(c.Count, 1, kernel);
            Assert.InRange(c.Start, 0, x);
            if (stride == 1) Assert.Equal(Math.Min(kernel, x / dilation + 1), c.Count);
        }
    }

    [Fact]
    public void Neighborhood_KernelEqualToGrid_EqualsFullFlashAttention()
    {
        // 2-D grid 3 x 4 with GQA (2 query heads on 1 kv head); every query sees the whole grid.
        var q = Random(30, 1, 2, 2, 3, 4, 8);
        var k = Random(31, 1, 2, 1, 3, 4, 8);
        var v = Random(32, 1, 2, 1, 3, 4, 5);
        var na = Reference.Neighborhood(q, k, v, new NeighborhoodOptions { KernelSize = [3, 4] });
        var flash = Reference.Flash(q.Reshape(2, 2, 12, 8), k.Reshape(2, 1, 12, 8), v.Reshape(2, 1, 12, 5));
        AssertClose(flash.Output, na.Output, 1e-12);
        AssertClose(flash.LogSumExp, na.LogSumExp, 1e-12);
        Assert.Equal(new[] { 2, 2, 3, 4, 5 }, na.OutputShape);
        Assert.Equal(new[] { 2, 2, 3, 4 }, na.LogSumExpShape);
    }

    [Fact]
    public void Neighborhood_3DKernelEqualToGrid_EqualsFullFlashAttention()
    {
        var q = Random(33, 1, 1, 1, 2, 2, 3, 4);
        var k = Random(34, 1, 1, 1, 2, 2, 3, 4);
        var v = Random(35, 1, 1, 1, 2, 2, 3, 3);
        var na = Reference.Neighborhood(q, k, v, new NeighborhoodOptions { KernelSize = [2, 2, 3], Scale = 0.7f });
        var flash = Reference.Flash(q.Reshape(1, 1, 12, 4), k.Reshape(1, 1, 12, 4), v.Reshape(1, 1, 12, 3), new FlashOptions { Scale = 0.7f });
        AssertClose(flash.Output, na.Output, 1e-12);
    }

    [Fact]
    public void Neighborhood_CausalKernelEqualToLength_EqualsCausalFlashAttention()
    {
        var q = Random(36, 1, 1, 2, 9, 4);
        var k = Random(37, 1, 1, 2, 9, 4);
        var v = Random(38, 1, 1, 2, 9, 3);
        var na = Reference.Neighborhood(q, k, v, new NeighborhoodOptions { KernelSize = [9], Causal = [true] });
        var flash = Reference.Flash(q, k, v, new FlashOptions { Causal = true });
        AssertClose(flash.Output, na.Output, 1e-12);
        AssertClose(flash.LogSumExp, na.LogSumExp, 1e-12);
    }

    [Fact]
    public void Neighborhood_SlidingKernelOnOneAxis_EqualsFlashWithTheSameBandAwayFromBorders()
    {
        // With k = 3 and stride 1, interior queries see exactly [x - 1, x + 1]: a flash window (1, 1). Border rows
        // differ (NATTEN shifts, flash shrinks), so only rows 1..6 are compared.
        var q = Random(39, 1, 1, 1, 8, 4);
        var k = Random(40, 1, 1, 1, 8, 4);
        var v = Random(41, 1, 1, 1, 8, 2);
        var na = Reference.Neighborhood(q, k, v, new NeighborhoodOptions { KernelSize = [3] });
        var flash = Reference.Flash(q, k, v, new FlashOptions { WindowLeft = 1, WindowRight = 1 });
        AssertClose(flash.Output.AsSpan(2, 12), na.Output.AsSpan(2, 12), 1e-12);
    }

    [Fact]
    public void Neighborhood_AdditionalKeys_EqualFlashOverTheConcatenatedKeys()
    {
        // Kernel = length, so the neighbourhood is the whole axis; the 2 extra tokens are appended to every row.
        var q = Random(42, 1, 1, 2, 6, 4);
        var k = Random(43, 1, 1, 1, 6, 4);
        var v = Random(44, 1, 1, 1, 6, 3);
        var ek = Random(45, 1, 1, 1, 2, 4);
        var ev = Random(46, 1, 1, 1, 2, 3);
        var na = Reference.Neighborhood(q, k, v, new NeighborhoodOptions { KernelSize = [6], AdditionalKeys = ek, AdditionalValues = ev });
        var flash = Reference.Flash(q, Of([.. k.ToDoubleArray(), .. ek.ToDoubleArray()], 1, 1, 8, 4), Of([.. v.ToDoubleArray(), .. ev.ToDoubleArray()], 1, 1, 8, 3));
        AssertClose(flash.Output, na.Output, 1e-12);
        AssertClose(flash.LogSumExp, na.LogSumExp, 1e-12);
    }

    [Fact]
    public void Neighborhood_RandomConfigurations_EqualFlashWithTheWindowProductAsMaskingBias()
    {
        // Seeded random grids (1-3 axes) with random kernel, dilation, stride and causal flags: the reference's walk
        // over the window product must give exactly flash attention with a 0 / -inf bias built from AxisWindow.Contains.
        for (int seed = 0; seed < 25; seed++)
        {
            var rng = new Random(seed);
            int axes = 1 + seed % 3;
            var shape = new int[axes];
            var kernel = new int[axes];
            var dilation = new int[axes];
            var stride = new int[axes];
            var causal = new bool[axes];
            for (int a = 0; a < axes; a++)
            {
                shape[a] = rng.Next(2, axes == 3 ? 5 : 8);
                dilation[a] = rng.Next(1, Math.Max(2, shape[a] / 2 + 1));
                kernel[a] = rng.Next(1, shape[a] / dilation[a] + 1);
                stride[a] = rng.Next(1, kernel[a] + 1);
                causal[a] = rng.Next(2) == 1;
            }
            int tokens = shape.Aggregate(1, (x, y) => x * y);
            var options = new NeighborhoodOptions { KernelSize = kernel, Dilation = dilation, Stride = stride, Causal = causal, Scale = 0.9f };
            var q = Random(100 + seed, 1, [1, 2, .. shape, 3]);
            var k = Random(200 + seed, 1, [1, 1, .. shape, 3]);
            var v = Random(300 + seed, 1, [1, 1, .. shape, 2]);
            var na = Reference.Neighborhood(q, k, v, options);

            var bias = new double[tokens * tokens];
            var qi = new int[axes];
            var kj = new int[axes];
            for (int i = 0; i < tokens; i++)
            for (int j = 0; j < tokens; j++)
            {
                bool visible = true;
                for (int a = axes - 1, ri = i, rj = j; a >= 0; ri /= shape[a], rj /= shape[a], a--)
                {
                    (qi[a], kj[a]) = (ri % shape[a], rj % shape[a]);
                    var w = NeighborhoodProblem.WindowOnAxis(qi[a], shape[a], kernel[a], dilation[a], stride[a], causal[a]);
                    visible &= w.Contains(kj[a]);
                }
                bias[i * tokens + j] = visible ? 0 : double.NegativeInfinity;
            }
            var flash = Reference.Flash(q.Reshape(1, 2, tokens, 3), k.Reshape(1, 1, tokens, 3), v.Reshape(1, 1, tokens, 2),
                new FlashOptions { Scale = 0.9f, Bias = Of(bias, 1, 1, tokens, tokens) });
            AssertClose(flash.Output, na.Output, 1e-12);
            AssertClose(flash.LogSumExp, na.LogSumExp, 1e-12);
        }
    }

    [Fact]
    public void Neighborhood_VisiblePairs_CountsWindowsAndAdditionalKeys()
    {
        // Length 5, causal k = 3: windows hold 1, 2, 3, 3, 3 keys (12 pairs) plus 2 extra keys per query (10).
        var options = new NeighborhoodOptions { KernelSize = [3], Causal = [true], AdditionalKeys = Zeros(1, 1, 2, 2), AdditionalValues = Zeros(1, 1, 2, 2) };
        var p = NeighborhoodProblem.Create(Zeros(1, 1, 5, 2), Zeros(1, 1, 5, 2), Zeros(1, 1, 5, 2), Zeros(1, 1, 5, 2), options, null);
        Assert.Equal(22, p.VisiblePairsPerHead());
        Assert.Equal(5, p.TokenCount);
        Assert.Equal(2, p.AdditionalKeyCount);
    }
    // ---- Relative-position bias (NATTEN RPB) and padding (valid extent), worked by hand ----

    /// <summary>Row <paramref name="row"/>'s weights over <paramref name="keys"/> one-hot value columns.</summary>
    private static double[] Weights(ReferenceResult r, int row, int keys) => r.Output.AsSpan(row * keys, keys).ToArray();

    [Fact]
    public void Neighborhood_Rpb1D_AddsTheBiasOfTheOffsetPlusKMinusOne()
    {
        // Length 5, k = 3, zero Q and K (every score is the bias alone); bias[i] = ln(i + 1), so weights are i + 1.
        // Query 0 sees keys {0,1,2}, offsets 0,1,2 -> entries 2,3,4 -> weights 3,4,5 / 12, LSE ln 12.
        // Query 2 sees {1,2,3}, offsets -1,0,1 -> entries 1,2,3 -> 2,3,4 / 9. Query 4 sees {2,3,4}, offsets -2,-1,0
        // -> entries 0,1,2 -> 1,2,3 / 6.
        var bias = Of([Math.Log(1), Math.Log(2), Math.Log(3), Math.Log(4), Math.Log(5)], 1, 5);
        var r = Reference.Neighborhood(Zeros(1, 1, 5, 1), Zeros(1, 1, 5, 1), OneHotValues(1, 1, 5),
            new NeighborhoodOptions { KernelSize = [3], RelativePositionBias = bias });
        AssertClose([3 / 12.0, 4 / 12.0, 5 / 12.0, 0, 0], Weights(r, 0, 5), 1e-7);
        AssertClose([0, 2 / 9.0, 3 / 9.0, 4 / 9.0, 0], Weights(r, 2, 5), 1e-7);
        AssertClose([0, 0, 1 / 6.0, 2 / 6.0, 3 / 6.0], Weights(r, 4, 5), 1e-7);
        Assert.Equal(Math.Log(12), r.LogSumExpAt(0, 0, 0), 6);
    }

    [Fact]
    public void Neighborhood_RpbWithDilationAndEvenKernel_CountsOffsetsInGroupSteps()
    {
        // Length 6, k = 2 (one left, none right), dilation 2: even group {0,2,4}. Query 4 (group coordinate 2) sees
        // group {1,2} = keys {2,4}: offsets -1, 0 -> entries 0, 1. Query 0 shifts right to keys {0,2}: offsets 0, +1
        // -> entries 1, 2. Bias [ln 1, ln 2, ln 4] (3 = 2k - 1 entries).
        var bias = Of([0, Math.Log(2), Math.Log(4)], 1, 3);
        var r = Reference.Neighborhood(Zeros(1, 1, 6, 1), Zeros(1, 1, 6, 1), OneHotValues(1, 1, 6),
            new NeighborhoodOptions { KernelSize = [2], Dilation = [2], RelativePositionBias = bias });
        AssertClose([0, 0, 1 / 3.0, 0, 2 / 3.0, 0], Weights(r, 4, 6), 1e-7);
        AssertClose([2 / 6.0, 0, 4 / 6.0, 0, 0, 0], Weights(r, 0, 6), 1e-7);
    }

    [Fact]
    public void Neighborhood_RpbCausalAndStrided_UsesTheOffsetFromTheQueryItself()
    {
        // Causal k = 3 on length 4: query 3 sees {1,2,3}, offsets -2,-1,0 -> entries 0,1,2 of 5. Bias ln(1..5).
        var bias = Of([0, Math.Log(2), Math.Log(3), Math.Log(4), Math.Log(5)], 1, 5);
        var causal = Reference.Neighborhood(Zeros(1, 1, 4, 1), Zeros(1, 1, 4, 1), OneHotValues(1, 1, 4),
            new NeighborhoodOptions { KernelSize = [3], Causal = [true], RelativePositionBias = bias });
        AssertClose([0, 1 / 6.0, 2 / 6.0, 3 / 6.0], Weights(causal, 3, 4), 1e-7);
        // Stride 3 = k on length 6: query 3 shares the window {3,4,5} of its tile's centre 4, with offsets 0,1,2
        // from itself -> entries 2,3,4 -> 3,4,5 / 12; query 5 has offsets -2,-1,0 -> 1,2,3 / 6.
        var strided = Reference.Neighborhood(Zeros(1, 1, 6, 1), Zeros(1, 1, 6, 1), OneHotValues(1, 1, 6),
            new NeighborhoodOptions { KernelSize = [3], Stride = [3], RelativePositionBias = bias });
        AssertClose([0, 0, 0, 3 / 12.0, 4 / 12.0, 5 / 12.0], Weights(strided, 3, 6), 1e-7);
        AssertClose([0, 0, 0, 1 / 6.0, 2 / 6.0, 3 / 6.0], Weights(strided, 5, 6), 1e-7);
    }

    [Fact]
    public void Neighborhood_Rpb2D_IndexesPerHeadAndPerAxis()
    {
        // Grid 3 x 3, k = [3, 3], two query heads; bias [2, 5, 5]: head 1 has ln 2 at (row offset +1, column offset
        // -2) = entry (3, 0), 0 elsewhere; head 0 is all zeros. Query (0, 2) sees the whole grid; the key (1, 0) has
        // offsets (+1, -2): head 1 weighs it 2 / 10, the other 8 keys 1 / 10; head 0 is uniform.
        var biasValues = new double[2 * 5 * 5];
        biasValues[(1 * 5 + 3) * 5 + 0] = Math.Log(2);
        var r = Reference.Neighborhood(Zeros(1, 2, 3, 3, 1), Zeros(1, 1, 3, 3, 1), OneHotValues(1, 1, 9).Reshape(1, 1, 3, 3, 9),
            new NeighborhoodOptions { KernelSize = [3, 3], RelativePositionBias = Of(biasValues, 2, 5, 5) });
        double[] head1 = Enumerable.Repeat(0.1, 9).ToArray();
        head1[1 * 3 + 0] = 0.2;
        AssertClose(head1, Weights(r, 9 + 0 * 3 + 2, 9), 1e-7);
        AssertClose(Enumerable.Repeat(1 / 9.0, 9).ToArray(), Weights(r, 0 * 3 + 2, 9), 1e-7);
    }

    [Fact]
    public void Neighborhood_ValidExtent_CropsTheGridPerSampleAndZeroesPaddingQueries()
    {
        // Length 6, k = 3, two samples: sample 0 valid to 4, sample 1 whole. In sample 0, query 3 sits at the valid
        // border, so its window shifts inward to {1,2,3} (not {2,3,4}); queries 4 and 5 are padding: zero output, LSE
        // -inf; no valid query sees keys 4 or 5. Sample 1 is unchanged: query 3 sees {2,3,4}.
        var values = OneHotValues(2, 1, 6);
        var r = Reference.Neighborhood(Zeros(2, 1, 6, 1), Zeros(2, 1, 6, 1), values,
            new NeighborhoodOptions { KernelSize = [3], ValidExtent = new[,] { { 4 }, { 6 } } });
        Assert.Equal(new[] { 1, 2, 3 }, VisibleKeys(r, 3, 6));
        Assert.Equal(new[] { 0, 1, 2 }, VisibleKeys(r, 0, 6));
        Assert.Empty(VisibleKeys(r, 4, 6));
        Assert.Empty(VisibleKeys(r, 5, 6));
        Assert.Equal(double.NegativeInfinity, r.LogSumExpAt(0, 0, 4));
        Assert.Equal(double.NegativeInfinity, r.LogSumExpAt(0, 0, 5));
        Assert.Equal(new[] { 2, 3, 4 }, VisibleKeys(r, 6 + 3, 6));
        Assert.Equal(Math.Log(3), r.LogSumExpAt(1, 0, 5), 12);
    }

    [Fact]
    public void Neighborhood_ValidExtent2D_EqualsTheCroppedGridWithAdditionalKeysStillVisible()
    {
        // Grid 5 x 4 valid to 3 x 3, k = [3, 2], one additional key: the valid queries equal a call on the cropped
        // 3 x 3 grid; the padding queries are zero (no additional key reaches them either).
        var q = Random(60, 1, 1, 1, 5, 4, 3);
        var k = Random(61, 1, 1, 1, 5, 4, 3);
        var v = Random(62, 1, 1, 1, 5, 4, 2);
        var ek = Random(63, 1, 1, 1, 1, 3);
        var ev = Random(64, 1, 1, 1, 1, 2);
        var options = new NeighborhoodOptions { KernelSize = [3, 2], AdditionalKeys = ek, AdditionalValues = ev };
        var padded = Reference.Neighborhood(q, k, v, options with { ValidExtent = new[,] { { 3, 3 } } });
        var cropped = Reference.Neighborhood(q.Slice(2, 0, 3).Slice(3, 0, 3), k.Slice(2, 0, 3).Slice(3, 0, 3), v.Slice(2, 0, 3).Slice(3, 0, 3), options);
        for (int x = 0; x < 5; x++)
            for (int y = 0; y < 4; y++)
                for (int c = 0; c < 2; c++)
                    Assert.Equal(x < 3 && y < 3 ? cropped.OutputAt(0, 0, x, y, c) : 0, padded.OutputAt(0, 0, x, y, c), 12);
    }

    [Fact]
    public void Neighborhood_BadRpbAndExtents_ThrowNamingTheOption()
    {
        var q = Zeros(2, 2, 6, 1);
        var options = new NeighborhoodOptions { KernelSize = [3], Dilation = [2] };
        void Throws(NeighborhoodOptions o, string name)
        {
            var e = Assert.ThrowsAny<ArgumentException>(() => Reference.Neighborhood(q, q, q, o));
            Assert.Equal(name, e.ParamName);
            var p = Assert.ThrowsAny<ArgumentException>(() => NeighborhoodProblem.Create(q, q, q, Zeros(2, 2, 6, 1), o, null));
            Assert.Equal(name, p.ParamName);
        }
        Throws(options with { RelativePositionBias = Zeros(2, 3) }, "options.RelativePositionBias");       // 2k - 1 = 5
        Throws(options with { RelativePositionBias = Zeros(1, 5) }, "options.RelativePositionBias");       // Hq = 2
        Throws(options with { RelativePositionBias = Zeros(2, 5, 1) }, "options.RelativePositionBias");    // rank
        Throws(options with { RelativePositionBias = TestTensors.Zeros(ElementType.Float16, [2, 5]) }, "options.RelativePositionBias");
        Throws(options with { ValidExtent = new[,] { { 6 } } }, "options.ValidExtent");                     // one sample of two
        Throws(options with { ValidExtent = new[,] { { 6, 6 }, { 6, 6 } } }, "options.ValidExtent");        // two axes of one
        Throws(options with { ValidExtent = new[,] { { 6 }, { 7 } } }, "options.ValidExtent");              // past the axis
        Throws(options with { ValidExtent = new[,] { { 6 }, { 0 } } }, "options.ValidExtent");
        Throws(options with { ValidExtent = new[,] { { 6 }, { 5 } } }, "options.ValidExtent");              // 3 * 2 > 5
        // Accepted: the exact extents and a fitting crop.
        Reference.Neighborhood(q, q, q, options with { RelativePositionBias = Zeros(2, 5), ValidExtent = new[,] { { 6 }, { 6 } } });
    }
}
