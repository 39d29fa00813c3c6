// The tensor-core flex kernel's own code (tile loads, fragment indexing, modifications on the score fragment, online
// softmax, P fragments, output and LSE writes, block-table walk) run without a GPU: on ILGPU's CPU accelerator with
// 32-lane warps, with mma.sync and the f16x2/bf16x2 conversions emulated from the PTX ISA's fragment definitions
// ("Matrix Fragments for mma.m16n8k16") through warp shuffles, against the float64 reference. The emulation shares no
// indexing with the kernel: it gathers A's rows and B's columns from the lanes the ISA says hold them.
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using NativeAttention.Ilgpu.Flex.Gpu;
using Xunit;
using Half = System.Half;

namespace NativeAttention.Ilgpu.Tests.FlexOnGpu;

/// <summary>mma.sync.m16n8k16 (row.col, fp32 accumulate) and cvt.rn.{f16,bf16}x2.f32, emulated per the PTX ISA.</summary>
internal readonly struct EmulatedMma<TCodec> : IFlexMmaType where TCodec : struct, IFlexElement<ushort>
{
    /// <summary>One lane's A fragment (the B fragment rides in a <see cref="Pair"/>): what one shuffle moves.</summary>
    private struct Quad
    {
        public uint X0, X1, X2, X3;
    }

    private struct Pair
    {
        public uint X0, X1;
    }

    public void Mma(ref float c0, ref float c1, ref float c2, ref float c3, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1)
    {
        int lane = Warp.LaneIdx, g = lane >> 2, t = lane & 3;
        // A (16 x 16): lane 4 r + i holds A[r][2i, 2i+1] (a0), A[r+8][2i, 2i+1] (a1), A[r][2i+8, 2i+9] (a2), A[r+8][...] (a3).
        // B (16 x 8): lane 4 n + i holds B[2i, 2i+1][n] (b0) and B[2i+8, 2i+9][n] (b1).
        // C (16 x 8): lane 4 r + i holds C[r][2i, 2i+1] (c0, c1) and C[r+8][2i, 2i+1] (c2, c3).
        // A lane's whole fragment moves in one shuffle: 12 shuffles per mma rather than one per register and k pair
        // (32). Each shuffle is 4 barriers on ILGPU's CPU runtime, and with 128 per mma, 32 threads on a loaded 2-core
        // machine twice sat in one barrier for 15-20 minutes (System.Threading.Barrier backs off to 10-second waits
        // when a wake-up is missed), which would hang CI; the launch also runs under a time limit (see Run).
        var mine = new Quad { X0 = a0, X1 = a1, X2 = a2, X3 = a3 };
        var myB = new Pair { X0 = b0, X1 = b1 };
        for (int i = 0; i < 4; i++)
        {
            Quad row = Warp.Shuffle(mine, 4 * g + i);
            Pair col0 = Warp.Shuffle(myB, 4 * (2 * t) + i), col1 = Warp.Shuffle(myB, 4 * (2 * t + 1) + i);
            // k pair i (low half of k: a0/a1, b0), then k pair i + 4 (high half: a2/a3, b1).
            c0 += Dot(row.X0, col0.X0);
            c1 += Dot(row.X0, col1.X0);
            c2 += Dot(row.X1, col0.X0);
            c3 += Dot(row.X1, col1.X0);
            c0 += Dot(row.X2, col0.X1);
            c1 += Dot(row.X2, col1.X1);
            c2 += Dot(row.X3, col0.X1);
            c3 += Dot(row.X3, col1.X1);
        }
    }

    private static float Dot(uint x, uint y) =>
        default(TCodec).Load((ushort)(x & 0xFFFF)) * default(TCodec).Load((ushort)(y & 0xFFFF)) +
        default(TCodec).Load((ushort)(x >> 16)) * default(TCodec).Load((ushort)(y >> 16));

    public uint Pack(float lo, float hi) => default(TCodec).Store(lo) | ((uint)default(TCodec).Store(hi) << 16);
}

public sealed class FlexMmaEmulationTests
{
    [Theory]
    [InlineData(false, false, 64)]
    [InlineData(true, false, 64)]
    [InlineData(false, true, 64)]
    [InlineData(true, true, 128)]
    public void TensorCoreKernel_OnEmulatedMma_MatchesTheReference(bool bf16, bool blockMask, int capacity)
    {
        if (bf16) Run<Bf16Element>(true, blockMask, capacity);
        else Run<Fp16Element>(false, blockMask, capacity);
    }

    private sealed record Launched(float[] Q, float[] K, float[] V, float[] Output, float[] Lse, float[] Slopes);

    private static Launched Launch<TCodec>(bool bf16, bool useBlockMask, int capacity) where TCodec : struct, IFlexElement<ushort>
    {
        // One warp of 32 lanes, one group at a time (ILGPU's Nvidia-like CPU device starts 1,024 threads).
        using var ilgpu = ILGPU.Context.Create(builder => builder.CPU(new CPUDevice(numThreadsPerWarp: 32, numWarpsPerMultiprocessor: 1, numMultiprocessors: 1)));
        using var accelerator = ilgpu.CreateCPUAccelerator(0, CPUAcceleratorMode.Parallel);
        // GQA, ragged query and key tiles, Dv < Dqk, Dqk not a multiple of 16.
        int batch = 2, hq = 4, hkv = 2, nq = 37, nk = 45, d = capacity == 64 ? 40 : 100, dv = capacity == 64 ? 24 : 72;
        int shift = nk - nq;
        var random = new Random(bf16 ? 11 : 12);
        ushort[] Bits(int count, out float[] values)
        {
            var bits = new ushort[count];
            values = new float[count];
            for (int i = 0; i < count; i++)
            {
                float x = (float)(random.NextDouble() * 2 - 1);
                bits[i] = default(TCodec).Store(x);
                values[i] = default(TCodec).Load(bits[i]);
            }
            return bits;
        }
        var qb = Bits(batch * hq * nq * d, out var q);
        var kb = Bits(batch * hkv * nk * d, out var k);
        var vb = Bits(batch * hkv * nk * dv, out var v);
        float[] slopes = [0.5f, 0.25f, 0.125f, 0.0625f];
        using var qd = accelerator.Allocate1D(qb);
        using var kd = accelerator.Allocate1D(kb);
        using var vd = accelerator.Allocate1D(vb);
        using var od = accelerator.Allocate1D<ushort>(batch * hq * nq * dv);
        using var ld = accelerator.Allocate1D<float>(batch * hq * nq);
        using var sd = accelerator.Allocate1D(slopes);
        using var errors = accelerator.Allocate1D<int>(FlexViewChecks.RecordInts);
        errors.MemSetToZero();
        var score = new AlibiScore { Slopes = sd.View, Shift = shift };
        var mask = new WindowMask { Left = 40, Right = 0, Shift = shift };   // causal with a window: full, partial and empty blocks
        float scale = 1 / MathF.Sqrt(d);
        var a = new FlexForwardArgs<AlibiScore, WindowMask, ushort>
        {
            Q = qd.View, K = kd.View, V = vd.View, O = od.View, Lse = ld.View, Errors = errors.View,
            QStrideB = (long)hq * nq * d, QStrideH = (long)nq * d, QStrideN = d, QStrideD = 1,
            KStrideB = (long)hkv * nk * d, KStrideH = (long)nk * d, KStrideN = d, KStrideD = 1,
            VStrideB = (long)hkv * nk * dv, VStrideH = (long)nk * dv, VStrideN = dv, VStrideD = 1,
            OStrideB = (long)hq * nq * dv, OStrideH = (long)nq * dv, OStrideN = dv, OStrideD = 1,
            LseStrideB = (long)hq * nq, LseStrideH = nq, LseStrideN = 1, HasLse = 1,
            Batch = batch, HeadsQ = hq, Group = hq / hkv, Nq = nq, Nk = nk, Dqk = d, Dv = dv, Scale = scale,
            ScoreMod = score, MaskMod = mask,
        };
        MemoryBuffer1D<int, Stride1D.Dense>? meta = null;
        if (useBlockMask)
        {
            // A block mask of 32-row, 16-key blocks made on the CPU: two 16-row tiles per mask row, full blocks skip the mask.
            using var cpu = new NativeAttention.Cpu.CpuContext(new ContextOptions { Threads = 1 });
            var blocks = cpu.CreateBlockMask(mask, 1, 1, nq, nk, 32, 16);
            a.HasBlockMask = 1;
            a.QueryBlockSize = 32;
            a.KeyBlockSize = 16;
            a.QueryBlocks = (nq + 31) / 32;
            a.TilesPerBlock = 2;
            a.MaskHeadDiv = hq;
            meta = accelerator.Allocate1D(FlexGpu.Table(blocks, a.QueryBlocks));
            a.Meta = meta.View;
            Assert.True(blocks.FullCounts.Span.ToArray().Sum() > 0, "the test's mask has full blocks");
        }
        else
        {
            (a.QueryBlockSize, a.KeyBlockSize, a.QueryBlocks, a.TilesPerBlock, a.KeyBlocks, a.MaskHeadDiv) = (16, 16, (nq + 15) / 16, 1, (nk + 15) / 16, 1);
        }
        int groups = batch * hq * a.QueryBlocks * a.TilesPerBlock;
        var config = new KernelConfig(groups, FlexMma.Threads, SharedMemoryConfig.RequestDynamic<int>(FlexViewChecks.RecordInts));
        if (capacity == 64)
            accelerator.LoadStreamKernel<FlexForwardArgs<AlibiScore, WindowMask, ushort>>(FlexMmaKernels.Forward<AlibiScore, WindowMask, TCodec, EmulatedMma<TCodec>, MmaAcc64>)(config, a);
        else
            accelerator.LoadStreamKernel<FlexForwardArgs<AlibiScore, WindowMask, ushort>>(FlexMmaKernels.Forward<AlibiScore, WindowMask, TCodec, EmulatedMma<TCodec>, MmaAcc128>)(config, a);
        accelerator.Synchronize();
        meta?.Dispose();

        var output = od.GetAsArray1D().Select(x => default(TCodec).Load(x)).ToArray();
        var lse = ld.GetAsArray1D();
        return new Launched(q, k, v, output, lse, slopes);
    }

    /// <summary>How long one launch may take before it counts as ILGPU's CPU runtime stuck in a barrier (normal: seconds).</summary>
    private static readonly TimeSpan LaunchLimit = TimeSpan.FromMinutes(4);

    private static void Run<TCodec>(bool bf16, bool useBlockMask, int capacity) where TCodec : struct, IFlexElement<ushort>
    {
        // The launch runs on its own thread under a time limit, once more if that passes: a launch left behind is
        // ILGPU's runtime waiting in a barrier (its threads and buffers are leaked; disposing them would wait forever).
        // Two in a row fail the test; the kernel's results are checked only from a launch that finished.
        Launched? run = null;
        for (int attempt = 0; attempt < 2 && run is null; attempt++)
        {
            var launch = Task.Factory.StartNew(() => Launch<TCodec>(bf16, useBlockMask, capacity), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            if (launch.Wait(LaunchLimit)) run = launch.Result;
        }
        Assert.True(run is not null, $"ILGPU's CPU accelerator did not finish the emulated launch within {LaunchLimit.TotalMinutes} minutes, twice");
        var (q, k, v, output, lse, slopes) = (run.Q, run.K, run.V, run.Output, run.Lse, run.Slopes);
        int batch = 2, hq = 4, hkv = 2, nq = 37, nk = 45, d = capacity == 64 ? 40 : 100, dv = capacity == 64 ? 24 : 72;
        int shift = nk - nq;
        float scale = 1 / MathF.Sqrt(d);
        // (The error record is not checked here: on ILGPU's CPU runtime dynamic shared memory need not be separate from the static tiles.)
        var (expected, expectedLse) = FlexReference.Run(q, k, v, batch, hq, hkv, nq, nk, d, dv, scale,
            (b, h, i, j) => j - i - shift >= -40 && j - i - shift <= 0, (s, b, h, i, j) => s + slopes[h] * (j - i - shift));
        // P is rounded to the input type before P V, the output to the storage type.
        FlexCheck.Compare("output", expected, output, bf16 ? 3e-2 : 4e-3);
        FlexCheck.Compare("logSumExp", expectedLse, lse, 1e-4);
    }
}
