// Starts the workers of a CPU kernel: one work loop per thread, each pulling items until none are left. The threads are
// a small pool of our own, parked between calls, so a steady stream of calls allocates nothing and wakes no GC.
using System.Runtime.ExceptionServices;

namespace NativeAttention.Cpu;

internal static class CpuWorkers
{
    /// <summary>
    /// Runs <paramref name="work"/> on <c>min(threads, items)</c> workers: on the calling thread when that is at most
    /// one, else on the calling thread plus parked pool threads (allocation-free once the pool has grown to the size
    /// and the calling thread has run a job of this plan type). A call made while another thread's call holds the
    /// pool, or from inside a job, runs under <see cref="Parallel.For(int, int, ParallelOptions, Action{int})"/>
    /// instead (correct, and allocating).
    /// </summary>
    public static void Run<TPlan>(TPlan plan, int threads, int items, Action<TPlan> work)
    {
        int workers = Math.Min(threads, items);
        if (workers <= 1)
        {
            work(plan);
            return;
        }
        var job = Job<TPlan>.Current ??= new Job<TPlan>();
        if (!job.Busy)
        {
            try
            {
                if (WorkerPool.TryRun(job.Arm(plan, work), workers)) return;
            }
            finally
            {
                job.Disarm();
            }
        }
        RunOnThreadPool(plan, workers, work);
    }

    /// <summary>Managed bytes allocated by the pool threads so far (see <see cref="WorkerPool.AllocatedBytes"/>).</summary>
    public static long PoolAllocatedBytes() => WorkerPool.AllocatedBytes();

    /// <summary>
    /// The fallback under <see cref="Parallel.For(int, int, ParallelOptions, Action{int})"/>, in its own method: the
    /// closure over <paramref name="plan"/> would otherwise be allocated on entry to <see cref="Run"/>, on every call.
    /// </summary>
    private static void RunOnThreadPool<TPlan>(TPlan plan, int workers, Action<TPlan> work) =>
        Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, _ => work(plan));

    /// <summary>One call's work as the pool runs it: the plan and the loop every participant executes.</summary>
    private abstract class WorkItem
    {
        public abstract void Execute();
    }

    /// <summary>The calling thread's reusable work item for plans of type <typeparamref name="TPlan"/>.</summary>
    private sealed class Job<TPlan> : WorkItem
    {
        [ThreadStatic] public static Job<TPlan>? Current;

        private TPlan? _plan;
        private Action<TPlan>? _work;

        /// <summary>True while this thread's job is in flight (a nested call must not reuse it).</summary>
        public bool Busy;

        public WorkItem Arm(TPlan plan, Action<TPlan> work)
        {
            (_plan, _work, Busy) = (plan, work, true);
            return this;
        }

        /// <summary>Drops the references, so a finished call keeps nothing alive.</summary>
        public void Disarm() => (_plan, _work, Busy) = (default, null, false);

        public override void Execute() => _work!(_plan!);
    }

    /// <summary>
    /// Parked background threads shared by every CPU context. One call at a time owns the pool: it publishes its work
    /// item, releases as many threads as it needs, works itself, and waits until the last one finishes.
    /// </summary>
    private static class WorkerPool
    {
        private static readonly Lock s_grow = new();
        private static SemaphoreSlim[] s_wake = [];

        /// <summary>
        /// Each pool thread's <see cref="GC.GetAllocatedBytesForCurrentThread"/> after its last job (one read per thread
        /// and call): what the allocation tests sum, since the process-wide count also sees the test host's threads.
        /// </summary>
        private static long[] s_allocated = [];
        private static readonly ManualResetEventSlim s_done = new(false, spinCount: 200);
        private static int s_owned;
        private static WorkItem? s_item;
        private static int s_remaining;
        private static ExceptionDispatchInfo? s_error;

        /// <summary>
        /// Runs <paramref name="item"/> on the calling thread and <paramref name="workers"/> - 1 pool threads; false,
        /// without running it, when another call owns the pool.
        /// </summary>
        public static bool TryRun(WorkItem item, int workers)
        {
            if (Interlocked.CompareExchange(ref s_owned, 1, 0) != 0) return false;
            try
            {
                int helpers = workers - 1;
                Grow(helpers);
                s_item = item;
                s_error = null;
                s_done.Reset();
                Volatile.Write(ref s_remaining, helpers);
                var wake = s_wake;
                for (int i = 0; i < helpers; i++) wake[i].Release();
                try
                {
                    item.Execute();
                }
                finally
                {
                    // The helpers still read the plan: wait for them even when this thread's share threw.
                    s_done.Wait();
                    s_item = null;
                }
                s_error?.Throw();
                return true;
            }
            finally
            {
                Volatile.Write(ref s_owned, 0);
            }
        }

        /// <summary>
        /// The managed bytes the pool threads have allocated in their lifetimes, as of their last finished job; a
        /// difference across calls is what those calls' shares allocated (for tests: calls made between two reads must
        /// not overlap another thread's call, as the allocation tests ensure by running alone).
        /// </summary>
        public static long AllocatedBytes()
        {
            long sum = 0;
            var allocated = s_allocated;
            for (int i = 0; i < allocated.Length; i++) sum += Volatile.Read(ref allocated[i]);
            return sum;
        }

        /// <summary>Starts threads until the pool has <paramref name="helpers"/>; called by the owner only.</summary>
        private static void Grow(int helpers)
        {
            if (s_wake.Length >= helpers) return;
            lock (s_grow)
            {
                var wake = s_wake;
                if (wake.Length >= helpers) return;
                var grown = new SemaphoreSlim[helpers];
                wake.CopyTo(grown, 0);
                var allocated = new long[helpers];
                s_allocated.CopyTo(allocated, 0);
                s_allocated = allocated;   // the pool threads are parked: none writes the old array now
                for (int i = wake.Length; i < helpers; i++)
                {
                    var (signal, index) = (grown[i] = new SemaphoreSlim(0), i);
                    new Thread(() => Loop(signal, index)) { IsBackground = true, Name = $"NativeAttention CPU worker {i + 1}" }.Start();
                }
                s_wake = grown;
            }
        }

        private static void Loop(SemaphoreSlim wake, int index)
        {
            while (true)
            {
                wake.Wait();
                try
                {
                    s_item!.Execute();
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref s_error, ExceptionDispatchInfo.Capture(e), null);
                }
                Volatile.Write(ref s_allocated[index], GC.GetAllocatedBytesForCurrentThread());   // before the owner can return
                if (Interlocked.Decrement(ref s_remaining) == 0) s_done.Set();
            }
        }
    }
}
