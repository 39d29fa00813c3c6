// Recovers the ICaseBenchmark behind a BenchmarkDotNet case, in the host process where columns are computed.
using System.Collections.Concurrent;
using System.Reflection;
using BenchmarkDotNet.Running;

namespace NativeAttention.Benchmarks;

internal static class CaseBenchmarks
{
    private static readonly ConcurrentDictionary<BenchmarkCase, ICaseBenchmark?> Instances = new();

    /// <summary>
    /// A fresh instance of the case's benchmark class with the case's parameters set, or null when the class is not
    /// an <see cref="ICaseBenchmark"/>. No setup runs: the interface members depend on parameters only.
    /// </summary>
    public static ICaseBenchmark? Describe(BenchmarkCase benchmarkCase) => Instances.GetOrAdd(benchmarkCase, static c =>
    {
        var type = c.Descriptor.Type;
        if (!typeof(ICaseBenchmark).IsAssignableFrom(type) || type.IsAbstract) return null;
        object instance = Activator.CreateInstance(type)!;
        const BindingFlags flags = BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.FlattenHierarchy;
        foreach (var parameter in c.Parameters.Items)
        {
            if (type.GetProperty(parameter.Name, flags) is { CanWrite: true } property)
                property.SetValue(property.GetMethod!.IsStatic ? null : instance, parameter.Value);
            else if (type.GetField(parameter.Name, flags) is { } field)
                field.SetValue(field.IsStatic ? null : instance, parameter.Value);
        }
        return (ICaseBenchmark)instance;
    });
}
