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
    /// Background threads shared by every CPU context. One call at a time owns the pool: it publishes its work item,
    /// hands it to as many threads as it needs, works itself, and waits until the last one finishes. A thread that
    /// finished a call polls for the next one for <see cref="PollTicks"/> before it parks, so back-to-back calls reach
    /// it without a wake-up: a parked thread is woken by the calling thread, and Linux may queue it on the caller's
    /// busy core while the other sits idle, and keep it there call after call (seen on a 2-core VM: a process ran the
    /// banded 1-D neighborhood kernel either at full speed or at the one-thread speed for its whole life, 2026-12-05).
    /// </summary>
    private static class WorkerPool
    {
        /// <summary>How long a pool thread polls for the next call before it parks: 100 microseconds.</summary>
        private static readonly long PollTicks = Math.Max(1, System.Diagnostics.Stopwatch.Frequency / 10_000);

        private static readonly Lock s_grow = new();
        private static Helper[] s_helpers = [];
        private static readonly ManualResetEventSlim s_done = new(false, spinCount: 200);
        private static int s_owned;
        private static int s_calls;
        private static WorkItem? s_item;
        private static int s_remaining;
        private static ExceptionDispatchInfo? s_error;

        /// <summary>One pool thread's hand-over state, padded so that two threads' fields share no cache line.</summary>
        [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Explicit, Size = 192)]
        private struct Handover
        {
            /// <summary>The number of the latest call given to this thread (written by the owner).</summary>
            [System.Runtime.InteropServices.FieldOffset(64)] public int Call;
            /// <summary><see cref="Polling"/> or <see cref="Parked"/> (waiting on its semaphore).</summary>
            [System.Runtime.InteropServices.FieldOffset(68)] public int State;
        }

        private const int Polling = 0, Parked = 1;

        private sealed class Helper
        {
            public readonly SemaphoreSlim Wake = new(0);
            public Handover Handover;
        }

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
                int call = ++s_calls;
                var pool = s_helpers;
                for (int i = 0; i < helpers; i++)
                {
                    var helper = pool[i];
                    // The call first (a polling thread takes it from there), then the state: a thread that parked
                    // before it could see the call is released here, exactly once (see Loop).
                    Interlocked.Exchange(ref helper.Handover.Call, call);
                    if (Interlocked.Exchange(ref helper.Handover.State, Polling) == Parked) helper.Wake.Release();
                }
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

        /// <summary>Starts threads until the pool has <paramref name="helpers"/>; called by the owner only.</summary>
        private static void Grow(int helpers)
        {
            if (s_helpers.Length >= helpers) return;
            lock (s_grow)
            {
                var pool = s_helpers;
                if (pool.Length >= helpers) return;
                var grown = new Helper[helpers];
                pool.CopyTo(grown, 0);
                for (int i = pool.Length; i < helpers; i++)
                {
                    var helper = grown[i] = new Helper();
                    new Thread(() => Loop(helper)) { IsBackground = true, Name = $"NativeAttention CPU worker {i + 1}" }.Start();
                }
                s_helpers = grown;
            }
        }

        private static void Loop(Helper helper)
        {
            int done = 0;
            while (true)
            {
                int call = Volatile.Read(ref helper.Handover.Call);
                if (call == done)
                {
                    long until = System.Diagnostics.Stopwatch.GetTimestamp() + PollTicks;
                    do Thread.SpinWait(16);
                    while ((call = Volatile.Read(ref helper.Handover.Call)) == done && System.Diagnostics.Stopwatch.GetTimestamp() < until);
                }
                if (call == done)
                {
                    // Park, then look again: a call published before the owner saw Parked is taken back here; one
                    // published after it comes with a release.
                    Interlocked.Exchange(ref helper.Handover.State, Parked);
                    if (Volatile.Read(ref helper.Handover.Call) == done
                        || Interlocked.CompareExchange(ref helper.Handover.State, Polling, Parked) != Parked)
                        helper.Wake.Wait();
                    call = Volatile.Read(ref helper.Handover.Call);
                }
                done = call;
                try
                {
                    s_item!.Execute();
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref s_error, ExceptionDispatchInfo.Capture(e), null);
                }
                if (Interlocked.Decrement(ref s_remaining) == 0) s_done.Set();
            }
        }
    }
}
