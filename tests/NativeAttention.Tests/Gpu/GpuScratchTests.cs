// The scratch slots are shared by every family of a context: a slot one family uploads a table to may be written by
// another family's kernel next. An upload must then really transfer, even when its contents equal the last upload.
using System.Runtime.InteropServices;
using NativeAttention.Gpu;
using Xunit;

namespace NativeAttention.Tests.Gpu;

public sealed class GpuScratchTests
{
    [RuntimeFact(TestRuntime.OpenCl)]
    public void Upload_AfterTheSlotWasTakenForKernelOutput_TransfersAgain()
    {
        RuntimeAvailability.Require(TestRuntime.OpenCl);
        using var context = (GpuContext)AttentionContext.Create(Backend.OpenCl);
        var scratch = context.Scratch;
        lock (scratch.Gate)
        {
            int[] table = [1, 2, 3, 4];
            scratch.Upload(3, table);
            var taken = scratch.Take(3, table.Length);
            taken.Write<float>([9f, 9f, 9f, 9f]);   // what a kernel writing its work area would leave
            var again = scratch.Upload(3, table);
            var back = new float[table.Length];
            again.Read<float>(back);
            Assert.Equal(table, MemoryMarshal.Cast<float, int>(back).ToArray());
        }
    }

    [RuntimeFact(TestRuntime.OpenCl)]
    public void BlockSparse_AfterALinearPrefillSharedItsSlot_GivesTheSameResult()
    {
        // Block-sparse uploads its block table to slot 3; the chunked linear kernel writes its work area there.
        RuntimeAvailability.Require(TestRuntime.OpenCl);
        using var context = AttentionContext.Create(Backend.OpenCl);
        var shape = new[] { 1, 2, 64, 16 };
        TensorView Put(int seed) => context.Upload(TestTensors.Uniform(ElementType.Float32, seed, 1.0, shape));
        var (q, k, v) = (Put(1), Put(2), Put(3));
        var output = context.Allocate(ElementType.Float32, shape);
        var options = new BlockSparseOptions { Mask = BlockMasks.Local(new BlockGrid(64, 64, 16, 16), blocksBack: 1) };
        double[] BlockSparse()
        {
            context.BlockSparse(q, k, v, output, options);
            return context.Download(output).ToDoubleArray();
        }
        void Linear() => context.LinearChunked(q, k, v, context.Allocate(ElementType.Float32, shape));

        Linear();
        var first = BlockSparse();
        Linear();
        var second = BlockSparse();
        Assert.Equal(first, second);
    }
}
