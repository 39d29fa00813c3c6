// The configuration every ICaseBenchmark class uses: GFLOP/s and % of peak columns, and allocated bytes.
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;

namespace NativeAttention.Benchmarks;

/// <summary>Adds the GFLOP/s and % of peak columns and the memory diagnoser.</summary>
public sealed class CaseBenchmarkConfig : ManualConfig
{
    public CaseBenchmarkConfig()
    {
        AddColumn(new GflopsColumn(), new PercentOfPeakColumn());
        AddDiagnoser(MemoryDiagnoser.Default);
    }
}
