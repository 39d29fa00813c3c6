// One idle object per thread and type, so that a steady stream of calls on a thread reuses its per-call objects
// (kernel plans) instead of allocating them: a call rents the thread's idle object (a nested call finds none and gets a
// new one) and gives it back when done.
namespace NativeAttention.Cpu;

/// <summary>The calling thread's idle <typeparamref name="T"/>, rented by a call and returned after it.</summary>
internal static class ThreadIdle<T> where T : class, new()
{
    [ThreadStatic] private static T? t_idle;

    /// <summary>This thread's idle object, or a new one; give it back with <see cref="Return"/>.</summary>
    public static T Rent()
    {
        var item = t_idle ?? new T();
        t_idle = null;
        return item;
    }

    /// <summary>Keeps <paramref name="item"/> for this thread's next call; the caller has dropped the finished call's references.</summary>
    public static void Return(T item) => t_idle = item;
}
