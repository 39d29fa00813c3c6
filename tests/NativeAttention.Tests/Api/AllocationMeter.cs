// Counts the managed bytes a stream of calls allocates, on the threads that run them: the calling thread and the CPU
// backend's pool threads. The process-wide count is printed beside them, not asserted: it also sees the test host's
// own threads (result reporting, timers), which under a loaded CI machine allocate a few KB in any window of seconds.
using Xunit;

namespace NativeAttention.Tests;

internal static class AllocationMeter
{
    /// <summary>Bytes allocated over one window of calls, the smallest of the windows measured.</summary>
    /// <param name="CallingThread">On the thread that made the calls (GPU backends run no managed code elsewhere;
    /// a CPU call that falls back to <c>Parallel.For</c> allocates its tasks here too).</param>
    /// <param name="Workers">On the CPU backend's pool threads (<see cref="Cpu.CpuWorkers.PoolAllocatedBytes"/>).</param>
    /// <param name="Process">Every thread of the process, the test host's included: for the message only.</param>
    public readonly record struct Bytes(long CallingThread, long Workers, long Process);

    /// <summary>
    /// Runs up to <paramref name="windows"/> windows of <paramref name="calls"/> calls (then <paramref name="settle"/>,
    /// e.g. a device synchronisation) and keeps the smallest count of each kind. A genuine per-call allocation shows in
    /// every window; a single window can read a few bytes too many when a garbage collection runs inside it
    /// (dotnet/coreclr#10207), so measuring stops at the first window that reads 0 on both counted kinds.
    /// </summary>
    public static Bytes Measure(Action call, int calls, int windows, Action? settle = null)
    {
        long thread = long.MaxValue, workers = long.MaxValue, process = long.MaxValue;
        for (int w = 0; w < windows && (thread > 0 || workers > 0); w++)
        {
            long thread0 = GC.GetAllocatedBytesForCurrentThread(), workers0 = Cpu.CpuWorkers.PoolAllocatedBytes(), process0 = GC.GetTotalAllocatedBytes(precise: true);
            for (int i = 0; i < calls; i++) call();
            settle?.Invoke();
            long thread1 = GC.GetAllocatedBytesForCurrentThread(), workers1 = Cpu.CpuWorkers.PoolAllocatedBytes(), process1 = GC.GetTotalAllocatedBytes(precise: true);
            thread = Math.Min(thread, thread1 - thread0);
            workers = Math.Min(workers, workers1 - workers0);
            process = Math.Min(process, process1 - process0);
        }
        return new Bytes(thread, workers, process);
    }

    /// <summary>Fails unless neither the calling thread nor the pool threads allocated.</summary>
    public static void AssertNothing(Bytes bytes, int calls, string shape)
    {
        Assert.True(bytes.CallingThread == 0, $"{shape}: {bytes.CallingThread} bytes allocated on the calling thread over {calls} calls ({(double)bytes.CallingThread / calls:F1} per call).");
        Assert.True(bytes.Workers == 0, $"{shape}: {bytes.Workers} bytes allocated on the CPU pool threads over {calls} calls ({(double)bytes.Workers / calls:F1} per call).");
    }

    public static string Describe(Bytes bytes, int calls) =>
        $"{bytes.CallingThread} bytes on the calling thread, {bytes.Workers} on the pool threads, {bytes.Process} in the process (test host included) over {calls} calls";
}

/// <summary>The meter itself can fail: allocations made only on a CPU pool thread are counted.</summary>
[Collection(AllocationCollection.Name)]
public sealed class AllocationMeterTests
{
    [Fact]
    public void AllocationOnAPoolThreadOnly_IsCounted()
    {
        int caller = Environment.CurrentManagedThreadId;
        var sink = new object?[1];
        Action<object?[]> work = s => { if (Environment.CurrentManagedThreadId != caller) s[0] = new byte[100]; };
        void Call() => Cpu.CpuWorkers.Run(sink, threads: 2, items: 2, work);
        for (int i = 0; i < 10; i++) Call();
        var bytes = AllocationMeter.Measure(Call, 50, 3);
        Assert.Equal(0, bytes.CallingThread);
        Assert.True(bytes.Workers >= 50 * 100, AllocationMeter.Describe(bytes, 50));
    }
}
