// Turns ILGPU's bounds assertion in a view field's indexer into an exception when it fires inside a CPU Flex call.
using System.Diagnostics;
using NativeAttention.Cpu;

namespace NativeAttention.Ilgpu.Flex;

/// <summary>
/// ILGPU's <c>ArrayView</c> indexer checks its bounds with <see cref="Trace.Assert(bool, string)"/>, and .NET's default
/// listener ends the process when an assertion fails. A modification that reads a view field out of range on the CPU
/// would thus kill the process instead of raising a <see cref="FlexModificationException"/>, as an out-of-range array
/// read does. This listener, installed ahead of the others the first time a CPU Flex call or block mask has view
/// fields, throws an <see cref="IndexOutOfRangeException"/> instead, but only for assertions whose stack runs through
/// the CPU Flex kernel or its probe (the Flex code then names the struct); any other assertion of the process passes
/// on to the listeners after it unchanged.
/// </summary>
internal sealed class FlexAssertGuard : TraceListener
{
    private static int _installed;

    private FlexAssertGuard() : base(nameof(FlexAssertGuard)) { }

    /// <summary>Installs the listener once per process, first in <see cref="Trace.Listeners"/>.</summary>
    public static void EnsureInstalled()
    {
        if (Volatile.Read(ref _installed) != 0 || Interlocked.Exchange(ref _installed, 1) != 0) return;
        lock (Trace.Listeners) Trace.Listeners.Insert(0, new FlexAssertGuard());
    }

    public override void Fail(string? message, string? detailMessage)
    {
        if (InsideCpuFlex())
            throw new IndexOutOfRangeException($"An ILGPU view field was read out of range ({message ?? "assertion failed"}).");
    }

    public override void Fail(string? message) => Fail(message, null);

    public override void Write(string? message) { }

    public override void WriteLine(string? message) { }

    /// <summary>True when a frame of the CPU Flex kernel, its block-mask builder or the modification probe is on this thread's stack.</summary>
    private static bool InsideCpuFlex()
    {
        foreach (var frame in new StackTrace(fNeedFileInfo: false).GetFrames())
        {
            var type = frame.GetMethod()?.DeclaringType;
            while (type?.DeclaringType is { } outer) type = outer;
            if (type == typeof(CpuFlex) || type == typeof(FlexProblem)) return true;
        }
        return false;
    }
}
