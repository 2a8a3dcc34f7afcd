using System.Text.Json;
using EffServe.Cli;
using EffServe.LoadGen;
using EffServe.Testing;
using Grpc.Net.Client;
using Spectre.Console;

namespace EffServe.LoadGen.Tests;

/// <summary>
/// The load generator and `effserve bench` against the real inference service serving shapes, for
/// a second or two of low-rate traffic: the pipeline end to end. Timings are not asserted.
/// </summary>
public sealed class EndToEndTests : IAsyncLifetime
{
    private InferenceServer? _server;

    private InferenceServer Server => _server!;

    public async ValueTask InitializeAsync() =>
        _server = await InferenceServer.StartAsync(RepoPaths.Zoo, new Dictionary<string, string?> { ["EffServe:Inference:Models:0"] = "shapes" });

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    [Fact]
    public async Task Sweep_RealService_ScoresAnswersAndWritesReports()
    {
        var workload = Workload.Load(RepoPaths.Zoo, "shapes", LoadMix.Default, maxSamples: 200);
        var settings = new SweepSettings { Rates = [40, 20], DurationSeconds = 1, Repeats = 1, Pause = TimeSpan.Zero };
        var lines = new List<string>();

        var result = await Sweep.RunAsync([new BenchArm("direct", Server.Channel.CreateCallInvoker(), () => Environment.CpuUsage.TotalTime.TotalSeconds)], workload, settings, lines.Add, TestContext.Current.CancellationToken);

        var arm = Assert.Single(result.Arms);
        Assert.Equal([20.0, 40.0], arm.Points.Select(p => p.Rate));
        Assert.Equal(2, lines.Count(l => l.StartsWith("repeat ", StringComparison.Ordinal)));
        foreach (var point in arm.Points)
        {
            var run = Assert.Single(point.Runs);
            Assert.True(run.Requests > 0);
            Assert.Equal(run.Requests, run.Answered + run.Failures.Values.Sum());
            Assert.Equal(run.Requests, run.Classes.Sum(c => c.Requests));
            Assert.InRange(run.Accuracy, 0.8, 1.0);   // shapes: 97% on its evaluation set
            Assert.NotEmpty(run.Variants);
            Assert.NotNull(run.ServerCpuMsPerRequest);
            Assert.False(double.IsNaN(run.ComputeMsPerAnswer));
        }

        var folder = Directory.CreateTempSubdirectory("effserve-loadgen-").FullName;
        try
        {
            var written = Reports.WriteAll(folder, result, new Dictionary<string, string>(), "test", "# preamble\n", "t3.png");
            Assert.Equal(["results.json", "results.md", "t3.png"], written.Select(Path.GetFileName));
            Assert.StartsWith("# preamble", await File.ReadAllTextAsync(written[1], TestContext.Current.CancellationToken), StringComparison.Ordinal);
            Assert.True(new FileInfo(written[2]).Length > 1000);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task ClosedLoop_RealService_AnswersAndWarmsUp()
    {
        var workload = Workload.Load(RepoPaths.Zoo, "shapes", LoadMix.Default, maxSamples: 50);

        var throughput = await ClosedLoop.ThroughputAsync(Server.Channel.CreateCallInvoker(), workload, 2, 0.3, TestContext.Current.CancellationToken);
        var medians = await ClosedLoop.WarmUpAsync(Server.Channel.CreateCallInvoker(), workload, requestsPerWindow: 10, maxWindows: 3, TestContext.Current.CancellationToken);

        Assert.True(throughput > 0);
        Assert.InRange(medians.Count, 1, 3);
    }

    [Fact]
    public async Task Bench_Json_RunsAndWritesFiles()
    {
        var folder = Directory.CreateTempSubdirectory("effserve-bench-").FullName;
        try
        {
            var result = await RunCliAsync("bench", "-m", "shapes", "--rates", "30", "--duration", "0.5", "--samples", "100",
                "--class", "tight:5:1::1", "--class", "loose:50:1", "--zoo", RepoPaths.Zoo, "--out", folder, "--json", "-e", Server.Address.ToString());

            Assert.True(result.ExitCode == ExitCodes.Success, result.Stderr);
            using var json = JsonDocument.Parse(result.Stdout);
            var arm = json.RootElement.GetProperty("result").GetProperty("arms")[0];
            Assert.Equal(30, arm.GetProperty("points")[0].GetProperty("rate").GetDouble());
            var classes = json.RootElement.GetProperty("result").GetProperty("classes");
            Assert.Equal(["tight", "loose"], classes.EnumerateArray().Select(c => c.GetProperty("name").GetString()));
            Assert.True(File.Exists(Path.Combine(folder, "results.json")));
            Assert.True(File.Exists(Path.Combine(folder, "results.md")));
            Assert.True(File.Exists(Path.Combine(folder, "plot.png")));
            Assert.Contains("wrote ", result.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task Bench_TwoArms_TablePerArm()
    {
        var address = Server.Address.ToString();

        var result = await RunCliAsync("bench", "-m", "shapes", "-r", "20", "-d", "0.5", "--samples", "20", "--zoo", RepoPaths.Zoo,
            "--arm", "one=" + address, "--arm", "two=" + address);

        Assert.True(result.ExitCode == ExitCodes.Success, result.Stderr);
        Assert.Contains("| one | ", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("| 20 | two | ", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("warm-up one: ", result.Stderr, StringComparison.Ordinal); // each arm warms up before the measured rates
        Assert.Contains("warm-up two: ", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bench_UnknownModel_NotFoundBeforeAnyLoad()
    {
        var zoo = Directory.CreateTempSubdirectory("effserve-zoo-").FullName;
        try
        {
            // A local evaluation set for a model the server does not serve.
            Directory.CreateDirectory(Path.Combine(zoo, "nosuch"));
            foreach (var file in new[] { "model.yaml", "eval/images.npy", "eval/labels.npy" })
            {
                var target = Path.Combine(zoo, "nosuch", file);
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Copy(Path.Combine(RepoPaths.Zoo, "shapes", file), target);
            }

            var result = await RunCliAsync("bench", "-m", "nosuch", "-r", "10", "--zoo", zoo, "-e", Server.Address.ToString());

            Assert.Equal(ExitCodes.NotFound, result.ExitCode);
            Assert.Contains("arm '", result.Stderr, StringComparison.Ordinal);
            Assert.Contains("NOT_FOUND", result.Stderr, StringComparison.Ordinal);
            Assert.Contains("nosuch", result.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(zoo, recursive: true);
        }
    }

    [Theory]
    [InlineData("--rates", "0", "--rates '0' must be positive numbers of requests per second")]
    [InlineData("--rates", "10,abc", "--rates '10,abc' must be positive numbers")]
    [InlineData("--duration", "0", "--duration must be a positive number of seconds")]
    [InlineData("--give-up", "-1", "--give-up must be a positive number of seconds")]
    [InlineData("--repeats", "0", "--repeats must be 1 or more")]
    [InlineData("--samples", "-3", "--samples must be 0 (all) or more")]
    [InlineData("--class", "tight", "'tight' is not a class spec")]
    [InlineData("--class", "tight:-5", "class 'tight': slo_ms must be a positive number")]
    [InlineData("--arm", "nameonly", "--arm 'nameonly' is not name=address")]
    [InlineData("--arm", "a=ftp://x:1", "uses scheme 'ftp'")]
    public async Task Bench_BadOption_UsageErrorNamesIt(string option, string value, string expected)
    {
        var rates = option == "--rates" ? value : "10";
        string[] args = option == "--rates"
            ? ["bench", "-m", "shapes", "--zoo", RepoPaths.Zoo, "--rates", rates, "-e", Server.Address.ToString()]
            : ["bench", "-m", "shapes", "--zoo", RepoPaths.Zoo, "--rates", rates, option, value, "-e", Server.Address.ToString()];

        var result = await RunCliAsync(args);

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains(expected, result.Stdout + result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bench_ClassAndMix_ExcludeEachOther()
    {
        var result = await RunCliAsync("bench", "-m", "shapes", "--zoo", RepoPaths.Zoo, "-r", "10", "--class", "a:5", "--mix", "mix.json", "-e", Server.Address.ToString());

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("--class and --mix exclude each other", result.Stdout + result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bench_BadMixFile_InvalidInputNamesFile()
    {
        var file = Path.Combine(Path.GetTempPath(), $"effserve-mix-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(file, """{"classes": [{"name": "a", "slo_ms": 5, "weight": 0}]}""", TestContext.Current.CancellationToken);
        try
        {
            var bad = await RunCliAsync("bench", "-m", "shapes", "--zoo", RepoPaths.Zoo, "-r", "10", "--mix", file, "-e", Server.Address.ToString());
            var missing = await RunCliAsync("bench", "-m", "shapes", "--zoo", RepoPaths.Zoo, "-r", "10", "--mix", file + ".missing", "-e", Server.Address.ToString());

            Assert.Equal(ExitCodes.InvalidInput, bad.ExitCode);
            Assert.Contains($"{file}: the SLO mix is not usable: class 'a': weight must be positive", bad.Stderr, StringComparison.Ordinal);
            Assert.Equal(ExitCodes.InvalidInput, missing.ExitCode);
            Assert.Contains("cannot read the SLO mix", missing.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Bench_NoEvaluationSet_InvalidInputSaysWhere()
    {
        var zoo = Directory.CreateTempSubdirectory("effserve-zoo-").FullName;
        try
        {
            var result = await RunCliAsync("bench", "-m", "shapes", "-r", "10", "--zoo", zoo, "-e", Server.Address.ToString());

            Assert.Equal(ExitCodes.InvalidInput, result.ExitCode);
            Assert.Contains($"no manifest at {Path.Combine(zoo, "shapes", "model.yaml")}", result.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(zoo, recursive: true);
        }
    }

    private static Task<CliOutcome> RunCliAsync(params string[] args) => CliRunner.RunAsync(args, TestContext.Current.CancellationToken, width: 400);
}
