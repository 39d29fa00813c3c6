// Starts the workers of a CPU kernel: one work loop per thread, each pulling items until none are left.
namespace NativeAttention.Cpu;

internal static class CpuWorkers
{
    /// <summary>
    /// Runs <paramref name="work"/> on <c>min(threads, items)</c> workers: on the calling thread when that is at most
    /// one, else once per worker under <see cref="Parallel.For(int, int, ParallelOptions, Action{int})"/>.
    /// </summary>
    public static void Run<TPlan>(TPlan plan, int threads, int items, Action<TPlan> work)
    {
        int workers = Math.Min(threads, items);
        if (workers <= 1) work(plan);
        else Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, _ => work(plan));
    }
}
