// Entry point of the BenchmarkDotNet suites. Classes whose backend is missing here are left out, with the reason;
// --quick runs a short job (one launch, few short iterations) for smoke runs.
using System.Reflection;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Perfolizer.Horology;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using NativeAttention;
using NativeAttention.Benchmarks;

if (args.Length > 0 && args[0] == "--delta-ratios")
    return DeltaRuleRatios.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 5, Console.Out);

if (args.Length > 0 && args[0] == "--linear-decode-bandwidth")
    return LinearDecodeBandwidth.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 7, Console.Out,
        args.Length > 2 ? args[2..] : null);

if (args.Length > 0 && args[0] == "--decode-stream-ceiling")
    return DecodeStreamCeiling.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 5, Console.Out);

if (args.Length > 0 && args[0] == "--flex-ratios")
    return FlexRatios.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 7, Console.Out);

bool quick = args.Contains("--quick");
args = [.. args.Where(a => a != "--quick")];

var runnable = new List<Type>();
foreach (var type in typeof(ICaseBenchmark).Assembly.GetExportedTypes())
{
    if (type.IsAbstract || !type.GetMethods().Any(m => m.IsDefined(typeof(BenchmarkAttribute), inherit: true))) continue;
    if (type.GetCustomAttribute<RequiresBackendAttribute>() is { } requires && Backends.Query(requires.Backend) is { IsSupported: false } info)
    {
        Console.WriteLine($"// Skipping {type.Name}: {info.Description}");
        continue;
    }
    runnable.Add(type);
}

IConfig config = DefaultConfig.Instance;
if (quick)
    config = config.AddJob(Job.Default.WithId("Quick").WithLaunchCount(1).WithWarmupCount(1).WithIterationCount(3)
        .WithIterationTime(TimeInterval.FromMilliseconds(100)));

var summaries = BenchmarkSwitcher.FromTypes([.. runnable]).Run(args, config);
return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
