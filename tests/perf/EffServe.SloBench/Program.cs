using System.Globalization;
using System.Runtime.InteropServices;
using EffServe.GatewayBench;
using EffServe.LoadGen;
using EffServe.SloBench;

// The SLO benchmark (T3): does SLO-aware serving pay? One inference service process per policy,
// the same seeded mixed-SLO Poisson trace at rising offered rates, policies interleaved per rate.
//
//   EffServe.SloBench [--quick] [--out DIR] [--model shapes] [--seed N] [--duration S] [--repeats R]
//                     [--factors 0.25,0.5,...] [--rates 500,1000,...] [--mix mix.json] [--no-build]
var options = BenchOptions.Parse(args);
if (options is null)
{
    return 1;
}

AppDomain.CurrentDomain.ProcessExit += (_, _) => ChildProcess.KillAll();
Console.CancelKeyPress += (_, _) => ChildProcess.KillAll();
using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => ChildProcess.KillAll());

try
{
    var root = BenchOptions.Root;
    var dll = Prerequisites.ServiceDll(root, "EffServe.Inference", options.NoBuild);
    var loadAtStart = File.ReadAllText("/proc/loadavg").Split(' ').Take(3).ToArray();
    var mix = options.MixFile is { } file ? LoadMix.Load(file) : LoadMix.Default;
    var workload = Workload.Load(Path.Combine(root, "zoo"), options.Model, mix);
    Log.Line($"{options.Model}: {workload.SampleCount} evaluation samples; classes {string.Join(", ", mix.Classes.Select(Reports.DescribeClass))}");

    await using var arms = await PolicyArms.StartAsync(dll, root, options.Model);
    foreach (var arm in arms.All)
    {
        var medians = await ClosedLoop.WarmUpAsync(arm.Channel.CreateCallInvoker(), workload, maxWindows: options.Quick ? 4 : 15);
        Log.Line($"{arm.Name}: pid {arm.Process.Pid}, {arm.Address}; warm-up windows (median latency, one in flight): {ClosedLoop.Describe(medians)}");
    }

    // Capacity of fixed fp32 (closed loop, 8 in flight): the rates run from well below to well above it.
    var baseline = arms.All.Single(a => a.Name == PolicyArms.Baseline);
    var capacitySeconds = options.Quick ? 1 : 3;
    var capacity = await ClosedLoop.ThroughputAsync(baseline.Channel.CreateCallInvoker(), workload, 8, capacitySeconds);
    Log.Line(string.Create(CultureInfo.InvariantCulture, $"capacity of {baseline.Name}: {capacity:0} answers/s (closed loop, 8 in flight, {capacitySeconds} s)"));
    var rates = options.Rates ?? [.. options.Factors.Select(f => Math.Round(capacity * f / 10) * 10).Where(r => r > 0).Distinct()];

    var settings = new SweepSettings
    {
        Rates = rates,
        DurationSeconds = options.Duration,
        Repeats = options.Repeats,
        Seed = options.Seed,
    };
    var benchArms = arms.All.Select(a => new BenchArm(a.Name, a.Channel.CreateCallInvoker(), () => ProcStat.CpuSeconds([a.Process.Pid]))).ToList();
    var result = await Sweep.RunAsync(benchArms, workload, settings, Log.Line);
    var checks = SloTargets.Check(result, PolicyArms.Adaptive, PolicyArms.Baseline, PolicyArms.Fixed);

    var inv = CultureInfo.InvariantCulture;
    var revision = Prerequisites.FirstLine("git", "-C", root, "rev-parse", "--short", "HEAD");
    var dirty = Prerequisites.Run("git", ["-C", root, "status", "--porcelain", "--untracked-files=no"], root).Output.Trim().Length > 0;
    var loadAtEnd = File.ReadAllText("/proc/loadavg").Split(' ').Take(3).ToArray();
    var context = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["command"] = options.Command,
        ["revision"] = revision + (dirty ? " with uncommitted changes" : ""),
        ["machine"] = string.Create(inv, $"{Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, .NET {Environment.Version}"),
        ["load_average_start"] = string.Join(' ', loadAtStart),
        ["load_average_end"] = string.Join(' ', loadAtEnd),
        ["capacity_fixed_fp32"] = capacity.ToString("0", inv),
        ["arms"] = string.Join("; ", arms.All.Select(a => $"{a.Name}: {a.Settings}")),
    };
    var preamble = new System.Text.StringBuilder();
    preamble.AppendLine("# T3: SLO-aware serving against fixed variants");
    preamble.AppendLine();
    preamble.AppendLine(inv, $"- Command: `{options.Command}`");
    preamble.AppendLine(inv, $"- Revision: `{context["revision"]}`; {context["machine"]}");
    preamble.AppendLine(inv, $"- Load average {context["load_average_start"]} at the start, {context["load_average_end"]} at the end. The load generator and the four services share the cores (not pinned); only the arm being measured is loaded.");
    preamble.AppendLine(inv, $"- Capacity of fixed fp32 (closed loop, 8 in flight): {capacity:0} answers/s; rates: {string.Join(", ", rates.Select(r => r.ToString("0", inv)))} req/s.");
    preamble.AppendLine(inv, $"- Arms: {context["arms"]}.");
    preamble.AppendLine();
    preamble.Append(SloTargets.Markdown(checks));
    preamble.AppendLine();

    var written = Reports.WriteAll(options.Out, result, context, $"{options.Model}, {Environment.ProcessorCount} cores", preamble.ToString(), "t3.png");
    Console.WriteLine(preamble.ToString());
    Console.WriteLine(Reports.Markdown(result));
    Log.Line("wrote " + string.Join(", ", written));
    return 0;
}
catch (Exception e) when (e is BenchException or LoadGenException)
{
    await Console.Error.WriteLineAsync("error: " + e.Message);
    return 1;
}
finally
{
    ChildProcess.KillAll();
}
