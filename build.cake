// Build script: dotnet tool restore && dotnet cake --target=<Build|Test|Mutations|Bench|Pack|DeviceBundle>
using System.Text.RegularExpressions;

var target = Argument("target", "Test");
var configuration = Argument("configuration", "Release");
var filter = Argument("filter", "*");
// Bench: --quick=true runs BenchmarkDotNet's short smoke job; --bench-threads=1,2 the CPU thread counts.
var quick = Argument("quick", false);
var benchThreads = Argument("bench-threads", "2");

Task("Build")
    .Does(() => DotNetBuild("./NativeAttention.sln", new DotNetBuildSettings { Configuration = configuration }));

// Kernel caches stay where the library and PoCL put them by default (~/.cache/NativeAttention, ~/.cache/pocl), as in
// .ci/run: repeated runs on one machine reuse compiled OpenCL programs and PTX, whatever the checkout.
Task("Test")
    .IsDependentOn("Build")
    .Does(() => DotNetTest("./NativeAttention.sln", new DotNetTestSettings { Configuration = configuration, NoBuild = true }));

// Plants the bugs of tests/mutations/mutations.sh one at a time in a scratch copy and reports which the CPU tests
// catch (tests/mutations/README.md). --mutations=id1,id2 selects some.
Task("Mutations")
    .Does(() =>
    {
        var arguments = new ProcessArgumentBuilder().AppendQuoted("./tests/mutations/run.sh");
        foreach (var id in Argument("mutations", "").Split(',', StringSplitOptions.RemoveEmptyEntries)) arguments.Append(id);
        Run("bash", arguments);
    });

// Runs the BenchmarkDotNet suites (those whose backend is missing here are left out with the reason) and writes
// their reports where bench/results/README.md says: bench/results/<machine>-<threads>t/<yyyy-mm-dd>/, with the
// tool's `info` output beside them.
Task("Bench")
    .Does(() =>
    {
        string machine = Regex.Replace(CpuModel().ToLowerInvariant(), "[^a-z0-9]+", "-").Trim('-');
        string threads = benchThreads.Replace(",", "-");
        var folder = Directory($"./bench/results/{machine}-{threads}t/{DateTime.UtcNow:yyyy-MM-dd}");
        EnsureDirectoryExists(folder);

        DotNetBuild("./bench/NativeAttention.Cli/NativeAttention.Cli.csproj", new DotNetBuildSettings { Configuration = "Release" });
        int firstThreads = int.Parse(benchThreads.Split(',')[0]);
        using (var info = StartAndReturnProcess("dotnet", new ProcessSettings
        {
            Arguments = new ProcessArgumentBuilder().Append("run").Append("-c").Append("Release").Append("--no-build")
                .Append("--project").AppendQuoted("./bench/NativeAttention.Cli").Append("--")
                .Append("info").Append("--threads").Append(firstThreads.ToString()),
            RedirectStandardOutput = true,
        }))
        {
            info.WaitForExit();
            System.IO.File.WriteAllLines(folder.Path.CombineWithFilePath("info.txt").FullPath, info.GetStandardOutput());
        }

        var arguments = new ProcessArgumentBuilder()
            .Append("--filter").AppendQuoted(filter)
            .Append("--exporters").Append("github").Append("fulljson")
            .Append("--artifacts").AppendQuoted(folder.Path.FullPath);
        if (quick) arguments.Append("--quick");
        DotNetRun("./bench/NativeAttention.Benchmarks/NativeAttention.Benchmarks.csproj", arguments, new DotNetRunSettings
        {
            Configuration = "Release",
            EnvironmentVariables = { ["NATIVEATTENTION_BENCH_THREADS"] = benchThreads },
        });
        // BenchmarkDotNet writes its reports into a results/ subfolder; the layout of bench/results keeps them flat.
        var reports = folder.Path.Combine("results");
        if (DirectoryExists(reports))
        {
            foreach (var report in GetFiles($"{reports.FullPath}/*")) MoveFileToDirectory(report, folder);
            DeleteDirectory(reports, new DeleteDirectorySettings { Recursive = false });
        }
        Information($"Reports in {folder.Path.FullPath}");
    });

Task("Pack")
    .IsDependentOn("Build")
    .Does(() => DotNetPack("./managed/NativeAttention/NativeAttention.csproj",
        new DotNetPackSettings { Configuration = configuration, NoBuild = true, OutputDirectory = "./artifacts" }));

// Packs what a GPU machine without .NET or a package registry needs to run the tests, `verify` and `bench`, into
// .device/ (ignored by git): the .NET runtime as a tar.xz, Release builds of the tests and the command-line tool, the
// xunit console runner 2.4.1, and env.sh. Copy .device/ into the checkout on that machine, then e.g.
//   source .device/env.sh; na verify --backend cuda
//   source .device/env.sh; na bench --backend cuda --dtype f16 --n 1024,4096,16384 --svg cuda.svg
//   source .device/env.sh; xunit .device/NativeAttention.Tests/NativeAttention.Tests.dll -trait "Backend=Cuda"
Task("DeviceBundle")
    .Does(() =>
    {
        var bundle = Directory("./.device");
        EnsureDirectoryExists(bundle);

        // The runtime, only when its version changed: packing it takes about half a minute.
        var (version, dotnetRoot) = NewestRuntime();
        var versionFile = bundle.Path.CombineWithFilePath("runtime-version");
        var archive = bundle.Path.CombineWithFilePath("dotnet-runtime.tar.xz");
        if (!FileExists(archive) || !FileExists(versionFile) || System.IO.File.ReadAllText(versionFile.FullPath).Trim() != version)
        {
            Information($"Packing the .NET runtime {version} from {dotnetRoot}");
            Run("tar", new ProcessArgumentBuilder().Append("-cJf").AppendQuoted(archive.FullPath).Append("-C").AppendQuoted(dotnetRoot)
                .Append("dotnet").Append("host/fxr").AppendQuoted($"shared/Microsoft.NETCore.App/{version}"));
            System.IO.File.WriteAllText(versionFile.FullPath, version + "\n");
        }

        foreach (var project in new[] { "./tests/NativeAttention.Tests/NativeAttention.Tests.csproj", "./bench/NativeAttention.Cli/NativeAttention.Cli.csproj" })
        {
            var output = bundle.Path.Combine(System.IO.Path.GetFileNameWithoutExtension(project));
            if (DirectoryExists(output)) DeleteDirectory(output, new DeleteDirectorySettings { Recursive = true, Force = true });
            DotNetBuild(project, new DotNetBuildSettings { Configuration = "Release", OutputDirectory = output, NoLogo = true });
        }

        // The xunit console runner: a throw-away project downloads the package into the NuGet cache.
        var xunit = bundle.Path.Combine("xunit");
        if (!DirectoryExists(xunit))
        {
            var scratch = bundle.Path.Combine("runner-download");
            EnsureDirectoryExists(scratch);
            System.IO.File.WriteAllText(scratch.CombineWithFilePath("runner.csproj").FullPath,
                "<Project Sdk=\"Microsoft.NET.Sdk\"><PropertyGroup><TargetFramework>net10.0</TargetFramework></PropertyGroup>" +
                "<ItemGroup><PackageDownload Include=\"xunit.runner.console\" Version=\"[2.4.1]\" /></ItemGroup></Project>");
            DotNetRestore(scratch.FullPath);
            DeleteDirectory(scratch, new DeleteDirectorySettings { Recursive = true, Force = true });
            string packages = EnvironmentVariable("NUGET_PACKAGES") ?? System.IO.Path.Combine(EnvironmentVariable("HOME") ?? "", ".nuget", "packages");
            CopyDirectory(System.IO.Path.Combine(packages, "xunit.runner.console", "2.4.1", "tools", "netcoreapp2.0"), xunit);
        }

        System.IO.File.WriteAllText(bundle.Path.CombineWithFilePath("env.sh").FullPath, string.Join("\n",
            "# Sourced on the GPU machine: unpacks the bundled .NET runtime once, puts it on PATH, and defines",
            "# `na` (the command-line tool) and `xunit` (the console runner on the bundled tests).",
            "here=$(cd \"$(dirname \"${BASH_SOURCE[0]}\")\" && pwd)",
            "runtime=${NATIVEATTENTION_DOTNET:-/tmp/nativeattention-dotnet}",
            $"if [ ! -x \"$runtime/dotnet\" ] || [ ! -d \"$runtime/shared/Microsoft.NETCore.App/{version}\" ]; then",
            "  mkdir -p \"$runtime\" && tar -xJf \"$here/dotnet-runtime.tar.xz\" -C \"$runtime\"",
            "fi",
            "export DOTNET_ROOT=\"$runtime\" PATH=\"$runtime:$PATH\" DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1",
            "na() { dotnet \"$here/NativeAttention.Cli/NativeAttention.Cli.dll\" \"$@\"; }",
            "xunit() { DOTNET_ROLL_FORWARD=Major dotnet \"$here/xunit/xunit.console.dll\" \"$@\"; }",
            ""));
        Information($"Bundle in {MakeAbsolute(bundle)}: runtime {version}, tests, CLI, xunit runner, env.sh");
    });

RunTarget(target);

// The newest Microsoft.NETCore.App this SDK has, and the folder that holds it (dotnet, host/, shared/).
(string Version, string Root) NewestRuntime()
{
    using var process = StartAndReturnProcess("dotnet", new ProcessSettings { Arguments = "--list-runtimes", RedirectStandardOutput = true });
    process.WaitForExit();
    var runtime = process.GetStandardOutput()
        .Select(line => Regex.Match(line, @"^Microsoft\.NETCore\.App (\S+) \[(.+)\]$"))
        .Where(m => m.Success)
        .Select(m => (Version: m.Groups[1].Value, Shared: m.Groups[2].Value))
        .OrderBy(r => Version.TryParse(r.Version.Split('-')[0], out var v) ? v : new Version())
        .LastOrDefault();
    if (runtime.Version is null) throw new CakeException("dotnet --list-runtimes lists no Microsoft.NETCore.App.");
    // <root>/shared/Microsoft.NETCore.App -> <root>
    return (runtime.Version, System.IO.Path.GetFullPath(System.IO.Path.Combine(runtime.Shared, "..", "..")));
}

string CpuModel()
{
    if (System.IO.File.Exists("/proc/cpuinfo"))
        foreach (var line in System.IO.File.ReadLines("/proc/cpuinfo"))
            if (line.StartsWith("model name") && line.Contains(':')) return line[(line.IndexOf(':') + 1)..].Trim();
    return EnvironmentVariable("PROCESSOR_IDENTIFIER") ?? System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString();
}

void Run(string tool, ProcessArgumentBuilder arguments)
{
    int code = StartProcess(tool, new ProcessSettings { Arguments = arguments });
    if (code != 0) throw new CakeException($"{tool} {arguments.Render()} exited with {code}.");
}
