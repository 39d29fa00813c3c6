// Build script: dotnet tool restore && dotnet cake --target=<Build|Test|Bench|Pack>
var target = Argument("target", "Test");
var configuration = Argument("configuration", "Release");
var filter = Argument("filter", "*");

Task("Build")
    .Does(() => DotNetBuild("./NativeAttention.sln", new DotNetBuildSettings { Configuration = configuration }));

Task("Test")
    .IsDependentOn("Build")
    .Does(() => DotNetTest("./NativeAttention.sln", new DotNetTestSettings { Configuration = configuration, NoBuild = true }));

Task("Bench")
    .Does(() => DotNetRun("./bench/NativeAttention.Benchmarks/NativeAttention.Benchmarks.csproj",
        new ProcessArgumentBuilder().Append("--filter").AppendQuoted(filter).Append("--artifacts").AppendQuoted("./bench/results/benchmarkdotnet"),
        new DotNetRunSettings { Configuration = "Release" }));

Task("Pack")
    .IsDependentOn("Build")
    .Does(() => DotNetPack("./managed/NativeAttention/NativeAttention.csproj",
        new DotNetPackSettings { Configuration = configuration, NoBuild = true, OutputDirectory = "./artifacts" }));

RunTarget(target);
