using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using EffServe.GatewayBench;

namespace EffServe.CacheBench;

/// <summary>What was checked before measuring, per model.</summary>
/// <param name="Inputs">Distinct inputs of the repeated workload.</param>
/// <param name="FirstMisses">Of their first calls, how many answered miss (all should).</param>
/// <param name="FromRedis">How many the Redis-only replica then answered as hits.</param>
/// <param name="Identical">How many cached answers equal the answer with the cache bypassed, byte for byte.</param>
/// <param name="InputBytes">Bytes of one input tensor.</param>
internal sealed record Check(int Inputs, int FirstMisses, int FromRedis, int Identical, int InputBytes);

/// <summary>CPU µs per call of each process.</summary>
internal sealed record CpuPerCall(double Gateway, double Service, double Redis, double Client)
{
    public static CpuPerCall Of(Cpu cpu, long calls) => calls == 0
        ? new(double.NaN, double.NaN, double.NaN, double.NaN)
        : new(Us(cpu.Gateway, calls), Us(cpu.Service, calls), Us(cpu.Redis, calls), Us(cpu.Client, calls));

    public double Server => Gateway + Service + Redis;

    private static double Us(double seconds, long calls) => Math.Round(seconds / calls * 1e6, 1);
}

internal sealed record LatencyResult(string Model, string Arm, string Description, long Calls, double P50Us, double P99Us, Estimate RoundP50Us, Estimate RoundP99Us, CpuPerCall CpuUs, long Unexpected, int WarmupWindows, bool WarmupConverged);

internal sealed record ThroughputResult(string Model, string Arm, string Description, Estimate RequestsPerSecond, long Calls, long Errors, long Unexpected, CpuPerCall CpuUs);

internal sealed record JobWayResult(string Way, Estimate ItemsPerSecond, long Items, long Failed, CpuPerCall CpuUs, double? SubmitSeconds, double? FirstResultSeconds, int Missing, int Repeated);

internal sealed record RatioResult(string Name, string Definition, Estimate Value, string? Aim);

internal sealed record BenchResult(
    string Command,
    string Revision,
    bool UncommittedChanges,
    string Time,
    int Cores,
    string Cpu,
    string Os,
    string LoadAverageAtStart,
    string LoadAverageAtEnd,
    string Dotnet,
    string Redis,
    string StackExchangeRedis,
    BenchOptions Settings,
    IReadOnlyList<string> ServiceSettings,
    IReadOnlyDictionary<string, Check> Checks,
    IReadOnlyList<LatencyResult> Latency,
    IReadOnlyList<ThroughputResult> Throughput,
    IReadOnlyList<JobWayResult> Jobs,
    int JobItemBytes,
    IReadOnlyList<RatioResult> Ratios);

/// <summary>Turns the measurements into the results: a markdown section for docs/benchmarks.md, or JSON.</summary>
internal static partial class Report
{
    private static readonly CultureInfo s_inv = CultureInfo.InvariantCulture;

    public static BenchResult Build(
        BenchOptions options,
        IReadOnlyList<string> args,
        string root,
        string serviceDll,
        IReadOnlyList<string> cachedSettings,
        string loadStart,
        string loadEnd,
        IReadOnlyDictionary<string, Check> checks,
        IReadOnlyList<LatencyArm> latencyArms,
        IReadOnlyList<ThroughputArm> throughputArms,
        IReadOnlyList<JobOutcome> jobs,
        IReadOnlyList<Window> online,
        int jobItemBytes)
    {
        var seed = options.Seed;
        var latency = latencyArms.Select(a => new LatencyResult(
            a.Model,
            a.Kind,
            a.Description,
            a.Latencies.Count,
            Stats.Percentile(a.Latencies, 0.5),
            Stats.Percentile(a.Latencies, 0.99),
            Stats.MedianWithInterval(a.RoundP50, seed),
            Stats.MedianWithInterval(a.RoundP99, seed),
            CpuPerCall.Of(a.Cpu, a.Latencies.Count),
            a.Unexpected,
            a.WarmupWindows,
            a.WarmupConverged)).ToList();
        var throughput = throughputArms.Select(a => new ThroughputResult(
            a.Model,
            a.Kind,
            a.Description,
            Stats.MedianWithInterval(a.Windows.Select(w => w.Rate), seed),
            a.Windows.Sum(w => w.Calls),
            a.Windows.Sum(w => w.Errors),
            a.Windows.Sum(w => w.Unexpected),
            CpuPerCall.Of(Sum(a.Windows), a.Windows.Sum(w => w.Calls)))).ToList();
        var jobWindows = jobs.Select(j => j.Window).ToList();
        var jobResults = new List<JobWayResult>
        {
            new(
                "one job (SubmitJob, then StreamJobResults to the end)",
                Stats.MedianWithInterval(jobWindows.Select(w => w.Rate), seed),
                jobWindows.Sum(w => w.Calls),
                jobWindows.Sum(w => w.Errors),
                CpuPerCall.Of(Sum(jobWindows), jobWindows.Sum(w => w.Calls)),
                jobs.Count == 0 ? null : Stats.Median([.. jobs.Select(j => j.SubmitSeconds)]),
                jobs.Count == 0 ? null : Stats.Median([.. jobs.Select(j => j.FirstResultSeconds)]),
                jobs.Sum(j => j.Missing),
                jobs.Sum(j => j.Repeated)),
            new(
                $"online, {options.Callers} callers (effserve.cache=bypass)",
                Stats.MedianWithInterval(online.Select(w => w.Rate), seed),
                online.Sum(w => w.Calls),
                online.Sum(w => w.Errors),
                CpuPerCall.Of(Sum(online), online.Sum(w => w.Calls)),
                null,
                null,
                0,
                0),
        };

        var ratios = new List<RatioResult>();
        foreach (var model in options.Models)
        {
            LatencyArm L(string kind) => latencyArms.Single(a => a.Model == model && a.Kind == kind);
            ThroughputArm T(string kind) => throughputArms.Single(a => a.Model == model && a.Kind == kind);
            var (off, miss, hit, redisHit) = (L("off"), L("miss"), L("hit"), L("hit-redis"));
            ratios.Add(new RatioResult($"{model}: miss / hit, p50", "per round: miss p50 / hit p50", Ratio(miss.RoundP50, hit.RoundP50, seed), null));
            ratios.Add(new RatioResult($"{model}: miss / hit, p99", "per round: miss p99 / hit p99", Ratio(miss.RoundP99, hit.RoundP99, seed), null));
            ratios.Add(new RatioResult($"{model}: miss / Redis hit, p50", "per round: miss p50 / hit-redis p50", Ratio(miss.RoundP50, redisHit.RoundP50, seed), null));
            ratios.Add(new RatioResult($"{model}: off / hit, p50", "per round: bypass p50 / hit p50 (a hit against no cache at all)", Ratio(off.RoundP50, hit.RoundP50, seed), null));
            ratios.Add(new RatioResult($"{model}: miss − off, p50 µs", "per round: miss p50 − bypass p50 (what caching adds to a miss: key, lookups, fill)", Stats.MedianWithInterval(miss.RoundP50.Zip(off.RoundP50, (m, o) => m - o), seed), null));
            ratios.Add(new RatioResult(
                $"{model}: requests/s, cache on / off, {options.Callers} callers",
                "per round: on requests/s / off requests/s",
                Ratio([.. T("on").Windows.Select(w => w.Rate)], [.. T("off").Windows.Select(w => w.Rate)], seed),
                "≈ 5× (Triton's figure for a hit workload); hits skip the batcher, so higher"));
            ratios.Add(new RatioResult(
                $"{model}: requests/s, Redis hits / off, {options.Callers} callers",
                "per round: on-redis requests/s / off requests/s",
                Ratio([.. T("on-redis").Windows.Select(w => w.Rate)], [.. T("off").Windows.Select(w => w.Rate)], seed),
                null));
            ratios.Add(new RatioResult(
                $"{model}: server CPU per request, cache on / off",
                "per round: (gateway + service + redis CPU / requests) on over off",
                Ratio([.. T("on").Windows.Select(PerCall)], [.. T("off").Windows.Select(PerCall)], seed),
                null));
        }

        ratios.Add(new RatioResult(
            $"{options.JobModel}: items/s, job / online",
            "per job round: job items/s / online items/s",
            Ratio([.. jobWindows.Select(w => w.Rate)], [.. online.Select(w => w.Rate)], seed),
            null));
        ratios.Add(new RatioResult(
            $"{options.JobModel}: server CPU per item, job / online",
            "per job round: (gateway + service + redis CPU / items) of the job over online",
            Ratio([.. jobWindows.Select(PerCall)], [.. online.Select(PerCall)], seed),
            null));

        var deps = Path.ChangeExtension(serviceDll, ".deps.json");
        var client = File.Exists(deps) && RedisClientVersion().Match(File.ReadAllText(deps)) is { Success: true } m ? m.Groups[1].Value : "unknown";
        var (revision, uncommitted, time) = BenchText.Provenance(root);
        return new BenchResult(
            BenchText.Command("tests/perf/EffServe.CacheBench/bin/Release/net10.0/EffServe.CacheBench.dll", args),
            revision,
            uncommitted,
            time,
            Environment.ProcessorCount,
            Machine.CpuModel(),
            RuntimeInformation.OSDescription,
            loadStart,
            loadEnd,
            RuntimeInformation.FrameworkDescription,
            Prerequisites.FirstLine(Prerequisites.Find("redis-server") ?? "redis-server", "--version"),
            client,
            options,
            [
                .. CacheStack.SharedSettings("<repo>", ["<model>"], "<redis>").Where(s => !s.Contains("Models:0=", StringComparison.Ordinal) && !s.Contains("ZooPath", StringComparison.Ordinal)),
                .. cachedSettings.Select(s => $"{s} (cached replica)"),
                .. CacheStack.RedisOnlySettings.Select(s => $"{s} (Redis-only replica)"),
            ],
            checks,
            latency,
            throughput,
            jobResults,
            jobItemBytes,
            ratios);
    }

    public static string Json(BenchResult result) => JsonSerializer.Serialize(result, BenchText.Json);

    public static string Markdown(BenchResult r)
    {
        var s = new StringBuilder();
        var o = r.Settings;
        s.AppendLine("### Response cache and asynchronous jobs (T2: cache hit vs miss)");
        s.AppendLine();
        s.AppendLine(s_inv, $"- Command: `{r.Command}` (`make bench-cache`)");
        s.AppendLine(s_inv, $"- Revision: `{r.Revision}`{(r.UncommittedChanges ? " with uncommitted changes" : "")}, {r.Time}");
        s.AppendLine(s_inv, $"- Machine: {r.Cores} cores, {r.Cpu}, {r.Os}; load average {r.LoadAverageAtStart} at start, {r.LoadAverageAtEnd} at end (the machine is shared). Client, two gateways, two services and redis-server share the cores, not pinned.");
        s.AppendLine(s_inv, $"- Versions: {r.Dotnet}; {r.Redis}; StackExchange.Redis {r.StackExchangeRedis}.");
        s.AppendLine(s_inv, $"- Set-up: a redis-server on a free loopback port (no persistence); two inference services serving {string.Join(", ", r.Checks.Keys)} with the cache on for each model and Redis as L2, each behind its own gateway. Settings: `{string.Join(" ", r.ServiceSettings)}`.");
        s.AppendLine(s_inv, $"- Method: {o.Rounds} rounds; each round, in an order shuffled by seed {o.Seed}: {o.Requests} calls per latency arm with one in flight, then {o.Seconds:0.###} s per throughput arm with {o.Callers} callers in a closed loop (a channel each); in the first {o.JobRounds} rounds also one job of {o.JobItems} {o.JobModel} items and the same items online, in shuffled order. Warm-up per latency arm: windows of {o.WarmupCalls} calls until the medians of three in a row agree within 10% (at most 15). Figures are medians of per-round values with 95% bootstrap intervals; ratios are taken inside each round.");
        foreach (var (model, c) in r.Checks)
        {
            s.AppendLine(s_inv, $"- Checks, {model} ({c.InputBytes} bytes per input): of {c.Inputs} repeated inputs, {c.FirstMisses} answered miss on first sight, {c.FromRedis} were then answered from Redis by the replica without L1, and {c.Identical} cached answers equal the uncached answer byte for byte.");
        }

        s.AppendLine();
        s.AppendLine("| model | arm | what | p50 µs (95% CI) | p99 µs (95% CI) | server CPU µs/call (gateway + service + redis) | answers not as expected | warm-up |");
        s.AppendLine("| --- | --- | --- | --- | --- | ---: | ---: | --- |");
        foreach (var a in r.Latency)
        {
            s.AppendLine(s_inv, $"| {a.Model} | {a.Arm} | {a.Description} | {BenchText.Ci(a.RoundP50Us, "F0")} | {BenchText.Ci(a.RoundP99Us, "F0")} | {a.CpuUs.Server:F0} ({a.CpuUs.Gateway:F0} + {a.CpuUs.Service:F0} + {a.CpuUs.Redis:F0}) | {a.Unexpected} of {a.Calls} | {a.WarmupWindows}{(a.WarmupConverged ? "" : ", not converged")} |");
        }

        s.AppendLine();
        s.AppendLine(s_inv, $"| model | arm | workload | requests/s, {o.Callers} callers (95% CI) | gateway CPU µs/req | service CPU µs/req | redis CPU µs/req | client CPU µs/req | failed | not as expected |");
        s.AppendLine("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var t in r.Throughput)
        {
            s.AppendLine(s_inv, $"| {t.Model} | {t.Arm} | {t.Description} | {BenchText.Ci(t.RequestsPerSecond, "F0")} | {t.CpuUs.Gateway:F1} | {t.CpuUs.Service:F1} | {t.CpuUs.Redis:F1} | {t.CpuUs.Client:F1} | {t.Errors} | {t.Unexpected} |");
        }

        s.AppendLine();
        s.AppendLine(s_inv, $"| {o.JobItems} {o.JobModel} items ({r.JobItemBytes} bytes each) | items/s (95% CI) | gateway CPU µs/item | service CPU µs/item | redis CPU µs/item | client CPU µs/item | SubmitJob s | first result s | failed | missing | repeated |");
        s.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var j in r.Jobs)
        {
            s.AppendLine(s_inv, $"| {j.Way} | {BenchText.Ci(j.ItemsPerSecond, "F0")} | {j.CpuUs.Gateway:F1} | {j.CpuUs.Service:F1} | {j.CpuUs.Redis:F1} | {j.CpuUs.Client:F1} | {Seconds(j.SubmitSeconds)} | {Seconds(j.FirstResultSeconds)} | {j.Failed} | {j.Missing} | {j.Repeated} |");
        }

        s.AppendLine();
        s.AppendLine("| ratio | median of rounds (95% CI) | aim |");
        s.AppendLine("| --- | --- | --- |");
        foreach (var ratio in r.Ratios)
        {
            s.AppendLine(s_inv, $"| {ratio.Name} | {BenchText.Ci(ratio.Value, ratio.Name.EndsWith("µs", StringComparison.Ordinal) ? "F0" : "F2")} | {ratio.Aim ?? ""} |");
        }

        s.AppendLine();
        s.AppendLine("CPU per call is each process's utime + stime from /proc/PID/stat (10 ms per reading) around each series, window or job, summed over the run and divided by the calls (or items). The job worker runs at most EffServe:Jobs:MaxInFlight items at once (2 unless set), each item costing Redis round trips of its own (take, begin attempt, write result, acknowledge).");
        return s.ToString();
    }

    private static Cpu Sum(IEnumerable<Window> windows) => windows.Aggregate(Cpu.Zero, (sum, w) => sum + w.Cpu);

    private static double PerCall(Window w) => w.Calls == 0 ? double.NaN : w.Cpu.Server / w.Calls;

    private static Estimate Ratio(IReadOnlyList<double> numerator, IReadOnlyList<double> denominator, int seed) =>
        Stats.MedianWithInterval(numerator.Zip(denominator, (n, d) => d > 0 ? n / d : double.NaN), seed);

    private static string Seconds(double? s) => s is { } v && double.IsFinite(v) ? v.ToString("F2", s_inv) : "–";

    [GeneratedRegex("\"StackExchange\\.Redis/([^\"]+)\"")]
    private static partial Regex RedisClientVersion();
}
