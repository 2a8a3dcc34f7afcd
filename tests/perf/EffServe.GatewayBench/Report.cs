using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace EffServe.GatewayBench;

internal sealed record MachineInfo(int Cores, string Cpu, string Os, string LoadAverageAtStart, string LoadAverageAtEnd);

internal sealed record VersionInfo(string Dotnet, string Nginx, string Yarp);

internal sealed record SettingsInfo(int Rounds, int RequestsPerLatencyRound, double SecondsPerThroughputWindow, int Callers, string Channels, int Seed, int Samples, IReadOnlyList<string> Variants);

internal sealed record WorkloadInfo(string Model, string Request, int Samples, double AccuracyOnSample, bool ResponsesIdenticalAcrossArms);

internal sealed record WarmupInfo(int Windows, bool Converged, double LastWindowMedianUs);

/// <summary>Throughput of one arm in one channel mode: the median of rounds and CPU per request over all windows.</summary>
internal sealed record ThroughputResult(string Channels, Estimate RequestsPerSecond, long Requests, long Errors, double? ProxyCpuUsPerRequest, double ServiceCpuUsPerRequest, double ClientCpuUsPerRequest);

internal sealed record ArmResult(
    string Name,
    string Path,
    WarmupInfo Warmup,
    long LatencySamples,
    double P50Us,
    double P99Us,
    double MeanUs,
    Estimate? HopP50Us,
    Estimate? HopP99Us,
    IReadOnlyList<ThroughputResult> Throughput,
    int? ProxyThreads);

internal sealed record RatioResult(string Name, string Definition, Estimate Value, string? Target);

internal sealed record BenchResult(
    string Command,
    string Revision,
    bool UncommittedChanges,
    string Time,
    MachineInfo Machine,
    VersionInfo Versions,
    SettingsInfo Settings,
    WorkloadInfo Workload,
    IReadOnlyList<ArmResult> Arms,
    IReadOnlyList<RatioResult> Ratios,
    int ServiceThreads,
    string NginxConfig);

/// <summary>Turns the measurements into the results: a markdown section for docs/benchmarks.md, or JSON.</summary>
internal static partial class Report
{
    private static readonly CultureInfo s_inv = CultureInfo.InvariantCulture;

    public static BenchResult Build(
        BenchOptions options,
        IReadOnlyList<string> args,
        string root,
        string gatewayDll,
        IReadOnlyList<Arm> arms,
        Arm direct,
        Arm nginx,
        IReadOnlyList<ChannelMode> modes,
        WorkloadInfo workload,
        string loadStart,
        string loadEnd,
        IReadOnlyDictionary<string, int?> threads,
        int serviceThreads,
        string nginxConfig)
    {
        var seed = options.Seed;
        var armResults = arms.Select(a => new ArmResult(
            a.Name,
            PathOf(a.Name),
            new WarmupInfo(a.WarmupWindows, a.WarmupConverged, Math.Round(a.WarmupLastMedianUs, 1)),
            a.Latencies.Count,
            Stats.Percentile(a.Latencies, 0.5),
            Stats.Percentile(a.Latencies, 0.99),
            a.Latencies.Count == 0 ? double.NaN : a.Latencies.Average(),
            a == direct ? null : Stats.MedianWithInterval(a.RoundP50.Zip(direct.RoundP50, (x, d) => x - d), seed),
            a == direct ? null : Stats.MedianWithInterval(a.RoundP99.Zip(direct.RoundP99, (x, d) => x - d), seed),
            [.. modes.Select(m => Throughput(a, m, seed))],
            threads.GetValueOrDefault(a.Name))).ToList();

        var ratios = new List<RatioResult>();
        foreach (var a in arms.Where(a => a != direct && a != nginx))
        {
            ratios.Add(new RatioResult(
                $"{a.Name} hop / nginx hop, p50",
                "per round: (arm p50 − direct p50) / (nginx p50 − direct p50); rounds with no positive nginx hop left out",
                Stats.MedianWithInterval(HopRatios(a.RoundP50, nginx.RoundP50, direct.RoundP50), seed),
                a.Name == "gateway" ? "≤ 1.3 (parity is the aim)" : null));
            ratios.Add(new RatioResult(
                $"{a.Name} hop / nginx hop, p99",
                "per round: (arm p99 − direct p99) / (nginx p99 − direct p99)",
                Stats.MedianWithInterval(HopRatios(a.RoundP99, nginx.RoundP99, direct.RoundP99), seed),
                null));
            foreach (var mode in modes)
            {
                var mine = a.Windows[mode];
                var theirs = nginx.Windows[mode];
                ratios.Add(new RatioResult(
                    $"{a.Name} / nginx requests/s, {options.Callers} callers, {ModeText(mode)}",
                    "per round: arm requests/s / nginx requests/s",
                    Stats.MedianWithInterval(mine.Zip(theirs, (x, n) => x.Rate / n.Rate), seed),
                    a.Name == "gateway" ? "≥ 1.0" : null));
                ratios.Add(new RatioResult(
                    $"{a.Name} / nginx proxy CPU per request, {ModeText(mode)}",
                    "per round: (proxy CPU s / requests) of the arm over nginx's (master + worker); /proc/PID/stat, 10 ms per reading",
                    Stats.MedianWithInterval(mine.Zip(theirs, (x, n) => x.ProxyCpu / x.Requests / (n.ProxyCpu / n.Requests)), seed),
                    null));
            }
        }

        var nginxVersion = Prerequisites.FirstLine(Prerequisites.Find("nginx") ?? "nginx", "-v").Replace("nginx version: nginx/", "", StringComparison.Ordinal);
        var deps = Path.ChangeExtension(gatewayDll, ".deps.json");
        var yarp = File.Exists(deps) && YarpVersion().Match(File.ReadAllText(deps)) is { Success: true } m ? m.Groups[1].Value : "unknown";
        var (revision, uncommitted, time) = BenchText.Provenance(root);
        return new BenchResult(
            BenchText.Command("tests/perf/EffServe.GatewayBench/bin/Release/net10.0/EffServe.GatewayBench.dll", args),
            revision,
            uncommitted,
            time,
            new MachineInfo(Environment.ProcessorCount, Machine.CpuModel(), RuntimeInformation.OSDescription, loadStart, loadEnd),
            new VersionInfo(RuntimeInformation.FrameworkDescription, nginxVersion, yarp),
            new SettingsInfo(options.Rounds, options.Requests, options.Seconds, options.Callers, options.Channels.ToString(), options.Seed, workload.Samples, [
                .. options.Variants.Select(v => $"gateway:{v.Name}: {string.Join(' ', v.Arguments.Concat(v.Environment.Select(e => $"{e.Key}={e.Value}")))}"),
                .. options.YarpVariants.Select(v => $"yarp:{v.Name}: {string.Join(' ', v.Arguments.Concat(v.Environment.Select(e => $"{e.Key}={e.Value}")))}"),
            ]),
            workload,
            armResults,
            ratios,
            serviceThreads,
            nginxConfig);
    }

    public static string Json(BenchResult result) => JsonSerializer.Serialize(result, BenchText.Json);

    public static string Markdown(BenchResult r)
    {
        var s = new StringBuilder();
        var settings = r.Settings;
        s.AppendLine("### Gateway hop vs nginx `grpc_pass` (issue 3)");
        s.AppendLine();
        s.AppendLine(s_inv, $"- Command: `{r.Command}` (`make bench-gateway`)");
        s.AppendLine(s_inv, $"- Revision: `{r.Revision}`{(r.UncommittedChanges ? " with uncommitted changes" : "")}, {r.Time}");
        s.AppendLine(s_inv, $"- Machine: {r.Machine.Cores} cores, {r.Machine.Cpu}, {r.Machine.Os}; load average {r.Machine.LoadAverageAtStart} at start, {r.Machine.LoadAverageAtEnd} at end. Client, proxy and service share the cores (not pinned); threads: service {r.ServiceThreads}, {string.Join(", ", r.Arms.Where(a => a.ProxyThreads is not null).Select(a => $"{a.Name} {a.ProxyThreads}"))}.");
        s.AppendLine(s_inv, $"- Versions: {r.Versions.Dotnet}; nginx {r.Versions.Nginx} (1 worker, keepalive 64 upstream); YARP {r.Versions.Yarp}.");
        s.AppendLine(s_inv, $"- Workload: {r.Workload.Model}, {r.Workload.Request}; {r.Workload.Samples} samples of the eval set, answered byte-identically through every arm: {(r.Workload.ResponsesIdenticalAcrossArms ? "yes" : "NO")}; accuracy on them {r.Workload.AccuracyOnSample:F3}.");
        var throughput = settings.Channels == nameof(ChannelMode.None) ? " (throughput not measured)" : string.Create(s_inv, $", then {settings.SecondsPerThroughputWindow:0.###} s per arm and channel mode with {settings.Callers} callers in a closed loop");
        s.AppendLine(s_inv, $"- Method: {settings.Rounds} rounds; each round, in an order shuffled by seed {settings.Seed}: {settings.RequestsPerLatencyRound} calls per arm with one in flight{throughput}. Warm-up per arm: windows of 100 calls until the medians of three in a row agree within 10%. Hops and ratios are medians of per-round values with 95% bootstrap intervals.");
        if (settings.Variants.Count > 0)
        {
            s.AppendLine(s_inv, $"- Variants: {string.Join("; ", settings.Variants.Select(v => $"`{v}`"))}.");
        }

        s.AppendLine();
        s.AppendLine("| arm | path | p50 µs | p99 µs | hop p50 µs (95% CI) | hop p99 µs (95% CI) | warm-up |");
        s.AppendLine("| --- | --- | ---: | ---: | --- | --- | --- |");
        foreach (var a in r.Arms)
        {
            s.AppendLine(s_inv, $"| {a.Name} | {a.Path} | {a.P50Us:F0} | {a.P99Us:F0} | {Ci(a.HopP50Us, "F0")} | {Ci(a.HopP99Us, "F0")} | {a.Warmup.Windows} windows{(a.Warmup.Converged ? "" : ", not converged")} |");
        }

        if (r.Arms.Any(a => a.Throughput.Count > 0))
        {
            s.AppendLine();
            s.AppendLine(s_inv, $"| arm | channels | requests/s, {settings.Callers} callers (95% CI) | proxy CPU µs/req | service CPU µs/req | client CPU µs/req | failed |");
            s.AppendLine("| --- | --- | --- | ---: | ---: | ---: | ---: |");
            foreach (var a in r.Arms)
            {
                foreach (var t in a.Throughput)
                {
                    s.AppendLine(s_inv, $"| {a.Name} | {t.Channels} | {Ci(t.RequestsPerSecond, "F0")} | {(t.ProxyCpuUsPerRequest is { } p ? p.ToString("F1", s_inv) : "–")} | {t.ServiceCpuUsPerRequest:F1} | {t.ClientCpuUsPerRequest:F1} | {t.Errors} |");
                }
            }
        }

        s.AppendLine();
        s.AppendLine("| ratio | median of rounds (95% CI) | target |");
        s.AppendLine("| --- | --- | --- |");
        foreach (var ratio in r.Ratios)
        {
            s.AppendLine(s_inv, $"| {ratio.Name} | {Ci(ratio.Value, "F2")} | {ratio.Target ?? ""} |");
        }

        s.AppendLine();
        s.AppendLine("CPU per request is the process's utime + stime from /proc/PID/stat around each throughput window, summed over all windows; proxy CPU of nginx is its master and worker together.");
        return s.ToString();
    }

    private static ThroughputResult Throughput(Arm a, ChannelMode mode, int seed)
    {
        var windows = a.Windows[mode];
        var requests = windows.Sum(w => w.Requests);
        double PerRequest(double cpu) => requests == 0 ? double.NaN : Math.Round(cpu / requests * 1e6, 2);
        return new ThroughputResult(
            ModeText(mode),
            Stats.MedianWithInterval(windows.Select(w => w.Rate), seed),
            requests,
            windows.Sum(w => w.Errors),
            a.Door.Process is null ? null : PerRequest(windows.Sum(w => w.ProxyCpu)),
            PerRequest(windows.Sum(w => w.ServiceCpu)),
            PerRequest(windows.Sum(w => w.ClientCpu)));
    }

    private static IEnumerable<double> HopRatios(List<double> arm, List<double> nginx, List<double> direct)
    {
        for (var i = 0; i < Math.Min(arm.Count, Math.Min(nginx.Count, direct.Count)); i++)
        {
            var nginxHop = nginx[i] - direct[i];
            yield return nginxHop > 0 ? (arm[i] - direct[i]) / nginxHop : double.NaN;
        }
    }

    private static string PathOf(string arm) => arm switch
    {
        "direct" => "client → service",
        "nginx" => "client → nginx → service",
        "yarp-bare" => "client → bare YARP forwarder → service",
        "tcp-pump" => "client → TCP relay (.NET sockets, no HTTP/2) → service",
        _ when arm.StartsWith("yarp:", StringComparison.Ordinal) => "client → bare YARP forwarder (variant) → service",
        "gateway+header" => "client → gateway (effserve-model header) → service",
        _ => "client → gateway → service",
    };

    private static string ModeText(ChannelMode mode) => mode == ChannelMode.Shared ? "one channel" : "channel per caller";

    private static string Ci(Estimate? e, string format) => e is null ? "–" : BenchText.Ci(e, format);

    [GeneratedRegex("\"Yarp\\.ReverseProxy/([^\"]+)\"")]
    private static partial Regex YarpVersion();
}
